"""`huimin ota`: signed over-the-air updates (docs/ota.md).

  huimin ota keygen KEY            make the Ed25519 signing key (keep it on this machine)
  huimin ota build --key KEY       build the image for a board and sign it
  huimin ota push IMAGE DEV...     roll it out through the edge, in waves
  huimin ota status                the edge's rollouts
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tools import ui
from tools.credentials import add_token_arg, edge_token, edge_url
from tools.firmware import (
    BOARD_PORTS,
    BuildError,
    build,
    keygen,
    public_key_hex,
    read_manifest,
    sign,
)

DEFAULT_EDGE = "http://127.0.0.1:8080"


def _http(method: str, url: str, body: Any = None, timeout: float = 30.0,
          token: str = "") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail") or exc.reason
        except ValueError:
            detail = exc.reason
        raise SystemExit(f"huimin ota: the edge said {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SystemExit(f"huimin ota: cannot reach the edge at {url}: {exc}") from None


def image_upload(image: Path) -> dict[str, Any]:
    """The image as the edge's API takes it (every file base64)."""
    man = read_manifest(image)
    if not (image / "manifest.sig").exists():
        raise SystemExit(f"huimin ota: {image} is not signed; run `huimin ota build --key ...`")
    names = [*man["files"], "manifest.json", "manifest.sig"]
    return {"files": {n: base64.b64encode((image / n).read_bytes()).decode() for n in names}}


def push(edge: str, image: Path, devices: list[str], wave: int, deadline_s: float,
         poll_s: float = 0.5, out: Any = None, token: str | None = None) -> dict[str, Any]:
    """Start a rollout and follow it to its end; returns the final rollout. A
    rollout is a technician's act: the edge wants their token."""
    con = ui.console(out or sys.stderr)
    token = token if token is not None else edge_token()
    r = _http("POST", f"{edge}/api/ota", {"image": image_upload(image), "devices": devices,
                                          "wave": wave, "deadline_s": deadline_s}, token=token)
    con.print(f"rollout {r['id']}: version {r['version']} to {len(devices)} device(s), "
              f"{len(r['waves'])} wave(s) of up to {wave}")
    with ui.progress(con) as bars:
        tasks = {d: bars.add_task(d, total=p["total"], note="waiting")
                 for d, p in r["devices"].items()}
        while True:
            r = _http("GET", f"{edge}/api/ota/{r['id']}", token=token)
            for d, p in r["devices"].items():
                note = p["state"] + (f": {p['error']}" if p["error"] else "")
                if p["state"] in ("confirmed", "failed", "skipped"):
                    note = ui.styled(p["state"]) + (f": {p['error']}" if p["error"] else "")
                bars.update(tasks[d], completed=p["sent"], note=note)
            if r["state"] != "running":
                return dict(r)
            time.sleep(poll_s)


def _keygen(args: argparse.Namespace) -> int:
    try:
        pub = keygen(args.key)
    except BuildError as exc:
        print(f"huimin ota keygen: {exc}", file=sys.stderr)
        return 2
    print(f"Signing key: {args.key} (keep it here; it never goes to a device)")
    print(f"Public key for `huimin provision --ota-key`: {pub}")
    return 0


def _build(args: argparse.Namespace) -> int:
    try:
        image = build(args.board, args.out, args.version)
        sign(image, args.key)
    except (BuildError, OSError, ValueError) as exc:
        print(f"huimin ota build: {exc}", file=sys.stderr)
        return 2
    man = read_manifest(image)
    print(f"{image}: version {man['version']} for {man['board']}, {len(man['files'])} files, "
          f"signed by {public_key_hex(args.key)[:16]}...")
    return 0


def _push(args: argparse.Namespace) -> int:
    r = push(args.edge, args.image, args.devices, args.wave, args.deadline,
             token=edge_token(args.token_file))
    failed = [d for d, p in r["devices"].items() if p["state"] != "confirmed"]
    if r["state"] == "done":
        print(f"rollout {r['id']} done: {len(r['devices'])} device(s) run {r['version']}")
        return 0
    print(f"rollout {r['id']} stopped at wave {r['wave']}: "
          + "; ".join(f"{d} {r['devices'][d]['state']}"
                      + (f" ({r['devices'][d]['error']})" if r['devices'][d]['error'] else "")
                      for d in failed), file=sys.stderr)
    return 1


def _status(args: argparse.Namespace) -> int:
    rollouts = _http("GET", f"{args.edge}/api/ota", token=edge_token(args.token_file))
    if not rollouts:
        print(f"no rollouts on {args.edge} yet: start one with `huimin ota push IMAGE DEVICE...`")
    for r in rollouts:
        states: dict[str, int] = {}
        for p in r["devices"].values():
            states[p["state"]] = states.get(p["state"], 0) + 1
        print(f"rollout {r['id']}: {r['version']} ({r['board']}) {r['state']}, wave "
              f"{r['wave']}/{len(r['waves'])}: "
              + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ota", help="signed over-the-air updates, in waves",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    osub = p.add_subparsers(dest="ota_cmd", required=True, metavar="STEP")
    k = osub.add_parser("keygen", help="make the Ed25519 signing key",
                        description="Write a new Ed25519 private key (PEM, mode 0600) and print "
                        "its public key, which `huimin provision --ota-key` gives devices.")
    k.add_argument("key", type=Path, help="where to write the private key")
    k.set_defaults(func=_keygen)
    b = osub.add_parser("build", help="build and sign an image",
                        description="Cross-compile the firmware for a board and sign its "
                        "manifest (every file's SHA-256) with the private key.")
    b.add_argument("--key", type=Path, required=True, help="the private key (PEM)")
    b.add_argument("--board", default="unix", choices=sorted(BOARD_PORTS),
                   help="board to build for (default unix; hardware/boards/ has their pin maps)")
    b.add_argument("--version", help="version to stamp (default firmware/VERSION)")
    b.add_argument("--out", type=Path, help="image folder (default build/firmware/BOARD)")
    b.set_defaults(func=_build)
    u = osub.add_parser("push", help="roll an image out through the edge",
                        description="Upload a signed image to the edge and roll it out to the "
                        "devices in waves; each device checks the signature, boots the image "
                        "on trial and rolls back by itself if the edge does not hear it. A "
                        "failed wave stops the rollout. Exit 0 when every device runs it.")
    u.add_argument("image", type=Path, help="the signed image folder")
    u.add_argument("devices", nargs="+", help="device ids, in rollout order")
    u.add_argument("--edge", type=edge_url, default=DEFAULT_EDGE,
                   help=f"edge URL (default {DEFAULT_EDGE})")
    u.add_argument("--wave", type=int, default=5, help="devices per wave (default 5)")
    u.add_argument("--deadline", type=float, default=180.0,
                   help="seconds a device has to come back on the new version (default 180)")
    add_token_arg(u)
    u.set_defaults(func=_push)
    s = osub.add_parser("status", help="the edge's rollouts",
                        description="Every rollout the edge knows: version, board, state, "
                        "the wave it reached and how many devices are in each state "
                        "(waiting, preparing, sending, checking, rebooting, confirmed, "
                        "failed, skipped).")
    s.add_argument("--edge", type=edge_url, default=DEFAULT_EDGE,
                   help=f"edge URL (default {DEFAULT_EDGE})")
    add_token_arg(s)
    s.set_defaults(func=_status)
