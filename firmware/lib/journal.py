# On-flash event journal: every event the device accepted is appended (and the
# file closed, so it reaches flash) before it is sent, and stays until the edge
# acknowledges it. Survives reboot and power cuts: a torn last line is skipped
# (it was never sent, since sending follows the append).
#
# Files in `root`: meta (epoch and next sequence number), events (lines
# "<seq> <json>"), acks (lines "<seq>"). When nothing is pending both logs are
# dropped, so flash use is bounded by the backlog, not by history. note: one
# line the app keeps beside the log (the dock: which bike each slot holds),
# stamped with the last event it had seen, so the events after it bring it up
# to date at boot whatever instant the power went.
import os
import json
import binascii

import log

_log = log.get("journal")


def _exists(s):
    try:
        os.stat(s)
        return True
    except OSError:
        return False


# The journal's files under its root: events, acks, meta, meta.tmp, note,
# note.tmp (by index). One string split at load: each short literal would be an
# interned name.
_FILES = "/events /acks /meta /meta.tmp /note /note.tmp".split()


class Journal:
    def __init__(self, root):
        self.root = root
        if not _exists(root):
            os.mkdir(root)
        self.epoch = None
        self.next_seq = 1
        self.pending = []  # sequence numbers not yet acknowledged, oldest first
        self._load()

    def _load(self):
        torn = 0
        if _exists(self.root + _FILES[2]):
            with open(self.root + _FILES[2]) as f:
                parts = f.read().split()
            if len(parts) == 2 and parts[1].isdigit():  # else damaged: as if lost
                self.epoch = parts[0]
                self.next_seq = max(1, int(parts[1]))
        if not self.epoch and _exists(self.root + _FILES[0]):
            # Meta lost but events kept: they carry their epoch; keep it, or
            # the edge's acks (which quote it) would never match them.
            with open(self.root + _FILES[0]) as f:
                for line in f:
                    if self._seq_of(line) is not None:
                        e = json.loads(line[line.find(" ") + 1:]).get("epoch")
                        if isinstance(e, str) and e:
                            self.epoch = e
                            break
        if not self.epoch:
            # A new journal (new flash): a fresh epoch tells the edge that
            # sequence numbers restart, so they are not taken for duplicates.
            self.epoch = binascii.hexlify(os.urandom(4)).decode()
            self._compact()
        acked = set()
        if _exists(self.root + _FILES[1]):
            with open(self.root + _FILES[1]) as f:
                for line in f:
                    try:
                        acked.add(int(line))
                    except ValueError:
                        torn += 1
        if _exists(self.root + _FILES[0]):
            with open(self.root + _FILES[0]) as f:
                for line in f:
                    seq = self._seq_of(line)
                    if seq is None:
                        torn += 1
                        continue
                    if seq >= self.next_seq:
                        self.next_seq = seq + 1
                    if seq not in acked:
                        self.pending.append(seq)
        if torn:
            _log.warning("skipped %d torn journal lines", torn)
        if not self.pending:
            self._compact()

    @staticmethod
    def _seq_of(line):
        sp = line.find(" ")
        if sp <= 0 or not line.endswith("\n"):
            return None
        try:
            seq = int(line[:sp])
            if not isinstance(json.loads(line[sp + 1:]), dict):
                return None  # a damaged line that still parses
        except ValueError:
            return None
        return seq

    def _compact(self):
        # Meta first (atomically, by rename), then the logs it makes redundant.
        tmp = self.root + _FILES[3]
        with open(tmp, "w") as f:
            f.write("%s %d\n" % (self.epoch, self.next_seq))
        os.rename(tmp, self.root + _FILES[2])
        for s in (self.root + _FILES[0], self.root + _FILES[1]):
            if _exists(s):
                os.remove(s)

    def append(self, ev):
        """Stamp ev with epoch+seq, store it durably, return it."""
        seq = self.next_seq
        self.next_seq = seq + 1
        ev["epoch"] = self.epoch
        ev["seq"] = seq
        with open(self.root + _FILES[0], "a") as f:
            f.write("%d %s\n" % (seq, json.dumps(ev)))
        self.pending.append(seq)
        return ev

    def ack(self, epoch, seq):
        if epoch != self.epoch or seq not in self.pending:
            return False
        self.pending.remove(seq)
        if self.pending:
            with open(self.root + _FILES[1], "a") as f:
                f.write("%d\n" % seq)
        else:
            self._compact()
        return True

    def replay(self, n, send, only=None):
        """Hand pending events, oldest first, to send(ev) until n went or send
        refused one (False: the link's queue is full; they go again later).
        Each is read back from flash as it goes, so a backlog is never in the
        heap at once. only: the sequence numbers to take (None: the oldest n).
        Returns how many send() took."""
        sent = 0
        if not self.pending or not _exists(self.root + _FILES[0]):
            return sent
        want = self.pending[:n] if only is None else only
        with open(self.root + _FILES[0]) as f:
            for line in f:
                seq = self._seq_of(line)
                if seq is not None and seq in want:
                    if not send(json.loads(line[line.find(" ") + 1:])):
                        break
                    sent += 1
                    if sent >= n:
                        break
        return sent

    def save_note(self, text):
        """Keep `text` (one line) beside the log, written whole (a new file,
        then a rename), stamped with this epoch and the last event's seq."""
        tmp = self.root + _FILES[5]
        with open(tmp, "w") as f:
            f.write("%s %d %s\n" % (self.epoch, self.next_seq - 1, text))
        os.rename(tmp, self.root + _FILES[4])

    def note(self):
        """(the saved line, the seq it was saved after); (None, 0) if none, or
        if saved under another epoch (its seqs mean nothing now)."""
        if _exists(self.root + _FILES[4]):
            with open(self.root + _FILES[4]) as f:
                parts = f.read().rstrip("\n").split(" ", 2)
            if len(parts) == 3 and parts[0] == self.epoch and parts[1].isdigit():
                return parts[2], int(parts[1])
        return None, 0

    def since(self, after, fn):
        """fn(ev) for each event logged after seq `after`, oldest first, acked
        or not (the log holds every event since nothing was last pending)."""
        if _exists(self.root + _FILES[0]):
            with open(self.root + _FILES[0]) as f:
                for line in f:
                    seq = self._seq_of(line)
                    if seq is not None and seq > after:
                        fn(json.loads(line[line.find(" ") + 1:]))
