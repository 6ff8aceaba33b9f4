"""A county's secure setup, run on the edge's Pi (docs/deploy.md):

  huimin ca --dir /etc/huimin/ca --host edge.local --host 192.168.10.2
      the county CA (once) and the broker's TLS certificate for those names
  huimin broker --config /etc/huimin/edge.toml --out /etc/mosquitto/conf.d/huimin
      Mosquitto's configuration, password file and ACL, from the edge's
      configuration and its device registry (run again after provisioning)
  huimin token add NAME --out FILE / huimin token revoke NAME / huimin token list
      technicians' API tokens (the edge keeps their hashes)

Secrets are written to files of mode 0600 and never printed."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from edge.adapters.device_keys import load_devices, write_private
from edge.config import EdgeConfig
from tools.credentials import add_edge_config_arg


def load_edge_config(path: Path, prog: str) -> EdgeConfig | None:
    """The edge's configuration, or None after saying on stderr what is wrong."""
    from edge import config
    from edge.config import ConfigError

    try:
        return config.load(path)
    except ConfigError as exc:
        print(f"huimin {prog}: bad configuration: {exc}", file=sys.stderr)
        return None


def _ca(args: argparse.Namespace) -> int:
    from tools.ca import RequestError, county_tls, make_ca, request_server_cert, sign_request

    if args.init:
        print(f"county CA: {make_ca(args.dir)} (and ca.der, for devices); its key "
              f"{args.dir / 'ca.key'} (0600) stays on this machine")
        return 0
    if args.sign is not None:
        out = args.out or args.sign.with_suffix(".pem")
        try:
            hosts = sign_request(args.dir, args.sign, out)
        except (RequestError, FileNotFoundError) as exc:
            print(f"huimin ca: {exc}", file=sys.stderr)
            return 2
        print(f"signed {out} for {', '.join(hosts)}: copy it and {args.dir / 'ca.pem'} "
              f"(and ca.der) to the Pi's /etc/huimin/ca, as server.pem and ca.pem")
        return 0
    if not args.host:
        print("huimin ca: give --host (a name or address devices use for the broker)",
              file=sys.stderr)
        return 2
    if args.request:
        csr = request_server_cert(args.dir, args.host)
        print(f"request {csr} for {', '.join(args.host)}, key {args.dir / 'server.key'} "
              "(0600, stays here): sign it on the CA's machine (huimin ca --dir COUNTY_CA "
              "--sign server.csr), then copy back server.pem and ca.pem")
        return 0
    tls = county_tls(args.dir, args.host)
    print(f"county CA: {tls.ca} (and ca.der, for devices); its key {args.dir / 'ca.key'} "
          "is mode 0600: keep a copy offline")
    print(f"broker certificate for {', '.join(args.host)}: {tls.cert}, key {tls.key}")
    return 0


def _broker(args: argparse.Namespace) -> int:
    from tools.broker import Accounts, TlsFiles, password_hash, write_config

    cfg = load_edge_config(args.config, "broker")
    if cfg is None:
        return 2
    if cfg.mqtt is None or not cfg.mqtt.username or not cfg.mqtt.password:
        print("huimin broker: the edge's [mqtt] needs url, username and password",
              file=sys.stderr)
        return 2
    accounts = Accounts(cfg.site)
    accounts.edge[cfg.mqtt.username] = password_hash(cfg.mqtt.password)
    devices = load_devices(cfg.device_keys)
    for dev, entry in sorted(devices.items()):
        if entry.get("mqtt_password"):
            accounts.devices[dev] = entry["mqtt_password"]
    tls = None
    if args.ca_dir is not None:
        tls = TlsFiles(args.ca_dir / "ca.pem", args.ca_dir / "server.pem",
                       args.ca_dir / "server.key")
        for f in (tls.ca, tls.cert, tls.key):
            if not f.exists():
                print(f"huimin broker: {f} missing (huimin ca --dir {args.ca_dir} --host ...)",
                      file=sys.stderr)
                return 2
    args.data_dir.mkdir(parents=True, exist_ok=True)
    conf = write_config(args.out, accounts, cfg.mqtt.port, args.tls_port if tls else None,
                        tls, args.bind, args.user, args.data_dir)
    print(f"{conf}: {len(accounts.devices)} device account(s), the edge's "
          f"({cfg.mqtt.username}); TLS for devices on {args.bind}:{args.tls_port}"
          if tls else f"{conf}: no TLS listener (give --ca-dir): devices cannot connect")
    # On a Pi the broker is the huimin-broker service (huimin service install); by hand
    # elsewhere.
    if Path("/etc/systemd/system/huimin-broker.service").exists():
        print("then: systemctl reload huimin-broker  (the running broker rereads its "
              "accounts; nothing is dropped)")
    else:
        print(f"then: systemctl reload huimin-broker on a Pi (huimin service install sets it "
              f"up), or by hand: mosquitto -c {conf}")
    return 0


