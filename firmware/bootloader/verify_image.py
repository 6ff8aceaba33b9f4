# Bootloader, stage 2 (verify pass): runs on a fresh heap, before any code of
# the new image, when the boot record says a pending image waits. It checks
# the image's manifest signature with the device's update key (Ed25519,
# bootloader/ed25519.py), every file's SHA-256, and that the image is for this
# board; then records the verdict and resets into it (trial) or back into the
# active slot (refused). The key is provisioned in config.json ("ota_key").
import binascii
import hashlib
import json
import sys


def _check(slot, active):
    import ed25519

    with open("config.json") as f:
        key = binascii.unhexlify(json.load(f).get("ota_key", ""))
    with open(slot + "/manifest.json", "rb") as f:
        body = f.read()
    with open(slot + "/manifest.sig", "rb") as f:
        sig = binascii.unhexlify(f.read().strip())
    if not ed25519.verify(key, body, sig):
        return "refused:signature"
    man = json.loads(body)
    with open(active + "/board.json") as f:
        if json.load(f).get("name") != man.get("board"):
            return "refused:board"
    # Anti-rollback: an image below the floor (the security version of the last
    # confirmed image) is refused, however genuinely it was signed once.
    # A manifest without its security version, or a floor that cannot be read, refuses:
    # fail closed (a damaged floor must not reopen every old image).
    sec = man.get("security")
    if not isinstance(sec, int) or isinstance(sec, bool) or sec < 0:
        return "refused:security"
    low = floor()
    if low is None:
        return "refused:floor"
    if sec < low:
        return "refused:rollback"
    # Only signed files may sit in the slot: an unlisted lib/x.py would be
    # imported before the signed lib/x.mpy.
    if _stray(slot, man["files"], ""):
        return "refused:stray"
    buf = bytearray(512)
    for path, want in man["files"].items():
        try:
            got = sha256_hex(slot + "/" + path, buf)
        except OSError:
            return "refused:missing"
        if got != want:
            return "refused:hash"
    return None


def floor():
    """The security floor; 0 where none was ever written, None where it is damaged.
    `huimin flash` and the simulator's install write it from the first boot."""
    try:
        with open("ota_floor") as f:
            text = f.read()
    except OSError:
        return 0
    try:
        n = int(text)
    except ValueError:
        return None
    return n if n >= 0 else None


def _stray(slot, files, d):
    """The first file in the slot that the manifest does not list, or None."""
    import os

    for e in os.ilistdir(slot + "/" + d if d else slot):
        p = d + "/" + e[0] if d else e[0]
        if e[1] == 0x4000:
            s = _stray(slot, files, p)
            if s:
                return s
        elif p not in files and p != "manifest.json" and p != "manifest.sig":
            return p
    return None


def sha256_hex(path, buf):
    """A file's SHA-256 in hex, read through buf; OSError if it is missing.
    The updater's end check (lib/ota.py) uses it too: the bootloader is never
    in a slot being judged, so both may trust it."""
    mv = memoryview(buf)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return binascii.hexlify(h.digest()).decode()


def run(r):
    import time

    try:
        why = _check("slot_" + r[1], "slot_" + r[0])
    except Exception as e:  # a malformed image is refused, never booted
        why = "refused:" + type(e).__name__
    # The console's log line format (lib/log.py): level, ms, source.
    if why is None:
        print("I %d boot: image in slot_%s verified; trial boot" % (time.ticks_ms(), r[1]))
        r = [r[0], r[1], "2", "0", "verified"]
        # The floor rises only when the edge confirms this image (slot.py).
        with open("slot_" + r[1] + "/manifest.json") as f:
            sec = json.load(f).get("security", 0)
        with open("ota_floor_next", "w") as f:
            f.write(str(sec))
    else:
        print("W %d boot: image in slot_%s %s; staying on slot_%s" % (
            time.ticks_ms(), r[1], why, r[0]))
        r = [r[0], "-", "0", "0", why]
    sys.modules["slot"].put(r)  # the bootloader's own (it called us), renamed into place
    # Reset: the next boot starts on a clean heap, without this code.
    try:
        import machine

        machine.reset()
    except (ImportError, AttributeError):
        sys.exit(0)  # the unix port: the supervisor (or a technician) starts it again
