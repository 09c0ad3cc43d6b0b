"""Tumbling-window (bucket) aggregates at several widths, optionally per group.

Rows are reduced once into 1-second partials; every coarser width (10 s, 1 min,
...) is rolled up from those partials, so a batch costs a few vectorised passes
however many widths are kept. Each width keeps its newest `keep` buckets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .groups import KeyedStats

WIDTHS = (1, 10, 60, 600, 3600)   # seconds


@dataclass(frozen=True)
class BucketPartial:
    """A batch reduced to buckets of every width (and bucket x group), ready to merge."""
    series: dict[int, KeyedStats]
    groups: dict[int, KeyedStats] | None
    slots: int


def partial(times: np.ndarray, X: np.ndarray, codes: np.ndarray | None = None, slots: int = 0,
            widths: tuple[int, ...] = WIDTHS, keep: int = 720) -> BucketPartial:
    """Reduce rows to buckets of each width; rows without a time are left out.

    Each width is rolled up from the previous one (1 s -> 10 s -> 1 min ...), so
    only the first reduction touches every row.
    """
    ok = ~np.isnan(times)
    if not ok.all():
        times, X = times[ok], X[ok]
        codes = codes[ok] if codes is not None else None
    keys = np.floor(times).astype(np.int64)
    grouped = codes is not None and slots > 0
    per = slots if grouped else 1
    level = KeyedStats.of_rows(keys * slots + codes if grouped else keys, X)
    series, groups, prev = {}, {}, 1
    for w in widths:
        if w != prev:
            level = _coarser(level, w // prev, per)
            prev = w
        kept = _newest(level, keep, per)
        if grouped:
            groups[w] = kept
            series[w] = kept.rollup(slots)
        else:
            series[w] = kept
    return BucketPartial(series, groups if grouped else None, slots)


def _coarser(ks: KeyedStats, factor: int, per: int) -> KeyedStats:
    if per == 1:
        return ks.rollup(factor)
    keys = (ks.keys // per) // factor * per + ks.keys % per
    return KeyedStats(keys, ks.n, ks.mean, ks.m2, ks.min, ks.max).rollup(1)


def _newest(ks: KeyedStats, keep: int, per: int = 1) -> KeyedStats:
    """Only the newest `keep` buckets are charted; older ones need no work."""
    if len(ks) == 0:
        return ks
    return ks.since((int(ks.keys[-1]) // per - keep + 1) * per)


class Buckets:
    def __init__(self, k: int, keep: int = 720, widths: tuple[int, ...] = WIDTHS):
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
            self.series[w] = _newest(self.series[w].merge(p.series[w]), self.keep)
            if p.groups is not None:
                self.groups[w] = _newest(self.groups[w].merge(p.groups[w]), self.keep, p.slots)
