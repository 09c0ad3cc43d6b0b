"""Re-running stored raw history through a pipeline, and the background backfill task.

`rerun` feeds stored rows, oldest first and in chunks, through a pipeline runner
into an `Operators`; a restart and a backfill share it. `Backfill` does that on
its own thread into fresh state while ingest goes on into the live state, then
catches up with the rows that arrived meanwhile and swaps the rebuilt state in
at a batch boundary (`Stream.install`), so the result is what a fresh replay of
the stored rows through the current version would give.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from ..stats.operators import Operators
from ..compute import background
from .pipeline import Runner
from ..seams import Compute, Store

log = logging.getLogger("rivulet")
CHUNK = 200_000            # stored rows read and run at a time
CATCH_UP = 20_000          # the last gap is closed with ingest held back; above this, keep chasing


class Cancelled(Exception):
    pass


def rerun(store: Store, stream_id: int, runner: Runner, ops: Operators, start: int, end: int,
          window_from: int, cumulative: bool = True, progress: Callable[[int], None] | None = None,
          cancelled: threading.Event | None = None) -> int:
    """Rows with `start <= _rid < end` through `runner` into `ops`; returns the rid to continue from.

    Rows before `window_from` (a seek or a restart of the source) only count in the
    cumulative statistics, as they did when they arrived.
    """
    rid = start
    while rid < end:
        if cancelled is not None and cancelled.is_set():
            raise Cancelled()
        rows = store.rows(stream_id, since_rid=rid, limit=min(CHUNK, end - rid))
        if rows.num_rows == 0:
            break
        rids = rows.column("_rid").to_numpy()
        keep = rids < end
        if not keep.all():
            rows, rids = rows.filter(pa.array(keep)), rids[keep]
        if rows.num_rows == 0:
            break
        rid = int(rids[-1]) + 1
        cut = int(np.searchsorted(rids, window_from))
        for part, windowed in ((rows.slice(0, cut), False), (rows.slice(cut), True)):
            if part.num_rows:
                _feed(part, runner, ops, windowed, cumulative)
        if progress is not None:
            progress(rows.num_rows)
    return max(rid, start)


def _feed(rows: pa.Table, runner: Runner, ops: Operators, windowed: bool, cumulative: bool) -> None:
    data, kept = runner.run_indexed(rows.drop_columns(["_rid", "_ingest"]))
    if data.num_rows == 0 or not (windowed or cumulative):      # the rows only move the runner's state on
        return
    ingest = pc.cast(rows.column("_ingest"), pa.int64()).to_numpy().astype(np.float64) / 1e6
    prepared = ops.prepare(data, ingest if kept is None else ingest[kept])
    if windowed:
        ops.add(prepared, cumulative=cumulative)
    elif cumulative:
        ops.cumulative += prepared.chunk.moments


class Backfill:
    """One background run over a stream's stored history; `status()` for the page, `cancel()` to stop."""

    def __init__(self, stream, compute: Compute | None = None):
        self.stream = stream
        self.compute = compute
        self.version = stream.pipeline.version
        self.cancelled = threading.Event()
        self.state = "running"           # running | done | cancelled | failed | superseded
        self.error: str | None = None
        self.done_rows = 0
        self.total_rows = 0
        self.started = time.monotonic()
        self.finished: float | None = None
        self.task = None

    def start(self) -> "Backfill":
        name = f"rivulet-backfill-{self.stream.name}"
        self.task = self.compute.background(name, self._run) if self.compute else background(name, self._run)
        return self

    def cancel(self) -> None:
        self.cancelled.set()

    def wait(self, timeout: float | None = None) -> dict:
        if self.task is not None:
            self.task.join(timeout)
        return self.status()

    def status(self) -> dict:
        total = max(self.total_rows, self.done_rows)
        return {"state": self.state, "version": self.version, "rows": self.done_rows, "total": total,
                "progress": 1.0 if self.state == "done" else (self.done_rows / total if total else 0.0),
                "seconds": round((self.finished or time.monotonic()) - self.started, 3), "error": self.error}

    def _progress(self, n: int) -> None:
        self.done_rows += n

    def _run(self) -> None:
        s = self.stream
        try:
            pipeline = s.pipeline
            if pipeline.version != self.version or pipeline.needs_freeze:
                raise UserError("the pipeline changed before the backfill started")
            runner, ops = pipeline.runner(), s.operators_for(pipeline)
            c = s.counters
            self.total_rows = s.store.count(s.id)
            rid = rerun(s.store, s.id, runner, ops, 0, c.next_rid, c.window_from, progress=self._progress,
                        cancelled=self.cancelled)
            while s.counters.next_rid - rid > CATCH_UP:      # chase ingest without holding it back
                end = s.counters.next_rid
                self.total_rows += end - rid
                rid = rerun(s.store, s.id, runner, ops, rid, end, s.counters.window_from,
                            progress=self._progress, cancelled=self.cancelled)
            if not s.install(self, runner, ops, rid):
                self.state = "superseded"
                return
            self.state = "done"
        except Cancelled:
            self.state = "cancelled"
        except UserError as e:
            self.state, self.error = "failed", str(e)
        except Exception as e:       # a failed backfill leaves the live state as it was
            log.exception("backfill of %s failed", s.name)
            self.state, self.error = "failed", f"{type(e).__name__}: {e}"
        finally:
            self.finished = time.monotonic()
