# The swipe flow as a state machine, without I/O (as apps/dock/slots.py is
# the dock's): what the kiosk does next, from what the reader and the edge
# said. app.py does the reading, asking, showing and speaking.
#
#   IDLE --card placed--> READING --card fine--> ASKING --answer or none--> SHOWING
#                            '--unreadable, wrong type, invalid, expired--> SHOWING
#   SHOWING --card lifted--> IDLE (idle screen)
#   SHOWING --show_ms passed, card still there--> idle screen; not read again until lifted
from micropython import const

IDLE = const(0)
READING = const(1)
ASKING = const(2)
SHOWING = const(3)

# What poll() asks of the app
READ = const(1)  # a card was placed: read it
IDLE_SCREEN = const(2)  # show the idle screen


def card_problem(resident, number_problem, expired):
    """Why a card that was read cannot be looked up (a screens.message key), or
    None: a resident ID card, its number valid, not expired."""
    if not resident:
        return "card_type"
    if number_problem is not None:
        return "invalid"
    if expired:
        return "expired"
    return None


def answer_problem(ans):
    """Why the edge's answer shows no records (a screens.message key), or None.
    ans is None when no answer came in time."""
    if ans is None:
        return "unavailable"
    if not ans["ok"]:
        return "unknown" if ans.get("err") == "unknown" else "unavailable"
    return None


class Flow:
    def __init__(self, show_ms):
        self.state = IDLE
        self.show_ms = show_ms
        self._since = 0
        self._faded = False  # the result went back to idle with the card still there

    def poll(self, present, now, diff):
        """One look at the reader; returns READ, IDLE_SCREEN or None. present:
        the module's answer, or None when it gave none in time (a busy line is
        not a card taken away: the result stays up, and fades as usual). diff
        is the board's tick difference (hal.ticks_diff)."""
        if self.state == IDLE:
            if present:
                self.state = READING
                return READ
            return None
        if self.state != SHOWING:
            return None
        if present is False:
            self.state = IDLE
            return IDLE_SCREEN
        if not self._faded and diff(now, self._since) >= self.show_ms:
            self._faded = True
            return IDLE_SCREEN
        return None

    def on_result(self):
        """A swipe's outcome is on the screen (nothing may draw over it)."""
        return self.state != IDLE and not self._faded

    def left_s(self, now, diff):
        """Whole seconds until the outcome fades (rounded up, as a countdown
        reads), or None when no outcome is counting down."""
        if self.state != SHOWING or self._faded:
            return None
        left = self.show_ms - diff(now, self._since)
        return max(0, (left + 999) // 1000)

    def read(self, problem):
        """The card was read (problem: card_problem's answer, or a read error)."""
        self.state = ASKING if problem is None else SHOWING

    def shown(self, now):
        """The outcome is on the screen from now."""
        self.state = SHOWING
        self._since = now
        self._faded = False
