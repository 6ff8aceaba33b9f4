"""`huimin service install`: the edge and its broker as systemd services on a
Pi (docs/deploy.md, 6), from the unit files in deploy/systemd/:

  1. a system user `huimin` (no login, no home), in the `dialout` group for
     serial docks;
  2. the units, filled in with where huimin lives and its configuration, and
     checked with `systemd-analyze verify` before anything is enabled;
  3. ownership: the edge's state folder (/var/lib/huimin) to its user, its
     configuration readable by it and root only, the broker's files to
     Mosquitto;
  4. Debian's own mosquitto.service off (its default listener is anonymous),
     then both services enabled and started, and their state shown.

`--root DIR` writes the files under DIR and touches nothing else (a Pi image
being built, or a look at what would be installed)."""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from tools import ui
from tools.credentials import add_edge_config_arg

UNITS = Path(__file__).resolve().parents[1] / "deploy" / "systemd"
EDGE_UNIT, BROKER_UNIT = "huimin-edge.service", "huimin-broker.service"


@dataclass(frozen=True)
class Plan:
    prefix: Path  # where huimin lives: its .venv/bin/huimin
    config: Path
    user: str
    mosquitto: str
    broker_conf: Path
    state: Path  # the edge's StateDirectory
    root: Path  # "/" on a Pi

    def render(self, unit: str) -> str:
        text = (UNITS / unit).read_text()
        for key, value in (("@PREFIX@", self.prefix), ("@CONFIG@", self.config),
                           ("@USER@", self.user), ("@MOSQUITTO@", self.mosquitto),
                           ("@BROKER_CONF@", self.broker_conf)):
            text = text.replace(key, str(value))
        return text

    def under_root(self, path: Path) -> Path:
        return self.root / path.relative_to("/")


def verify(unit_files: list[Path]) -> str | None:
    """systemd-analyze's complaints about the units ("" when clean); None where
    it is not installed. Unknown keys are only warnings to it: any output counts."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        return None
    # --man=no: a Pi without man pages is no reason to refuse a unit.
    r = subprocess.run([exe, "verify", "--man=no", *map(str, unit_files)], capture_output=True,
                       text=True,
                       env={**os.environ, "SYSTEMD_LOG_COLOR": "0"}, check=False)
    out = (r.stdout + r.stderr).strip()
    return out or ("" if r.returncode == 0 else f"exit {r.returncode}")


def _config_problem(plan: Plan) -> str:
    """What in the edge's configuration the hardened unit would break."""
    from edge.config import ConfigError, load

    if not plan.config.exists():
        return ""
    try:
        cfg = load(plan.config)
    except ConfigError as exc:
        return f"bad configuration: {exc}"
    # ProtectSystem=strict: the edge may write its state folder and nothing else.
    for what, path in (("edge.db", cfg.db), ("edge.device_keys", cfg.device_keys),
                       ("edge.api_tokens", cfg.api_tokens)):
        if not path.resolve().is_relative_to(plan.state):
            return (f"{what} is {path}: under the service it must be in {plan.state} "
                    "(the only folder it may write)")
    return ""


def _run(console: Console, *cmd: str) -> None:
    console.print(f"  [dim]$ {' '.join(cmd)}[/]")
    subprocess.run(cmd, check=True)


