"""Script runs take turns: at most RUNS_AT_ONCE of them run at a time in the whole server.

Streamlit gives every session its own script thread. With 50 sessions whose live parts refresh
every second, 50 threads ran at once on two cores and one interpreter lock: each run's Python
work was interleaved with every other's, and Streamlit's own config lock (taken for every
element sent) was handed from thread to thread, so runs took tens of seconds and the web
server's own thread waited in the same queue. Taking turns keeps a run short once it starts;
the rest wait without holding anything, and a session's refresh requests that pile up meanwhile
are folded into one by Streamlit, so live parts refresh less often when the server is behind.
Full runs (a page opened, a click) go before live refreshes, so the dashboard answers people
first.
"""
from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager

RUNS_AT_ONCE = 2


class Turns:
    """At most `n` holders; waiters are served in arrival order, urgent ones before the others
    (a plain Semaphore lets a late arrival take a freed slot ahead of those waiting)."""

    def __init__(self, n: int):
        self.free = n
        self._lock = threading.Lock()
        self._urgent: deque[threading.Event] = deque()
        self._later: deque[threading.Event] = deque()
        self._held = threading.local()          # a fragment drawn inside a full run already has the turn

    @contextmanager
    def turn(self, urgent: bool = True):
        depth = getattr(self._held, "depth", 0)
        if depth == 0:
            self._acquire(urgent)
        self._held.depth = depth + 1
        try:
            yield
        finally:
            self._held.depth = depth
            if depth == 0:
                self._release()

    def _acquire(self, urgent: bool) -> None:
        with self._lock:
            if self.free and not self._urgent and not self._later:
                self.free -= 1
                return
            ready = threading.Event()
            (self._urgent if urgent else self._later).append(ready)
        ready.wait()                            # the slot is handed over by _release

    def _release(self) -> None:
        with self._lock:
            if self._urgent:
                self._urgent.popleft().set()
            elif self._later:
                self._later.popleft().set()
            else:
                self.free += 1

    def waiting(self) -> int:
        with self._lock:
            return len(self._urgent) + len(self._later)


TURNS = Turns(RUNS_AT_ONCE)
turn = TURNS.turn
