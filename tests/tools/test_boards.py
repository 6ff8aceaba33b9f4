"""Every board the CLI offers builds, and its pin map gives the app what it
needs: a dock its slots, tag reader and (serial) edge line; a kiosk its card
module, display and voice module. The image names its board, which the
bootloader compares before it boots an update (refused:board)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.firmware import BOARD_PORTS, build, read_manifest

NEEDS = {"dock": {"tag"}, "kiosk": {"sam", "display", "voice"}}


@pytest.mark.parametrize("board", sorted(BOARD_PORTS))
def test_each_board_builds_with_the_pins_its_app_needs(board: str, tmp_path: Path) -> None:
    image = build(board, tmp_path / board)
    spec = json.loads((image / "board.json").read_text())
    assert read_manifest(image)["board"] == spec["name"]
    assert (image / "hal.mpy").exists() and (image / "main.py").exists()
    kind = spec.get("kind", "dock")
    assert NEEDS[kind] <= set(spec["uarts"]), f"{board}: uarts {sorted(spec['uarts'])}"
    if kind == "dock":
        n = len(spec["slots"]["lock"])
        assert n and len(spec["slots"]["latched"]) == n == len(spec["slots"]["present"])
    pins = [u[k] for u in spec["uarts"].values() for k in ("tx", "rx") if k in u]
    pins += [p for group in spec["slots"].values() for p in group]
    assert len(pins) == len(set(pins)), f"{board}: a pin is used twice"


def test_flash_tells_the_boards_apart_by_what_the_device_reports() -> None:
    from tools.flash import boards_for

    s3 = "Generic ESP32S3 module with ESP32S3"
    assert boards_for("esp32", s3) == ["esp32s3", "esp32s3-kiosk"]
    assert boards_for("esp32", "Generic ESP32 module with ESP32") == []  # not an S3
    assert boards_for("linux", "linux [GCC 14.2.1] version") == ["unix"]
    assert boards_for("rp2", "Raspberry Pi Pico with RP2040") == []
