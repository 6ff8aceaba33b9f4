# The kiosk app: card on the reader -> read the text block -> validate the
# number -> keyed token -> ask the edge -> show and speak the payments. The
# clear number and name live only in this function's locals during one swipe;
# logs carry the token's first characters, never the person.
import asyncio
import binascii
import gc
import random
import time

import device
import hal
import log
from apps.kiosk import flow, screens
from command_guard import CommandGuard
from drivers.display import Display, Voice
from drivers.sam_reader import ReadError, SamReader
from wire import idcard
from wire import kiosk_messages  # noqa: F401  (registers lookup/funds/near)

_log = log.get("kiosk")


class App:
    def __init__(self, cfg, board, boot):
        self.cfg = cfg
        self.boot = boot
        gc.collect()
        self.sam = SamReader(hal.uart("sam", cfg))
        self.display = Display(hal.uart("display", cfg), screens.VP)
        self.voice = Voice(hal.uart("voice", cfg), self.display)
        # None: the key is in the board's key store (hal.lookup_token), not here
        k = cfg["region_key"]
        self.key = None if k == "efuse" else binascii.unhexlify(k)
        guard = CommandGuard(cfg["cmd_key"], cfg["dev"])
        if cfg["link"] == "mqtt":
            from uplink.mqtt import MqttUplink

            self.uplink = MqttUplink(cfg["mqtt"], cfg["dev"], cfg["site"], boot,
                                     guard, self._on_message, self._on_connect)
        else:
            from uplink.serial import SerialUplink

            # Fund answers are the largest messages: wire/names.py KIOSK_MAX_MESSAGE.
            self.uplink = SerialUplink(  # type: ignore[assignment]  # one of two, by config
                hal.uart("edge", cfg), guard, self._on_message, self._on_connect, 640)
        self._req = 0
        self._answer = None
        self._got = asyncio.Event()
        self._state_n = 0
        self._near = []
        self._redraw = False  # new nearby figures: the main loop redraws the idle screen
        self.flow = flow.Flow(cfg["show_s"] * 1000)
        # Fed once a pass of the main loop, which a swipe holds for its lookup at most.
        self.wdt = hal.WDT(cfg["lookup_ms"] + 10000)

    def _on_connect(self):
        self.uplink.send({"t": "hello", "dev": self.cfg["dev"], "kind": "kiosk",
                          "fw": self.cfg["fw"], "slots": 0, "boot": self.boot, "epoch": "-",
                          "ota": self.cfg["ota"], "ctr": self.uplink.guard.last})

    def _on_message(self, msg):
        if msg["t"] == "near":
            self._near = msg["stations"]
            self._redraw = True
        elif msg["t"] == "funds" and self._req and msg["id"] == self._req:
            self._answer = msg
            self._got.set()
        elif msg["t"] == "cmd":
            ok, err = True, None
            if msg["op"] == "hello":
                self._on_connect()
            elif msg["op"] == "ota":  # an update: the image comes in update mode
                ok, err = device.ota_command(msg)
            else:
                ok, err = False, "unknown"
            r = {"t": "res", "dev": self.cfg["dev"], "id": msg["id"], "ok": ok}
            if err:
                r["err"] = err
            self.uplink.send(r)

    async def _show(self, screen, left_s=None):
        await self.display.show(screen, left_s)
        if screen[4]:
            await self.voice.say(screen[4])

    async def _lookup(self, token):
        # A random id, outstanding only while we wait: an answer to another
        # request, a late one or a replayed one is dropped (answers are sealed
        # with this kiosk's key as well: docs/security.md).
        self._req = random.getrandbits(30) | 1
        self._answer = None
        self._got.clear()
        if not self.uplink.send({"t": "lookup", "dev": self.cfg["dev"], "id": self._req,
                                 "token": token}):
            self._req = 0
            return None  # no link (or its queue is full): say so now, not in 3 s
        try:
            await asyncio.wait_for_ms(self._got.wait(), self.cfg["lookup_ms"])
        except asyncio.TimeoutError:
            return None
        finally:
            self._req = 0  # nothing outstanding: 0 is never sent
        ans = self._answer
        self._answer = None  # held past the swipe, it would split the heap
        return ans

    async def swipe(self):
        """One card, from the read to the screen; returns the screen shown."""
        await self._show(screens.message("reading"))
        try:
            text = await self.sam.read_text()
        except ReadError as e:
            self.sam.decoder.wipe()  # a part of a text block may be in it
            _log.warning("read failed: %s", e.reason)
            self.flow.read(e.reason)
            return screens.message(e.reason, self.cfg["help"])
        name, number, valid_to, resident = idcard.person(text)
        text = None
        self.sam.decoder.wipe()  # the card's text block does not stay in the buffer
        t = time.localtime(time.time())
        bad = idcard.check_id(number) if resident else None
        old = resident and bad is None and idcard.expired(valid_to,
                                                          "%04d%02d%02d" % (t[0], t[1], t[2]))
        problem = flow.card_problem(resident, bad, old)
        self.flow.read(problem)
        if problem is not None:
            return screens.message(problem, self.cfg["help"])
        token = idcard.token(self.key, number) if self.key else hal.lookup_token(number)
        name, masked_id = idcard.mask_name(name), idcard.mask_id(number)
        number = None  # the clear number and name go now; only masks and token stay
        gc.collect()
        ans = await self._lookup(token)
        problem = flow.answer_problem(ans)
        if problem is not None:
            # Never the token, not even a prefix: with the region key it names the villager.
            _log.info("lookup: %s", "edge did not answer" if ans is None else ans.get("err"))
            return screens.message(problem, self.cfg["help"])
        stale = None
        if ans.get("stale"):
            t = time.localtime(ans.get("as_of", 0))
            stale = "%d年%d月%d日" % (t[0], t[1], t[2])
        if stale:
            _log.info("lookup: %d records from the cache of %s", len(ans["records"]), stale)
        else:
            _log.info("lookup: %d records", len(ans["records"]))
        return screens.result(name, masked_id, ans["records"], stale)

    async def run(self):
        asyncio.create_task(self.uplink.run())
        if not await self.sam.healthy():
            _log.error("ID-card module failed its self-test")
            await self._show(screens.message("module"))
        await self._show(screens.idle(self._near))
        gc.collect()  # what is free for good, not garbage not yet collected
        _log.info("kiosk %s up, heap free %d", self.cfg["dev"], gc.mem_free())
        poll = self.cfg["poll_ms"]
        hb = hal.ticks_ms()
        while True:
            try:
                now = hal.ticks_ms()
                self.uplink.tick(now)
                if hal.ticks_diff(now, hb) >= self.cfg["heartbeat_s"] * 1000:
                    hb = now
                    self._state_n += 1
                    free, low = device.heap()
                    self.uplink.send({"t": "state", "dev": self.cfg["dev"], "boot": self.boot,
                                      "n": self._state_n, "slots": "", "mem": free,
                                      "low": low})
                todo = self.flow.poll(await self.sam.present(), now, hal.ticks_diff)
                if todo == flow.READ:
                    screen = await self.swipe()
                    self.flow.shown(hal.ticks_ms())
                    await self._show(screen, self.cfg["show_s"])
                    screen = None
                    gc.collect()
                elif todo == flow.IDLE_SCREEN:
                    self._redraw = True
                # The page's remaining time, counted down on its footer.
                await self.display.count(self.flow.left_s(hal.ticks_ms(), hal.ticks_diff))
                if self._redraw and not self.flow.on_result():
                    self._redraw = False
                    await self._show(screens.idle(self._near))
                self.wdt.feed()
            except Exception as e:  # a kiosk must keep working
                _log.exc(e, "kiosk main loop")
            await asyncio.sleep_ms(poll)
