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
the keys file, so a restart (or a Pi whose clock went back) never reuses one.

A device's hello (or its `stale_ctr` refusal) tells its floor, the last counter
it accepted. That floor is the device's own business: commands to that device
are numbered above it, no other device's numbering moves, and a floor beyond
anything this edge can have issued (its reserved ceiling or the clock in ms,
plus FLOOR_SLACK) is refused and counted. A device someone opened can so make
only itself unreachable, and no counter ever nears the wire's 2**53.
"""

from __future__ import annotations

import logging
import os
import stat
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w
from wire import auth

from edge.adapters.transports import device_wire

log = logging.getLogger("edge.keys")

_BLOCK = 10_000  # counters reserved per write of the counter file
# How far above what this edge can have issued a device's floor may be and still be
# believed: a counter file lost with the Pi's SD card restarts the count from the clock,
# and a busy edge may run ahead of the clock; ~2.8 hours of one command per millisecond.
FLOOR_SLACK = 10_000_000


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
    """The keys file's text, by a TOML encoder: whatever an id or a value holds, the file
    parses back to the same table (an edge that cannot read it cannot restart)."""
    table = {"devices": {dev: dict(sorted(devices[dev].items())) for dev in sorted(devices)}}
    return ("# Device secrets (huimin provision). Keep mode 0600; never commit.\n\n"
            + tomli_w.dumps(table))


class DeviceKeys:
    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._mtime = path.stat().st_mtime if path is not None and path.exists() else -1.0
        self.devices = load_devices(path) if path is not None else {}
        self._set_keys()
        self._ctr_path = path.with_name(path.name + ".counter") if path is not None else None
        self._ceiling = self._read_ceiling()
        # Never below the wall clock in ms either: a lost counter file cannot
        # send the edge back to numbers a device has already seen.
        self._next = max(self._ceiling, int(clock() * 1000))
        # Per device: the highest counter it accepted or we numbered for it.
        self._floors: dict[str, int] = {}

    def _set_keys(self) -> None:
        self._raw = {d: bytes.fromhex(e["command_key"]) for d, e in self.devices.items()}
        self._keys = {d: auth.Key(raw) for d, raw in self._raw.items()}

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
        self._raw[dev] = bytes.fromhex(command_key)
        self._keys[dev] = auth.Key(self._raw[dev])
        self.devices[dev] = {"command_key": command_key, **extra}
        if self.path is not None:
            write_private(self.path, dump_devices(self.devices))
            self._mtime = self.path.stat().st_mtime

    def device_floor(self, dev: str, floor: int) -> bool:
        """A device says the last counter it accepted: its commands go above it. False
        (and nothing changes) for a floor this edge cannot have issued."""
        limit = max(self._ceiling, self._next, int(self._clock() * 1000)) + FLOOR_SLACK
        if not 0 <= floor < limit:
            log.warning("device %s claims command counter %d, beyond any this edge issued "
                        "(%d): refused; its commands keep their numbers", dev, floor, limit)
            return False
        if floor > self._floors.get(dev, -1):
            if floor >= self._next:
                log.info("device %s has seen counter %d: numbering its commands above it",
                         dev, floor)
            self._floors[dev] = floor
        return True

    def _number(self, dev: str) -> int:
        """The next counter for a command to `dev`: the edge's, or above what that device
        has already accepted (only its own commands move)."""
        n = self._take()
        floor = self._floors.get(dev, -1)
        if n <= floor:
            n = floor + 1
        self._floors[dev] = n
        return n

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

    def command_key(self, dev: str) -> bytes | None:
        """The device's key as it stands now (for the decoding worker, which checks
        messages with it); None if the edge has none."""
        raw = self._raw.get(dev)
        if raw is None:
            self._reload_if_changed()
            raw = self._raw.get(dev)
        return raw

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
        self._set_keys()

    def seal(self, dev: str, msg: dict[str, Any]) -> bytes:
        """The message's bytes as the device accepts them; KeyError if the
        device has no key (it was never provisioned)."""
        _, msg = self.to_seal(dev, msg)
        return device_wire.seal(self._keys[dev], msg)

    def to_seal(self, dev: str, msg: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        """The device's key and the message as it is to be sealed (a command
        numbered here: the counter is the edge's own), for a worker that seals
        it; KeyError if the device has no key."""
        if dev not in self._keys:
            self._reload_if_changed()
        raw = self._raw[dev]
        if msg.get("t") == "cmd":
            msg = {**msg, "ctr": self._number(dev)}
        return raw, msg
