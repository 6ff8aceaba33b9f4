# Over-the-air update, the device's side (docs/ota.md). The edge's first "ota"
# command makes the app reboot into update mode (lib/device.py ota_command):
# this module's Updater then runs instead of the app, with the heap to spare,
# and the edge sends the signed image file by file as "cmd" messages with op
# "ota" (base64 data, 512 bytes a message: in update mode the link takes 1K):
#   path ""          begin: empty the staging slot (the one not running)
#   path "lib/x.mpy" write data at off (offset 0 starts the file)
#   path "*"         end: check every file against the manifest, then reboot:
#                    the bootloader verifies the signature before a trial boot
# ("+", the edge's confirm of an image on trial, goes to the app: lib/device.py)
# Loaded in update mode only: a device that is not updating never pays for it.
# config.json's "ota_key" (read by the bootloader) and "ota_confirm_s" are read here and
# there, not by the apps' config.
import binascii
import os


def _record():
    try:
        with open("boot_record") as f:
            r = f.read().split()
    except OSError:
        r = []
    return r if len(r) >= 5 else "a - 0 0 -".split()


def _save(r):
    # As the bootloader writes it (bootloader/slot.py put): aside, then renamed.
    with open("boot_record.new", "w") as f:
        f.write(" ".join(r))
    os.rename("boot_record.new", "boot_record")


def _staging(r):
    return "slot_" + ("b" if r[0] == "a" else "a")


def _erase(p):
    try:
        os.remove(p)  # a file, or a symlink to an image (the simulator's flash)
        return
    except OSError:
        pass
    try:
        names = os.listdir(p)
    except OSError:
        return
    for n in names:
        _erase(p + "/" + n)
    os.rmdir(p)


def _mkdirs(path):
    d = ""
    for part in path.split("/")[:-1]:
        d = d + part if not d else d + "/" + part
        try:
            os.mkdir(d)
        except OSError:
            pass


def _entries(f):
    # manifest.json as tools/firmware.py writes it (docs/ota.md): one
    # '"path": "sha256",' line per file inside "files". Read line by line:
    # after 50K of image the heap is fragmented, and json.load's dict of 40
    # files wants one 752-byte block it may not find (seen in CI).
    inside = False
    for line in f:
        if not inside:
            inside = line.lstrip().startswith('"files"')
        elif "}" in line:
            return
        else:
            q = line.split('"')
            if len(q) < 5:
                raise ValueError("manifest line")
            yield q[1], q[3]


def _check(slot):
    """Every file against the manifest: None, or why not. A pre-check for a
    clear answer now: the bootloader's verify pass checks again, signed."""
    import sys

    if "bootloader" not in sys.path:
        sys.path.append("bootloader")  # the device's own, outside both slots
    from verify_image import sha256_hex

    buf = bytearray(256)
    n_files = 0
    with open(slot + "/manifest.json") as m:
        for p, want in _entries(m):
            n_files += 1
            try:
                if sha256_hex(slot + "/" + p, buf) != want:
                    return "hash " + p
            except OSError:
                return "missing " + p
    if not n_files:
        return "manifest lists no files"
    # Every listed file is there; any more is a stray (an unlisted lib/x.py
    # would be imported before the signed lib/x.mpy). Counted first: no set of
    # 40 names on a fragmented heap. Strays are removed and the image refused.
    if sum(1 for _ in _files(slot, "")) == n_files + 2:  # + manifest.json, .sig
        return None
    stray = None
    for p in _files(slot, ""):
        if p != "manifest.json" and p != "manifest.sig" and not _listed(slot, p):
            os.remove(slot + "/" + p)
            stray = p
    return "stray " + stray if stray else "manifest.sig missing"


def _files(slot, d):
    for e in os.ilistdir(slot + "/" + d if d else slot):
        p = d + "/" + e[0] if d else e[0]
        if e[1] == 0x4000:
            yield from _files(slot, p)
        else:
            yield p


def _listed(slot, path):
    with open(slot + "/manifest.json") as m:
        for p, _ in _entries(m):
            if p == path:
                return True
    return False