def _token(args: argparse.Namespace) -> int:
    from edge.adapters.api_tokens import ApiTokens

    cfg = load_edge_config(args.config, "token")
    if cfg is None:
        return 2
    tokens = ApiTokens(cfg.api_tokens)
    if args.token_cmd == "add":
        # Every check before the hash is saved: a token whose secret was never
        # written anywhere would be a login nobody holds.
        problem = None
        if args.name in tokens.hashes and not args.replace:
            problem = (f"a token named {args.name} exists: add --replace to give "
                       f"{args.name} a new one (the old one stops working), or pick another name")
        elif args.out.exists():
            problem = f"{args.out} exists: give another --out (a token file is never overwritten)"
        elif not args.out.parent.is_dir():
            problem = f"no folder {args.out.parent} for --out: make it, or give another path"
        elif not os.access(args.out.parent, os.W_OK):
            problem = f"cannot write in {args.out.parent}: give another --out"
        if problem is not None:
            print(f"huimin token: {problem}", file=sys.stderr)
            return 2
        try:
            token = tokens.add(args.name)
        except ValueError as exc:
            print(f"huimin token: {exc}", file=sys.stderr)
            return 2
        write_private(args.out, token + "\n")
        print(f"token for {args.name} written to {args.out} (mode 0600); give it to the "
              f"technician for ~/.config/huimin/edge-token, then delete {args.out}")
    elif args.token_cmd == "revoke":
        if not tokens.revoke(args.name):
            print(f"huimin token: no token named {args.name}", file=sys.stderr)
            return 1
        print(f"token {args.name} revoked (the edge rereads the file on each request)")
    else:
        for name in sorted(tokens.hashes):
            print(name)
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("ca", help="make the county CA and the broker's TLS certificate",
                       description="Make the county's certificate authority (once: ca.pem, "
                       "ca.der for devices, ca.key mode 0600) and a server certificate for "
                       "the broker, valid for each --host (a name or an IP address devices "
                       "use to reach it).")
    p.add_argument("--dir", type=Path, default=Path("/etc/huimin/ca"),
                   help="where the CA lives (default /etc/huimin/ca)")
    p.add_argument("--host", action="append",
                   help="a name or address of the broker as devices reach it (repeatable)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--init", action="store_true",
                     help="only the CA, on the county's own (offline) machine")
    how.add_argument("--request", action="store_true",
                     help="on the Pi: the broker's key and a request (server.csr) for the CA "
                     "to sign elsewhere; no CA key on the Pi")
    how.add_argument("--sign", type=Path, metavar="CSR",
                     help="on the CA's machine: sign a Pi's request into a certificate")
    p.add_argument("--out", type=Path, help="with --sign: where the certificate goes "
                   "(default: beside the request, .pem)")
    p.set_defaults(func=_ca)
    p = sub.add_parser("broker", help="write Mosquitto's configuration from the registry",
                       description="Write mosquitto.conf, the password file (hashes only, "
                       "mode 0600) and the ACL: no anonymous clients, each device confined to "
                       "its own topics, the edge to what it uses; devices on TLS, the edge "
                       "on loopback. Run again after provisioning an MQTT device, then reload "
                       "Mosquitto.")
    add_edge_config_arg(p)
    p.add_argument("--out", type=Path, default=Path("/etc/mosquitto/huimin"),
                   help="folder for the files (default /etc/mosquitto/huimin)")
    p.add_argument("--ca-dir", type=Path, help="the county CA folder (huimin ca): TLS for "
                   "devices")
    p.add_argument("--tls-port", type=int, default=8883, help="devices' TLS port (8883)")
    p.add_argument("--bind", default="0.0.0.0",
                   help="address of the devices' TLS listener (default all)")
    p.add_argument("--user", default="mosquitto", help="user Mosquitto runs as")
    p.add_argument("--data-dir", type=Path, default=Path("/var/lib/mosquitto/huimin"),
                   help="persistence and log (default /var/lib/mosquitto/huimin)")
    p.set_defaults(func=_broker)
    p = sub.add_parser("token", help="technicians' API tokens for the edge",
                       description="Make (add), revoke or list the tokens technicians' "
                       "tools send the edge's API. Only hashes are kept; a new token is "
                       "written to a file of mode 0600, never printed.")
    add_edge_config_arg(p)
    tsub = p.add_subparsers(dest="token_cmd", required=True, metavar="ACTION")
    a = tsub.add_parser("add", help="a new token for a technician or laptop")
    a.add_argument("name", help="who holds it, e.g. wang-laptop")
    a.add_argument("--out", type=Path, required=True,
                   help="a new file to write the token to (never overwritten)")
    a.add_argument("--replace", action="store_true",
                   help="give a name that has a token a new one (the old one stops working)")
    r = tsub.add_parser("revoke", help="revoke a token (a lost laptop)")
    r.add_argument("name")
    tsub.add_parser("list", help="the names of the tokens")
    p.set_defaults(func=_token)
