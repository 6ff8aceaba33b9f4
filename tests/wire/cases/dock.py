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
