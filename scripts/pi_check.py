#!/usr/bin/env python3
"""The edge role, installed and run on an arm64 Debian 12 root under qemu-user, as on a
64-bit Raspberry Pi. Run it (as root, from a developer's clone) before changing what gets
installed:

    .venv/bin/python scripts/pi_check.py                  # root in /var/tmp/pi-root
    .venv/bin/python scripts/pi_check.py --root DIR --keep

What it does, each step as docs/deploy.md tells a county to do it on a Pi:
 1. builds the root with ../shared/tools/pi-root.sh (reused when present; 4-5 minutes new);
 2. copies the committed tree (git archive HEAD) to /opt/huimin in it and runs
    ./scripts/bootstrap.sh there: on aarch64 that is the edge role (its system packages from
    apt, the hashed lock with pyscard built from source), timed;
 3. writes /etc/huimin/edge.toml, then `huimin ca`, `huimin token add` and `huimin broker`;
    starts the root's (arm64) Mosquitto and `huimin edge`;
 4. from this machine, as a technician's laptop and a dock would: registers dock-001 over
    the edge's API (tools/provision.register), rewrites the broker's accounts and reloads it,
    connects to the root's broker over TLS with the dock's account and publishes a sealed
    hello and a sealed `returned` event, and waits for the edge's sealed ack (sent after the
    commit);
 5. reads /healthz, the GBFS station_status (the returned bike counted once the dock's new
    slot state follows its event), the edge's peak
    memory under emulation, then SIGTERM: the edge must stop with status 0 and no traceback.

Speed under emulation is 5-20x slower than a Pi and means nothing; memory is qemu's process
(the translator included), an upper bound for a Pi. What is not run here: systemd (a chroot
has no init: `huimin service install` is covered by its own test), a real USB card reader
(pyscard's C extension is imported, no reader attached), serial docks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from wire import auth, message  # noqa: E402

from tools.broker import free_port, password_hash  # noqa: E402
from tools.provision import register  # noqa: E402

PI_ROOT_SH = ROOT.parent / "shared" / "tools" / "pi-root.sh"
SITE, DOCK, STATION = "anji", "dock-001", "anji-001"
PATH = "/opt/huimin/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def say(text: str) -> None:
    print(f"pi_check: {text}", flush=True)


class PiRoot:
    def __init__(self, path: Path) -> None:
        self.path = path

    def argv(self, *cmd: str) -> list[str]:
        return ["chroot", str(self.path), "env", "-i", f"PATH={PATH}", "HOME=/root",
                "LANG=C.UTF-8", *cmd]

    def run(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(self.argv("bash", "-c", script), capture_output=True, text=True)
        if check and r.returncode != 0:
            raise SystemExit(f"pi_check: in the root, `{script}` failed ({r.returncode}):\n"
                             f"{r.stdout}{r.stderr}")
        return r

    def start(self, log: Path, *cmd: str) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(self.argv(*cmd), stdout=out, stderr=subprocess.STDOUT)

    def file(self, inside: str) -> Path:
        return self.path / inside.lstrip("/")


@contextlib.contextmanager
def proc_mounted(root: Path) -> Iterator[None]:
    """The edge and Mosquitto read /proc (their own status); nothing else is shared."""
    target = root / "proc"
    mounted = not os.path.ismount(target)
    if mounted:
        subprocess.run(["mount", "-t", "proc", "proc", str(target)], check=True)
    try:
        yield
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(target)], check=False)


def build_root(path: Path) -> None:
    """pi-root.sh makes the root, or on one made before only registers qemu-user again."""
    if not PI_ROOT_SH.exists():
        raise SystemExit(f"pi_check: {PI_ROOT_SH} is missing: this check needs the shared "
                         "tools beside the clone (../shared)")
    if (path / "opt" / "venv" / "bin" / "python").exists():
        say(f"reusing the arm64 root in {path}")
    t = time.monotonic()
    subprocess.run(["bash", str(PI_ROOT_SH), str(path)], check=True, stdout=subprocess.DEVNULL)
    say(f"arm64 root ready ({time.monotonic() - t:.0f} s)")


def copy_tree(root: PiRoot) -> None:
    dest = root.file("/opt/huimin")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def install(root: PiRoot) -> dict[str, object]:
    t = time.monotonic()
    r = root.run("cd /opt/huimin && ./scripts/bootstrap.sh 2>&1")
    seconds = time.monotonic() - t
    role = root.file("/opt/huimin/.venv/.huimin-installed").read_text().split()[0]
    packages = root.run("/opt/huimin/.venv/bin/python -m pip list --format=freeze "
                        "--exclude-editable").stdout.split()
    size = root.run("du -sm /opt/huimin/.venv").stdout.split()[0]
    arch = root.run("/opt/huimin/.venv/bin/python -c 'import platform; "
                    "print(platform.machine())'").stdout.strip()
    # pyscard built here, from source, for this CPU: its C extension loads.
    root.run("/opt/huimin/.venv/bin/python -c 'import smartcard.scard'")
    say(f"bootstrap on {arch}: role {role}, {len(packages)} packages, {size} MB venv, "
        f"{seconds:.0f} s under emulation ({r.stdout.strip().splitlines()[-1:]})")
    return {"arch": arch, "role": role, "packages": len(packages), "venv_mb": int(size),
            "install_s": round(seconds)}


def configure(root: PiRoot, http_port: int, mqtt_port: int, tls_port: int) -> str:
    """/etc/huimin as deploy.md's steps 2-4 make it; returns the technician's token."""
    edge_pw = secrets.token_urlsafe(24)
    etc = root.file("/etc/huimin")
    shutil.rmtree(etc, ignore_errors=True)
    shutil.rmtree(root.file("/var/lib/huimin"), ignore_errors=True)
    etc.mkdir(mode=0o750)
    root.file("/var/lib/huimin").mkdir(mode=0o750)
    config = etc / "edge.toml"
    config.write_text(f"""[edge]
