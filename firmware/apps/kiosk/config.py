# The kiosk's configuration, checked at boot and printed (the region key never).
import json

import log

_log = log.get("kiosk")

SCHEMA = {  # type: dict[str, tuple]
    "dev": (None, None, None),
    "cmd_key": (None, None, None),  # hex: the edge's messages are checked with it
    "site": ("town", None, None),
    "kind": ("kiosk", None, ("kiosk",)),
    "link": ("serial", None, ("serial", "mqtt")),
    "uart": ("", None, None),
    "sam_uart": ("", None, None),
    "display_uart": ("", None, None),
    "voice_uart": ("", None, None),
    "bus": ("", None, None),
    "region_key": (None, None, None),
    "heartbeat_s": (30, 2, 3600),
    "lookup_ms": (3000, 500, 30000),
    "show_s": (30, 5, 300),
    "poll_ms": (100, 50, 5000),
    # Where a villager turns when the kiosk cannot help (no records, a bad card):
    # the village committee's office and phone, set at provisioning.
    "help": ("如有疑问，请咨询村委会或拨打12345", None, None),
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
    if cfg["region_key"] != "efuse" and len(cfg["region_key"]) < 32:
        # "efuse": the key is in the board's key store, behind hal.lookup_token
        raise ValueError("config: region_key must be at least 16 bytes of hex, or efuse")
    cfg["mqtt"] = m = raw.get("mqtt") or {}
    if cfg["link"] == "mqtt" and not (m.get("user") and m.get("password") and m.get("ca")):
        # No anonymous or clear-text broker: an account and the county CA (TLS).
        raise ValueError("config: link=mqtt needs mqtt.user, mqtt.password and mqtt.ca")
    cfg["wifi"] = raw.get("wifi") or {}  # {"ssid", "password"}: a board on MQTT over Wi-Fi
    return cfg


def dump(cfg):
    for key in sorted(cfg):
        v = cfg[key]
        if key == "region_key" or key == "cmd_key":
            v = "*"
        elif key == "mqtt" or key == "wifi":
            v = dict((k, "*" if k == "password" else x) for k, x in v.items())
        _log.info("config %s = %r", key, v)
