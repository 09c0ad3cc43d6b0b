"""The surface every source has: next_batch() never blocks, position() resumes, close()."""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import pyarrow as pa

from .parse import Bad
from ..schema import Schema


LIVE_INFLIGHT = 2    # batches a live source keeps waiting for the writer: a writer behind gets fewer, bigger ones


@dataclass
class Batch:
    table: pa.Table               # rows in the source's schema
    bad: list[Bad]                # quarantined and flagged rows of the same span
    position: dict                # where to resume after this batch; committed with it
    nbytes: int = 0
    read_at: float = field(default_factory=time.time)
    reset: bool = False           # windows restart here (after a seek)
    replayed: bool = False        # rows stored already (a seek back, a loop): live views only, never stored again
    offsets: dict | None = None   # several resume keys (one per tailed file; None deletes one)


class Rate:
    """Rows per second over the last few seconds (on the monotonic clock)."""

    def __init__(self, span: float = 5.0):
        self.span = span
        self.marks: deque[tuple[float, int]] = deque()

    def add(self, rows: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.marks.append((now, rows))
        while self.marks and self.marks[0][0] < now - self.span:
            self.marks.popleft()

    def per_second(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self.marks and self.marks[0][0] < now - self.span:
            self.marks.popleft()
        if not self.marks:
            return 0.0
        return sum(r for _, r in self.marks) / self.span


class Source:
    """A partition of input. Subclasses fill in next_batch/position/status."""

    kind = "source"
    schema: Schema | None = None
    time_column: str | None = None
    max_inflight: int | None = None   # batches queued for the writer at most (None: the engine's queue)
    lock: threading.RLock             # each source makes its own; guards its reading state
    paused = False

    def pause(self) -> None:
        with self.lock:
            self.paused = True

    def resume(self) -> None:
        with self.lock:
            self.paused = False
            self._resumed()

    def _resumed(self) -> None:
        """Runs under the lock when a paused source resumes (e.g. re-anchor a real-time replay)."""

    def stop(self) -> None:
        """Ask a next_batch under way to return soon: the source is about to be closed."""

    def next_batch(self) -> Batch | None:      # pragma: no cover - interface
        raise NotImplementedError

    def position(self) -> dict:                # pragma: no cover - interface
        raise NotImplementedError

    @property
    def done(self) -> bool:
        """True when the source will produce nothing more (a replay at its end)."""
        return False

    def status(self) -> dict:
        return {}

    def close(self) -> None:
        pass
