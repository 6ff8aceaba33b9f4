"""MQTT 3.1.1, the client's side, sans-IO: packets to bytes, and bytes (as
they come off a socket, in any pieces) to packets. No socket, no task, no
clock: edge/adapters/transports/mqtt_client.py does the I/O.

Why our own and not paho's reader: paho reads one packet per call and calls
back once per message, which was ~40% of the edge's ingest time
(bench/ingest.py --profile). `PacketReader.feed` hands back every whole
packet one socket read holds, so a backlog of QoS 1 events comes in batches:
decoded, checked, committed and acknowledged together.

What a broker sends that this refuses (ProtocolError: the caller drops the
connection): a packet over `max_packet`, a length over four bytes, a packet
type a client never gets, a topic that is not UTF-8, a QoS of 3.
"""

from __future__ import annotations

from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
SUBSCRIBE, SUBACK, UNSUBACK = 0x82, 0x90, 0xB0
PINGREQ, PINGRESP, DISCONNECT = 0xC0, 0xD0, 0xE0

PINGREQ_BYTES = b"\xc0\x00"
DISCONNECT_BYTES = b"\xe0\x00"

# CONNACK's return codes (3.1.1, 3.2.2.3), for a line a technician can act on.
CONNACK_REFUSED = {
    1: "the broker does not speak MQTT 3.1.1",
    2: "the client id was refused",
    3: "the broker is unavailable",
    4: "wrong user name or password",
    5: "not authorised (the broker's ACL or accounts)",
}


class ProtocolError(ValueError):
    """The broker sent something MQTT 3.1.1 does not allow a client to get."""


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    pid: int  # 0 for QoS 0
    retain: bool = False
    dup: bool = False


@dataclass(frozen=True, slots=True)
class ConnAck:
    session_present: bool
    code: int


@dataclass(frozen=True, slots=True)
class PubAck:
    pid: int


@dataclass(frozen=True, slots=True)
class SubAck:
    pid: int
    codes: tuple[int, ...]  # granted QoS per topic, 0x80 refused


@dataclass(frozen=True, slots=True)
class UnsubAck:
    pid: int


@dataclass(frozen=True, slots=True)
class PingResp:
    pass


Packet = Publish | ConnAck | PubAck | SubAck | UnsubAck | PingResp
_PINGRESP = PingResp()


# -- encoding ---------------------------------------------------------------------------
def _length(n: int) -> bytes:
    """The remaining length, 7 bits a byte, low first (3.1.1, 2.2.3)."""
    if n > 268_435_455:
        raise ValueError("an MQTT packet holds at most 256 MB")
    if n < 128:
        return bytes((n,))
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _field(b: bytes) -> bytes:
    if len(b) > 0xFFFF:
        raise ValueError("an MQTT string or field holds at most 65,535 bytes")
    return len(b).to_bytes(2, "big") + b


def connect(client_id: str, keepalive: int, clean_session: bool = True,
            username: str | None = None, password: str | None = None,
            will: tuple[str, bytes, int, bool] | None = None) -> bytes:
    """`will`: (topic, payload, qos, retain)."""
    flags = 0x02 if clean_session else 0
    payload = _field(client_id.encode())
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _field(topic.encode()) + _field(message)
    if username is not None:
        flags |= 0x80
        payload += _field(username.encode())
        if password is not None:
            flags |= 0x40
            payload += _field(password.encode())
    body = b"\x00\x04MQTT\x04" + bytes((flags,)) + keepalive.to_bytes(2, "big") + payload
    return bytes((CONNECT,)) + _length(len(body)) + body


def subscribe(pid: int, topics: list[tuple[str, int]]) -> bytes:
    body = pid.to_bytes(2, "big") + b"".join(_field(t.encode()) + bytes((q,))
                                             for t, q in topics)
    return bytes((SUBSCRIBE,)) + _length(len(body)) + body


def publish(topic: str, payload: bytes, qos: int = 0, pid: int = 0, retain: bool = False,
            dup: bool = False) -> bytes:
    if qos not in (0, 1):
        raise ValueError("this client publishes at QoS 0 or 1")
    t = topic.encode()
    head = PUBLISH | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    size = 2 + len(t) + len(payload) + (2 if qos else 0)
    return b"".join((bytes((head,)), _length(size), len(t).to_bytes(2, "big"), t,
                     pid.to_bytes(2, "big") if qos else b"", payload))


def puback(pid: int) -> bytes:
    return b"\x40\x02" + pid.to_bytes(2, "big")


def pubacks(pids: list[int]) -> bytes:
    """Several PUBACKs in one write (a committed batch's)."""
    return b"".join([b"\x40\x02" + p.to_bytes(2, "big") for p in pids])


# -- decoding ---------------------------------------------------------------------------
class PacketReader:
    """Bytes in, whole packets out; a packet split across reads waits for its rest."""

    __slots__ = ("_buf", "max_packet")

    def __init__(self, max_packet: int = 1 << 20) -> None:
        self._buf = b""
        self.max_packet = max_packet

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Packet]:
        buf = self._buf + data if self._buf else data
        out: list[Packet] = []
        end = len(buf)
        i = 0
        while end - i >= 2:
            head = buf[i]
            # The remaining length: one byte nearly always (a dock's message is < 128 B
            # of topic and payload only rarely; most are 100-200 B: two bytes).
            n = buf[i + 1]
            j = i + 2
            if n & 0x80:
                n &= 0x7F
                shift = 7
                while True:
                    if j >= end:
                        self._buf = buf[i:]
                        return out
                    b = buf[j]
                    j += 1
                    n |= (b & 0x7F) << shift
                    if not b & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise ProtocolError("a remaining length over four bytes")
            if n > self.max_packet:
                raise ProtocolError(f"a packet of {n} bytes (at most {self.max_packet})")
            stop = j + n
            if stop > end:
                break
            kind = head & 0xF0
            if kind == PUBLISH:
                out.append(self._publish(head, buf, j, stop))
            elif kind == PUBACK and n == 2:
                out.append(PubAck(int.from_bytes(buf[j:stop], "big")))
            elif kind == CONNACK and n == 2:
                out.append(ConnAck(bool(buf[j] & 1), buf[j + 1]))
            elif kind == SUBACK and n >= 3:
                out.append(SubAck(int.from_bytes(buf[j:j + 2], "big"), tuple(buf[j + 2:stop])))
            elif kind == UNSUBACK and n == 2:
                out.append(UnsubAck(int.from_bytes(buf[j:stop], "big")))
            elif kind == PINGRESP and n == 0:
                out.append(_PINGRESP)
            else:
                raise ProtocolError(f"a packet a client never gets (type 0x{head:02x},"
                                    f" {n} bytes)")
            i = stop
        self._buf = buf[i:] if i < end else b""
        return out

    @staticmethod
    def _publish(head: int, buf: bytes, j: int, stop: int) -> Publish:
        qos = (head >> 1) & 3
        if qos == 3:
            raise ProtocolError("a PUBLISH at QoS 3")
        if stop - j < 2:
            raise ProtocolError("a PUBLISH too short for its topic")
        tlen = (buf[j] << 8) | buf[j + 1]
        t_end = j + 2 + tlen
        body = t_end + (2 if qos else 0)
        if body > stop:
            raise ProtocolError("a PUBLISH shorter than its topic says")
        try:
            topic = buf[j + 2:t_end].decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError("a topic that is not UTF-8") from exc
        pid = ((buf[t_end] << 8) | buf[t_end + 1]) if qos else 0
        return Publish(topic, buf[body:stop], qos, pid, bool(head & 1), bool(head & 8))
