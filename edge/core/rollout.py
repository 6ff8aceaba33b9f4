"""Rollout rules (docs/ota.md): what a valid uploaded image is, in what order
its files go, how devices are split into waves, and what a rollout's progress
looks like. edge/app/ota.py carries rollouts out over the devices' links."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from edge.core.errors import Rejected

KEEP_ROLLOUTS = 20  # ended rollouts remembered (without their images)


@dataclass
class Image:
    version: str
    board: str
    files: dict[str, bytes]  # path -> content; manifest.json and manifest.sig included

    @classmethod
    def from_upload(cls, body: dict[str, Any]) -> Image:
        try:
            if not isinstance(body, dict) or not isinstance(body.get("files"), dict):
                raise ValueError("the image is {\"files\": {path: base64}}")
            files = {str(p): base64.b64decode(b) for p, b in body["files"].items()}
            man = json.loads(files["manifest.json"])
            if not isinstance(man, dict) or not isinstance(man.get("files"), dict):
                raise ValueError("manifest.json is not a manifest")
            if "manifest.sig" not in files:
                raise ValueError("the image is not signed (manifest.sig missing)")
            missing = sorted(set(man["files"]) - set(files))
            if missing:
                raise ValueError(f"files in the manifest but not uploaded: {missing[:3]}")
            # Only what was signed goes to a device: an unlisted file could be
            # imported before a signed one (docs/security.md).
            extra = sorted(set(files) - set(man["files"]) - {"manifest.json", "manifest.sig"})
            if extra:
                raise ValueError(f"files the signed manifest does not list: {extra[:3]}")
            for p in files:
                if p.startswith("/") or ".." in p.split("/"):
                    raise ValueError(f"bad path {p!r}")
            return cls(str(man["version"]), str(man["board"]), files)
        except (KeyError, TypeError, ValueError) as exc:
            raise Rejected("bad_image", str(exc)) from exc

    def order(self) -> list[str]:
        # The manifest and its signature last: the device's end check reads them.
        rest = sorted(p for p in self.files if not p.startswith("manifest."))
        return [*rest, "manifest.json", "manifest.sig"]

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.files.values())


@dataclass
class DeviceProgress:
    state: str = "waiting"  # waiting, preparing, sending, checking, rebooting, confirmed,
    # failed, skipped
    sent: int = 0
    total: int = 0
    error: str = ""
    started: float = 0.0
    finished: float = 0.0


@dataclass
class Rollout:
    id: int
    image: Image
    waves: list[list[str]]
    deadline_s: float
    state: str = "running"  # running, done, stopped
    wave: int = 0
    devices: dict[str, DeviceProgress] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.image.version, "board": self.image.board,
                "state": self.state, "wave": self.wave, "waves": self.waves,
                "devices": {d: vars(p) for d, p in self.devices.items()}}




def plan_waves(devices: list[str], wave: int) -> list[list[str]]:
    """Devices in waves of `wave` (at least 1): a failed wave stops the rollout."""
    if not devices:
        raise Rejected("bad_rollout", "no devices")
    wave = max(1, wave)
    return [devices[i:i + wave] for i in range(0, len(devices), wave)]


def busy_devices(rollouts: dict[int, Rollout], devices: list[str]) -> list[str]:
    """Devices already in a running rollout (a device takes one at a time)."""
    busy = {d for r in rollouts.values() if r.state == "running" for d in r.devices}
    return sorted(busy & set(devices))


def forget_ended(rollouts: dict[int, Rollout]) -> None:
    """Only the last KEEP_ROLLOUTS ended rollouts are remembered."""
    ended = [k for k, x in rollouts.items() if x.state != "running"]
    for k in ended[:max(0, len(ended) - KEEP_ROLLOUTS)]:
        del rollouts[k]
