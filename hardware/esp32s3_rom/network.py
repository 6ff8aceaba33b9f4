# The ESP32-S3 port's `network` module (station mode), emulated under the unix
# port: the radio's state comes from the board emulator (machine._bus), which
# also cuts the device's TCP links while the access point is out of reach. As on
# the port, a station that has joined rejoins by itself after a drop.
from micropython import const

import machine

STA_IF = const(0)
AP_IF = const(1)
STAT_IDLE = const(1000)
STAT_CONNECTING = const(1001)
STAT_GOT_IP = const(1010)
STAT_NO_AP_FOUND = const(201)
STAT_WRONG_PASSWORD = const(202)


class WLAN:
    def __init__(self, interface_id=STA_IF):
        if interface_id != STA_IF:
            raise ValueError("only station mode is emulated")
        self._active = False
        self._joining = None  # (ssid, key) once connect() was called
        machine._bus.pump()

    def active(self, is_active=None):
        if is_active is None:
            return self._active
        self._active = bool(is_active)
        return None

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started")
        self._joining = (ssid, key or "")

    def disconnect(self):
        self._joining = None

    def status(self, param=None):
        if param == "rssi":
            return -60
        if param is not None:
            raise ValueError("unknown status param")
        if not self._active or self._joining is None:
            return STAT_IDLE
        ap = machine._wiring.get("wifi", {})
        if self._joining[0] != ap.get("ssid"):
            return STAT_NO_AP_FOUND
        if self._joining[1] != ap.get("password", ""):
            return STAT_WRONG_PASSWORD
        machine._bus.drain()
        return STAT_GOT_IP if machine._bus.wifi_up else STAT_CONNECTING

    def isconnected(self):
        return self.status() == STAT_GOT_IP

    def ifconfig(self, config=None):
        if self.isconnected():
            return ("192.168.4.%d" % (2 + machine.unique_id()[-1] % 250), "255.255.255.0",
                    "192.168.4.1", "192.168.4.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kw):
        if args == ("mac",):
            return machine.unique_id()
        return None
