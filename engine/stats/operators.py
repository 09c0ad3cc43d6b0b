"""Per-stream rolling state: the recent-rows buffer, buckets, groups, cumulative moments.

`prepare` does the heavy, vectorised work for a batch (numeric matrix, moments,
bucket partials) and runs on the ingest thread; `add` only merges those results
and runs on the writer thread after the batch committed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .buckets import BucketPartial, Buckets, partial
from .moments import Moments
from ..schema import time_seconds
from .windows import EDGE_BLOCKS, Chunk, RecentRows

BUFFER_ROWS = 100_000       # rows kept for views of other windows than the configured one
BUFFER_CELLS = 20_000_000   # ... but at most this many values (160 MB) beyond the window: a wide stream keeps fewer
GROUP_LIMIT = 30            # distinct group values tracked; the rest go to "(other)"


@dataclass(frozen=True)
class WindowSpec:
    kind: str = "count"         # "count" (last N rows) | "time" (last S seconds)
    size: float = 10_000
    clock: str = "event"        # time windows: "event" (time column) or "ingest"

    def to_json(self) -> dict:
        return {"kind": self.kind, "size": self.size, "clock": self.clock}

    @classmethod
    def from_json(cls, d: dict | None) -> "WindowSpec":
        return cls(**d) if d else cls()


def chunk_of(table: pa.Table, columns: list[str], time_column: str | None, ingest: np.ndarray,
             blocks: int = 1) -> Chunk:
    """Rows as a Chunk: the numeric columns as one float matrix (NaN = missing), event times, moments
    (and edges at `blocks` blocks, see `Chunk.of`)."""
    XT = np.empty((len(columns), table.num_rows))   # filled a column at a time: contiguous writes, 100x faster
    for j, name in enumerate(columns):
        col = table.column(name)
        if col.num_chunks == 1 and col.type == pa.float64() and col.null_count == 0:
            XT[j] = col.chunk(0).to_numpy()          # the common case, without pyarrow's chunked conversion
            continue
        if pa.types.is_boolean(col.type):
            col = pc.cast(col, pa.float64())
        XT[j] = col.to_numpy(zero_copy_only=False) if col.null_count == 0 else \
            pc.fill_null(col, np.nan).to_numpy(zero_copy_only=False)
    # column-major (a view, no copy): the moments' and buckets' reductions run down columns, 1.1-4x faster
    # than over a row-major copy (which cost its own pass)
    X = XT.T
    event = time_seconds(table.column(time_column)) if time_column else np.full(table.num_rows, np.nan)
    return Chunk.of(X, event, ingest, table, blocks)


class GroupCodes:
    """Stable small integer codes for the values of a categorical column."""

    def __init__(self, limit: int = GROUP_LIMIT):
        self.limit = limit
        self.labels: list[str] = []
        self.index: dict[str, int] = {}
        self.other, self.missing = limit, limit + 1

    @property
    def slots(self) -> int:
        return self.limit + 2

    def label(self, code: int) -> str:
        if code == self.other:
            return "(other)"
        if code == self.missing:
            return "(missing)"
        return self.labels[code]

    def encode(self, column: pa.ChunkedArray) -> np.ndarray:
        enc = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
        mapping = np.array([self._code(str(v)) for v in enc.dictionary.to_pylist()] + [self.missing], np.int64)
        idx = pc.fill_null(enc.indices, len(enc.dictionary)).to_numpy(zero_copy_only=False)
        return mapping[idx]

    def _code(self, value: str) -> int:
        code = self.index.get(value)
        if code is None:
            if len(self.labels) >= self.limit:
                return self.other
            code = self.index[value] = len(self.labels)
            self.labels.append(value)
        return code


@dataclass(frozen=True)
class Prepared:
    chunk: Chunk
    buckets: BucketPartial | None


class Operators:
    def __init__(self, schema: pa.Schema, columns: list[str], window: WindowSpec,
                 time_column: str | None, group_column: str | None):
        self.schema = schema
        self.columns = columns
        self.k = len(columns)
        self.window = window
        self.time_column = time_column
        self.group_column = group_column
        self.codes = GroupCodes()
        self.bucket_clock = "event" if time_column else "ingest"
        clock = window.clock if (window.clock == "ingest" or time_column) else "ingest"
        self.window = WindowSpec(window.kind, window.size, clock)
        seconds = window.size if window.kind == "time" else None
        rows = int(window.size) if window.kind == "count" else 0
        extra = min(BUFFER_ROWS, BUFFER_CELLS // max(self.k, 1))
        self.recent = RecentRows(self.k, max(rows, extra), seconds, clock, edge_rows=rows)
        self.buckets = Buckets(self.k)
        self.cumulative = Moments(self.k)
        self.shift: np.ndarray | None = None    # bucket rows are shifted by it to keep digits at large offsets

    def prepare(self, table: pa.Table, ingest: np.ndarray) -> Prepared:
        n = table.num_rows
        # edges only under a count window, whose edge moves row by row through the chunks
        chunk = chunk_of(table, self.columns, self.time_column, ingest, EDGE_BLOCKS if self.recent.edge_rows else 1)
        X, event = chunk.X, chunk.event
        codes = self.codes.encode(table.column(self.group_column)) if self.group_column and n else None
        times = event if self.bucket_clock == "event" else ingest
        if self.shift is None and n:
            with np.errstate(all="ignore"):
                self.shift = np.nan_to_num(np.nanmean(X, axis=0)) if np.isfinite(X).any() else np.zeros(self.k)
        bucket = partial(times, X, codes, self.codes.slots if codes is not None else 0, shift=self.shift)
        return Prepared(chunk, bucket)

    def add(self, p: Prepared, cumulative: bool = True) -> None:
        """Merge a committed batch."""
        self.recent.append(p.chunk)
        if p.buckets is not None:
            self.buckets.add(p.buckets)
        if cumulative:
            self.cumulative += p.chunk.moments

    def late_rows(self, p: Prepared, newest: float | None = None) -> int:
        """Rows older than the start of an event-time window when they arrive (`newest`: the newest
        time seen before them, by default the buffer's)."""
        w = self.window
        newest = self.recent.newest if newest is None else newest
        if w.kind != "time" or w.clock != "event" or not np.isfinite(newest):
            return 0
        return int(np.sum(p.chunk.event <= newest - w.size))

    def reset_window(self) -> None:
        r = self.recent
        self.recent = RecentRows(self.k, r.max_rows, r.max_seconds, r.clock, edge_rows=r.edge_rows)
