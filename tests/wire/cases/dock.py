# The dock's own logic: the slot state machine (apps/dock/slots.py) and the
# on-flash event journal (lib/journal.py).


def _dock(n=3):
    from apps.dock.slots import Slots
    return Slots(n, tag_ms=100, lock_ms=100, take_ms=1000)


def case_slots_return_then_rent():
    d = _dock()
    d.boot([0, 0, 0], [0, 0, 0], 0)
    assert d.codes() == "EEE"
    d.sense(1, 1, 0, 10)  # bike pushed in
    d.tag(1, "0A00000001", 20)
    assert d.lock_out[1] == 1 and d.codes() == "EUE"
    d.sense(1, 1, 1, 60)  # bolt closed
    assert d.codes() == "ELE"
    assert d.events == [("returned", 1, "0A00000001", None)]
    d.events.clear()
    d.unlock(1, 77, 100)
    assert d.lock_out[1] == 0
    d.sense(1, 1, 0, 150)  # bolt open
    assert d.results == [(77, True, None, 1)]
    d.sense(1, 0, 0, 400)  # bike taken
    assert d.events == [("rented", 1, "0A00000001", None)] and d.codes() == "EEE"


def case_slots_bike_taken_in_the_same_scan_as_the_bolt_opens():
    d = _dock(1)
    d.boot([1], [1], 0)
    d.tag(0, "0A00000003", 0)
    d.unlock(0, 5, 0)
    d.sense(0, 0, 0, 20)  # one scan sees the bolt open and the bike gone
    assert d.results == [(5, True, None, 0)]
    assert d.events == [("rented", 0, "0A00000003", None)] and d.codes() == "E"


def case_slots_refusals_and_faults():
    d = _dock()
    d.boot([1, 0, 1], [1, 0, 1], 0)
    d.unlock(1, 1, 0)
    d.unlock(9, 2, 0)
    assert d.results == [(1, False, "no_bike", 1), (2, False, "bad_slot", 9)]
    d.results.clear()
    d.unlock(0, 3, 0)  # the bolt never opens: jammed
    d.tick(200)
    assert d.results == [(3, False, "lock_jammed", 0)] and d.codes()[0] == "X"
    assert d.events[-1] == ("fault", 0, None, "lock_jammed")
    d.unlock(0, 4, 300)
    assert d.results[-1] == (4, False, "fault", 0)
    assert d.set_enabled(0, True, 400) and d.codes()[0] == "L"  # operator clears it
    d.sense(1, 1, 0, 500)  # a bike whose tag cannot be read
    d.tick(700)
    assert d.events[-1] == ("fault", 1, None, "tag_unreadable") and d.codes()[1] == "X"
    d.sense(1, 0, 0, 800)  # the rider takes it back
    assert d.codes()[1] == "F"
    assert d.set_enabled(2, False, 900) and d.codes()[2] == "B"
    d.unlock(2, 5, 900)
    assert d.results[-1] == (5, False, "disabled", 2)


def case_slots_untaken_rental_relocks_without_event():
    d = _dock(1)
    d.boot([1], [1], 0)
    d.tag(0, "0A00000002", 0)  # the docked bike's tag, read after boot
    d.unlock(0, 1, 0)
    d.sense(0, 1, 0, 50)
    d.tick(2000)  # rider never took it
    assert d.lock_out[0] == 1
    d.sense(0, 1, 1, 2050)
    assert d.codes() == "L" and d.events == []


# A dock's life as physical steps on one slot whose bike B0 was docked and told
# of before: (what happens, what the dock is told or senses). A power cut may
# come after any step; the dock then boots on the sensors and on what it had
# told of the slot (its `docked`, which the app keeps on flash with the journal).
_LIFE = ("unlock", "bolt opens", "taken", "pushed in C1", "tag C1", "bolt closes",
         "unlock", "bolt opens", "not taken in time", "bolt closes",
         "unlock", "bolt opens", "taken", "pushed in C2", "tag C2",
         "bolt closes")


def _step(d, world, what, t):
    present, latched = world
    if what == "unlock":
        d.unlock(0, t, t)
    elif what == "bolt opens":
        latched = 0
    elif what == "bolt closes":
        latched = 1 if d.lock_out[0] else latched
    elif what == "taken":
        present = 0
    elif what.startswith("pushed in"):
        present = 1
    elif what.startswith("tag"):
        d.tag(0, what[4:], t)
    elif what == "not taken in time":
        d.tick(t + 5000)
    d.sense(0, present, latched, t)
    return present, latched


def _settle(d, world, t):
    """After a boot, the slot's own motions: its tag read, its bolt closing."""
    present, latched = world
    if present and d.code(0) == "U":
        d.tag(0, d.bike[0] or "C?", t)
    if d.lock_out[0] and not latched:
        latched = 1
    d.sense(0, present, latched, t + 10)
    return present, latched


