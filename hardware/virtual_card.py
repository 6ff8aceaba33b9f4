"""A virtual social-security card for the real PC/SC stack: it connects to the
vpcd reader driver's TCP port inside pcscd (connected = card inserted, closed
= removed) and answers APDUs. vpcd's protocol: every message is a 2-byte
big-endian length and a payload; a 1-byte payload is control (0 power off,
1 power on, 2 reset, 4 send the ATR), anything else is a C-APDU to answer
with an R-APDU. The card answers SELECT by AID with 61xx (so the reader must
send GET RESPONSE) and READ RECORD with Le 00 by 6Cxx (so it must resend with
the right length), as real cards do. Fictional data only, never logged."""

from __future__ import annotations

import socket
import struct
import threading

AID = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")  # "sx1.sh.社会保障" in GBK
ATR = bytes.fromhex("3B6800000073C84013009000")
FCI = b"\x6f\x11\x84\x0f" + AID  # a minimal FCI: the AID


class SocialSecurityCard:
    def __init__(self, ssn: str, name: str, card_no: str = "X00000001") -> None:
        self.records = {
            ("EF05", 1): b"\x01\x10" + b"0" * 16,  # card identification code
            ("EF05", 7): b"\x07\x09" + card_no.encode(),
            ("EF06", 8): b"\x08\x12" + ssn.encode(),  # social-security number (= ID number)
            ("EF06", 9): b"\x09\x1e" + name.encode("gbk").ljust(30, b" "),
        }
        self.ef = ""
        self.app = False
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.apdus = 0

    def answer(self, apdu: bytes) -> bytes:
        if len(apdu) < 4:
            return b"\x67\x00"
        ins, p1 = apdu[1], apdu[2]
        if ins == 0xA4 and p1 == 0x04:  # SELECT by AID
            if apdu[5:5 + apdu[4]] != AID:
                return b"\x6a\x82"
            self.app = True
            return bytes((0x61, len(FCI)))
        if ins == 0xC0:  # GET RESPONSE
            return FCI + b"\x90\x00"
        if ins == 0xA4 and p1 == 0x02:  # SELECT EF
            if not self.app:
                return b"\x69\x85"
            ef = apdu[5:7].hex().upper()
            if ef not in ("EF05", "EF06"):
                return b"\x6a\x82"
            self.ef = ef
            return b"\x90\x00"
        if ins == 0xB2:  # READ RECORD p1, by number (p2 = 04)
            rec = self.records.get((self.ef, p1))
            if rec is None:
                return b"\x6a\x83"
            le = apdu[4] if len(apdu) > 4 else 0
            if le != len(rec):
                return bytes((0x6C, len(rec)))
            return rec + b"\x90\x00"
        return b"\x6d\x00"

    # -- vpcd link ---------------------------------------------------------------
    def insert(self, port: int, host: str = "127.0.0.1") -> None:
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # else ~44 ms per APDU
        self._sock = s
        self._thread = threading.Thread(target=self._serve, name="virtual-card", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None

    def _link(self) -> socket.socket:
        # remove() may run on the test's thread while this one serves: a card
        # taken away ends the serving loop, it is not an error.
        sock = self._sock
        if sock is None:
            raise ConnectionError("card removed")
        return sock

    def _recv(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            sock = self._link()
            if hasattr(socket, "TCP_QUICKACK"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("vpcd closed")
            out += chunk
        return out

    def _serve(self) -> None:
        try:
            while self._sock is not None:
                (n,) = struct.unpack(">H", self._recv(2))
                msg = self._recv(n)
                if len(msg) == 1:
                    if msg[0] == 4:
                        self._send(ATR)
                    elif msg[0] in (0, 1, 2):
                        self.app, self.ef = False, ""
                    continue
                self.apdus += 1
                self._send(self.answer(msg))
        except (OSError, ConnectionError, struct.error):
            pass

    def _send(self, data: bytes) -> None:
        self._link().sendall(struct.pack(">H", len(data)) + data)


PSE = b"2PAY.SYS.DDF01"
DEBIT_AID = bytes.fromhex("A000000333010101")


class BankCard(SocialSecurityCard):
    """A virtual UnionPay debit card (contactless PSE, then the debit AID, then
    the PAN in record 1 of SFI 1 as tag 5A), for the same vpcd link."""

    def __init__(self, pan: str) -> None:
        super().__init__("0" * 18, "")
        digits = pan + ("F" if len(pan) % 2 else "")
        self.pan_record = b"\x70" + bytes((len(digits) // 2 + 2,)) + b"\x5a" + \
            bytes((len(digits) // 2,)) + bytes.fromhex(digits)
        self.selected = b""

    def answer(self, apdu: bytes) -> bytes:
        ins, p1 = apdu[1], apdu[2]
        if ins == 0xA4 and p1 == 0x04:
            name = apdu[5:5 + apdu[4]]
            if name == PSE:
                self.selected = PSE
                return b"\x6f\x0e\x84\x0e" + PSE + b"\x90\x00"
            if name == DEBIT_AID and self.selected:
                self.selected = DEBIT_AID
                return b"\x6f\x0a\x84\x08" + DEBIT_AID + b"\x90\x00"
            return b"\x6a\x82"
        if ins == 0xB2 and self.selected == DEBIT_AID:
            sfi = apdu[3] >> 3
            if (sfi, p1) != (1, 1):
                return b"\x6a\x83"
            le = apdu[4] if len(apdu) > 4 else 0
            if le != len(self.pan_record):
                return bytes((0x6C, len(self.pan_record)))
            return self.pan_record + b"\x90\x00"
        return b"\x6d\x00"
