# The dock's configuration: declared with defaults and limits, checked at boot,
# printed once (like ESPHome's dump_config) so `huimin console` shows it.
import json

import log

_log = log.get("dock")

# key: (default, min, max) for numbers; (default, None, choices) for strings
SCHEMA = {  # type: dict[str, tuple]
    "dev": (None, None, None),
    "cmd_key": (None, None, None),  # hex: the edge's messages are checked with it
    "site": ("town", None, None),
    "kind": ("dock", None, ("dock",)),
    "slots": (12, 1, 32),
    "link": ("serial", None, ("serial", "mqtt")),
    "uart": ("", None, None),
    "bus": ("", None, None),
    "journal": ("journal", None, None),
    # Events kept on flash for the edge at most; room for a return to every
    # slot is kept, so rentals are refused first (app.py): nothing is lost.
    "journal_max": (500, 2, 5000),
    "heartbeat_s": (30, 2, 3600),
    "state_min_ms": (200, 0, 10000),
    "resend_ms": (3000, 200, 600000),
    "tag_ms": (2000, 100, 60000),
    "lock_ms": (1500, 100, 60000),
    "take_ms": (30000, 1000, 600000),
}


# Same checks as the other app's config.py, on purpose: a shared module would
# add interned names, and the dock sits just under the 64K heap's 300-name
# pool boundary (tests/firmware/test_heap_soak.py fails when it tips over).
def load(path):
    with open(path) as f:
        raw = json.load(f)
    cfg = {}
    for key, (default, lo, hi) in SCHEMA.items():
        v = raw.get(key, default)
        if v is None:
            raise ValueError("config: %s is required" % key)
        if isinstance(default, int):
            if not isinstance(v, int) or v < lo or v > hi:
                raise ValueError("config: %s=%r outside %d..%d" % (key, v, lo, hi))
        elif hi is not None and v not in hi:
            raise ValueError("config: %s=%r not one of %r" % (key, v, hi))
        cfg[key] = v
    cfg["mqtt"] = m = raw.get("mqtt") or {}
    if cfg["link"] == "mqtt" and not (m.get("user") and m.get("password") and m.get("ca")):
        # No anonymous or clear-text broker: an account and the county CA (TLS).
        raise ValueError("config: link=mqtt needs mqtt.user, mqtt.password and mqtt.ca")
    cfg["wifi"] = raw.get("wifi") or {}  # {"ssid", "password"}: a board on MQTT over Wi-Fi
    if cfg["journal_max"] <= cfg["slots"]:
        raise ValueError("config: journal_max must be more than slots")
    if cfg["link"] == "serial" and not cfg["uart"]:
        raise ValueError("config: link=serial needs uart")
    return cfg


def dump(cfg):
    for key in sorted(cfg):
        v = cfg[key]
        if key == "cmd_key":
            v = "*"
        elif key == "mqtt" or key == "wifi":
            v = dict((k, "*" if k == "password" else x) for k, x in v.items())
        _log.info("config %s = %r", key, v)
