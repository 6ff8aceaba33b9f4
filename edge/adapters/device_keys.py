"""The devices' secrets on the edge, and the sealing of every message the edge
sends a device (docs/security.md).

`huimin provision` makes each device a command key and a broker password; the
edge keeps them in one TOML file readable by its own user only:

    [devices.dock-001]
    command_key = "<64 hex>"          # HMAC key for edge -> device messages
    mqtt_password = "$7$101$..."      # the broker account's hash (tools/broker.py)

Every message to a device is encoded, then sealed with that key
(wire/auth.py); a command also carries a counter that the device requires to
rise. The counter is one for the whole edge, persisted ahead in blocks beside
the keys file, so a restart (or a Pi whose clock went back) never reuses one;
a device's hello tells its floor, and the counter jumps above it.
"""

from __future__ import annotations

import logging
import os
import stat
import time
import tomllib
from pathlib import Path
from typing import Any

from wire import auth, message

log = logging.getLogger("edge.keys")

_BLOCK = 10_000  # counters reserved per write of the counter file


class KeyFileError(ValueError):
    pass


def check_private(path: Path) -> None:
    """Secrets files must not be readable by anyone but their owner."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} is readable by others (mode {stat.filemode(mode)}); "
                           f"chmod 600 {path}")


def write_private(path: Path, text: str) -> None:
    """Write a secrets file atomically, mode 0600 from its first byte, owned
    by whoever owns its folder."""
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    folder = os.stat(path.parent)
    if os.geteuid() == 0 and folder.st_uid != 0:
        # root (`huimin token add`) writing into the edge's state folder: the
        # file stays the service user's, or the edge could no longer read it.
        os.fchown(fd, folder.st_uid, folder.st_gid)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_devices(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    check_private(path)
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    devices = raw.get("devices", {})
    out: dict[str, dict[str, str]] = {}
    for dev, entry in devices.items():
        key = entry.get("command_key", "")
        try:
            if len(bytes.fromhex(key)) < 16:
                raise ValueError
        except ValueError:
            raise KeyFileError(f"{path}: devices.{dev}.command_key must be 32+ hex digits") \
                from None
        out[dev] = {k: str(v) for k, v in entry.items()}
    return out


def dump_devices(devices: dict[str, dict[str, str]]) -> str:
    lines = ["# Device secrets (huimin provision). Keep mode 0600; never commit.", ""]
    for dev in sorted(devices):
        lines.append(f'[devices."{dev}"]')
        for k, v in sorted(devices[dev].items()):
            lines.append(f'{k} = "{v}"')
        lines.append("")
    return "\n".join(lines)


class DeviceKeys:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mtime = path.stat().st_mtime if path is not None and path.exists() else -1.0
        self.devices = load_devices(path) if path is not None else {}
        self._keys = {d: auth.Key(bytes.fromhex(e["command_key"]))
                      for d, e in self.devices.items()}
        self._ctr_path = path.with_name(path.name + ".counter") if path is not None else None
        self._ceiling = self._read_ceiling()
        # Never below the wall clock in ms either: a lost counter file cannot
        # send the edge back to numbers a device has already seen.
        self._next = max(self._ceiling, int(time.time() * 1000))

    def _read_ceiling(self) -> int:
        if self._ctr_path is None or not self._ctr_path.exists():
            return 0
        try:
            return int(self._ctr_path.read_text())
        except ValueError:
            log.error("%s is damaged; counting on from the clock", self._ctr_path)
            return 0

    def has(self, dev: str) -> bool:
        return dev in self._keys

    def add(self, dev: str, command_key: str, **extra: str) -> None:
        """Register or replace a device's secrets (provisioning), kept on disk."""
        self._keys[dev] = auth.Key(bytes.fromhex(command_key))
        self.devices[dev] = {"command_key": command_key, **extra}
        if self.path is not None:
            write_private(self.path, dump_devices(self.devices))
            self._mtime = self.path.stat().st_mtime

    def device_floor(self, dev: str, floor: int) -> None:
        """A device's hello says the last counter it accepted: go above it."""
        if floor >= self._next:
            log.info("device %s has seen counter %d: numbering on from there", dev, floor)
            self._next = floor + 1

    def _take(self) -> int:
        n = self._next
        self._next += 1
        if n >= self._ceiling:
            self._ceiling = n + _BLOCK
            if self._ctr_path is not None:
                write_private(self._ctr_path, str(self._ceiling))
        return n

    def verify(self, dev: str, data: bytes) -> bool | None:
        """Whether `dev` sealed these bytes (every message a device sends is);
        None when the edge has no key for it (never provisioned)."""
        key = self._keys.get(dev)
        if key is None:
            self._reload_if_changed()
            key = self._keys.get(dev)
            if key is None:
                return None
        return bool(auth.verify(key, auth.UP, data))

    def _reload_if_changed(self) -> None:
        # `huimin provision --keys-file` on the Pi writes the file while the
        # edge runs: a device it has not heard of may be new there.
        if self.path is None or not self.path.exists():
            return
        mtime = self.path.stat().st_mtime
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            self.devices = load_devices(self.path)
        except (KeyFileError, ValueError) as exc:
            log.error("%s: %s", self.path, exc)
            return
        self._keys = {d: auth.Key(bytes.fromhex(e["command_key"]))
                      for d, e in self.devices.items()}

    def seal(self, dev: str, msg: dict[str, Any]) -> bytes:
        """The message's bytes as the device accepts them; KeyError if the
        device has no key (it was never provisioned)."""
        if dev not in self._keys:
            self._reload_if_changed()
        key = self._keys[dev]
        if msg.get("t") == "cmd":
            msg = {**msg, "ctr": self._take()}
        return bytes(auth.seal(key, auth.DOWN, message.encode(msg)))
