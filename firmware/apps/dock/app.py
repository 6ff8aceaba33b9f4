# The dock app: wires the slot state machine (slots.py) to pins, tag readers,
# the on-flash journal and the uplink. Everything here is plumbing; rent and
# return logic lives in slots.py alone.
import asyncio
import gc

from micropython import const

import device
import hal
import log
from apps.dock.slots import Slots
from command_guard import CommandGuard
from drivers.tag_reader import TagReaders
from journal import Journal

_log = log.get("dock")
# Firmware version: reported in hello and the boot line.
_CLOCK_BACK_S = const(5)  # the largest step back a time may take (see _clock)
_IO_MS = const(20)  # sensor scan period: a bike push or bolt move lasts far longer


class App:
    def __init__(self, cfg, board, boot):
        self.cfg = cfg
        self.boot = boot
        # Import the uplink before allocating buffers: loading code into a
        # fragmented heap is what runs a 64K device out of memory.
        if cfg["link"] == "mqtt":
            from uplink.mqtt import MqttUplink as _Up
        else:
            from uplink.serial import SerialUplink as _Up  # type: ignore[assignment]
        gc.collect()
        n = cfg["slots"]
        pins = board["slots"]
        if n > len(pins["lock"]):
            raise ValueError("board %s has %d slots, config asks %d"
                             % (board["name"], len(pins["lock"]), n))
        self.io = hal.SlotIO(pins, n)
        self.tags = TagReaders(hal.tag_port(n), n, self._on_tag)
        self.slots = Slots(n, hal.ticks_diff, cfg["tag_ms"], cfg["lock_ms"], cfg["take_ms"])
        self.journal = Journal(cfg["journal"])
        # What the dock had told of each slot, read while the heap is young: its
        # strings live for good, and placed later they split the block the
        # MQTT client's TLS needs at connect (seen: 3K refused with 20K free).
        self.slots.docked = self._known()
        gc.collect()
        self._lock_written = bytearray(b"\xff" * n)
        self._state_n = 0
        self._sent_version = -1
        self._sent_at = 0
        self._resend_prev = []
        self._hello_sent = False  # state reports wait for the birth message
        # The edge's clock: its time (s) at our tick count sync_ms; None until
        # the edge has told it since boot (events then go without "at").
        self._edge_s = None
        self._sync_ms = 0
        self.wdt = hal.WDT(8000)
        guard = CommandGuard(cfg["cmd_key"], cfg["dev"])
        if cfg["link"] == "mqtt":
            self.uplink = _Up(cfg["mqtt"], cfg["dev"], cfg["site"], boot,
                              guard, self._on_message, self._on_connect)
        else:
            self.uplink = _Up(hal.uart("edge", cfg), guard, self._on_message, self._on_connect)  # type: ignore[call-arg]
    # -- messages ----------------------------------------------------------
    def _send_state(self, now, beat=False):
        # A report on a change carries no heap figure: only the heartbeat's,
        # measured after a collection, means anything (device.heap()).
        self._state_n += 1
        self._sent_version = self.slots.version
        self._sent_at = now
        m = {"t": "state", "dev": self.cfg["dev"], "boot": self.boot, "n": self._state_n,
             "slots": self.slots.codes(), "up": hal.ticks_ms() // 1000}
        if beat:
            m["mem"], m["low"] = device.heap()
            # Events waiting on flash for the edge, and the journal's bound: the
            # fleet page raises an alarm as it fills (rentals stop near it).
            m["q"], m["qmax"] = len(self.journal.pending), self.cfg["journal_max"]
        self.uplink.send(m)

    def _on_connect(self):
        self._hello_sent = True
        self.uplink.send({"t": "hello", "dev": self.cfg["dev"], "kind": "dock",
                          "fw": self.cfg["fw"], "slots": self.cfg["slots"], "boot": self.boot,
                          "epoch": self.journal.epoch, "ota": self.cfg["ota"],
                          "ctr": self.uplink.guard.last})
        self._send_state(hal.ticks_ms())
        self.journal.replay(8, self._send_event)

    def _send_event(self, ev):
        # A backlog goes only as fast as the link takes it: the rest waits
        # on flash for the next resend, not in the heap.
        return self.uplink.room() and self.uplink.send(ev)

    def _on_tag(self, slot, tag):
        self.slots.tag(slot, tag, hal.ticks_ms())

    def _on_message(self, msg):
        t = msg["t"]
        if t == "ack":
            self.journal.ack(msg["epoch"], msg["seq"])
            self._clock(msg.get("now"))
        elif t == "time":
            self._clock(msg["now"])
        elif t == "cmd":
            self._command(msg)

    def _clock(self, now):
        if now is None:
            return
        t = hal.ticks_ms()
        known = self._edge_time(t)
        # A sealed time from the past (a recording played back) never sets the clock
        # back: riders pay by these times. The edge's own corrections are seconds.
        if known is not None and now < known - _CLOCK_BACK_S:
            _log.warning("old time %d refused (replayed?)", now)
            return
        self._edge_s = now
        self._sync_ms = t

    def _edge_time(self, now):
        """The edge's time now (s), or None if not known since boot. ticks wrap
        (about 12 days at 30 bits): a sync older than 3 days is not trusted."""
        if self._edge_s is None:
            return None
        d = hal.ticks_diff(now, self._sync_ms)
        if not 0 <= d < 259_200_000:
            return None
        return self._edge_s + d // 1000

    def _command(self, msg):
        op = msg["op"]
        cid = msg["id"]
        now = hal.ticks_ms()
        slot = msg.get("slot")
        _log.info("command %d %s slot=%r", cid, op, slot)
        if op == "unlock":
            waiting = len(self.journal.pending)
            if waiting >= self.cfg["journal_max"] - self.slots.n:
                # Every accepted event stays until the edge has it: with the journal
                # this full, rentals stop (the edge hears why) and returns go on.
                _log.warning("journal full (%d events wait for the edge): rental refused",
                             waiting)
                self._result(cid, False, "journal_full", slot)
            else:
                self.slots.unlock(-1 if slot is None else slot, cid, now)
        elif op == "set_slot":
            ok = slot is not None and self.slots.set_enabled(slot, msg.get("enabled", True), now)
            self._result(cid, ok, None if ok else "bad_slot", slot)
        elif op == "hello":
            self._on_connect()
            self._result(cid, True, None, None)
        elif op == "reboot":
            self._result(cid, True, None, None)
            asyncio.create_task(device.reboot())
        elif op == "ota":  # an update: the image comes in update mode (lib/ota.py)
            ok, err = device.ota_command(msg)
            self._result(cid, ok, err, None)

    def _result(self, cid, ok, err, slot):
        m = {"t": "res", "dev": self.cfg["dev"], "id": cid, "ok": ok}
        if err:
            m["err"] = err
        if slot is not None and slot >= 0:
            m["slot"] = slot
        self.uplink.send(m)

    # -- the loop ------------------------------------------------------------
    # One task scans sensors, runs the state machine and all of the app's timers
    # (heartbeat, journal resend, the link's retransmit clock): each extra task
    # would cost heap that a 64K dock does not have.
    async def _io_loop(self):
        d = self.slots
        n = d.n
        read = self.io.read
        cfg = self.cfg
        hb_at = resend_at = hal.ticks_ms()
        while True:
            try:
                now = hal.ticks_ms()
                for i in range(n):
                    present, latched = read(i)
                    d.sense(i, present, latched, now)
                d.tick(now)
                self._flush(now)
                self.uplink.tick(now)
                if hal.ticks_diff(now, hb_at) >= cfg["heartbeat_s"] * 1000:
                    hb_at = now
                    self._send_state(now, True)  # a quiet point for the collection
                if hal.ticks_diff(now, resend_at) >= cfg["resend_ms"]:
                    resend_at = now
                    # Events still pending after a full period are sent again
                    # (the edge drops duplicates by epoch and sequence number).
                    prev = self._resend_prev
                    self._resend_prev = self.journal.pending[:8]
                    if prev and self.uplink.connected:
                        self.journal.replay(8, self._send_event, prev)
                self.wdt.feed()
            except Exception as e:  # log and keep scanning: a dock must stay up
                _log.exc(e, "io loop")
            await asyncio.sleep_ms(_IO_MS)

    def _flush(self, now):
        d = self.slots
        out = d.lock_out
        for i in range(len(out)):
            if out[i] != self._lock_written[i]:
                self.io.set_lock(i, out[i])
                self._lock_written[i] = out[i]
        while d.events:
            ev, slot, bike, code = d.events.pop(0)
            m = {"t": "ev", "dev": self.cfg["dev"], "ev": ev, "slot": slot,
                 "up": now // 1000}
            at = self._edge_time(now)
            if at is not None:
                m["at"] = at  # when it happened, on the edge's clock
            if bike:
                m["bike"] = bike
            if code:
                m["code"] = code
            # Durable first, then sent: a power cut between the two only delays it.
            self.uplink.send(self.journal.append(m))
            _log.info("event %s slot=%d bike=%s seq=%d", ev, slot, bike, m["seq"])
        if d.docked_changed:
            # After the events it follows: at boot they bring it up to date.
            d.docked_changed = False
            self.journal.save_note(" ".join([b or "-" for b in d.docked]))
        while d.results:
            cid, ok, err, slot = d.results.pop(0)
            self._result(cid, ok, err, slot)
        if (self._hello_sent and d.version != self._sent_version
                and hal.ticks_diff(now, self._sent_at) >= self.cfg["state_min_ms"]):
            self._send_state(now)

    def _known(self):
        """Which bike each slot held as the dock last told it: the journal's
        note, then the events logged after the note was written."""
        n = self.slots.n
        note, after = self.journal.note()
        known = [None] * n
        if note:
            bikes = note.split()
            if len(bikes) == n:  # else the slot count changed: the events alone
                for s in range(n):
                    known[s] = None if bikes[s] == "-" else bikes[s]

        def told(ev):
            s = ev.get("slot")
            if isinstance(s, int) and 0 <= s < n:
                if ev.get("ev") == "returned":
                    known[s] = ev.get("bike")
                elif ev.get("ev") == "rented" or ev.get("code") == "forced_removal":
                    known[s] = None
        self.journal.since(after, told)
        return known

    async def run(self):
        n = self.slots.n
        levels = [self.io.read(i) for i in range(n)]
        self.slots.boot([p for p, _ in levels], [q for _, q in levels], hal.ticks_ms(),
                        self.slots.docked)
        gc.collect()
        _log.info("dock %s up: fw %s, boot %d, %d slots %s, journal epoch %s, %d pending, "
                  "heap free %d",
                  self.cfg["dev"], self.cfg["fw"], self.boot, n, self.slots.codes(),
                  self.journal.epoch, len(self.journal.pending), gc.mem_free())
        asyncio.create_task(self.tags.run())
        asyncio.create_task(self.uplink.run())
        await self._io_loop()
