# The dock's slot state machine: the only place where rent and return happen.
# Pure logic: sensor readings, tag reads, commands and the clock come in as
# method calls; lock outputs, events and command results come out as fields
# the app reads. No pins, no bytes, no topics (tests drive it directly under
# both interpreters).
#
#   _EMPTY --bike pushed in--> _READING --tag--> _LOCKING --latched--> _LOCKED (returned)
#   _LOCKED --unlock--> _RELEASING --bolt open--> _UNLOCKING --bike out--> _EMPTY (rented)
#   _UNLOCKING --not taken in time--> _LOCKING (relock, no event)
#   any timeout on the bolt or the tag --> _FAULT (fault event)
#
# `docked` is what the dock has told of each slot: the bike it announced
# returned (or read in a locked slot after a reboot), None once it announced it
# gone. The app keeps it on flash, so a reboot after a power cut announces only
# what changed while the dock was off, never a bike that was there all along.
from micropython import const

_EMPTY = const(0)
_READING = const(1)  # bike pushed in, waiting for its tag
_LOCKING = const(2)  # bolt commanded closed, waiting for the latch sensor
_LOCKED = const(3)
_RELEASING = const(4)  # bolt commanded open, waiting for the latch sensor
_UNLOCKING = const(5)  # open for a rider, bike still in the slot
_FAULT = const(6)
_DISABLED = const(7)

# Timings (ms), overridable from the device config. Private consts: inlined
# by the compiler, so they cost no heap on the device.
_TAG_TIMEOUT = const(2000)
_LOCK_TIMEOUT = const(1500)
_TAKE_TIMEOUT = const(30000)


def _diff(t, s):
    return t - s


