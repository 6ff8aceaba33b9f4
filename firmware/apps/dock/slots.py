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


def _diff(a, b):
    return a - b


class Dock:
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
        self.events = []  # (ev, slot, bike, code)
        self.results = []  # (cmd_id, ok, err, slot)
        self.version = 0  # bumped on every externally visible change
        self._diff = diff
        self.tag_ms = tag_ms
        self.lock_ms = lock_ms
        self.take_ms = take_ms

    # -- helpers ---------------------------------------------------------
    def _set(self, i, state, now=0, wait=0):
        self.state[i] = state
        # 0 means "no timer", so a deadline that lands on 0 is nudged by 1 ms.
        self.deadline[i] = ((now + wait) or 1) if wait else 0
        self.version += 1

    def _result(self, i, ok, err):
        c = self.cmd[i]
        if c is not None:
            self.results.append((c, ok, err, i))
            self.cmd[i] = None

    def _fault(self, i, code, now):
        self.fault[i] = code
        self._result(i, False, code)
        self.events.append(("fault", i, self.bike[i], code))
        self._set(i, _FAULT, now)

    def code(self, i):
        """One-character slot state for the wire (see wire.message)."""
        st = self.state[i]
        if st == _LOCKED:
            return "L"
        if st == _EMPTY:
            return "E"
        if st == _FAULT:
            return "X" if self.present[i] else "F"
        if st == _DISABLED:
            return "B" if self.present[i] else "D"
        # _RELEASING/_UNLOCKING: held for a rider; _READING/_LOCKING: a bike arriving.
        return "U"

    def codes(self):
        return "".join([self.code(i) for i in range(self.n)])

    # -- inputs ------------------------------------------------------------
    def boot(self, present, latched, now):
        """Initial state from the sensors after a reboot (bikes stay docked)."""
        for i in range(self.n):
            self.present[i] = 1 if present[i] else 0
            self.latched[i] = 1 if latched[i] else 0
            if present[i] and latched[i]:
                self.lock_out[i] = 1
                self._set(i, _LOCKED)
            elif present[i]:
                # Unknown bike in an open slot: treat as a fresh return.
                self._set(i, _READING, now, self.tag_ms)
            else:
                self._set(i, _EMPTY)

    def sense(self, i, present, latched, now):
        present = 1 if present else 0
        latched = 1 if latched else 0
        if present == self.present[i] and latched == self.latched[i]:
            return
        was_present = self.present[i]
        self.present[i] = present
        self.latched[i] = latched
        st = self.state[i]
        if st == _EMPTY:
            if present:
                self._set(i, _READING, now, self.tag_ms)
        elif st == _READING:
            if not present:
                self._set(i, _EMPTY)
        elif st == _LOCKING:
            if latched:
                self.fault[i] = None
                if self.relock[i]:
                    self.relock[i] = 0
                else:
                    self.events.append(("returned", i, self.bike[i], None))
                self._set(i, _LOCKED)
            elif not present:
                self.bike[i] = None
                self.relock[i] = 0
                self.lock_out[i] = 0
                self._set(i, _EMPTY)
        elif st == _LOCKED:
            if not present:
                # Taken while locked: the lock failed or was forced.
                bike = self.bike[i]
                self.bike[i] = None
                self.lock_out[i] = 0
                self.events.append(("fault", i, bike, "forced_removal"))
                self._set(i, _EMPTY)
            elif not latched:
                self.lock_out[i] = 0
                self._fault(i, "latch_lost", now)
        elif st == _RELEASING:
            if not latched:
                self._result(i, True, None)
                if present:
                    self._set(i, _UNLOCKING, now, self.take_ms)
                else:
                    # Bolt open and bike gone within one scan: still a rental.
                    bike = self.bike[i]
                    self.bike[i] = None
                    self.events.append(("rented", i, bike, None))
                    self._set(i, _EMPTY)
        elif st == _UNLOCKING:
            if not present:
                bike = self.bike[i]
                self.bike[i] = None
                self.events.append(("rented", i, bike, None))
                self._set(i, _EMPTY)
        elif was_present != present:  # _FAULT or _DISABLED: only the bike moves
            if not present:
                self.bike[i] = None
            self.version += 1

    def tag(self, i, bike, now):
        if not 0 <= i < self.n:
            return
        if self.bike[i] is None and self.state[i] == _LOCKED:
            # After a reboot a docked bike is known by its tag's next read.
            self.bike[i] = bike
            return
        if self.state[i] == _READING and self.present[i]:
            self.bike[i] = bike
            self.lock_out[i] = 1
            self._set(i, _LOCKING, now, self.lock_ms)

    def unlock(self, i, cid, now):
        """Start a rental; the result lands in `results` (at once if refused)."""
        if i < 0 or i >= self.n:
            self.results.append((cid, False, "bad_slot", i))
            return
        st = self.state[i]
        if st != _LOCKED:
            err = "busy"
            if st == _DISABLED:
                err = "disabled"
            elif st == _FAULT:
                err = "fault"
            elif st == _EMPTY:
                err = "no_bike"
            self.results.append((cid, False, err, i))
            return
        self.cmd[i] = cid
        self.lock_out[i] = 0
        self._set(i, _RELEASING, now, self.lock_ms)

    def set_enabled(self, i, enabled, now):
        if i < 0 or i >= self.n:
            return False
        st = self.state[i]
        if not enabled:
            if st == _EMPTY or st == _LOCKED or st == _FAULT:
                self._set(i, _DISABLED)
            return self.state[i] == _DISABLED
        if st == _DISABLED or st == _FAULT:
            self.fault[i] = None
            if self.present[i] and self.latched[i]:
                self.lock_out[i] = 1
                self._set(i, _LOCKED)
            elif self.present[i] and self.bike[i] is not None:
                self.relock[i] = 1
                self.lock_out[i] = 1
                self._set(i, _LOCKING, now, self.lock_ms)
            elif self.present[i]:
                self.lock_out[i] = 0
                self._set(i, _READING, now, self.tag_ms)
            else:
                self.bike[i] = None
                self.lock_out[i] = 0
                self._set(i, _EMPTY)
        return True

    def tick(self, now):
        d = self._diff
        for i in range(self.n):
            dl = self.deadline[i]
            if not dl or d(now, dl) < 0:
                continue
            self.deadline[i] = 0
            st = self.state[i]
            if st == _READING:
                # A bike we cannot identify is not locked: the rider keeps it.
                self._fault(i, "tag_unreadable", now)
            elif st == _LOCKING:
                self.lock_out[i] = 0
                self.relock[i] = 0
                self._fault(i, "lock_stuck", now)
            elif st == _RELEASING:
                self.lock_out[i] = 1
                self._fault(i, "lock_jammed", now)
            elif st == _UNLOCKING:
                self._result(i, False, "timeout")
                self.relock[i] = 1
                self.lock_out[i] = 1
                self._set(i, _LOCKING, now, self.lock_ms)
