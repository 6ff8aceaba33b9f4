"""House rules that tools check: ruff on everything in CPython, mypy --strict
on the edge, bridge, hardware and tools, and every firmware file accepted by
mpy-cross (it is MicroPython, not CPython)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tools.firmware import mpy_cross_path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_ruff_clean() -> None:
    r = subprocess.run([str(BIN / "ruff"), "check", "edge", "hardware", "tools", "cloud_bridge",
                        "tests", "bench", "scripts"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_clean_on_the_firmware() -> None:
    """firmware/ruff.toml: the project's rules, less those MicroPython has reasons against;
    the same for the ESP32-S3 port's modules as the simulator emulates them."""
    r = subprocess.run([str(BIN / "ruff"), "check", "--config", "firmware/ruff.toml", "firmware",
                        "hardware/esp32s3_rom"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_clean() -> None:
    r = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_firmware_file_compiles_with_mpy_cross(tmp_path: Path) -> None:
    bad = []
    for src in sorted((ROOT / "firmware").rglob("*.py")):
        r = subprocess.run([mpy_cross_path(), "-o", str(tmp_path / "x.mpy"), str(src)],
                           capture_output=True, text=True)
        if r.returncode:
            bad.append(f"{src.relative_to(ROOT)}: {r.stderr.strip()}")
    assert not bad, "\n".join(bad)


def test_import_contracts_hold() -> None:
    """The layers and boundaries in pyproject.toml [tool.importlinter]
    (docs/architecture.md): import-linter, the ecosystem's checker."""
    r = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_one_door_to_the_devices() -> None:
    """Only edge/app/links.py calls a transport's Reply: every message to a device goes
    through its queue, in order per device and gated on commits where it must be. A
    module that awaited a Reply itself would jump that queue (an answer before its ack)."""
    import ast

    callers = []
    for src in sorted([*(ROOT / "edge").rglob("*.py"), *(ROOT / "cloud_bridge").rglob("*.py")]):
        rel = src.relative_to(ROOT).as_posix()
        if rel in ("edge/app/links.py", "edge/core/ports.py") or "/transports/" in rel:
            continue
        for node in ast.walk(ast.parse(src.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in ("reply", "_reply") or name.endswith("_reply"):
                    callers.append(f"{rel}:{node.lineno}")
    assert not callers, callers


def test_one_rule_for_reading_a_card() -> None:
    """The kiosk's SAM driver and the Pi's USB ID reader had drifted (one
    retried a lost SELECT answer, the other did not): both now walk
    wire.idcard's READ_STEPS and judge answers with step_failed, and neither
    sends SELECT or READ of its own."""
    for path in (ROOT / "firmware" / "drivers" / "sam_reader.py",
                 ROOT / "edge" / "adapters" / "cardreader" / "idreader.py"):
        text = path.read_text()
        assert "idcard.READ_STEPS" in text and "idcard.step_failed" in text, path
        for own in ("idcard.SELECT", "idcard.READ)", "idcard.READ,", "idcard.E_SELFTEST"):
            assert own not in text, f"{path.name} reads a card its own way ({own})"
