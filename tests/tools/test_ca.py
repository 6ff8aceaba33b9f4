"""The county CA signs off the Pi (docs/security.md, "the holder of a Pi"): the Pi makes
its broker key and a request, the CA's own machine signs it, and the broker serves TLS that
devices verify with the county CA, with no CA key ever on the Pi. A request is taken only
for what a broker needs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import needs_mosquitto, run
from tests.tools.test_broker import Client
from tools.broker import Broker, TlsFiles
from tools.cli import main as cli


@needs_mosquitto
def test_the_pi_gets_a_certificate_without_the_ca_key(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    county, pi = tmp_path / "county-ca", tmp_path / "pi-ca"
    assert cli(["ca", "--dir", str(county), "--init"]) == 0
    assert cli(["ca", "--dir", str(pi), "--request", "--host", "127.0.0.1",
                "--host", "edge-anji.local"]) == 0
    assert (pi / "server.key").stat().st_mode & 0o077 == 0
    shutil.copy(pi / "server.csr", county / "anji.csr")  # carried to the CA's machine
    assert cli(["ca", "--dir", str(county), "--sign", str(county / "anji.csr"),
                "--out", str(county / "anji.pem")]) == 0
    shutil.copy(county / "anji.pem", pi / "server.pem")  # and back, with the public CA
    shutil.copy(county / "ca.pem", pi / "ca.pem")
    assert not (pi / "ca.key").exists()
    cert = x509.load_pem_x509_certificate((pi / "server.pem").read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert "127.0.0.1, edge-anji.local" in capsys.readouterr().out

    async def main() -> None:
        broker = Broker(tmp_path / "broker", site="anji",
                        tls=TlsFiles(pi / "ca.pem", pi / "server.pem", pi / "server.key"))
        pw = broker.account("dock-a")
        await broker.start()
        try:
            assert broker.tls_port is not None
            c = Client(broker.tls_port, "dock-a", pw, "dock-a", tls_ca=pi / "ca.pem")
            assert c.result() == 0  # verified against the county CA
            c.close()
        finally:
            await broker.stop()
    run(main())


def test_a_request_gets_only_a_brokers_certificate(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    county = tmp_path / "county-ca"
    assert cli(["ca", "--dir", str(county), "--init"]) == 0
    # A request that asks to be a CA itself, for a host.
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "x")]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("edge.local")]), False)
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
           .sign(key, hashes.SHA256()))
    (tmp_path / "greedy.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    assert cli(["ca", "--dir", str(county), "--sign", str(tmp_path / "greedy.csr")]) == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "greedy.pem").read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    # Not a request at all, or one naming no host: one line, no traceback.
    (tmp_path / "junk.csr").write_text("hello")
    assert cli(["ca", "--dir", str(county), "--sign", str(tmp_path / "junk.csr")]) == 2
    nameless = (x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME,
                                                            "x")])).sign(key, hashes.SHA256()))
    (tmp_path / "nameless.csr").write_bytes(nameless.public_bytes(serialization.Encoding.PEM))
    assert cli(["ca", "--dir", str(county), "--sign", str(tmp_path / "nameless.csr")]) == 2
    err = capsys.readouterr().err
    assert "not a certificate request" in err and "names no host" in err
    assert "Traceback" not in err
