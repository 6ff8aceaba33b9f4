# A small asyncio MQTT 3.1.1 client for the devices: connect (with Last Will,
# credentials, clean or persistent session), QoS 0/1 publish with DUP
# retransmit, subscribe, keepalive. No reconnect here: uplink/mqtt.py wraps it
# (as mqtt_as and umqtt.robust wrap their cores). Every network await has a
# timeout; b"" from the socket is a disconnect (a connect to a closed port
# "succeeds" on this stack).
import asyncio
import struct
import time

from micropython import const

_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_SUBACK = const(0x90)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
# The largest packet taken in: the edge's messages are at most 1K (wire/
# message.py), an update chunk's command about 800 bytes.
_MAX_PACKET = const(1536)


class MQTTError(OSError):
    pass


def _varlen(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return out


def _str(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


class MQTTClient:
    def __init__(self, client_id, host, port=1883, user=None, password=None,
                 keepalive=30, will=None, clean=True, timeout_ms=5000, on_message=None,
                 ca=None):
        self.client_id = client_id
        self.ca = ca  # the county CA's certificate (DER file): TLS, broker verified
        self._ctx = None
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.will = will  # (topic, payload, retain, qos)
        self.clean = clean
        self.timeout = timeout_ms / 1000
        self.on_message = on_message
        self._r = None  # type: asyncio.StreamReader  # type: ignore[assignment]
        self._w = None  # type: asyncio.StreamWriter  # type: ignore[assignment]
        self._pid = 0
        self._acked = {}
        # Set on every PUBACK/SUBACK, on each pinger tick and when the link dies:
        # a publisher waiting for its ack wakes at once, with no task per wait.
        self._ack = asyncio.Event()
        self._lock = asyncio.Lock()
        self._last_rx = 0
        self._last_tx = 0
        self._tx_at = None  # when the write now pending began (check())
        self.dead = asyncio.Event()
        self._tasks = []
        self._pbuf = bytearray(192)  # PUBLISH packets are built here (grows if need be)
        self.dropped = 0  # oversize packets skipped and acked
        self.rejected = 0  # messages the handler failed on, acked all the same

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    async def _read(self, n):
        data = await asyncio.wait_for(self._r.readexactly(n), self.timeout)
        if len(data) < n:
            raise MQTTError("connection closed")
        return data

    # Argument names here are ones the interpreter already knows (n, t, data):
    # each new one would be interned, and a 64K dock has no names to spare.
    async def _send(self, data):
        async with self._lock:
            self._w.write(data)
            # No wait_for: it builds a task per packet on a full heap. A write
            # the broker stops taking (it froze: no FIN, a full TCP window)
            # waits here; check() ends it after the timeout.
            self._tx_at = time.ticks_ms()
            try:
                await self._w.drain()
            finally:
                self._tx_at = None
            self._last_tx = time.ticks_ms()

    def check(self, now):
        """Called often by the owner's loop (no timer task of our own): a write
        pending longer than the timeout means the broker stopped reading, so
        the connection is declared dead and its socket closed, which wakes
        the stuck write with an error."""
        t = self._tx_at
        if t is not None and time.ticks_diff(now, t) > self.timeout * 1000:
            self._tx_at = None
            self._die(MQTTError("write stalled"))
            try:
                self._w.s.close()  # type: ignore[attr-defined]  # the stream's socket
            except Exception:
                pass

    def _connect_packet(self):
        # A plain function, not part of the coroutine: a coroutine's frame is
        # one heap block sized for all its locals, and a small heap has few
        # large holes.
        flags = 0x02 if self.clean else 0
        body = bytearray(b"\x00\x04MQTT\x04")
        payload = bytearray(_str(self.client_id))
        if self.will:
            topic, msg, retain, qos = self.will
            flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
            payload += _str(topic) + _str(msg)
        if self.user:
            flags |= 0x80
            payload += _str(self.user)
            if self.password:
                flags |= 0x40
                payload += _str(self.password)
        body.append(flags)
        body += struct.pack("!H", self.keepalive)
        body += payload
        return bytearray((_CONNECT,)) + _varlen(len(body)) + body

    async def connect(self):
        # One client object lives for the device's life and reconnects in
        # place: rebuilding it each time fragments a small heap.
        self._acked.clear()
        self.dead.clear()
        self.error = None
        # One stream object reads and writes on MicroPython (its StreamWriter is StreamReader).
        self._r = self._w = await asyncio.wait_for(  # type: ignore[assignment]
            self._open(), self.timeout)
        await self._send(self._connect_packet())
        try:
            resp = await self._read(4)
        except EOFError:
            raise MQTTError("no broker")
        if resp[0] != _CONNACK:
            raise MQTTError("bad CONNACK")
        if resp[3]:
            # 4 = bad credentials, 5 = not authorised
            raise MQTTError("connection refused, code %d" % resp[3])
        self._last_rx = time.ticks_ms()
        self._tasks = [asyncio.create_task(self._reader()), asyncio.create_task(self._pinger())]
        return resp[2] & 1  # session present

    async def _open(self):
        # asyncio.open_connection, with TCP_NODELAY set before TLS wraps the
        # socket (an SSLSocket has no setsockopt). IPPROTO_TCP 6, option 1 on
        # Linux and lwIP alike: a PUBACK and the next PUBLISH are two small
        # writes, and Nagle holds the second until the broker's delayed ACK of
        # the first, ~40 ms a time.
        import socket
        from errno import EINPROGRESS

        from asyncio import core  # type: ignore[attr-defined]  # MicroPython's asyncio

        ai = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], ai[1], ai[2])
        try:
            s.setsockopt(6, 1, 1)
        except OSError:
            pass
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.errno != EINPROGRESS:
                raise
        ctx = self._tls()
        if ctx:
            # The handshake runs with the first writes, non-blocking.
            s = ctx.wrap_socket(s, server_hostname=self.host, do_handshake_on_connect=False)
            s.setblocking(False)
        st = asyncio.StreamReader(s)
        yield core._io_queue.queue_write(s)  # connected (or failed: the CONNACK read says)
        return st  # type: ignore[misc]  # MicroPython: a coroutine is a generator

    def _tls(self):
        # One context for the device's life: the CA is parsed once.
        ctx = self._ctx
        if ctx is None and self.ca:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            # A broker without the county's cert is refused (MicroPython's SSLContext has
            # verify_mode; the port's stubs do not).
            ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]
            with open(self.ca, "rb") as f:
                ctx.load_verify_locations(cadata=f.read())
            self._ctx = ctx
        return ctx

    async def _reader(self):
        try:
            while True:
                # No wait_for here: each one builds a task, per packet, on a
                # full heap; a stalled broker is the pinger's business.
                h = await self._r.readexactly(1)
                if not h:
                    raise MQTTError("closed")
                n = 0
                shift = 0
                while True:
                    b = await self._r.readexactly(1)
                    if not b:
                        raise MQTTError("closed")
                    n |= (b[0] & 0x7F) << shift
                    shift += 7
                    if not b[0] & 0x80:
                        break
                    if shift > 21:  # MQTT's length has 4 bytes at most: not a sane broker
                        raise MQTTError("bad length")
                t = h[0] & 0xF0
                if n > _MAX_PACKET:
                    # Never allocated: a PUBLISH is skipped and acked (else the
                    # broker sends it again on every reconnect); anything else
                    # that big is not MQTT from a sane broker.
                    if t != _PUBLISH:
                        raise MQTTError("packet of %d bytes" % n)
                    await self._skip(h[0], n)
                    continue
                body = await self._r.readexactly(n) if n else b""
                if len(body) < n:
                    raise MQTTError("closed")
                self._last_rx = time.ticks_ms()
                if t == _PUBLISH:
                    await self._on_publish(h[0], body)
                elif t == _PUBACK or t == _SUBACK:
                    self._acked[(body[0] << 8) | body[1]] = True
                    self._ack.set()
        except Exception as e:  # any failure ends this connection; the wrapper reconnects
            self._die(e)

    async def _on_publish(self, t, data):
        h = t  # the fixed header's first byte
        body = data
        tl = (body[0] << 8) | body[1]
        topic = bytes(body[2:2 + tl]).decode()
        pos = 2 + tl
        qos = (h >> 1) & 3
        if qos:
            pid = (body[pos] << 8) | body[pos + 1]
            pos += 2
        msg = bytes(body[pos:])
        if self.on_message:
            try:
                self.on_message(topic, msg)
            except Exception as e:  # MemoryError too: acked all the same, or it comes back forever
                self.rejected += 1
                print("E", time.ticks_ms(), "mqtt: handler failed on %s: %r" % (topic, e))
        if qos == 1:
            # Ack after the handler ran: a crash before this leaves it to redelivery.
            await self._send(bytes((_PUBACK, 2, pid >> 8, pid & 0xFF)))

    async def _skip(self, h, n):
        # An oversize PUBLISH: read its topic length and id, let the rest go by
        # in small reads, and ack it (counted in self.dropped).
        b = await self._r.readexactly(2)
        tl = (b[0] << 8) | b[1]
        left = n - 2
        while tl:
            k = min(tl, 64)
            await self._r.readexactly(k)
            tl -= k
            left -= k
        pid = 0
        if (h >> 1) & 3:
            b = await self._r.readexactly(2)
            pid = (b[0] << 8) | b[1]
            left -= 2
        while left > 0:
            k = min(left, 64)
            await self._r.readexactly(k)
            left -= k
        self._last_rx = time.ticks_ms()
        self.dropped += 1
        print("W", time.ticks_ms(), "mqtt: dropped a %d-byte message (cap %d)" % (n, _MAX_PACKET))
        if pid:
            await self._send(bytes((_PUBACK, 2, pid >> 8, pid & 0xFF)))

    async def _pinger(self):
        ka = self.keepalive * 1000
        try:
            while True:
                await asyncio.sleep_ms(ka // 4)
                self._ack.set()  # the clock of a publisher's ack timeout
                now = time.ticks_ms()
                if time.ticks_diff(now, self._last_rx) > ka * 3 // 2:
                    raise MQTTError("broker silent")
                if time.ticks_diff(now, self._last_tx) >= ka // 4:
                    await self._send(bytes((_PINGREQ, 0)))
        except Exception as e:
            self._die(e)

    def _die(self, e):
        if not self.dead.is_set():
            self.error = e
            self.dead.set()
            self._ack.set()

    async def _await_ack(self, n, data, tries=3):
        pid = n
        pkt = data
        for i in range(tries):
            if i:
                pkt[0] |= 0x08  # DUP on retransmit
            self._acked.pop(pid, None)
            await self._send(pkt)
            t0 = time.ticks_ms()
            # No wait_for (it would build a task per publish on a full heap): the
            # reader wakes us on each ack, the pinger on each tick (the timeout's
            # clock, so a missing ack is noticed within a keepalive quarter).
            while not self._acked.pop(pid, False):
                if self.dead.is_set():
                    raise MQTTError("connection lost")
                if time.ticks_diff(time.ticks_ms(), t0) >= self.timeout * 1000:
                    break
                self._ack.clear()
                if pid not in self._acked:
                    await self._ack.wait()
            else:
                return
        raise MQTTError("no ack for %d" % pid)

    async def publish(self, topic, msg, retain=False, qos=0, t=""):
        """t, if given, is appended to topic (a device's topics share a prefix:
        joined here, in the packet buffer, not as a new string per message)."""
        # The packet is built in one buffer kept for the client's life (one
        # publish at a time): building it by concatenation made three blocks
        # per message, and a full 64K heap soon had no hole for them.
        if isinstance(msg, str):
            msg = msg.encode()
        tl = len(topic) + len(t)  # topics are ASCII
        n = 2 + tl + (2 if qos else 0) + len(msg)  # remaining length
        if n + 4 > len(self._pbuf):
            self._pbuf = bytearray(n + 4)
        b = self._pbuf
        b[0] = _PUBLISH | (qos << 1) | (1 if retain else 0)
        i = 1
        while True:
            d = n & 0x7F
            n >>= 7
            b[i] = d | 0x80 if n else d
            i += 1
            if not n:
                break
        b[i] = tl >> 8
        b[i + 1] = tl & 0xFF
        i += 2
        for s in (topic, t):
            # (a str's characters taken one by one would be interned for good)
            s = s.encode() if isinstance(s, str) else s
            b[i:i + len(s)] = s
            i += len(s)
        pid = 0
        if qos:
            pid = self._next_pid()
            b[i] = pid >> 8
            b[i + 1] = pid & 0xFF
            i += 2
        b[i:i + len(msg)] = msg
        pkt = memoryview(b)[:i + len(msg)]
        if qos:
            await self._await_ack(pid, pkt)
        else:
            await self._send(pkt)

    async def subscribe(self, topic, qos=1):
        pid = self._next_pid()
        body = struct.pack("!H", pid) + _str(topic) + bytes((qos,))
        pkt = bytearray((_SUBSCRIBE,)) + _varlen(len(body)) + body
        await self._await_ack(pid, pkt)

    async def close(self):
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        if self._w is not None:
            try:
                if not self.dead.is_set():
                    self._w.write(bytes((_DISCONNECT, 0)))
                    await asyncio.wait_for(self._w.drain(), 1)
            except Exception:
                pass
            try:
                self._w.close()
                await self._w.wait_closed()
            except Exception:
                pass
            self._w = None  # type: ignore[assignment]
