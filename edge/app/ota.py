"""Over-the-air rollouts from the edge (docs/ota.md). A technician's CLI
uploads a signed image (`huimin ota push`); the edge sends it to each device
over the device's own link (serial or MQTT) as "cmd"/"ota" messages of 96 bytes,
resuming a file where the device says it stopped. The device checks every
file, reboots, its bootloader verifies the signature, and it boots the new
image on trial; when its hello arrives with the new version the edge confirms
it. A device that comes back on its old version (refused image, failed health
check, rolled back) fails its wave, and the rollout stops there."""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from edge.app.links import DeviceLinks
from edge.core.errors import Rejected
from edge.core.messages import Hello, Result
from edge.core.registry import Registry
from edge.core.rollout import (
    DeviceProgress,
    Image,
    Rollout,
    busy_devices,
    forget_ended,
    plan_waves,
)

log = logging.getLogger("edge.ota")
CHUNK = 512  # raw bytes a message: base64 plus the command fits update mode's 1K link
TRIES = 4  # a chunk whose result is lost is resent this often before the device fails


class Ota:
    def __init__(self, links: DeviceLinks, registry: Registry,
                 spawn: Callable[[Coroutine[Any, Any, Any], str], None]) -> None:
        self.links = links
        self.registry = registry
        self.spawn = spawn
        self.rollouts: dict[int, Rollout] = {}
        self._ids = itertools.count(1)
        self._hello: dict[str, asyncio.Future[Hello]] = {}

    def on_hello(self, hello: Hello) -> None:
        """Called for every hello: a device back from a reboot."""
        fut = self._hello.get(hello.dev)
        if fut is not None and not fut.done():
            fut.set_result(hello)

    def start(self, image: Image, devices: list[str], wave: int,
              deadline_s: float = 180.0) -> Rollout:
        waves = plan_waves(devices, wave)
        for d in devices:
            if self.registry.get(d) is None:
                raise Rejected("unknown_device", d)
        busy = busy_devices(self.rollouts, devices)
        if busy:
            raise Rejected("busy", f"already updating: {busy}")
        r = Rollout(next(self._ids), image, waves, deadline_s)
        r.devices = {d: DeviceProgress(total=image.size) for d in devices}
        self.rollouts[r.id] = r
        self.spawn(self._run(r), f"ota:{r.id}")
        log.info("rollout %d: version %s to %d devices in %d waves", r.id, image.version,
                 len(devices), len(r.waves))
        return r

    async def _run(self, r: Rollout) -> None:
        try:
            await self._waves(r)
        finally:
            # The image (up to 16 MB) is let go as soon as the rollout ends, and
            # only the last KEEP_ROLLOUTS are remembered for `huimin ota status`.
            r.image = Image(r.image.version, r.image.board, {})
            if r.state == "running":
                r.state = "stopped"
            forget_ended(self.rollouts)

    async def _waves(self, r: Rollout) -> None:
        for i, wave in enumerate(r.waves):
            r.wave = i + 1
            await asyncio.gather(*(self._update(r, d) for d in wave))
            failed = [d for d in wave if r.devices[d].state != "confirmed"]
            if failed:
                r.state = "stopped"
                for later in r.waves[i + 1:]:
                    for d in later:
                        r.devices[d].state = "skipped"
                log.warning("rollout %d stopped at wave %d: %s", r.id, r.wave,
                            ", ".join(f"{d} ({r.devices[d].error})" for d in failed))
                return
        r.state = "done"
        log.info("rollout %d done: version %s on %d devices", r.id, r.image.version,
                 len(r.devices))

    async def _cmd(self, dev: str, **args: Any) -> Result:
        last: Exception | None = None
        for _ in range(TRIES):
            try:
                return await self.links.command(dev, "ota", wait_s=5.0, **args)
            except (TimeoutError, Rejected) as exc:
                last = exc
                await asyncio.sleep(0.5)
        raise RuntimeError(f"device did not answer ({last!r})")

    async def _until_hello(self, dev: str, step: Callable[[], Awaitable[None]],
                           wait_s: float) -> Hello:
        """Run step() (a command that makes the device reboot) and wait for the
        hello it sends when it is back."""
        fut: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        self._hello[dev] = fut
        try:
            await step()
            async with asyncio.timeout(wait_s):
                return await fut
        finally:
            self._hello.pop(dev, None)

    async def _step(self, dev: str, path: str, what: str) -> None:
        res = await self._cmd(dev, path=path)
        if not res.ok:
            raise RuntimeError(f"{what}: {res.err}")

    async def _update(self, r: Rollout, dev: str) -> None:
        p = r.devices[dev]
        p.state, p.started = "preparing", time.time()
        try:
            # 1. The app reboots into update mode, where the image has the heap.
            hello = await self._until_hello(
                dev, lambda: self._step(dev, "", "device refused the update"), 60.0)
            if hello.ota != "receiving":
                raise RuntimeError("device did not enter update mode")
            # 2. The image, file by file; the device checks every hash at the end.
            p.state = "sending"
            await self._send(r.image, dev, p)
            # 3. Verify pass (signature) and trial boot; back on the new version,
            #    or on the old one (refused, or rolled back after its deadline).
            async def end() -> None:
                await self._step(dev, "*", "image check failed on the device")
                p.state = "rebooting"  # the hashes held: the device resets now

            p.state = "checking"
            hello = await self._until_hello(dev, end, r.deadline_s)
            if hello.fw != r.image.version:
                raise RuntimeError(f"came back on {hello.fw}: "
                                   f"{hello.ota or 'update not taken'}")
            await self._step(dev, "+", "confirm failed")
            p.state = "confirmed"
            log.info("rollout %d: %s runs %s", r.id, dev, r.image.version)
        except (RuntimeError, TimeoutError) as exc:
            in_update_mode = p.state in ("sending", "checking")
            p.state, p.error = "failed", str(exc) or "no hello before the deadline"
            log.warning("rollout %d: %s failed: %s", r.id, dev, p.error)
            if in_update_mode:
                await self._leave_update_mode(dev)
        finally:
            p.finished = time.time()

    async def _leave_update_mode(self, dev: str) -> None:
        """A device in update mode does not rent: after a failed transfer, send it
        back to its running image now rather than after the updater's idle limit."""
        try:
            await self.links.command(dev, "reboot", wait_s=5.0)
            log.info("%s: sent back to its running image", dev)
        except (TimeoutError, Rejected) as exc:
            log.warning("%s: no answer to reboot (%r); it leaves update mode by itself "
                        "after 120 s of silence", dev, exc)

    async def _send(self, image: Image, dev: str, p: DeviceProgress) -> None:
        res = await self._cmd(dev, path="")
        if not res.ok:
            raise RuntimeError(f"device refused the update: {res.err}")
        for path in image.order():
            data = image.files[path]
            off = 0
            while True:
                chunk = data[off:off + CHUNK]
                res = await self._cmd(dev, path=path, off=off,
                                      data=base64.b64encode(chunk).decode())
                if not res.ok:
                    err = res.err
                    if err.startswith("offset "):  # resume where the device stands
                        have = int(err.split()[1])
                        have = have if 0 <= have <= len(data) else 0
                        p.sent = max(0, p.sent - (off - have))
                        off = have
                        continue
                    raise RuntimeError(f"writing {path}: {err}")
                off += len(chunk)
                p.sent += len(chunk)
                if off >= len(data):
                    break