site = "{SITE}"
http_host = "127.0.0.1"
http_port = {http_port}
db = "/var/lib/huimin/edge.db"

[system]
id = "anji-public-bikes"
name_zh = "安吉公共自行车"
name_en = "Anji Public Bikes"
email = "bikes@example.gov.cn"

[mqtt]
url = "mqtt://127.0.0.1:{mqtt_port}"
username = "huimin-edge"
password = "{edge_pw}"

[[stations]]
id = "{STATION}"
name_zh = "递铺街道"
name_en = "Dipu"
lat = 30.638123
lon = 119.681234
devices = ["{DOCK}"]
""", encoding="utf-8")
    config.chmod(0o600)
    root.run("huimin ca --dir /etc/huimin/ca --host 127.0.0.1")
    # A reused root keeps the last run's token: this run's replaces it (token add
    # overwrites no file and no token unless told).
    root.file("/root/pi-check.token").unlink(missing_ok=True)
    root.run("huimin token --config /etc/huimin/edge.toml add pi-check --replace "
             "--out /root/pi-check.token")
    broker(root, tls_port)
    units(root)
    return root.file("/root/pi-check.token").read_text().strip()


def broker(root: PiRoot, tls_port: int) -> None:
    """`huimin broker`, then the ownership `huimin service install` gives its files (that
    command's systemd half cannot run in a chroot): Mosquitto drops to its own user."""
    root.run(f"huimin broker --config /etc/huimin/edge.toml --ca-dir /etc/huimin/ca "
             f"--out /etc/mosquitto/huimin --tls-port {tls_port} --bind 127.0.0.1 && "
             "chown -R mosquitto:mosquitto /etc/mosquitto/huimin /var/lib/mosquitto/huimin && "
             "chmod 0751 /etc/huimin && chown root:mosquitto /etc/huimin/ca/server.key && "
             "chmod 0640 /etc/huimin/ca/server.key")


def units(root: PiRoot) -> None:
    """The systemd units, written and checked by the root's own systemd-analyze (arm64)."""
    r = root.run("huimin service install --config /etc/huimin/edge.toml --prefix /opt/huimin "
                 "--root /tmp/units 2>&1")
    if "verify: clean" not in r.stdout:
        raise SystemExit(f"pi_check: the units did not verify clean:\n{r.stdout}")
    say("systemd units written and verified clean by the root's systemd-analyze")


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, limit_s: float) -> bytes:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"pi_check: the edge exited ({proc.returncode}):\n"
                             f"{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                data: bytes = r.read()
                return data
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"pi_check: {url} did not answer in {limit_s:.0f} s:\n"
                     f"{log.read_text(errors='replace')}")


