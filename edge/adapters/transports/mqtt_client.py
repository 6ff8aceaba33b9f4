"""One MQTT 3.1.1 connection for the edge, on asyncio streams around the
sans-IO codec (mqtt_codec.py): connect, subscribe, publish at QoS 0/1,
keepalive, and the reception of PUBLISH packets in batches, one batch per
socket read. An inbound QoS 1 message is acknowledged only when the caller
says so (`ack`), after its commit: the broker keeps it until then, so an edge
that dies mid-batch gets it again on its next session.

No reconnect here: the transport (mqtt.py) wraps this in its own loop, as
aiomqtt leaves it to its users. Writes are gathered and sent once per turn of
the event loop (one TLS record for a batch of acks, not one each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from edge.adapters.transports import mqtt_codec as codec

log = logging.getLogger("edge.mqtt")

READ_SIZE = 256 * 1024
OUT_IN_FLIGHT = 1000  # QoS 1 messages sent and not yet PUBACKed; beyond, dropped
SUB_PID = 1  # our own SUBSCRIBE's id; publishes use 2..65535


class MqttError(Exception):
    """The connection failed or ended; the message says why in a technician's words."""


OnBatch = Callable[["MqttConnection", list[codec.Publish]], Awaitable[None]]


class MqttConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 keepalive: int, on_batch: OnBatch, max_packet: int) -> None:
        self._reader, self._writer = reader, writer
        self.keepalive = keepalive
        self._on_batch = on_batch
        self._codec = codec.PacketReader(max_packet)
        self._out: list[bytes] = []
        self._flush_at: asyncio.Handle | None = None
        self._loop = asyncio.get_running_loop()
        self._next_pid = 1
        self._unacked: dict[int, asyncio.Future[None] | None] = {}  # our QoS 1 sends
        # Received QoS 1 messages not yet acknowledged: at most the broker's
        # in-flight window (max_inflight_messages) while the edge catches up.
        self.unsettled: set[int] = set()
        self._acks: list[int] = []
        self._suback: asyncio.Future[codec.SubAck] | None = None
        self._heard = self._loop.time()
        self._handing_over = False  # the caller holds a batch (the edge is behind)
        self._ended: asyncio.Future[None] = self._loop.create_future()
        self._tasks: list[asyncio.Task[None]] = []
        self.session_present = False

    # -- opening --------------------------------------------------------------------
    @classmethod
    async def open(cls, host: str, port: int, *, client_id: str, keepalive: int,
                   on_batch: OnBatch, clean_session: bool = True,
                   username: str | None = None, password: str | None = None,
                   will: tuple[str, bytes, int, bool] | None = None,
                   tls: ssl.SSLContext | None = None, timeout_s: float = 10.0,
                   max_packet: int = 1 << 20) -> MqttConnection:
        """Connected and CONNACKed, its reader running; MqttError says why not."""
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None,
                    limit=READ_SIZE)
        except TimeoutError as exc:
            raise MqttError(f"no answer from {host}:{port} in {timeout_s:g} s") from exc
        except ssl.SSLError as exc:
            raise MqttError(f"TLS with {host}:{port} failed: {exc.reason or exc}") from exc
        except OSError as exc:
            raise MqttError(f"cannot reach {host}:{port}: {exc.strerror or exc}") from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Acks and commands are small and each is awaited by someone: no Nagle.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = cls(reader, writer, keepalive, on_batch, max_packet)
        try:
            first = await conn._handshake(client_id, clean_session, username, password, will,
                                          timeout_s)
        except BaseException:
            writer.close()
            raise
        conn._tasks = [asyncio.create_task(conn._read(first), name="mqtt:read"),
                       asyncio.create_task(conn._keep_alive(), name="mqtt:keepalive")]
        return conn

    async def _handshake(self, client_id: str, clean_session: bool, username: str | None,
                         password: str | None, will: tuple[str, bytes, int, bool] | None,
                         timeout_s: float) -> list[codec.Packet]:
        self._writer.write(codec.connect(client_id, self.keepalive, clean_session, username,
                                         password, will))
        packets: list[codec.Packet] = []
        try:
            async with asyncio.timeout(timeout_s):
                while not packets:
                    data = await self._reader.read(READ_SIZE)
                    if not data:
                        raise MqttError("the broker closed the connection before its CONNACK"
                                        " (a wrong port, or TLS expected?)")
                    packets = self._codec.feed(data)
        except TimeoutError as exc:
            raise MqttError(f"no CONNACK in {timeout_s:g} s") from exc
        except codec.ProtocolError as exc:
            raise MqttError(f"not an MQTT broker's answer: {exc}") from exc
        except OSError as exc:
            raise MqttError(f"connection lost before the CONNACK: {exc}") from exc
        ack = packets[0]
        if not isinstance(ack, codec.ConnAck):
            raise MqttError(f"the broker's first packet was a {type(ack).__name__}, not"
                            " a CONNACK")
        if ack.code:
            why = codec.CONNACK_REFUSED.get(ack.code, f"code {ack.code}")
            raise MqttError(f"the broker refused the connection: {why}")
        self.session_present = ack.session_present
        return packets[1:]  # a persistent session's backlog may come in the same read

    # -- reading --------------------------------------------------------------------
    async def _read(self, first: list[codec.Packet]) -> None:
        why = "the broker closed the connection"
        try:
            packets = first
            while True:
                if packets:
                    await self._handle(packets)
                data = await self._reader.read(READ_SIZE)
                if not data:
                    break
                self._heard = self._loop.time()
                packets = self._codec.feed(data)
        except codec.ProtocolError as exc:
            why = f"the broker sent what MQTT does not allow: {exc}"
        except OSError as exc:
            why = f"connection lost: {exc.strerror or exc}"
        except asyncio.CancelledError:
            why = "closed"
            raise
        finally:
            self._end(why)

    async def _handle(self, packets: list[codec.Packet]) -> None:
        batch: list[codec.Publish] = []
        for p in packets:
            if type(p) is codec.Publish:
                batch.append(p)
                if p.qos:
                    self.unsettled.add(p.pid)
            elif type(p) is codec.PubAck:
                waiter = self._unacked.pop(p.pid, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif type(p) is codec.SubAck:
                if self._suback is not None and not self._suback.done():
                    self._suback.set_result(p)
            # PINGRESP: hearing anything is enough (_heard); UNSUBACK: we send none.
        if batch:
            self._handing_over = True
            try:
                await self._on_batch(self, batch)
            finally:
                self._handing_over = False
                self._heard = self._loop.time()  # not reading meanwhile is not silence

    async def _keep_alive(self) -> None:
        """A PINGREQ every half keepalive; nothing heard for 1.5 keepalives
        (what the broker itself allows us): the broker is gone."""
        every = self.keepalive / 2
        while True:
            await asyncio.sleep(every)
            if not self._handing_over and self._loop.time() - self._heard > 1.5 * self.keepalive:
                self._end(f"no word from the broker in {1.5 * self.keepalive:g} s")
                self._writer.close()
                return
            self._send(codec.PINGREQ_BYTES)

    # -- writing --------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        if self._ended.done():
            return
        self._out.append(data)
        if self._flush_at is None:
            self._flush_at = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_at = None
        if self._acks:
            self._out.append(codec.pubacks(self._acks))
            self._acks.clear()
        if self._out and not self._writer.is_closing():
            self._writer.write(b"".join(self._out))
        self._out.clear()

    def publish(self, topic: str, payload: bytes, qos: int = 0,
                retain: bool = False) -> asyncio.Future[None] | None:
        """Queued at once, never awaited here. QoS 1: a future done at its
        PUBACK (None when the caller will not wait); MqttError when too many
        wait already or the connection has ended."""
        if self._ended.done():
            raise MqttError("not connected")
        if qos == 0:
            self._send(codec.publish(topic, payload, 0, 0, retain))
            return None
        if len(self._unacked) >= OUT_IN_FLIGHT:
            raise MqttError(f"{OUT_IN_FLIGHT} messages already wait for the broker's PUBACK")
        pid = self._pid()
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._unacked[pid] = waiter
        self._send(codec.publish(topic, payload, 1, pid, retain))
        return waiter

    def _pid(self) -> int:
        while True:
            self._next_pid = self._next_pid % 65535 + 1
            if self._next_pid != SUB_PID and self._next_pid not in self._unacked:
                return self._next_pid

    def ack(self, pid: int) -> None:
        """A received QoS 1 message let go of (after its commit): its PUBACK
        leaves with the others of this turn of the loop. Once only: the broker
        may give the id to a new message after it."""
        if pid not in self.unsettled or self._ended.done():
            return
        self.unsettled.discard(pid)
        self._acks.append(pid)
        if self._flush_at is None:
            self._flush_at = self._loop.call_soon(self._flush)

    async def subscribe(self, topics: list[tuple[str, int]], timeout_s: float = 10.0) -> None:
        self._suback = self._loop.create_future()
        self._send(codec.subscribe(SUB_PID, topics))
        try:
            async with asyncio.timeout(timeout_s):
                waiting: list[asyncio.Future[Any]] = [self._suback, self._ended]
                done, _ = await asyncio.wait(waiting,
                                             return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError as exc:
            raise MqttError(f"no SUBACK in {timeout_s:g} s") from exc
        if self._suback not in done:
            raise MqttError(self._why())
        refused = [t for (t, _), c in zip(topics, self._suback.result().codes, strict=False)
                   if c == 0x80]
        if refused:
            raise MqttError(f"the broker refused the subscription to {', '.join(refused)}"
                            " (its ACL)")

    async def wait_published(self, waiter: asyncio.Future[None] | None,
                             timeout_s: float = 10.0) -> None:
        if waiter is None:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.wait([waiter, self._ended], return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError as exc:
            raise MqttError(f"no PUBACK in {timeout_s:g} s") from exc
        if not waiter.done():
            raise MqttError(self._why())

    # -- ending ---------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        return self._ended.done()

    def _why(self) -> str:
        exc = self._ended.exception() if self._ended.done() else None
        return str(exc) if exc else "connection ended"

    def _end(self, why: str) -> None:
        if not self._ended.done():
            self._ended.set_exception(MqttError(why))
            self._ended.exception()  # retrieved: a shutdown need not await it
        for w in self._unacked.values():
            if w is not None and not w.done():
                w.cancel()

    def abort(self, why: str) -> None:
        """End the session now (unacknowledged messages stay the broker's)."""
        self._end(why)

    async def wait_ended(self) -> None:
        """Returns never: raises MqttError with why the connection ended."""
        await asyncio.shield(self._ended)
        raise MqttError("connection ended")

    async def close(self, last: tuple[str, bytes] | None = None) -> None:
        """DISCONNECT (the broker then sends no Will); `last`: a retained
        message to leave first (our presence, offline)."""
        if not self._ended.done():
            if last is not None:
                self._send(codec.publish(last[0], last[1], 0, 0, retain=True))
            self._send(codec.DISCONNECT_BYTES)
            self._flush()
            self._end("closed")
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError):
            async with asyncio.timeout(2):
                await self._writer.wait_closed()
