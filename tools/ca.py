"""The county's own certificate authority (the `cryptography` package): a CA
that signs the broker's server certificate, and whose certificate every device
and the edge get at provisioning to verify the broker by (docs/deploy.md).
Keys are written 0600 and never leave the folder they are made in."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.adapters.device_keys import write_private
from tools.broker import TlsFiles


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Huimin county"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_private(path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode())


def make_ca(dir: Path, name: str = "Huimin county CA", years: int = 20) -> Path:
    """ca.pem (public: goes on devices, also as ca.der) and ca.key (0600)."""
    dir.mkdir(parents=True, exist_ok=True)
    if (dir / "ca.key").exists():
        raise FileExistsError(f"{dir / 'ca.key'} exists; not replacing a county CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_key(dir / "ca.key", key)
    (dir / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (dir / "ca.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return dir / "ca.pem"


def _load_ca(dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key = serialization.load_pem_private_key((dir / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    return ca_key, x509.load_pem_x509_certificate((dir / "ca.pem").read_bytes())


def _sans(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def _server_cert(ca_dir: Path, public_key: ec.EllipticCurvePublicKey, hosts: list[str],
                 years: int) -> bytes:
    """A broker's certificate (PEM) for `hosts`, signed by the county CA: a server's
    rights only (not a CA, server authentication), whatever was asked for."""
    ca_key, ca = _load_ca(ca_dir)
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365 * years))
            .add_extension(_sans(hosts), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def make_server_cert(dir: Path, hosts: list[str], years: int = 2) -> TlsFiles:
    """server.pem + server.key (0600) for the broker, for each name or IP in
    `hosts` (what devices put in their config's mqtt.host)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _server_cert(dir, key.public_key(), hosts, years)
    _write_key(dir / "server.key", key)
    (dir / "server.pem").write_bytes(pem)
    return TlsFiles(dir / "ca.pem", dir / "server.pem", dir / "server.key")


def request_server_cert(dir: Path, hosts: list[str]) -> Path:
    """On the Pi: the broker's key (server.key, 0600, never leaves) and a certificate
    request for `hosts` (server.csr), for the county CA to sign on its own machine."""
    dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder().subject_name(_name(hosts[0]))
           .add_extension(_sans(hosts), critical=False).sign(key, hashes.SHA256()))
    _write_key(dir / "server.key", key)
    (dir / "server.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return dir / "server.csr"


class RequestError(ValueError):
    pass


def sign_request(ca_dir: Path, csr_path: Path, out: Path, years: int = 2) -> list[str]:
    """On the CA's machine: a server certificate for the request's names, signed by the
    county CA; returns the names. Only what a broker needs is taken from the request (its
    key and DNS/IP names): whatever else it asks for (a CA's rights, other uses) is not."""
    try:
        csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    except ValueError as exc:
        raise RequestError(f"{csr_path} is not a certificate request (PEM)") from exc
    if not csr.is_signature_valid:
        raise RequestError(f"{csr_path}: its signature does not verify")
    try:
        asked = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise RequestError(f"{csr_path} names no host (huimin ca --request --host)") from None
    hosts = [str(v) for v in asked.get_values_for_type(x509.DNSName)] + \
        [str(v) for v in asked.get_values_for_type(x509.IPAddress)]
    key = csr.public_key()
    if not hosts:
        raise RequestError(f"{csr_path} names no DNS name or IP address")
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise RequestError(f"{csr_path}: the broker's key must be an EC key (huimin ca "
                           "--request makes one)")
    out.write_bytes(_server_cert(ca_dir, key, hosts, years))
    return hosts


def county_tls(dir: Path, hosts: list[str]) -> TlsFiles:
    """The CA (made once) and a server certificate for `hosts`."""
    if not (dir / "ca.key").exists():
        make_ca(dir)
    return make_server_cert(dir, hosts)
