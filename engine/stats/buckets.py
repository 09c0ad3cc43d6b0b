"""Tumbling-window (bucket) aggregates at several widths, optionally per group.

Rows are reduced once into 1-second partials; every coarser width (10 s, 1 min, ...,
1 day, 1 week, 1 month) is rolled up from the next finer one, so a batch costs a few
vectorised passes however many widths are kept. Widths are aligned to UTC: days start
at midnight, weeks on Monday, months on the 1st. Each width keeps its newest `KEEP[w]`
buckets, so memory is bounded by widths x buckets (x groups), never by the stream's
length, while the coarse widths still cover years of data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .groups import KeyedStats

DAY = 86_400
WEEK = 7 * DAY
MONTH = 2_629_746          # a calendar month; the number (its mean length in seconds) only names the width
WIDTHS = (1, 10, 60, 600, 3600, DAY, WEEK, MONTH)
FINER = {10: 1, 60: 10, 600: 60, 3600: 600, DAY: 3600, WEEK: DAY, MONTH: DAY}   # what each rolls up from
KEEP = {1: 720, 10: 720, 60: 720, 600: 720, 3600: 720,      # 12 min ... 30 days
        DAY: 1830, WEEK: 1044, MONTH: 600}                  # 5, 20 and 50 years
_MONDAY = 4 * DAY          # 1970-01-05, the first Monday after the epoch


def keys_of(times: np.ndarray, width: int) -> np.ndarray:
    """Bucket number of each time (epoch seconds, finite) at `width`."""
    if width == MONTH:
        days = np.floor(np.asarray(times, np.float64) / DAY).astype(np.int64)
        return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    if width == WEEK:
        return np.floor((np.asarray(times, np.float64) - _MONDAY) / WEEK).astype(np.int64)
    return np.floor(np.asarray(times, np.float64) / width).astype(np.int64)


def starts_of(keys: np.ndarray, width: int) -> np.ndarray:
    """Start (epoch seconds) of each bucket number at `width`."""
    keys = np.asarray(keys, np.int64)
    if width == MONTH:
        return keys.astype("datetime64[M]").astype("datetime64[s]").astype(np.int64)
    if width == WEEK:
        return keys * WEEK + _MONDAY
    return keys * width


def label(width: int) -> str:
    """1 s, 10 s, 1 min, 10 min, 1 h, 1 day, 1 week, 1 month."""
    names = {MONTH: "1 month", WEEK: "1 week", DAY: "1 day", 3600: "1 h"}
    if width in names:
        return names[width]
    return f"{width // 60} min" if width >= 60 else f"{width} s"


@dataclass(frozen=True)
class BucketPartial:
    """A batch reduced to buckets of every width (and bucket x group), ready to merge."""
    series: dict[int, KeyedStats]
    groups: dict[int, KeyedStats] | None
    slots: int


def partial(times: np.ndarray, X: np.ndarray, codes: np.ndarray | None = None, slots: int = 0,
            widths: tuple[int, ...] = WIDTHS, keep: dict[int, int] = KEEP,
            shift: np.ndarray | None = None) -> BucketPartial:
    """Reduce rows (of X - shift: buckets keep values relative to a per-column shift, without a shifted
    copy of the batch) to buckets of each width; rows without a time are left out.

    Each width keeps only its newest `keep[w]` buckets, so a row older than those only matters to
    coarser widths: a width gets the rows of its kept range that its finer width does not keep, reduced
    directly, merged with the finer width's buckets rolled up (1 s -> 10 s -> ... -> 1 day -> 1 week;
    1 day -> 1 month). So a batch of a day of rows makes about 720 1-second buckets a group, not 86,400.
    """
    ok = ~np.isnan(times)
    if not ok.all():
        times, X = times[ok], _rows(X, ok)
        codes = codes[ok] if codes is not None else None
    grouped = codes is not None and slots > 0
    per = slots if grouped else 1
    newest = np.array([times.max() if len(times) else 0.0])
    levels: dict[int, KeyedStats] = {}
    cuts: dict[int, float] = {}        # the start of each width's oldest kept bucket
    series, groups = {}, {}
    for w in widths:
        finer = FINER.get(w) if w != widths[0] else None
        cut = float(starts_of(keys_of(newest, w) - keep[w] + 1, w)[0])
        upper = cuts[finer] if finer is not None else np.inf
        cuts[w] = min(cut, upper)
        rows = (times >= cuts[w]) & (times < upper)
        direct = KeyedStats.empty(X.shape[1])
        if rows.all():            # the usual case at the finest width: no copy
            keys = keys_of(times, w)
            direct = KeyedStats.of_rows(keys * slots + codes if grouped else keys, X, shift)
        elif rows.any():
            keys = keys_of(times[rows], w)
            direct = KeyedStats.of_rows(keys * slots + codes[rows] if grouped else keys, _rows(X, rows), shift)
        levels[w] = direct if finer is None else _coarser(levels[finer], finer, w, per).merge(direct)
        kept = _newest(levels[w], keep[w], per)
        if grouped:
            groups[w] = kept
            series[w] = kept.rollup(slots)
        else:
            series[w] = kept
    return BucketPartial(series, groups if grouped else None, slots)


def _rows(X: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """X[mask] keeping X column-major (a batch's matrix is), as `KeyedStats.of_rows` reduces it."""
    return X.T.compress(mask, axis=1).T


def _coarser(ks: KeyedStats, finer: int, width: int, per: int) -> KeyedStats:
    """Buckets of `finer` width rolled into `width` (each finer bucket lies inside one of them)."""
    if len(ks) == 0:
        return ks
    if per == 1 and width not in (WEEK, MONTH):
        return ks.rollup(width // finer)          # epoch-aligned widths nest by whole numbers
    bucket, code = np.divmod(ks.keys, per)
    return ks.rekey(keys_of(starts_of(bucket, finer), width) * per + code)


def _newest(ks: KeyedStats, keep: int, per: int = 1) -> KeyedStats:
    """Only the newest `keep` buckets are kept; older ones need no work."""
    if len(ks) == 0:
        return ks
    return ks.since((int(ks.keys[-1]) // per - keep + 1) * per)


class Buckets:
    def __init__(self, k: int, keep: dict[int, int] = KEEP, widths: tuple[int, ...] = WIDTHS):
        self.k = k
        self.keep = keep
        self.widths = widths
        self.series: dict[int, KeyedStats] = {w: KeyedStats.empty(k) for w in widths}
        self.groups: dict[int, KeyedStats] = {w: KeyedStats.empty(k) for w in widths}
        self.slots = 0

    def add(self, p: BucketPartial) -> None:
        if p.groups is not None and p.slots != self.slots:
            self.groups = {w: KeyedStats.empty(self.k) for w in self.widths}
            self.slots = p.slots
        for w in self.widths:
            self.series[w] = _newest(self.series[w].merge(p.series[w]), self.keep[w])
            if p.groups is not None:
                self.groups[w] = _newest(self.groups[w].merge(p.groups[w]), self.keep[w], p.slots)