def dock_event(root: PiRoot, http_port: int, tls_port: int, token: str,
               mosquitto: subprocess.Popen[bytes]) -> int:
    """Register dock-001 as `huimin provision` does, then speak as it: a sealed hello and a
    sealed `returned` event over TLS; returns the event's seq once the edge acked it."""
    key_hex = secrets.token_hex(32)
    password = secrets.token_urlsafe(18)
    register(f"http://127.0.0.1:{http_port}", DOCK, STATION, "dock", key_hex,
             password_hash(password), token)
    broker(root, tls_port)
    mosquitto.send_signal(signal.SIGHUP)  # `systemctl reload huimin-broker` on a Pi
    key = auth.Key(bytes.fromhex(key_hex))
    acks: list[dict[str, object]] = []
    got_ack = threading.Event()
    connected = threading.Event()

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        if auth.verify(key, auth.DOWN, msg.payload):
            body = message.decode(msg.payload)  # the seal is a field of the message
            acks.append(body)
            if body.get("t") == "ack":
                got_ack.set()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=DOCK)
    c.username_pw_set(DOCK, password)
    c.tls_set(ca_certs=str(root.file("/etc/huimin/ca/ca.pem")))
    c.on_connect = lambda *a: connected.set()
    c.on_message = on_message
    for _ in range(60):  # the reload takes a moment under emulation
        try:
            c.connect("127.0.0.1", tls_port)
            break
        except OSError:
            time.sleep(1)
    c.loop_start()
    try:
        if not connected.wait(60):
            raise SystemExit("pi_check: the dock could not connect to the root's broker")
        c.subscribe(f"huimin/{SITE}/{DOCK}/down", qos=1)
        time.sleep(1)
        epoch = secrets.token_hex(4)

        def publish(leaf: str, msg: dict[str, object], retain: bool = False) -> None:
            data = bytes(auth.seal(key, auth.UP, message.encode(msg)))
            c.publish(f"huimin/{SITE}/{DOCK}/{leaf}", data, qos=1,
                      retain=retain).wait_for_publish(30)

        publish("hello", {"t": "hello", "dev": DOCK, "kind": "dock", "fw": "0.1.0",
                          "slots": 4, "boot": 1, "epoch": epoch}, retain=True)
        publish("state", {"t": "state", "dev": DOCK, "boot": 1, "n": 1, "slots": "EEEE"},
                retain=True)
        seq = 1
        publish("event", {"t": "ev", "dev": DOCK, "epoch": epoch, "seq": seq,
                          "ev": "returned", "slot": 0, "bike": "0A00000001"})
        if not got_ack.wait(120):
            raise SystemExit(f"pi_check: no ack from the edge for the event; got {acks}")
        # As a dock does after a return: its slots' new state (the station's counts).
        publish("state", {"t": "state", "dev": DOCK, "boot": 1, "n": 2, "slots": "LEEE"},
                retain=True)
        return seq
    finally:
        c.loop_stop()
        c.disconnect()


def peak_memory_mb(pid: int) -> float:
    """Peak resident memory of the process and its children (the edge's wire worker)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        m = re.search(r"VmHWM:\s+(\d+) kB", status)
        total += int(m.group(1)) / 1024 if m else float("nan")
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("/var/tmp/pi-root"),
                    help="the arm64 root (built there when missing; default /var/tmp/pi-root)")
    ap.add_argument("--report", type=Path, help="write the numbers as JSON here too")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("pi_check: needs root (chroot, binfmt, apt in the root)", file=sys.stderr)
        return 2
    build_root(args.root)
    root = PiRoot(args.root)
    report: dict[str, object] = {}
    logs = Path(tempfile.mkdtemp(prefix="pi-check-"))
    with proc_mounted(args.root):
        copy_tree(root)
        report.update(install(root))
        http_port, mqtt_port, tls_port = free_port(), free_port(), free_port()
        token = configure(root, http_port, mqtt_port, tls_port)
        mosquitto = root.start(logs / "mosquitto.log", "/usr/sbin/mosquitto", "-c",
                               "/etc/mosquitto/huimin/mosquitto.conf")
        edge = root.start(logs / "edge.log", "huimin", "edge", "--config",
                          "/etc/huimin/edge.toml")
        try:
            t = time.monotonic()
            health = json.loads(wait_http(f"http://127.0.0.1:{http_port}/healthz", edge,
                                          logs / "edge.log", 300))
            report["edge_up_s"] = round(time.monotonic() - t, 1)
            say(f"huimin edge up under emulation: /healthz {health}")
            seq = dock_event(root, http_port, tls_port, token, mosquitto)
            say(f"dock-001's sealed event seq {seq} acked by the edge (after its commit)")
            station: dict[str, Any] = {}
            for _ in range(120):  # the feed follows the dock's new state
                status = json.loads(wait_http(
                    f"http://127.0.0.1:{http_port}/gbfs/3.0/station_status.json", edge,
                    logs / "edge.log", 60))
                station = status["data"]["stations"][0]
                if station["num_vehicles_available"] == 1:
                    break
                time.sleep(0.5)
            else:
                raise SystemExit(f"pi_check: GBFS never counted the returned bike: {station}")
            report["gbfs_station"] = {k: station[k] for k in (
                "station_id", "num_vehicles_available", "is_renting", "is_returning")}
            say(f"GBFS station_status: {report['gbfs_station']}")
            report["edge_peak_rss_mb"] = round(peak_memory_mb(edge.pid), 1)
            edge.send_signal(signal.SIGTERM)
            rc = edge.wait(120)
            log = (logs / "edge.log").read_text(errors="replace")
            report["edge_exit"] = rc
            report["traceback"] = "Traceback" in log
            say(f"edge stopped: status {rc}, peak RSS {report['edge_peak_rss_mb']} MB under "
                "qemu-user (the translator included)")
        finally:
            for p in (edge, mosquitto):
                if p.poll() is None:
                    p.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        p.wait(30)
                if p.poll() is None:
                    p.kill()
    ok = report.get("edge_exit") == 0 and not report.get("traceback")
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    say(("passed" if ok else "FAILED") + f"; logs in {logs}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
