"""Per-viewer slices of a snapshot: filters, time ranges and derived series.

A page asks for a `View` of a snapshot (a window, optional row filters and a
time range) and reads statistics, buckets, groups and pair correlations from
it. Everything is computed here, vectorised over the snapshot's immutable
chunks, so pages only draw and tests check the numbers against pandas.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from ..stats.buckets import keys_of, starts_of
from ..stats.groups import KeyedStats
from ..stats.moments import Moments
from .snapshot import Snapshot, group_stats_of, stats_dict
from ..stats.windows import Chunk, merged, table_of

OPS = ("=", "≠", "<", "≤", ">", "≥", "contains")
_COMPARE = {"=": pc.equal, "≠": pc.not_equal, "<": pc.less, "≤": pc.less_equal,
            ">": pc.greater, "≥": pc.greater_equal}


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: str

    def label(self) -> str:
        return f"{self.column} {self.op} {self.value}"


def _operand(field: pa.Field, op: str, text: str):
    t = field.type
    if op == "contains":
        if not pa.types.is_string(t):
            raise UserError(f"'contains' works on text columns; {field.name} holds {_kind(t)}s")
        return pa.scalar(text)
    if pa.types.is_floating(t) or pa.types.is_integer(t):
        try:
            return pa.scalar(float(text))
        except ValueError:
            raise UserError(f"{field.name} holds numbers: enter a number, not {text!r}") from None
    if pa.types.is_boolean(t):
        v = text.strip().lower()
        if v not in ("true", "false", "1", "0", "yes", "no"):
            raise UserError(f"{field.name} holds true/false values: enter true or false")
        return pa.scalar(v in ("true", "1", "yes"))
    if pa.types.is_timestamp(t):
        return pa.scalar(int(round(parse_time(text) * 1e6)), pa.int64()).cast(t)
    return pa.scalar(text)


def parse_time(text: str) -> float:
    """Epoch seconds of a time typed by a user: ISO ("2024-01-31 12:00:00", with T or an offset),
    epoch seconds, or any layout a time column is detected in ("31.01.2024 12:00", "Jan 31 2024").

    >>> parse_time("1970-01-02 00:00:00"), parse_time("86400"), parse_time("13.01.1970")
    (86400.0, 86400.0, 1036800.0)
    """
    from ..ingest import times   # the layouts of detected time columns, so a user types what the file has
    text = (text or "").strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        with warnings.catch_warnings():   # numpy reads an offset but warns that it is deprecated
            warnings.simplefilter("ignore")
            return int(np.datetime64(text.replace(" ", "T"), "us").astype(np.int64)) / 1e6
    except ValueError:
        pass
    value = pa.array([text])
    found = times.candidates(value)
    if len(found) > 1:
        raise UserError(f"{text!r} reads with day and month either way round: "
                        "enter it as year-month-day, like 2024-01-31 12:00:00")
    if found:
        out, _ = times.parse(value, found[0].pattern)
        return out.cast(pa.int64())[0].as_py() / 1e6
    raise UserError(f"{text!r} is not a time: enter one like 2024-01-31 12:00:00") from None


def _kind(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "time"
    if pa.types.is_boolean(t):
        return "true/false value"
    return "number" if (pa.types.is_floating(t) or pa.types.is_integer(t)) else "text"


def row_mask(table: pa.Table, filters: list[Filter] | tuple[Filter, ...]) -> np.ndarray:
    """True for rows that pass every filter; a missing value passes none."""
    keep = np.ones(table.num_rows, dtype=bool)
    for f in filters:
        if f.column not in table.column_names:
            raise UserError(f"filter on {f.column!r}: the stream has no such column")
        if f.op not in OPS:
            raise UserError(f"unknown filter operator {f.op!r}; use one of {' '.join(OPS)}")
        col = table.column(f.column)
        value = _operand(table.schema.field(f.column), f.op, f.value)
        hit = pc.match_substring(col, f.value) if f.op == "contains" else _COMPARE[f.op](col, value)
        keep &= pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
    return keep


@dataclass(frozen=True)
class View:
    columns: list[str]
    schema: pa.Schema
    chunks: tuple[Chunk, ...]
    clock: str                    # "event" (the time column) or "ingest"
    filtered: bool                # row filters or a time range narrowed it
    span: tuple[float, float] | None = None    # the time range asked for, on `clock` (None: the newest rows)
    rows_filtered: bool = False   # row filters narrowed it (stream-wide buckets would not agree)

    @property
    def moments(self) -> Moments:
        return merged(list(self.chunks), len(self.columns))

    @property
    def rows(self) -> int:
        return sum(len(c) for c in self.chunks)

    def pair_moments(self, columns: list[str]) -> Moments:
        """Moments of `columns` with all their pairs (covariance, correlation): from the window's
        moments when those keep the pairs (the first PAIR_LIMIT columns), else from the rows."""
        idx = [self._index(c) for c in columns]
        m = self.moments
        if all(i < m.pairs for i in idx):
            return m.select(idx)
        out = Moments(len(idx), pairs=len(idx))
        for c in self.chunks:
            out += Moments.of(c.X[:, idx], pairs=len(idx))
        return out

    def stats(self) -> dict:
        """count, mean, var, std, min, max per numeric column (pandas conventions)."""
        return stats_dict(self.moments, self.columns)

    def table(self, last: int | None = None) -> pa.Table:
        t = table_of(list(self.chunks), self.schema)
        return t.slice(max(t.num_rows - last, 0)) if last is not None else t

    def times(self) -> np.ndarray:
        return np.concatenate([c.times(self.clock) for c in self.chunks]) if self.chunks else np.zeros(0)

    def matrix(self) -> np.ndarray:
        return np.concatenate([c.X for c in self.chunks]) if self.chunks else np.zeros((0, len(self.columns)))

    def group_stats(self, column: str) -> dict:
        return group_stats_of(list(self.chunks), column, self.columns)

    def bucket_series(self, width: int) -> dict:
        """Per tumbling bucket of `width` seconds over these rows: start and (m, k) stat arrays."""
        t, X = self.times(), self.matrix()
        ok = ~np.isnan(t)
        ks = KeyedStats.of_rows(keys_of(t[ok], width), X[ok])
        return {"start": starts_of(ks.keys, width), **ks.stats()}

    def pair_corr_series(self, a: str, b: str, width: int) -> dict:
        """Pearson r of columns a and b within each bucket of `width` seconds (pairwise complete)."""
        i, j = self._index(a), self._index(b)
        t, X = self.times(), self.matrix()
        x, y = X[:, i], X[:, j]
        ok = ~(np.isnan(t) | np.isnan(x) | np.isnan(y))
        x, y, keys = x[ok], y[ok], keys_of(t[ok], width)
        if not len(keys):
            return {"start": np.zeros(0), "n": np.zeros(0), "r": np.zeros(0)}
        uniq, seg = np.unique(keys, return_inverse=True)
        n = np.bincount(seg).astype(np.float64)
        dx = x - (np.bincount(seg, x) / n)[seg]          # centred first: no cancellation
        dy = y - (np.bincount(seg, y) / n)[seg]
        sxy, sxx, syy = np.bincount(seg, dx * dy), np.bincount(seg, dx * dx), np.bincount(seg, dy * dy)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where((n > 1) & (sxx > 0) & (syy > 0), sxy / np.sqrt(sxx * syy), np.nan)
        return {"start": starts_of(uniq, width), "n": n, "r": np.clip(r, -1, 1)}

    def _index(self, column: str) -> int:
        try:
            return self.columns.index(column)
        except ValueError:
            raise UserError(f"{column!r} is not a numeric column of the stream; "
                            f"numeric columns: {', '.join(self.columns) or 'none'}") from None


def view(snap: Snapshot, rows: int | None = None, seconds: float | None = None,
         filters: list[Filter] | tuple[Filter, ...] = (), since: float | None = None,
         until: float | None = None) -> View:
    """The rows of a window of `snap` that pass `filters` and lie in [since, until] (epoch seconds)."""
    if rows is not None and rows <= 0:
        raise UserError("the window needs at least 1 row")
    if seconds is not None and seconds <= 0:
        raise UserError("the window needs a positive number of seconds")
    clock = "event" if snap.time_column else "ingest"
    _, chunks = snap.window(rows=rows, seconds=seconds)
    span = None
    if seconds is not None:
        newest = snap.newest(clock)
        span = (newest - seconds, newest) if newest is not None else None
    elif since is not None or until is not None:
        span = (since if since is not None else -np.inf, until if until is not None else np.inf)
    out = []
    for c in chunks:
        keep = row_mask(c.table, filters) if filters else np.ones(len(c), bool)
        if since is not None or until is not None:
            t = c.times(clock)
            with np.errstate(invalid="ignore"):
                keep &= (t >= (since if since is not None else -np.inf)) & (t <= (until if until is not None else np.inf))
        if keep.all():
            out.append(c)
        elif keep.any():
            out.append(c.where(keep))
    return View(list(snap.columns), snap.schema, tuple(out), clock,
                bool(filters) or since is not None or until is not None, span, bool(filters))


def strongest_pairs(m: Moments, columns: list[str], limit: int = 10) -> list[dict]:
    """Column pairs ranked by |Pearson r|, strongest first, with their pairwise row counts."""
    r = m.corr()
    i, j = np.triu_indices(min(len(columns), m.pairs), k=1)
    vals = r[i, j]
    ok = ~np.isnan(vals)
    i, j, vals = i[ok], j[ok], vals[ok]
    order = np.argsort(-np.abs(vals), kind="stable")[:limit]
    return [{"a": columns[i[o]], "b": columns[j[o]], "r": float(vals[o]), "n": int(m.n[i[o], j[o]])}
            for o in order]


def throughput_series(throughput: tuple, seconds: int = 120, now: float | None = None) -> np.ndarray:
    """Rows in each of the last `seconds` complete seconds (0 where nothing arrived); the current,
    still filling second is left out so a chart does not dip at its right edge.

    >>> throughput_series(((100, 5), (102, 7)), seconds=4, now=103.5).tolist()
    [0.0, 5.0, 0.0, 7.0]
    """
    end = int(math.floor(time.time() if now is None else now))
    out = np.zeros(seconds)
    if throughput:
        t = np.array([p[0] for p in throughput], np.int64)
        n = np.array([p[1] for p in throughput], np.float64)
        idx = t - (end - seconds)
        ok = (idx >= 0) & (idx < seconds)
        np.add.at(out, idx[ok], n[ok])
    return out


def recent_rate(throughput: tuple, seconds: int = 5, now: float | None = None) -> float:
    """Rows per second over the last `seconds` seconds, read now: a stream that stopped publishing
    (an ended replay) drops to 0 instead of keeping the rate of its last batch.

    >>> recent_rate(((100, 50), (103, 50)), seconds=5, now=104.5)
    20.0
    >>> recent_rate(((100, 50),), seconds=5, now=200.0)
    0.0
    """
    return float(throughput_series(throughput, seconds, now).sum()) / seconds
