# Bootloader: which image slot to start (docs/ota.md). Called by main.py, then
# dropped from memory before the app loads.
#   boot.txt: "<active> <pending> <state> <tries> <last result>"
#   state 0: run the active slot; 1: verify the pending slot (signature,
#   hashes, board) on a fresh heap, then reset; 2: trial boot of the pending
#   slot, which the app confirms once the edge hears it; a second boot still
#   in trial (a crash, or no confirmation by the deadline) rolls back.
# Few names and literals: each one is interned for good and costs the app's
# 64K heap.


def choose():
    """-> (boot record, slot folder)."""
    try:
        with open("boot.txt") as f:
            r = f.read().split()
    except OSError:
        r = "a - 0 0 -".split()
    if int(r[2]) == 1:
        import verify

        verify.run(r)  # writes the record and resets
    if int(r[2]) == 2:
        if int(r[3]) == 0:
            r[3] = r[2]  # tried once; the slot to start is r[1]
        else:
            r = ("%s - 0 0 rolled_back" % r[0]).split()
        with open("boot.txt", "w") as f:
            f.write(" ".join(r))
    return r, "slot_" + (r[1] if int(r[2]) == 2 else r[0])
