"""Work the sessions share: what a live part builds from a stream's snapshot, built once for every
viewer of the same stream, page and view settings.

Fifty viewers of one page each rebuilt the same plotly figures from the same rows every second, and
building a figure (plotly validates every property it is given) was most of a refresh's CPU. A
snapshot changes with every commit (up to 20 a second for a paced replay), so a build is shared for
FRESH seconds, not only within one snapshot: a live part then shows rows at most that much older than
the newest, while its own refresh interval is 0.5 s or more. Each session still draws its own
elements from the shared result; a shared result is never changed after it is built (st.plotly_chart
copies a figure before it serialises it).
"""
from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")
FRESH = 0.5          # seconds a build serves the sessions that ask for the same thing
SIZE = 64            # builds kept at most: distinct (stream, page, view settings) being watched


class Shared:
    """Builds keyed by what they depend on, each reused while younger than `fresh` seconds (or built
    from the snapshot the caller has); one build at a time per key, the other askers wait for it."""

    def __init__(self, fresh: float = FRESH, size: int = SIZE):
        self.fresh, self.size = fresh, size
        self.builds: Counter = Counter()        # builds done, by the key's first part (the page)
        self._lock = threading.Lock()
        self._kept: OrderedDict[Hashable, tuple[Hashable, float, object]] = OrderedDict()
        self._building: dict[Hashable, threading.Event] = {}

    def get(self, key: Hashable, version: Hashable, build: Callable[[], T], fresh: float | None = None) -> T:
        """The kept result for `key` if it was built from `version` or less than `fresh` seconds ago
        (default: the instance's), else `build()` (an error is raised to the caller and not kept)."""
        fresh = self.fresh if fresh is None else fresh
        while True:
            with self._lock:
                kept = self._kept.get(key)
                if kept is not None and (kept[0] == version or time.monotonic() - kept[1] < fresh):
                    self._kept.move_to_end(key)
                    return kept[2]
                busy = self._building.get(key)
                if busy is None:
                    self._building[key] = threading.Event()
                    break
            busy.wait()              # another session is building it: take theirs (or build if it failed)
        try:
            value = build()
            with self._lock:
                self.builds[key[0] if isinstance(key, tuple) else key] += 1
                self._kept[key] = (version, time.monotonic(), value)
                self._kept.move_to_end(key)
                while len(self._kept) > self.size:
                    self._kept.popitem(last=False)
            return value
        finally:
            with self._lock:
                self._building.pop(key).set()

    def forget(self, stream: str) -> None:
        """Drop what was built for `stream` (keys are (page, stream, ...)): it was removed."""
        with self._lock:
            for key in [k for k in self._kept if isinstance(k, tuple) and len(k) > 1 and k[1] == stream]:
                del self._kept[key]

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


SHARED = Shared()


def version(snap) -> tuple:
    """A snapshot's identity: its stream, sequence number and creation time (a stream removed and
    added again under its name starts its sequence anew)."""
    return snap.stream, snap.seq, snap.created
