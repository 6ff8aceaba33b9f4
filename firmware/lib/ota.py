# Over-the-air update, the device's side (docs/ota.md). The edge sends a signed
# image file by file as "cmd" messages with op "ota" (base64 data, at most 96
# bytes a message, to fit a dock's 256-byte link):
#   path ""          begin: empty the staging slot (the one not running)
#   path "lib/x.mpy" write data at off (offset 0 starts the file)
#   path "*"         end: check every file against the manifest, then reboot:
#                    the bootloader verifies the signature before a trial boot
#   path "+"         the edge heard the new image: confirm it (no rollback)
# Loaded on the first OTA message, or on a trial boot, only: a dock that never
# updates never pays for it. config.json's "ota_key" (read by the bootloader)
# and "ota_confirm_s" are read here and there, not by the app's config.
import binascii
import hashlib
import json
import os


def _record():
    try:
        with open("boot.txt") as f:
            return f.read().split()
    except OSError:
        return "a - 0 0 -".split()


def _save(r):
    with open("boot.txt", "w") as f:
        f.write(" ".join(r))


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


async def trial(slot, version):
    """A trial boot: the app must be heard by the edge (which then sends the
    "+" confirm) within ota_confirm_s seconds, or the device resets and the
    bootloader rolls back."""
    import asyncio

    import hal
    import log

    with open("config.json") as f:
        s = json.load(f).get("ota_confirm_s", 60)
    lg = log.get("ota")
    lg.info("trial boot of %s, version %s: the edge must confirm it within %d s", slot,
            version, s)
    await asyncio.sleep(s)
    if _record()[2] == "2":
        lg.error("update not confirmed in %d s: rolling back", s)
        hal.reset()


async def command(uplink, dev, msg):
    """A "cmd" for a device without its own command handling (the kiosk):
    "ota" steps and "reboot"; the result goes back through uplink."""
    ok, err, reboot = False, "unknown", False
    if msg["op"] == "ota":
        ok, err, reboot = handle(msg)
    elif msg["op"] == "reboot":
        ok, err, reboot = True, None, True
    r = {"t": "res", "dev": dev, "id": msg["id"], "ok": ok}
    if err:
        r["err"] = err
    uplink.send(r)
    if reboot:
        import asyncio

        import hal

        await asyncio.sleep_ms(500)  # let the result leave first
        hal.reset()


def handle(msg):
    """One OTA message -> (ok, err, reboot)."""
    r = _record()
    path = msg.get("path", "")
    if path == "+":
        if r[2] != "2":
            return True, None, False  # already confirmed
        _save([r[1], "-", "0", "0", "updated"])
        return True, None, False
    if r[2] != "0":
        return False, "busy", False
    slot = _staging(r)
    if path == "":
        _erase(slot)
        os.mkdir(slot)
        return True, None, False
    if path == "*":
        with open(slot + "/manifest.json") as f:
            files = json.load(f)["files"]
        buf = bytearray(256)
        for p, want in files.items():
            h = hashlib.sha256()
            try:
                with open(slot + "/" + p, "rb") as f:
                    while True:
                        n = f.readinto(buf)
                        if not n:
                            break
                        h.update(buf[:n])
            except OSError:
                return False, "missing " + p, False
            if binascii.hexlify(h.digest()).decode() != want:
                return False, "hash " + p, False
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
    with open(target, mode) as f:
        f.write(binascii.a2b_base64(msg.get("data", "")))
    return True, None, False