class Slots:
    """The dock's slots as one state machine: rent and return, locks, tags."""
    # Per-slot fields are parallel arrays, not one object per slot: a 12-slot
    # dock saves several KiB of a 64K heap this way.
    def __init__(self, n, diff=_diff, tag_ms=_TAG_TIMEOUT, lock_ms=_LOCK_TIMEOUT,
                 take_ms=_TAKE_TIMEOUT):
        self.n = n
        self.state = bytearray(n)
        self.present = bytearray(n)
        self.latched = bytearray(n)
        self.relock = bytearray(n)  # _LOCKING after an untaken rental: no "returned"
        self.lock_out = bytearray(n)  # 1 = bolt commanded closed
        self.deadline = [0] * n  # 0 = no timer
        self.bike = [None] * n
        self.cmd = [None] * n  # id of the unlock command awaiting its result
        self.fault = [None] * n
        self.docked = [None] * n  # the bike told of, per slot (see above)
        self.docked_changed = False  # the app writes `docked` to flash
        self.events = []  # (ev, slot, bike, code)
        self.results = []  # (cmd_id, ok, err, slot)
        self.version = 0  # bumped on every externally visible change
        self._diff = diff
        self.tag_ms = tag_ms
        self.lock_ms = lock_ms
        self.take_ms = take_ms

    # -- helpers ---------------------------------------------------------
    def _set(self, s, state, now=0, wait=0):
        self.state[s] = state
        # 0 means "no timer", so a deadline that lands on 0 is nudged by 1 ms.
        self.deadline[s] = ((now + wait) or 1) if wait else 0
        self.version += 1

    def _result(self, s, ok, err):
        c = self.cmd[s]
        if c is not None:
            self.results.append((c, ok, err, s))
            self.cmd[s] = None

    def _docked(self, s, bike):
        if self.docked[s] != bike:
            self.docked[s] = bike
            self.docked_changed = True

    def _fault(self, s, code, now):
        self.fault[s] = code
        self._result(s, False, code)
        self.events.append(("fault", s, self.bike[s], code))
        self._set(s, _FAULT, now)

    def code(self, s):
        """One-character slot state for the wire (see wire.message)."""
        st = self.state[s]
        if st == _LOCKED:
            return "L"
        if st == _EMPTY:
            return "E"
        if st == _FAULT:
            return "X" if self.present[s] else "F"
        if st == _DISABLED:
            return "B" if self.present[s] else "D"
        # _RELEASING/_UNLOCKING: held for a rider; _READING/_LOCKING: a bike arriving.
        return "U"

    def codes(self):
        return "".join([self.code(s) for s in range(self.n)])

    # -- inputs ------------------------------------------------------------
    def boot(self, present, latched, now, known=None):
        """Initial state from the sensors after a reboot, against what the dock
        had told of each slot before (`known`: the bike or None, from flash)."""
        for s in range(self.n):
            self.present[s] = 1 if present[s] else 0
            self.latched[s] = 1 if latched[s] else 0
            bike = known[s] if known else None
            self.docked[s] = bike
            if present[s] and latched[s]:
                self.lock_out[s] = 1
                self.bike[s] = bike
                self._set(s, _LOCKED)
            elif present[s] and bike is not None:
                # Its bike, bolt open: the power went mid-unlock, or the rider
                # did not take it. It never left: lock it again, tell nothing.
                self.bike[s] = bike
                self.relock[s] = 1
                self.lock_out[s] = 1
                self._set(s, _LOCKING, now, self.lock_ms)
            elif present[s]:
                # A bike the dock never told of, in an open slot: a fresh return.
                self._set(s, _READING, now, self.tag_ms)
            else:
                if bike is not None:
                    # Gone while the dock was off, with no unlock it knows of.
                    self.events.append(("fault", s, bike, "forced_removal"))
                    self._docked(s, None)
                self._set(s, _EMPTY)

    def sense(self, s, present, latched, now):
        present = 1 if present else 0
        latched = 1 if latched else 0
        if present == self.present[s] and latched == self.latched[s]:
            return
        was_present = self.present[s]
        self.present[s] = present
        self.latched[s] = latched
        st = self.state[s]
        if st == _EMPTY:
            if present:
                self._set(s, _READING, now, self.tag_ms)
        elif st == _READING:
            if not present:
                self._set(s, _EMPTY)
        elif st == _LOCKING:
            if latched:
                self.fault[s] = None
                if self.relock[s]:
                    self.relock[s] = 0
                else:
                    self.events.append(("returned", s, self.bike[s], None))
                    self._docked(s, self.bike[s])
                self._set(s, _LOCKED)
            elif not present:
                if self.relock[s]:
                    # Taken as the bolt closed again after an untaken unlock: the
                    # rider was late, but the bike left on that unlock.
                    self.events.append(("rented", s, self.bike[s], None))
                    self._docked(s, None)
                self.bike[s] = None
                self.relock[s] = 0
                self.lock_out[s] = 0
                self._set(s, _EMPTY)
        elif st == _LOCKED:
            if not present:
                # Taken while locked: the lock failed or was forced.
                bike = self.bike[s]
                self.bike[s] = None
                self.lock_out[s] = 0
                self.events.append(("fault", s, bike, "forced_removal"))
                self._docked(s, None)
                self._set(s, _EMPTY)
            elif not latched:
                self.lock_out[s] = 0
                self._fault(s, "latch_lost", now)
        elif st == _RELEASING:
            if not latched:
                self._result(s, True, None)
                if present:
                    self._set(s, _UNLOCKING, now, self.take_ms)
                else:
                    # Bolt open and bike gone within one scan: still a rental.
                    bike = self.bike[s]
                    self.bike[s] = None
                    self.events.append(("rented", s, bike, None))
                    self._docked(s, None)
                    self._set(s, _EMPTY)
        elif st == _UNLOCKING:
            if not present:
                bike = self.bike[s]
                self.bike[s] = None
                self.events.append(("rented", s, bike, None))
                self._docked(s, None)
                self._set(s, _EMPTY)
        elif was_present != present:  # _FAULT or _DISABLED: only the bike moves
            if not present:
                self.bike[s] = None
                self._docked(s, None)
            self.version += 1

    def tag(self, s, bike, now):
        if not 0 <= s < self.n:
            return
        if self.bike[s] is None and self.state[s] == _LOCKED:
            # After a reboot a docked bike is known by its tag's next read.
            self.bike[s] = bike
            self._docked(s, bike)
            return
        if self.state[s] == _READING and self.present[s]:
            self.bike[s] = bike
            self.lock_out[s] = 1
            self._set(s, _LOCKING, now, self.lock_ms)

    def unlock(self, s, cid, now):
        """Start a rental; the result lands in `results` (at once if refused)."""
        if s < 0 or s >= self.n:
            self.results.append((cid, False, "bad_slot", s))
            return
        st = self.state[s]
        if st != _LOCKED:
            err = "busy"
            if st == _DISABLED:
                err = "disabled"
            elif st == _FAULT:
                err = "fault"
            elif st == _EMPTY:
                err = "no_bike"
            self.results.append((cid, False, err, s))
            return
        self.cmd[s] = cid
        self.lock_out[s] = 0
        self._set(s, _RELEASING, now, self.lock_ms)

    def set_enabled(self, s, enabled, now):
        if s < 0 or s >= self.n:
            return False
        st = self.state[s]
        if not enabled:
            if st == _EMPTY or st == _LOCKED or st == _FAULT:
                self._set(s, _DISABLED)
            return self.state[s] == _DISABLED
        if st == _DISABLED or st == _FAULT:
            self.fault[s] = None
            if self.present[s] and self.latched[s]:
                self.lock_out[s] = 1
                self._set(s, _LOCKED)
            elif self.present[s] and self.bike[s] is not None:
                self.relock[s] = 1
                self.lock_out[s] = 1
                self._set(s, _LOCKING, now, self.lock_ms)
            elif self.present[s]:
                self.lock_out[s] = 0
                self._set(s, _READING, now, self.tag_ms)
            else:
                self.bike[s] = None
                self.lock_out[s] = 0
                self._set(s, _EMPTY)
        return True

    def tick(self, now):
        d = self._diff
        for s in range(self.n):
            dl = self.deadline[s]
            if not dl or d(now, dl) < 0:
                continue
            self.deadline[s] = 0
            st = self.state[s]
            if st == _READING:
                # A bike we cannot identify is not locked: the rider keeps it.
                self._fault(s, "tag_unreadable", now)
            elif st == _LOCKING:
                self.lock_out[s] = 0
                self.relock[s] = 0
                self._fault(s, "lock_stuck", now)
            elif st == _RELEASING:
                self.lock_out[s] = 1
                self._fault(s, "lock_jammed", now)
            elif st == _UNLOCKING:
                self._result(s, False, "timeout")
                self.relock[s] = 1
                self.lock_out[s] = 1
                self._set(s, _LOCKING, now, self.lock_ms)
