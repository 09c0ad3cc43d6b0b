"""The immutable view of a stream that pages and the CLI read.

The engine publishes a new `Snapshot` after every committed batch; readers take
the latest one without locks. The configured window's statistics are computed
at publish time; other windows, buckets and group-bys are answered lazily from
the immutable chunks and bucket arrays the snapshot holds.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa

from ..errors import UserError
from ..stats.buckets import starts_of
from ..stats.groups import STAT_NAMES, KeyedStats
from ..stats.moments import Moments
from ..stats.operators import GroupCodes, WindowSpec
from ..stats.windows import Chunk, last_rows, last_seconds, merged, table_of


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def stats_dict(m: Moments, columns: list[str]) -> dict:
    values = {"count": m.count().astype(np.int64).tolist(), "mean": _floats(m.mean()), "var": _floats(m.var()),
              "std": _floats(m.std()), "min": _floats(m.min()), "max": _floats(m.max())}
    return {c: dict(zip(STAT_NAMES, row)) for c, row in zip(columns, zip(*(values[s] for s in STAT_NAMES)))}


def _floats(a: np.ndarray) -> list:
    """`a` as nested lists of floats, None where not finite: one C pass when all are (a 200-column
    matrix took 0.1-0.3 s value by value)."""
    a = np.asarray(a, np.float64)
    finite = np.isfinite(a)
    if finite.all():
        return a.tolist()
    return np.where(finite, a, None).tolist()


def matrix_dict(a: np.ndarray, columns: list[str]) -> dict:
    return {ci: dict(zip(columns, row)) for ci, row in zip(columns, _floats(a))}


def group_stats_of(chunks: list[Chunk], column: str, columns: list[str]) -> dict:
    """Per value of `column`: count, mean, var, std, min, max of every numeric column."""
    if not chunks:
        return {}
    if column not in chunks[0].table.column_names:
        raise UserError(f"cannot group by {column!r}: the stream has no such column")
    return keyed_dict(*group_partial(chunks, column), columns)


def group_partial(chunks: list[Chunk], column: str) -> tuple[KeyedStats, list[str]]:
    """The rows' statistics per value of `column` (keyed by code) and each key's label; partials merge."""
    codes = GroupCodes(limit=100)
    keys = np.concatenate([codes.encode(c.table.column(column)) for c in chunks])
    ks = KeyedStats.of_rows(keys, np.concatenate([c.X for c in chunks]))
    return ks, [codes.label(int(k)) for k in ks.keys]


def keyed_dict(ks: KeyedStats, labels: list[str], columns: list[str]) -> dict:
    """{label: {column: {count, mean, var, std, min, max}}} for each key of `ks` (labels in key order)."""
    s = ks.stats()
    return {label: {c: {name: (int(s[name][i, j]) if name == "count" else _num(s[name][i, j]))
                        for name in STAT_NAMES} for j, c in enumerate(columns)} for i, label in enumerate(labels)}


@dataclass(frozen=True)
class Snapshot:
    stream: str
    seq: int
    columns: list[str]                  # numeric columns the statistics cover
    schema: pa.Schema                   # every column of the rows, after the pipeline
    window_spec: WindowSpec
    window_moments: Moments
    window_rows: int
    cumulative_moments: Moments
    counts: dict                        # ingested, quarantined, flagged, late, replayed
    source: dict
    pipeline: int                       # the version new rows go through
    pipeline_from: int = 0              # the oldest version behind any row in these statistics
    pipeline_error: str | None = None   # a spec given at start that the first rows refused
    chunks: tuple[Chunk, ...] = ()
    series: dict = field(default_factory=dict)       # width -> KeyedStats
    groups: dict = field(default_factory=dict)       # width -> KeyedStats keyed bucket * slots + code
    codes: GroupCodes | None = None
    group_column: str | None = None
    time_column: str | None = None
    bucket_shift: object = 0.0
    throughput: tuple = ()                            # (epoch second, rows) for the last minutes
    state: str = "running"
    error: str | None = None
    created: float = field(default_factory=time.time)
    model: dict | None = None                         # the deployed model's status, if any
    window_groups: dict | None = None                 # group_stats of the configured window when the rows
                                                      # are not here (cluster partitions merged)

    # --- the contract JSON -------------------------------------------------------
    def to_json(self) -> dict:
        w = self.window_spec
        return {
            "stream": self.stream,
            "snapshot": self.seq,
            "state": self.state,
            "rows": {"ingested": self.counts["ingested"], "quarantined": self.counts["quarantined"],
                     "late": self.counts["late"], "flagged": self.counts["flagged"],
                     "replayed": self.counts.get("replayed", 0)},
            "window": {"kind": w.kind, "size": int(w.size) if w.kind == "count" else w.size,
                       "count": self.window_rows, **({"clock": w.clock} if w.kind == "time" else {})},
            "stats": self.stats,
            "cov": matrix_dict(self.window_moments.cov(), self.pair_columns),
            "corr": matrix_dict(self.window_moments.corr(), self.pair_columns),
            # how many leading numeric columns cov and corr cover (at most PAIR_LIMIT: their memory
            # grows with the square); stats and cumulative cover all
            "cov_columns": len(self.pair_columns),
            "cumulative": stats_dict(self.cumulative_moments, self.columns),
            "pipeline": self.pipeline,
            "pipeline_from": self.pipeline_from,
            **({"pipeline_error": self.pipeline_error} if self.pipeline_error else {}),
            "source": self.source,
            "error": self.error,
            **({"model": self.model} if self.model is not None else {}),
        }

    @property
    def pair_columns(self) -> list[str]:
        """The numeric columns covariance and correlation cover (the first Moments.pairs)."""
        return self.columns[:self.window_moments.pairs]

    @cached_property
    def stats(self) -> dict:
        return stats_dict(self.window_moments, self.columns)

    # --- other windows, answered from the chunks ------------------------------------
    def window(self, rows: int | None = None, seconds: float | None = None,
               clock: str | None = None) -> tuple[Moments, list[Chunk]]:
        """Moments and chunks of the last `rows` rows or `seconds` seconds held by this snapshot."""
        if seconds is not None:
            clock = clock or ("event" if self.time_column else "ingest")
            now = self.newest(clock)
            chunks = last_seconds(self.chunks, seconds, clock, now) if now is not None else []
        else:
            chunks = last_rows(self.chunks, rows if rows is not None else int(self.window_spec.size))
        return merged(chunks, len(self.columns)), chunks

    @cached_property
    def newest_event(self) -> float | None:
        """Event time (epoch seconds) of the newest row held; with `created` and a real-time
        replay's `source["anchor"]` it tells how long rows took to become visible."""
        return self.newest("event")

    def newest(self, clock: str) -> float | None:
        """The newest time held on `clock` ("event" or "ingest": now), epoch seconds."""
        if clock == "ingest":
            return time.time()
        t = [float(np.nanmax(c.event)) for c in self.chunks if len(c) and not np.all(np.isnan(c.event))]
        return max(t) if t else None

    def window_table(self, rows: int | None = None, seconds: float | None = None) -> pa.Table:
        return table_of(self.window(rows, seconds)[1], self.schema)

    def group_stats(self, column: str, rows: int | None = None, seconds: float | None = None) -> dict:
        """Per-group count, mean, var, std, min, max of every numeric column over a window."""
        if not self.chunks and self.window_groups is not None and column == self.group_column \
                and rows is None and seconds is None:
            return self.window_groups
        return group_stats_of(self.window(rows, seconds)[1], column, self.columns)

    # --- buckets -------------------------------------------------------------------
    def bucket_series(self, width: int, since: float | None = None, until: float | None = None) -> dict:
        """Per bucket start (epoch seconds): arrays of each statistic per column. `width` is one of
        stats.buckets.WIDTHS (seconds; WEEK and MONTH are calendar weeks and months, UTC). With
        `since`/`until`, only the buckets that overlap that range."""
        ks = self.series.get(width)
        if ks is None:
            raise KeyError(f"no buckets of width {width}s; widths: {sorted(self.series)}")
        if since is not None or until is not None:
            start, end = starts_of(ks.keys, width), starts_of(ks.keys + 1, width)
            keep = (end > (-np.inf if since is None else since)) & (start <= (np.inf if until is None else until))
            hit = np.flatnonzero(keep)       # keys are sorted, so the overlapping ones are a run
            ks = ks.rows(int(hit[0]), int(hit[-1]) + 1) if len(hit) else ks.rows(0, 0)
        return {"start": starts_of(ks.keys, width), **ks.stats(self.bucket_shift)}

    def fitting_width(self, most: int, fill: int = 1) -> int | None:
        """The finest bucket width whose kept buckets hold every row of the stream, in at most `most`
        buckets of `fill` rows or more on average: a chart of the whole stream (weekly rows from 2018 by
        day, not one 10 s bucket); the coarsest width when none does, None before a row has a time or
        without number columns. A width holds every row when its counts add up to the coarsest width's
        (finer widths keep only their newest buckets); a bucket's rows are its fullest column's count."""
        widths = sorted(self.series)
        if not widths or not len(self.series[widths[-1]]) or not self.series[widths[-1]].n.shape[1]:
            return None
        rows = {w: self.series[w].n.max(axis=1).sum() for w in widths}
        every = rows[widths[-1]]
        if not every:
            return None
        for w in widths:
            ks = self.series[w]
            if len(ks) <= most and len(ks) * fill <= every and rows[w] == every:
                return w
        return widths[-1]

    def bucket_groups(self, width: int) -> dict:
        ks = self.groups.get(width)
        if ks is None or self.codes is None:
            return {"start": np.zeros(0), "group": []}
        slots = self.codes.slots
        return {"start": starts_of(ks.keys // slots, width),
                "group": [self.codes.label(int(c)) for c in ks.keys % slots], **ks.stats(self.bucket_shift)}

    def headline(self) -> dict:
        src = self.source or {}
        return {"rows": self.counts["ingested"], "rows_per_s": src.get("rows_per_s", 0.0),
                "quarantined": self.counts["quarantined"], "lag_s": src.get("lag_s", 0.0),
                "state": self.state}