def install(plan: Plan, console: Console, start: bool = True) -> int:
    on_pi = plan.root == Path("/")
    if on_pi and os.geteuid() != 0:
        console.print("[red]huimin service install: run it as root (sudo)[/]")
        return 2
    if not plan.config.exists() and on_pi:
        console.print(f"[red]huimin service install: no configuration at {plan.config}[/] "
                      "(docs/deploy.md, 2)")
        return 2
    problem = _config_problem(plan)
    if problem:
        console.print(f"[red]huimin service install: {problem}[/]")
        return 2
    unit_dir = plan.under_root(Path("/etc/systemd/system"))
    unit_dir.mkdir(parents=True, exist_ok=True)
    written = []
    console.rule("[bold]units")
    for unit in (EDGE_UNIT, BROKER_UNIT):
        path = unit_dir / unit
        path.write_text(plan.render(unit))
        path.chmod(0o644)
        written.append(path)
        console.print(f"  wrote {path}")
    complaints = verify(written)
    if complaints is None:
        console.print("  [yellow]systemd-analyze not found: units not verified[/]")
    elif complaints:
        console.print(f"[red]systemd-analyze verify:[/]\n{complaints}")
        return 1
    else:
        console.print("  [green]systemd-analyze verify: clean[/]")
    if not on_pi:
        console.print(f"[green]Files under {plan.root}; nothing else changed.[/]")
        return 0
    console.rule("[bold]user and files")
    try:
        pwd.getpwnam(plan.user)
        console.print(f"  user {plan.user} exists")
    except KeyError:
        _run(console, "useradd", "--system", "--user-group", "--no-create-home",
             "--home-dir", str(plan.state), "--shell", "/usr/sbin/nologin", plan.user)
    _run(console, "usermod", "--append", "--groups", "dialout", plan.user)
    plan.state.mkdir(mode=0o700, parents=True, exist_ok=True)
    _run(console, "chown", "-R", f"{plan.user}:{plan.user}", str(plan.state))
    # Readable by the edge's user, written by root: it holds passwords.
    if plan.config.parent != Path("/etc"):
        # /etc/huimin: the edge lists and reads it; Mosquitto only passes through
        # to the broker's certificate in ca/; nobody else may list it.
        _run(console, "chown", f"root:{plan.user}", str(plan.config.parent))
        _run(console, "chmod", "0751", str(plan.config.parent))
    _run(console, "chown", f"root:{plan.user}", str(plan.config))
    _run(console, "chmod", "0640", str(plan.config))
    cfg_tls = _tls_key(plan.config)
    if cfg_tls is not None:  # the edge's own HTTPS key, from `huimin ca`
        _run(console, "chown", f"root:{plan.user}", str(cfg_tls))
        _run(console, "chmod", "0640", str(cfg_tls))
    if plan.broker_conf.exists():
        _run(console, "chown", "-R", "mosquitto:mosquitto", str(plan.broker_conf.parent))
        for key in _broker_keys(plan.broker_conf):  # it runs as mosquitto, not root
            _run(console, "chown", "root:mosquitto", str(key))
            _run(console, "chmod", "0640", str(key))
    else:
        console.print(f"  [yellow]{plan.broker_conf} is missing: write it with `huimin "
                      "broker` (docs/deploy.md, 3); the broker starts once it exists[/]")
    console.rule("[bold]services")
    _run(console, "systemctl", "daemon-reload")
    if subprocess.run(["systemctl", "is-enabled", "--quiet", "mosquitto.service"],
                      check=False).returncode == 0:
        _run(console, "systemctl", "disable", "--now", "mosquitto.service")
    verb = ["enable", "--now"] if start else ["enable"]
    _run(console, "systemctl", *verb, BROKER_UNIT, EDGE_UNIT)
    if start:
        subprocess.run(["systemctl", "--no-pager", "status", BROKER_UNIT, EDGE_UNIT],
                       check=False)
    console.print(f"[green]Installed.[/] Logs: journalctl -u {EDGE_UNIT} -f")
    return 0


def _broker_keys(conf: Path) -> list[Path]:
    """The TLS private keys Mosquitto's configuration names."""
    return [Path(line.split(None, 1)[1].strip()) for line in conf.read_text().splitlines()
            if line.startswith("keyfile ")]


def _tls_key(config: Path) -> Path | None:
    from edge.config import load

    return load(config).tls_key


def _install(args: argparse.Namespace) -> int:
    prefix = args.prefix.resolve()
    if not (prefix / ".venv" / "bin" / "huimin").exists() and args.root == Path("/"):
        print(f"huimin service install: {prefix}/.venv/bin/huimin not found; give --prefix, "
              "the folder ./scripts/bootstrap.sh ran in", file=sys.stderr)
        return 2
    if not (UNITS / EDGE_UNIT).exists():
        print(f"huimin service install: the unit files are not here ({UNITS}); run it from "
              "the clone in --prefix", file=sys.stderr)
        return 2
    plan = Plan(prefix=prefix, config=args.config.resolve(), user=args.user,
                mosquitto=shutil.which("mosquitto") or "/usr/sbin/mosquitto",
                broker_conf=args.broker_dir / "mosquitto.conf",
                state=Path("/var/lib/huimin"), root=args.root)
    console = ui.console()
    try:
        return install(plan, console, start=not args.no_start)
    except subprocess.CalledProcessError as exc:
        console.print(f"[red]huimin service install: `{' '.join(exc.cmd)}` failed (exit "
                      f"{exc.returncode}); nothing after it was done[/]")
        return 1


def add_parser(sub: Any) -> None:
    p = sub.add_parser("service", help="install the edge and its broker as systemd services",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ssub = p.add_subparsers(dest="service_cmd", required=True, metavar="ACTION")
    i = ssub.add_parser("install", help="user, units, ownership; enable and start both",
                        description="Install huimin-edge.service and huimin-broker.service: "
                        "the edge's system user, the units (checked with systemd-analyze "
                        "verify), ownership of its state and configuration; then enable and "
                        "start both. Run as root on the Pi, after the configuration and "
                        "`huimin broker` (docs/deploy.md).")
    add_edge_config_arg(i)
    i.add_argument("--prefix", type=Path, default=Path(__file__).resolve().parents[1],
                   help="where huimin is installed, with its .venv (default: this clone)")
    i.add_argument("--user", default="huimin", help="the edge's system user (huimin)")
    i.add_argument("--broker-dir", type=Path, default=Path("/etc/mosquitto/huimin"),
                   help="where `huimin broker` wrote Mosquitto's files")
    i.add_argument("--root", type=Path, default=Path("/"),
                   help="write the files under this folder and change nothing else")
    i.add_argument("--no-start", action="store_true", help="enable the services, start later")
    i.set_defaults(func=_install)