def handle(msg):
    """One OTA message -> (ok, err, reboot)."""
    r = _record()
    path = msg.get("path", "")
    slot = _staging(r)
    if path == "":
        _erase(slot)
        os.mkdir(slot)
        return True, None, False
    if path == "*":
        err = _check(slot)
        if err:
            return False, err, False
        _save([r[0], slot[5:], "1", "0", "-"])
        return True, None, True
    if ".." in path or path.startswith("/"):
        return False, "bad_path", False
    target = slot + "/" + path
    off = msg.get("off", 0)
    if off == 0:
        _mkdirs(target)
        mode = "wb"
    else:
        try:
            size = os.stat(target)[6]
        except OSError:
            size = -1
        if size != off:
            return False, "offset %d" % size, False  # the edge resends from there
        mode = "ab"
    data = msg.get("data", "")
    if not isinstance(data, str):
        return False, "bad_data", False
    with open(target, mode) as f:
        f.write(binascii.a2b_base64(data))
    return True, None, False


class Updater:
    """Update mode: runs instead of the app. Only the uplink and this module
    are loaded; the edge streams the image, "*" ends it (verify pass next).
    Silence from the edge for IDLE_S, or a "reboot" command, leaves update
    mode for the running image."""

    IDLE_S = 120

    def __init__(self, cfg, board, boot):
        import time

        import hal

        self.cfg = cfg
        self.boot = boot
        self._last = time.ticks_ms()
        from command_guard import CommandGuard

        # Every update step is a command: MAC and counter checked like the app's.
        guard = CommandGuard(cfg["cmd_key"], cfg["dev"])
        if cfg["link"] == "mqtt":
            from uplink.mqtt import MqttUplink

            self.uplink = MqttUplink(cfg["mqtt"], cfg["dev"], cfg["site"], boot,
                                     guard, self._on_message, self._hello)
        else:
            from uplink.serial import SerialUplink

            # Update mode has the heap: frames up to 1K, so 512-byte chunks.
            self.uplink = SerialUplink(  # type: ignore[assignment]  # one of two, by config
                hal.uart("edge", cfg), guard, self._on_message, self._hello, 1024)

    def _hello(self):
        self.uplink.send({"t": "hello", "dev": self.cfg["dev"], "kind": self.cfg["kind"],
                          "fw": self.cfg["fw"], "slots": self.cfg.get("slots", 0),
                          "boot": self.boot, "epoch": "-", "ota": "receiving",
                          "ctr": self.uplink.guard.last})

    def _on_message(self, msg):
        import time

        if msg["t"] != "cmd":
            return
        self._last = time.ticks_ms()
        op = msg["op"]
        ok, err, reboot = True, None, False
        if op == "ota":
            try:
                ok, err, reboot = handle(msg)
            except Exception as e:  # a bad chunk is an answer, never a crash
                ok, err = False, repr(e)[:60]
        elif op == "reboot":
            reboot = True  # a reset out of update mode is a normal boot
        elif op == "hello":
            self._hello()
        else:
            ok, err = False, "updating"
        r = {"t": "res", "dev": self.cfg["dev"], "id": msg["id"], "ok": ok}
        if err:
            r["err"] = err
        self.uplink.send(r)
        if reboot:
            import asyncio

            asyncio.create_task(_reset_soon())

    async def run(self):
        import asyncio
        import time

        import log

        log.get("ota").info("update mode: waiting for the image")
        asyncio.create_task(self.uplink.run())
        while True:
            await asyncio.sleep_ms(100)
            now = time.ticks_ms()
            self.uplink.tick(now)
            if time.ticks_diff(now, self._last) > self.IDLE_S * 1000:
                log.get("ota").warning("no word from the edge in %d s: leaving update mode",
                                       self.IDLE_S)
                await _reset_soon()


async def _reset_soon():
    import asyncio

    import hal

    await asyncio.sleep_ms(500)  # let the result leave first
    hal.reset()
