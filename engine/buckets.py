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
    """A batch reduced to 1-second buckets (and bucket x group), ready to merge."""
    base: KeyedStats
    groups: KeyedStats | None
    slots: int


def partial(times: np.ndarray, X: np.ndarray, codes: np.ndarray | None = None, slots: int = 0) -> BucketPartial:
    """Reduce rows to 1-second buckets; rows without a time are left out."""
    ok = ~np.isnan(times)
    if not ok.all():
        times, X = times[ok], X[ok]
        codes = codes[ok] if codes is not None else None
    keys = np.floor(times).astype(np.int64)
    base = KeyedStats.of_rows(keys, X)
    groups = None
    if codes is not None and slots:
        groups = KeyedStats.of_rows(keys * slots + codes, X)
    return BucketPartial(base, groups, slots)


class Buckets:
    def __init__(self, k: int, keep: int = 720, widths: tuple[int, ...] = WIDTHS):
        self.k = k
        self.keep = keep
        self.widths = widths
        self.series: dict[int, KeyedStats] = {w: KeyedStats.empty(k) for w in widths}
        self.groups: dict[int, KeyedStats] = {w: KeyedStats.empty(k) for w in widths}
        self.slots = 0

    def add(self, p: BucketPartial) -> None:
        for w in self.widths:
            self._merge_into(self.series, w, p.base if w == 1 else p.base.rollup(w))
            if p.groups is not None:
                if p.slots != self.slots:
                    self.groups = {x: KeyedStats.empty(self.k) for x in self.widths}
                    self.slots = p.slots
                g = p.groups
                if w != 1:
                    keys = (g.keys // p.slots) // w * p.slots + g.keys % p.slots
                    g = KeyedStats(keys, g.n, g.mean, g.m2, g.min, g.max).rollup(1)
                self._merge_into(self.groups, w, g, per=p.slots)

    def _merge_into(self, table: dict[int, KeyedStats], w: int, part: KeyedStats, per: int = 1) -> None:
        merged = table[w].merge(part)
        if len(merged):
            # keep the newest `keep` buckets; a row older than that is not charted
            table[w] = merged.since((int(merged.keys[-1]) // per - self.keep + 1) * per)
