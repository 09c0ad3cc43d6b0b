"""The newest rows of a stream, kept in chunks with their moments.

`RecentRows` is the state behind count windows (last N rows) and time windows
(last S seconds). Each chunk keeps its rows and their `Moments`, so a window is
the merge of the chunks inside it plus one recomputed partial chunk at its
edge: exact (no subtraction, see `Moments.__isub__`), and O(chunks) per query.
Chunks are immutable, so a snapshot holds a tuple of them and answers any
window up to the buffer's size without touching the engine.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from .moments import Moments

EDGE_BLOCKS = 4          # a chunk keeps its moments from each quarter on: a window's edge recomputes a quarter at most
EDGE_MIN_ROWS = 4096     # ... when it is this long; a shorter one is recomputed whole


@dataclass(frozen=True)
class Chunk:
    X: np.ndarray          # (n, k) numeric columns, NaN = missing
    event: np.ndarray      # (n,) event time in epoch seconds, NaN if unknown
    ingest: np.ndarray     # (n,) ingest time in epoch seconds
    table: pa.Table        # every column of the rows, for charts and group-by
    moments: Moments
    # (row, moments of the rows from `row` on), rows increasing: while the chunk may be the edge of the
    # window, the tail merges one of these instead of recomputing the co-moments of most of the chunk
    edges: tuple = ()

    @classmethod
    def of(cls, X: np.ndarray, event: np.ndarray, ingest: np.ndarray, table: pa.Table, blocks: int = 1) -> "Chunk":
        """A chunk and its moments; with `blocks` > 1 also its `edges` at that many equal blocks (the
        same products, in blocks, and a merge each)."""
        n = len(X)
        if blocks <= 1 or n < EDGE_MIN_ROWS:
            return cls(X, event, ingest, table, Moments.of(X))
        bounds = np.linspace(0, n, blocks + 1).astype(int)
        edges = []
        moments = Moments.of(X[bounds[-2]:])
        for lo, hi in zip(bounds[-3::-1], bounds[-2:0:-1]):
            edges.append((int(hi), moments))
            moments = Moments.of(X[lo:hi]) + moments
        return cls(X, event, ingest, table, moments, tuple(reversed(edges)))

    def __len__(self) -> int:
        return len(self.X)

    def tail(self, count: int) -> "Chunk":
        """The last `count` rows, with their moments (recomputed, up to the nearest edge kept)."""
        if count >= len(self):
            return self
        start = len(self) - count
        s = slice(start, None)
        X = self.X[s]
        row, moments = next(((row, m) for row, m in self.edges if row >= start), (len(self), None))
        if moments is None:
            moments = Moments.of(X)
        elif row > start:
            moments = Moments.of(self.X[start:row]) + moments
        return Chunk(X, self.event[s], self.ingest[s], self.table.slice(start), moments)

    def plain(self) -> "Chunk":
        """The chunk without its edges (their memory), once no window's edge can fall in it."""
        return replace(self, edges=()) if self.edges else self

    def where(self, keep: np.ndarray) -> "Chunk":
        X = self.X[keep]
        return Chunk(X, self.event[keep], self.ingest[keep], self.table.filter(pa.array(keep)), Moments.of(X))

    def times(self, clock: str) -> np.ndarray:
        return self.event if clock == "event" else self.ingest

    def newest(self, clock: str) -> float:
        """The newest time on `clock` (-inf when none is known)."""
        t = self.times(clock)
        return float(np.nanmax(t)) if len(t) and np.any(~np.isnan(t)) else -np.inf

    @staticmethod
    def join(a: "Chunk", b: "Chunk") -> "Chunk":
        return Chunk(np.concatenate([a.X, b.X]), np.concatenate([a.event, b.event]),
                     np.concatenate([a.ingest, b.ingest]), pa.concat_tables([a.table, b.table]),
                     a.moments + b.moments)


class RecentRows:
    """Bounded buffer of the newest rows: at least `max_rows` rows (when that many
    arrived) and every row younger than `max_seconds`, capped at `hard_rows`."""

    def __init__(self, k: int, max_rows: int, max_seconds: float | None = None,
                 clock: str = "ingest", hard_rows: int = 2_000_000, edge_rows: int = 0):
        self.k = k
        self.max_rows = max_rows
        self.edge_rows = edge_rows     # a count window's rows: older chunks drop their edges
        self.max_seconds = max_seconds
        self.clock = clock
        self.hard_rows = max(hard_rows, max_rows)
        # small batches join their predecessor (fewer chunks), but not wide ones: a join copies both
        self.coalesce_rows = max(min(2048, 1_000_000 // max(k, 1)), max_rows // 32)
        self.chunks: tuple[Chunk, ...] = ()
        self.rows = 0
        self.newest = -np.inf      # newest time seen on `clock`

    def append(self, chunk: Chunk) -> None:
        if len(chunk) == 0:
            return
        chunks = list(self.chunks)
        if chunks and len(chunks[-1]) < self.coalesce_rows and len(chunk) < self.coalesce_rows:
            chunks[-1] = Chunk.join(chunks[-1], chunk)
        else:
            chunks.append(chunk)
        self.rows += len(chunk)
        self.newest = max(self.newest, chunk.newest(self.clock))
        self.chunks = tuple(self._plain(self._evict(chunks)))

    def _plain(self, chunks: list[Chunk]) -> list[Chunk]:
        """Chunks wholly older than the newest `edge_rows` rows lose their edges."""
        newer = 0
        for i in range(len(chunks) - 1, -1, -1):
            if newer >= self.edge_rows:
                if not chunks[i].edges:
                    break          # the older ones lost theirs before
                chunks[i] = chunks[i].plain()
            newer += len(chunks[i])
        return chunks

    def _evict(self, chunks: list[Chunk]) -> list[Chunk]:
        while len(chunks) > 1:
            head = chunks[0]
            rest = self.rows - len(head)
            if rest >= self.hard_rows:
                pass
            elif rest < self.max_rows:
                break
            elif self.max_seconds is not None:
                t = head.times(self.clock)
                if np.any(t > self.newest - self.max_seconds):
                    break
            chunks.pop(0)
            self.rows -= len(head)
        return chunks


def last_rows(chunks: tuple[Chunk, ...], count: int) -> list[Chunk]:
    """The chunks that make up the newest `count` rows (the oldest one trimmed)."""
    out: list[Chunk] = []
    need = count
    for chunk in reversed(chunks):
        if need <= 0:
            break
        piece = chunk.tail(need)
        out.append(piece)
        need -= len(piece)
    out.reverse()
    return out


def last_seconds(chunks: tuple[Chunk, ...], seconds: float, clock: str, now: float) -> list[Chunk]:
    """The rows whose time on `clock` lies in (now - seconds, now]."""
    cutoff = now - seconds
    out: list[Chunk] = []
    for chunk in chunks:
        t = chunk.times(clock)
        keep = (t > cutoff) & (t <= now)
        hits = int(keep.sum())
        if hits == len(chunk):
            out.append(chunk)
        elif hits:
            out.append(chunk.where(keep))
    return out


def merged(chunks: list[Chunk], k: int) -> Moments:
    total = Moments(k)
    for chunk in chunks:
        total += chunk.moments
    return total


def table_of(chunks: list[Chunk], schema: pa.Schema) -> pa.Table:
    if not chunks:
        return schema.empty_table()
    return pa.concat_tables([c.table for c in chunks])
