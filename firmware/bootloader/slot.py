# Bootloader: which image slot to start (docs/ota.md). Called by main.py, then
# dropped from memory before the app loads. It alone writes the boot record:
#   boot_record: "<active> <pending> <state> <tries> <last result>"
#   state 0: run the active slot; 1: verify the pending slot (signature,
#   hashes, board) on a fresh heap, then reset; 2: trial boot of the pending
#   slot; a second boot still in trial (a crash, or no confirmation by the
#   deadline) rolls back. The app leaves markers: "ota_confirmed" (the edge heard the
#   image on trial: keep it) and "ota_update_mode" (boot into update mode, state 3,
#   which is never written: a reset there is back to normal). The verify pass
#   leaves "ota_floor_next", the image's security version; a confirm makes it
#   "ota_floor", below which verify_image.py refuses images (anti-rollback).
# Few names and literals: each one is interned for good and costs the app's
# 64K heap.
import os


def _take(n):
    try:
        os.remove(n)
        return True
    except OSError:
        return False


def put(r):
    # Written aside, then renamed over: a power cut leaves the old record or
    # the new one, never an empty file (which would stop every boot).
    with open("boot_record.new", "w") as f:
        f.write(" ".join(r))
    os.rename("boot_record.new", "boot_record")


def choose():
    """-> (boot record, slot folder, update mode)."""
    try:
        with open("boot_record") as f:
            r = f.read().split()
    except OSError:
        r = []
    # None yet, a torn one (before records were renamed into place) or a
    # damaged one: start the first slot rather than stop every boot.
    if (len(r) < 5 or r[0] not in ("a", "b") or r[1] not in ("-", "a", "b")
            or r[2] not in ("0", "1", "2") or not r[3].isdigit()
            or (r[2] != "0" and r[1] == "-")):
        r = "a - 0 0 -    ".split()
    ok = _take("ota_confirmed")
    update = _take("ota_update_mode")
    if int(r[2]) == 1:
        __import__("verify_image").run(r)  # writes the record and resets
    if int(r[2]) == 2:
        if ok:
            r = ("%s - 0 0 update_confirmed" % r[1]).split()
            try:  # anti-rollback: the confirmed image's security version is the floor
                os.rename("ota_floor_next", "ota_floor")
            except OSError:
                pass
        elif int(r[3]) == 0:
            r[3] = r[2]  # tried once; the slot to start is r[1]
        else:
            r = ("%s - 0 0 rolled_back" % r[0]).split()
        put(r)
    f = "slot_" + (r[1] if int(r[2]) == 2 else r[0])
    return r, f, update and int(r[2]) == 0
