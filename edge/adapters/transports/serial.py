"""Serial transport: one port, one (or, on RS-485, several) devices, framed
with the shared wire.link (CRC, sequence numbers, acks, retransmit). Opens the
port, pumps bytes, puts decoded messages on the edge's inbound queue, and
reopens the port with backoff when it goes away (a re-plugged USB adapter)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import serial
import serial_asyncio_fast
from wire import message, names
from wire.link import Link

from edge.adapters.transports.authentic import authentic
from edge.config import SerialConfig
from edge.core import messages
from edge.core.backoff import Backoff
from edge.core.metrics import Metrics
from edge.core.ports import DeviceAuth, Inbound, Reply, ReplyBy
from edge.core.ratelog import RateLimitedLog

log = logging.getLogger("edge.serial")
_GAP_S = 0.1  # a partial frame older than this is abandoned


def _ms() -> int:
    return int(time.monotonic() * 1000)


class SerialTransport:
    def __init__(self, cfg: SerialConfig, inbound: asyncio.Queue[Inbound], metrics: Metrics,
                 keys: DeviceAuth, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock  # the edge's wall clock: when a message was received
        self.keys = keys
        self.name = f"serial:{cfg.port}"
        self.inbound = inbound
        self.metrics = metrics
        self.link: Link | None = None
        self._repliers: dict[str, Reply] = {}
        self._warn = RateLimitedLog(log)
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()

    async def run(self) -> None:
        backoff = Backoff(jitter=0.0)  # one port, one adapter: nothing to spread
        while True:
            try:
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=self.cfg.port, baudrate=self.cfg.baud)
            except (OSError, serial.SerialException) as exc:
                self.metrics.inc("serial.open_failed")
                delay = backoff.next()
                log.warning("%s: cannot open (%s); retrying in %.1f s", self.name, exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            log.info("%s: open at %d baud", self.name, self.cfg.baud)
            # A kiosk's answers are up to 640 bytes: room for a queue of them.
            self.link = Link(rto_ms=200, max_tries=10, max_queue=256, queue_bytes=256 * 1024)
            self.connected.set()
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._read(reader), name=f"{self.name}:read")
                    tg.create_task(self._write(writer), name=f"{self.name}:write")
                    tg.create_task(self._tick(), name=f"{self.name}:tick")
            except* (OSError, serial.SerialException, EOFError) as eg:
                self.metrics.inc("serial.lost")
                log.warning("%s: lost (%s); reopening", self.name, eg.exceptions[0])
            finally:
                self.connected.clear()
                self._count_link()
                writer.close()
            await asyncio.sleep(backoff.next())  # a moment before reopening

    def _count_link(self) -> None:
        if self.link is None:
            return
        for reason, n in self.link.decoder.drops.items():
            self.metrics.inc("serial.frame_dropped", reason, n)
        self.link.decoder.drops.clear()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        link = self.link
        assert link is not None
        last = time.monotonic()
        while True:
            try:
                async with asyncio.timeout(_GAP_S):
                    data = await reader.read(4096)
            except TimeoutError:
                if link.decoder.pending() and time.monotonic() - last > _GAP_S:
                    link.decoder.gap()
                    self._count_link()
                continue
            if not data:
                raise EOFError("port closed")
            last = time.monotonic()
            link.receive(data)
            if link.decoder.drops:
                self._count_link()
            now = self.clock()
            while (payload := link.recv()) is not None:
                await self._deliver(payload, now)
            self._wake.set()

    async def _deliver(self, payload: bytes, now: float) -> None:
        try:
            msg: dict[str, Any] = message.decode(payload)
        except message.DecodeError as exc:
            self.metrics.inc("rx.rejected", exc.reason)
            self._warn.warning(exc.reason, "%s: dropped message: %s", self.name, exc)
            return
        dev = msg.get("dev")
        if not isinstance(dev, str):
            self.metrics.inc("rx.rejected", "no_device")
            self._warn.warning("no_device", "%s: dropped %s message without a device id",
                               self.name, msg["t"])
            return
        if dev not in self.cfg.devices:
            # The cable is the device's credential: only the devices configured
            # on this port may speak on it (docs/security.md).
            self.metrics.inc("rx.rejected", "wrong_port")
            self._warn.warning("wrong_port", "%s: %s message from %r, which is not configured "
                               "on this port", self.name, msg["t"], dev[:64])
            return
        if not authentic(self.keys, dev, payload, self.metrics, self.name):
            return
        try:
            typed = messages.parse(msg)
        except message.DecodeError as exc:
            self.metrics.inc("rx.rejected", exc.reason)
            self._warn.warning(exc.reason, "%s: dropped message: %s", self.name, exc)
            return
        await self.inbound.put(Inbound(dev, typed, self._replier(dev), self.name, now))

    def _replier(self, dev: str) -> Reply:
        r = self._repliers.get(dev)
        if r is None:
            async def reply(msg: dict[str, Any]) -> None:
                await self.send(dev, msg)
            r = self._repliers[dev] = ReplyBy(reply)  # a write: it waits on the line
        return r

    async def send(self, dev: str, msg: dict[str, Any]) -> None:
        link = self.link
        if link is None or not self.connected.is_set():
            self.metrics.inc("tx.dropped", "serial_down")
            return
        try:
            data = self.keys.seal(dev, msg)
        except KeyError:
            self.metrics.inc("tx.dropped", "no_key")
            log.warning("%s: %s has no command key (not provisioned): not sent", self.name, dev)
            return
        try:
            queued = link.send(data)
        except ValueError:  # FrameError: over the frame's size (a bug upstream of here)
            self.metrics.inc("tx.dropped", "too_large")
            log.error("%s: a %d-byte message for %s does not fit a frame: not sent",
                      self.name, len(data), dev)
            return
        if not queued:
            self.metrics.inc("tx.dropped", "serial_queue_full")
        self._wake.set()

    async def _write(self, writer: asyncio.StreamWriter) -> None:
        link = self.link
        assert link is not None
        while True:
            out = link.poll(_ms())
            if out is not None:
                writer.write(bytes(out))  # a view of the link's buffer: copied before the next poll
                await writer.drain()
                continue
            self._wake.clear()
            await self._wake.wait()

    async def _tick(self) -> None:
        link = self.link
        assert link is not None
        while True:
            await asyncio.sleep(link.rto_ms / 2000)
            if not link.idle():
                self._wake.set()
            giveup = names.LINK_STATS.index("giveup")
            if link.stats[giveup]:
                self.metrics.inc("serial.giveup", n=link.stats[giveup])
                link.stats[giveup] = 0
