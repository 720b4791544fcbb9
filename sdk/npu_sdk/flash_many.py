"""Flash one model to many boards at once (`npu flash MODEL --port A --port B`, `--places`).

A thread per board (the work is waiting on serial lines); a board that fails is reported
and the others go on. Progress is one line per board: redrawn in place on a terminal,
else a line each time a board passes another tenth of the blob.
"""
import sys
import threading
from dataclasses import dataclass

from .errors import NpuError


@dataclass
class Outcome:
    """One board's flash: `result` (a FlashResult) when it worked, else `error`."""
    board: str
    port: str
    result: object = None
    error: str = None


class Progress:
    """One line per board on `stream`."""

    def __init__(self, boards, total, stream=sys.stderr):
        self.boards, self.total, self.stream = list(boards), total, stream
        self.done = {b: 0 for b in self.boards}
        self.state = {b: "waiting" for b in self.boards}
        self.tty = stream.isatty()
        self.lock = threading.Lock()
        self.width = max(len(b) for b in self.boards)
        if self.tty:
            self.stream.write("\n" * len(self.boards))
            self._redraw()

    def _line(self, board):
        state = self.state[board]
        if state in ("flashing", "done"):
            state = "%3d%% %d/%d bytes" % (100 * self.done[board] // max(self.total, 1),
                                          self.done[board], self.total)
        return "%-*s  %s" % (self.width, board, state)

    def _redraw(self):
        up = "\x1b[%dA" % len(self.boards)
        self.stream.write(up + "".join("\r\x1b[2K%s\n" % self._line(b) for b in self.boards))
        self.stream.flush()

    def update(self, board, n=0, state=None):
        with self.lock:
            before = 10 * self.done[board] // max(self.total, 1)
            self.done[board] = max(0, self.done[board] + n)
            changed = state is not None and state != self.state[board]
            if state is not None:
                self.state[board] = state
            if self.tty:
                self._redraw()
            elif changed or 10 * self.done[board] // max(self.total, 1) > before:
                self.stream.write(self._line(board) + "\n")
                self.stream.flush()


def flash_all(targets, data, name, progress=None, **board_kw):
    """Flash blob `data` as `name` on every (board label, port) in `targets`, in parallel;
    a list of Outcome in the order of `targets`. labgrid://PLACE ports are acquired first,
    together (a place held by someone else fails its board only), and released at the end."""
    outcomes = [Outcome(label, port) for label, port in targets]
    sessions, leases = {}, []
    try:
        _lease_places(outcomes, progress, sessions, leases)
        _flash_parallel([o for o in outcomes if o.error is None], data, name, progress, board_kw)
    finally:
        for lease in leases:
            lease.release()
        for session in sessions.values():
            session.close()
    return outcomes


def _lease_places(outcomes, progress, sessions, leases):
    """Acquire the labgrid places among the outcomes' ports, one coordinator session per
    address (into `sessions`, the leases into `leases`); their ports become the places'
    serial URLs."""
    from . import places
    for o in outcomes:
        if not o.port.startswith("labgrid://"):
            continue
        try:
            address, place = places.parse_url(o.port)
            address = places.coordinator_address(address)
            if address not in sessions:
                sessions[address] = places.Coordinator(address)
            lease = places.Lease(place, sessions[address])
        except NpuError as e:
            o.error = str(e)
            if progress:
                progress.update(o.board, state="FAILED: %s" % e)
            continue
        leases.append(lease)
        o.port = lease.url


def _flash_parallel(outcomes, data, name, progress, board_kw):
    from .link import Board

    def one(outcome):
        report = (lambda n=0, state=None: progress.update(outcome.board, n, state)) \
            if progress else (lambda n=0, state=None: None)
        try:
            report(state="connecting")
            with Board(outcome.port, **board_kw) as board:
                report(state="flashing")
                board.flash(data, name, progress=lambda n: report(n))
                outcome.result = board.last_flash
            report(state="done" if not outcome.result.skipped else "already there")
        except NpuError as e:
            outcome.error = str(e)
            report(state="FAILED: %s" % e)
        except Exception as e:  # a backend's own error type: still this board's failure only
            outcome.error = "%s: %s" % (type(e).__name__, e)
            report(state="FAILED: %s" % outcome.error)

    threads = [threading.Thread(target=one, args=(o,), daemon=True) for o in outcomes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes
