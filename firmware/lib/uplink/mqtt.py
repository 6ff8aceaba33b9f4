# Device side of the MQTT link: keeps one MQTTClient connected (first connect
# retried too, backoff with jitter), publishes wire.message objects on the
# device's topics and hands the edge's messages to the app.
#   up:   huimin/<site>/<dev>/{hello,state,event,result,status,lookup}
#   down: huimin/<site>/<dev>/down
# hello and state are retained, status is retained and is the Last Will
# (online: false, with the boot counter so a stale will is recognisable).
import asyncio
import gc
import random

from micropython import const

import log
from mqtt.client import MQTTClient
from wire import auth, message

_log = log.get("uplink")

# message type -> (topic leaf, qos, retain)
_ROUTES = {
    "hello": ("hello", 1, True),
    "state": ("state", 0, True),
    "ev": ("event", 1, False),
    "res": ("result", 1, False),
    "status": ("status", 1, True),
    "lookup": ("lookup", 1, False),
}
_MAX_QUEUE = const(12)
# A backlog of events goes a few at a time (room()): each queued message is a
# heap block of its own, and after hours a heap has 8K free in holes of a few
# hundred bytes; ten at once, on a reconnect, ran a dock out of memory.
_BACKLOG = const(4)


class MqttUplink:
    def __init__(self, cfg, dev, site, boot, guard, on_message, on_connect=None):
        self.cfg = cfg
        self.guard = guard  # lib/command_guard.py: only the edge's messages pass
        self.dev = dev
        self.base = "huimin/%s/%s/" % (site, dev)
        self.boot = boot
        self.on_message = on_message
        self.on_connect = on_connect
        self.connected = False
        self.bad = 0
        self.dropped = 0
        self.reconnects = 0
        self._q = []
        self._wake = asyncio.Event()
        self._c = None

    def send(self, msg):
        t = msg["t"]
        if (t == "ev" or t == "lookup") and not self.connected:
            # Events live in the journal, re-sent on connect; a lookup is
            # answered in seconds or not at all (the kiosk says the service is down).
            return False
        q = self._q
        if t == "state":
            # Only the newest state matters (retained): while the broker is
            # away, a queue of old ones would eat the heap a reconnect needs.
            for i in range(len(q) - 1, 0, -1):  # q[0] may be in flight
                if q[i][0] == "state":
                    q.pop(i)
        if len(q) >= _MAX_QUEUE:
            # Only state/results can be lost here: events live in the journal and
            # are re-sent until the edge acks them.
            self.dropped += 1
            return False
        # Sealed with the device's key: even a broker that is not honest cannot
        # speak for this device (docs/security.md).
        q.append((t, auth.seal(self.guard.key, auth.UP, message.encode(msg))))
        self._wake.set()
        return True

    def room(self):
        """True when the app may queue one more event of its backlog."""
        return self.connected and len(self._q) < _BACKLOG

    def tick(self, now):
        # Called by the app's loop: a dead connection wakes the pump, which
        # then needs no timer of its own (each timeout allocates).
        c = self._c
        if c is not None:
            c.check(now)  # a write the broker stopped taking ends the connection
            if c.dead.is_set():
                self._wake.set()

    def _incoming(self, topic, payload):
        try:
            msg = message.decode(payload)
        except ValueError as e:
            self.bad += 1
            _log.warning("dropped message on %s: %s", topic, e)
            return
        if not self.guard.admit(payload, msg, self.send):
            return
        self.on_message(msg)

    async def run(self):
        delay = 500
        c = self._c = self._client()
        while True:
            try:
                gc.collect()  # a quiet point: connecting needs a few larger blocks
                await c.connect()
                await c.subscribe(self.base + "down", 1)
                await c.publish(self.base, self._status(True), True, 1, "status")
                self.connected = True
                delay = 500
                _log.info("mqtt connected to %s:%d", c.host, c.port)
                if self.on_connect:
                    self.on_connect()
                await self._pump(c)
            except Exception as e:
                # The client's own error says why the connection died.
                _log.warning("mqtt down: %r%s", e, " (%r)" % c.error if c.error else "")
            finally:
                self.connected = False
                await c.close()
            self.reconnects += 1
            # Backoff with jitter so a town's docks don't reconnect in lockstep.
            await asyncio.sleep_ms(delay + random.getrandbits(8) * delay // 256)
            delay = min(delay * 2, 30000)

    def _status(self, online):
        return auth.seal(self.guard.key, auth.UP, message.encode(
            {"t": "status", "dev": self.dev, "online": online, "boot": self.boot}))

    def _client(self):
        cfg = self.cfg
        return MQTTClient(
            self.dev, cfg.get("host", "127.0.0.1"), cfg.get("port", 1883),
            cfg.get("user"), cfg.get("password"), cfg.get("keepalive", 30),
            (self.base + "status", self._status(False), True, 1),
            clean=False, on_message=self._incoming, ca=cfg["ca"])

    async def _pump(self, c):
        while not c.dead.is_set():
            if not self._q:
                self._wake.clear()
                await self._wake.wait()  # new message, or tick() saw the link die
                continue
            t, data = self._q[0]
            leaf, qos, retain = _ROUTES[t]
            await c.publish(self.base, data, retain, qos, leaf)
            self._q.pop(0)  # only once the broker has it (QoS 1) or it left (QoS 0)
        raise c.error