def case_slots_a_power_cut_at_any_step_tells_only_what_happened():
    """Cut after each step of _LIFE in turn (17 points), boot on the same
    sensors and `docked`: all the dock ever says is one event per bike that
    physically came or went, never one for a bike that stayed (before: a cut
    with the bolt open announced a second return of a bike that never left)."""
    import gc

    from apps.dock.slots import Slots
    for cut in range(len(_LIFE) + 1):
        gc.collect()  # two docks a cut, in the heap the code under test is held to
        d = Slots(1, tag_ms=100, lock_ms=100, take_ms=1000)
        d.boot([1], [1], 0, ["B0"])
        world, came, went = (1, 1), 0, 0
        for i in range(cut):
            before = world
            world = _step(d, world, _LIFE[i], 10 * (i + 1))
            came += before[0] == 0 and world[0] == 1
            went += before[0] == 1 and world[0] == 0
        returned, left, docked = 0, 0, d.docked
        for e in d.events:
            returned += e[0] == "returned"
            left += e[0] != "returned"
        d = None  # the power went: only the flash (docked) is left
        gc.collect()
        d2 = Slots(1, tag_ms=100, lock_ms=100, take_ms=1000)  # the power is back
        d2.boot([world[0]], [world[1]], 0, docked)
        _settle(d2, world, 1000)
        for e in d2.events:
            returned += e[0] == "returned"
            left += e[0] != "returned"
        assert (returned, left) == (came, went), (cut, came, went)
        assert d2.code(0) == ("L" if world[0] else "E"), (cut, d2.codes())


def case_slots_a_bike_gone_while_the_dock_was_off_is_a_theft_alarm():
    from apps.dock.slots import Slots
    d = Slots(2, tag_ms=100, lock_ms=100, take_ms=1000)
    d.boot([0, 1], [0, 1], 0, ["B1", "B2"])
    assert d.events == [("fault", 0, "B1", "forced_removal")]
    assert d.docked == [None, "B2"] and d.bike[1] == "B2" and d.codes() == "EL"


def _rmtree(d):
    import os
    try:
        names = os.listdir(d)
    except OSError:
        return
    for n in names:
        os.remove(d + "/" + n)
    os.rmdir(d)


def case_journal_keeps_events_until_acked_across_reboots():
    from journal import Journal
    d = "jr_case"
    _rmtree(d)
    j = Journal(d)
    epoch = j.epoch
    a = j.append({"t": "ev", "dev": "d", "ev": "returned", "slot": 1})
    b = j.append({"t": "ev", "dev": "d", "ev": "rented", "slot": 2})
    assert (a["seq"], b["seq"]) == (1, 2) and a["epoch"] == epoch
    assert j.ack(epoch, 1) and not j.ack("other-epoch", 2) and not j.ack(epoch, 9)
    j2 = Journal(d)  # reboot
    assert j2.epoch == epoch and j2.pending == [2] and j2.next_seq == 3
    got = []
    assert j2.replay(8, lambda e: got.append(e["slot"]) or True) == 1 and got == [2]
    with open(d + "/events", "a") as f:
        f.write('3 {"t":"ev","dev"')  # power cut mid-write
    j3 = Journal(d)
    assert j3.pending == [2]
    assert j3.ack(epoch, 2) and j3.pending == []
    j4 = Journal(d)  # everything acked: logs gone, numbering goes on
    assert j4.pending == [] and j4.append({"t": "ev", "dev": "d", "ev": "fault", "slot": 0,
                                           "code": "x"})["seq"] == 3
    _rmtree(d)


def case_journal_replay_stops_when_the_link_refuses():
    from journal import Journal
    d = "jr_case3"
    _rmtree(d)
    j = Journal(d)
    for slot in range(6):
        j.append({"t": "ev", "dev": "d", "ev": "returned", "slot": slot})
    j.ack(j.epoch, 2)
    got = []

    def take_three(ev):
        if len(got) == 3:
            return False  # the queue is full
        got.append(ev["seq"])
        return True
    assert j.replay(8, take_three) == 3 and got == [1, 3, 4]  # oldest first, acked skipped
    got.clear()
    assert j.replay(2, lambda e: got.append(e["seq"]) or True) == 2 and got == [1, 3]
    got.clear()
    assert j.replay(8, lambda e: got.append(e["seq"]) or True, [4, 6]) == 2 and got == [4, 6]
    _rmtree(d)


def case_journal_meta_lost_keeps_the_events_epoch():
    import os

    from journal import Journal
    d = "jr_case2"
    _rmtree(d)
    j = Journal(d)
    j.append({"t": "ev", "dev": "d", "ev": "returned", "slot": 1})
    epoch = j.epoch
    os.remove(d + "/meta")
    j2 = Journal(d)
    assert j2.epoch == epoch and j2.pending == [1] and j2.ack(epoch, 1)
    _rmtree(d)


def case_journal_note_and_the_events_logged_after_it():
    """The dock's `docked` line beside the log: a power cut between an event's
    append and the note's rewrite loses nothing, as the event after the note is
    read back at boot."""
    from journal import Journal
    d = "jr_case4"
    _rmtree(d)
    j = Journal(d)
    j.append({"t": "ev", "dev": "d", "ev": "returned", "slot": 0, "bike": "B1"})
    j.save_note("B1 -")
    j.append({"t": "ev", "dev": "d", "ev": "rented", "slot": 0, "bike": "B1"})  # then cut
    j2 = Journal(d)
    assert j2.note() == ("B1 -", 1)
    after = []
    j2.since(1, lambda e: after.append((e["ev"], e["seq"])))
    assert after == [("rented", 2)]
    j2.ack(j2.epoch, 1)
    j2.ack(j2.epoch, 2)  # nothing pending: the log is dropped, the note stays
    j2.save_note("- -")
    assert Journal(d).note() == ("- -", 2)
    with open(d + "/note", "w") as f:
        f.write("otherepoch 9 B7 B8\n")  # a note from an earlier flash
    assert Journal(d).note() == (None, 0)
    _rmtree(d)
