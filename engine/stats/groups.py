"""Per-column statistics for many keys at once (buckets, groups), vectorised.

`KeyedStats` holds, for m sorted keys and k columns, the count, mean, M2, min and
max of each column. It is built from rows or merged from partials with the same
Chan formulas as `Moments`, but only per column (no co-moments), so a batch
spanning thousands of buckets costs a few numpy passes, not a Python loop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STAT_NAMES = ("count", "mean", "var", "std", "min", "max")
STATE = ("n", "mean", "m2", "min", "max")     # the per-key arrays, in the constructor's order
FEW_KEYS = 8        # up to this many distinct keys in a batch, each run of rows is reduced as one block


@dataclass(frozen=True)
class KeyedStats:
    keys: np.ndarray   # (m,) int64, strictly increasing
    n: np.ndarray      # (m, k)
    mean: np.ndarray   # (m, k)
    m2: np.ndarray     # (m, k)
    min: np.ndarray    # (m, k), +inf where empty
    max: np.ndarray    # (m, k), -inf where empty

    @classmethod
    def empty(cls, k: int) -> "KeyedStats":
        z = np.zeros((0, k))
        return cls(np.zeros(0, np.int64), z, z, z, z, z)

    @property
    def k(self) -> int:
        return self.n.shape[1]

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def of_rows(cls, keys: np.ndarray, X: np.ndarray, shift: np.ndarray | None = None) -> "KeyedStats":
        """Group the rows of X - shift (n x k, NaN = missing; `shift` per column) by integer key in a few passes.

        Rows are sorted by key once (usually they already are: time order), then
        every statistic is one `reduceat` over all columns at once, down each column:
        the work runs on X's transpose (k x n, a column's rows contiguous; no copy for
        the column-major matrix a batch has), 2-3x faster than across rows.
        """
        XT = np.asarray(X, dtype=np.float64).T
        keys = np.asarray(keys, dtype=np.int64)
        k = XT.shape[0]
        if len(keys) == 0:
            return cls.empty(k)
        if not np.all(keys[1:] >= keys[:-1]):
            order = _order(keys)
            keys, XT = keys[order], np.take(XT, order, axis=1)
            if shift is not None:          # the gather is a copy of our own: shifted in place
                XT -= shift[:, None]
                shift = None
        first = np.concatenate(([True], keys[1:] != keys[:-1]))
        starts = np.flatnonzero(first)
        if len(starts) <= FEW_KEYS:
            return cls._of_slices(keys[starts], XT.T, np.append(starts, len(keys)), shift)
        if shift is not None:
            XT = np.subtract(XT, shift[:, None], out=np.empty(XT.shape))
        else:
            XT = np.ascontiguousarray(XT)
        sizes = np.diff(np.append(starts, len(keys)))     # rows of each key (a repeat, not a gather, spreads
        valid = ~np.isnan(XT)                             # a key's value over its rows: 1.5x faster)
        if valid.all():                       # the common case: no masks needed
            n = np.repeat(sizes[None, :].astype(np.float64), k, axis=0)
            mean = np.add.reduceat(XT, starts, axis=1) / n
            dev = XT - np.repeat(mean, sizes, axis=1)
            lo = hi = XT
        else:
            X0 = np.where(valid, XT, 0.0)
            n = np.add.reduceat(valid, starts, axis=1, dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(n > 0, np.add.reduceat(X0, starts, axis=1) / n, 0.0)
            dev = np.where(valid, X0 - np.repeat(mean, sizes, axis=1), 0.0)
            lo, hi = np.where(valid, XT, np.inf), np.where(valid, XT, -np.inf)
        np.multiply(dev, dev, out=dev)
        m2 = np.add.reduceat(dev, starts, axis=1)
        # transposes back: (m x k) views, column-major, as `_reduce` and `merge` keep them
        return cls(keys[starts], n.T, mean.T, m2.T, np.minimum.reduceat(lo, starts, axis=1).T,
                   np.maximum.reduceat(hi, starts, axis=1).T)

    @classmethod
    def _of_slices(cls, keys: np.ndarray, X: np.ndarray, bounds: np.ndarray,
                   shift: np.ndarray | None = None) -> "KeyedStats":
        """of_rows for a few runs of equal keys (a batch on the ingest clock spans a second or two):
        each run is a contiguous block of rows, reduced down its columns in a few passes, with no
        per-row bucket index, no gather and, when nothing is missing, no temporary the size of the
        run (`_run_stats`)."""
        stats = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            run = _run_stats(X[lo:hi], shift)
            if run is not None:                   # nothing missing
                stats.append(run)
                continue
            B = X[lo:hi] - shift if shift is not None else X[lo:hi]
            valid = ~np.isnan(B)
            count = valid.sum(axis=0).astype(np.float64)
            B0 = np.where(valid, B, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(count > 0, B0.sum(axis=0) / count, 0.0)
            dev = np.where(valid, B0 - mean, 0.0)
            stats.append((count, mean, np.einsum("ij,ij->j", dev, dev), np.where(valid, B, np.inf).min(axis=0),
                          np.where(valid, B, -np.inf).max(axis=0)))
        return cls(keys, *(np.stack(parts) for parts in zip(*stats)))

    def merge(self, other: "KeyedStats") -> "KeyedStats":
        """Union of keys; statistics of shared keys combine exactly."""
        if len(other) == 0:
            return self
        if len(self) == 0:
            return other
        # keys below other's first (older buckets: a stream's batches come in time order) pass through as
        # they are, and only the overlap is reduced; disjoint keys need no reduction at all
        lo = int(np.searchsorted(self.keys, other.keys[0]))
        tail = other if lo == len(self) else _reduce(
            np.concatenate([self.keys[lo:], other.keys]),
            *(_stack([getattr(self, f)[lo:], getattr(other, f)]) for f in STATE))
        if lo == 0:
            return tail
        return KeyedStats(np.concatenate([self.keys[:lo], tail.keys]),
                          *(_stack([getattr(self, f)[:lo], getattr(tail, f)]) for f in STATE))

    def rollup(self, divisor: int) -> "KeyedStats":
        """Coarser keys (key // divisor), e.g. 1 s buckets into 10 s buckets."""
        return self.rekey(self.keys // divisor)

    def rekey(self, keys: np.ndarray) -> "KeyedStats":
        """The same partials under new keys (non-decreasing in the old ones); equal keys merge."""
        return _reduce(keys, self.n, self.mean, self.m2, self.min, self.max)

    def tail(self, count: int) -> "KeyedStats":
        return self if len(self) <= count else self.rows(len(self) - count, len(self))

    def rows(self, lo: int, hi: int) -> "KeyedStats":
        """Keys lo..hi-1 (positions)."""
        s = slice(lo, hi)
        return KeyedStats(self.keys[s], self.n[s], self.mean[s], self.m2[s], self.min[s], self.max[s])

    def since(self, first_key: int) -> "KeyedStats":
        i = int(np.searchsorted(self.keys, first_key))
        return self.tail(len(self) - i)

    def stats(self, shift: np.ndarray | float = 0.0) -> dict[str, np.ndarray]:
        """count, mean, var, std (ddof=1), min, max as (m, k) arrays, NaN where undefined.

        `shift` is added back to mean, min and max when the rows were shifted first.
        """
        n = self.n
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.where(n > 1, self.m2 / (n - 1), np.nan)
        has = n > 0
        return {
            "count": n,
            "mean": np.where(has, self.mean + shift, np.nan),
            "var": var,
            "std": np.sqrt(var),
            "min": np.where(has, self.min + shift, np.nan),
            "max": np.where(has, self.max + shift, np.nan),
        }


def _run_stats(B: np.ndarray, shift: np.ndarray | None) -> tuple | None:
    """(count, mean, M2, min, max) down the columns of B - shift, or None when a value is missing or not
    finite. In blocks of rows through one buffer of RUN_BLOCK values: a temporary the size of the run
    (B - shift, B - mean) is fresh memory every batch, and its page faults (huge pages the kernel
    compacts memory for) cost a 200-column replay 0.15 s of system CPU, twice the arithmetic (issue 15)."""
    n, k = B.shape
    step = max(1, RUN_BLOCK // max(k, 1))
    buf = np.empty((min(step, n), k), order="F")

    def rows(i: int, less: np.ndarray | None = None) -> np.ndarray:
        S = B[i:i + step]
        if shift is None and less is None:
            return S
        out = buf[:len(S)]
        if shift is not None:
            S = np.subtract(S, shift, out=out)
        return S if less is None else np.subtract(S, less, out=out)

    total = np.zeros(k)
    for i in range(0, n, step):
        total += rows(i).sum(axis=0)
    if not np.isfinite(total).all():
        return None
    count = np.full(k, float(n))
    mean = total / count
    m2 = np.zeros(k)
    for i in range(0, n, step):
        S = rows(i, mean)
        m2 += np.einsum("ij,ij->j", S, S)
    # fl(x - s) never decreases as x grows: the extremes of B, shifted, are those of B - shift
    lo, hi = B.min(axis=0), B.max(axis=0)
    return count, mean, m2, lo - shift if shift is not None else lo, hi - shift if shift is not None else hi


RUN_BLOCK = 1 << 17         # values a block of rows in `_run_stats` holds (1 MB)
ALIGN_CELLS = 1_000_000     # union keys x columns up to which merge_many aligns instead of sorting


def merge_many(parts: list[KeyedStats], k: int) -> KeyedStats:
    """The union of many partials (partitions' buckets) in one pass; shared keys combine exactly."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return KeyedStats.empty(k)
    if len(parts) == 1:
        return parts[0]
    keys = _union_keys(parts)
    if len(keys) * max(k, 1) <= ALIGN_CELLS:
        return _merge_aligned(parts, keys, k)
    return _reduce(np.concatenate([p.keys for p in parts]),
                   *(_stack([getattr(p, f) for p in parts]) for f in ("n", "mean", "m2", "min", "max")))


def _union_keys(parts: list[KeyedStats]) -> np.ndarray:
    """The sorted union of the parts' keys. Partitions' buckets of one time range mostly have the very same
    keys, so each distinct key array is taken once (no sort of every part's keys)."""
    distinct = {p.keys.tobytes(): p.keys for p in parts}
    if len(distinct) == 1:
        return parts[0].keys
    return np.unique(np.concatenate(list(distinct.values())))


def _merge_aligned(parts: list[KeyedStats], keys: np.ndarray, k: int) -> KeyedStats:
    """merge_many for partials over much the same keys: each part is added into arrays over the union of
    keys, one part at a time (each pass stays in cache; no parts x keys x columns array is built), then
    Chan's merge: the mean weighted by counts, and M2 as the parts' M2 plus n (mean_part - mean)^2, summed
    in the parts' order."""
    m = len(keys)
    n, total, m2 = np.zeros((m, k)), np.zeros((m, k)), np.zeros((m, k))
    lo, hi = np.full((m, k), np.inf), np.full((m, k), -np.inf)
    scratch = np.empty((m, k))             # every product goes here: no array allocated per part
    places = []
    for p in parts:
        at, t = _place(keys, p.keys), scratch[:len(p)]
        places.append(at)
        n[at] += p.n
        total[at] += np.multiply(p.n, p.mean, out=t)
        if isinstance(at, slice):          # the usual case: a run of the union's keys, updated in place
            np.minimum(lo[at], p.min, out=lo[at])
            np.maximum(hi[at], p.max, out=hi[at])
        else:
            lo[at] = np.minimum(lo[at], p.min)
            hi[at] = np.maximum(hi[at], p.max)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / n, 0.0)
    for p, at in zip(parts, places):
        t = np.subtract(p.mean, mean[at], out=scratch[:len(p)])    # a part without rows at a key has n = 0
        np.multiply(t, t, out=t)                                    # there: it adds nothing
        np.multiply(t, p.n, out=t)
        m2[at] += np.add(t, p.m2, out=t)
    return KeyedStats(keys, n, mean, m2, lo, hi)


def _place(keys: np.ndarray, part: np.ndarray) -> slice | np.ndarray:
    """Where a part's keys sit in the sorted union: a slice when they are a run of it (partitions of one time
    range differ at most at its ends), else their positions."""
    if part is keys:
        return slice(None)
    first = int(np.searchsorted(keys, part[0]))
    if first + len(part) <= len(keys) and keys[first + len(part) - 1] == part[-1]:
        return slice(first, first + len(part))      # sorted, unique and in the union: the ends say it is a run
    return np.searchsorted(keys, part)


def _order(keys: np.ndarray) -> np.ndarray:
    """A stable sort of int keys; a radix sort (O(n)) when they span fewer than 65,536 values, as a
    batch's bucket x group keys do."""
    low = keys.min()
    if int(keys.max()) - int(low) < 1 << 16:
        return np.argsort((keys - low).astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    """(m x k) arrays one after another, column-major like `of_rows` gives them."""
    return np.concatenate([p.T for p in parts], axis=1).T


def _reduce(keys, n, mean, m2, mn, mx) -> KeyedStats:
    """Combine partials (one per row of the inputs) that share a key.

    For rows, n is 0/1, mean is the value and m2 is 0. The combined mean is the
    weighted mean; M2 adds each part's spread around the combined mean
    (sum M2_p + n_p * (mean_p - mean)^2), which is Chan's merge for many parts.
    Runs down columns on the transposes (k x m), as `of_rows` does.
    """
    k = n.shape[1] if n.ndim == 2 else 0
    if len(keys) == 0:
        return KeyedStats.empty(k)
    n, mean, m2, mn, mx = (np.ascontiguousarray(a.T) for a in (n, mean, m2, mn, mx))
    if not np.all(keys[1:] >= keys[:-1]):
        order = _order(keys)
        keys = keys[order]
        n, mean, m2, mn, mx = (np.take(a, order, axis=1) for a in (n, mean, m2, mn, mx))
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    sizes = np.diff(np.append(starts, len(keys)))
    tot_n = np.add.reduceat(n, starts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tot_mean = np.where(tot_n > 0, np.add.reduceat(n * mean, starts, axis=1) / tot_n, 0.0)
    dev = np.where(n > 0, mean - np.repeat(tot_mean, sizes, axis=1), 0.0)
    tot_m2 = np.add.reduceat(m2 + n * dev * dev, starts, axis=1)
    return KeyedStats(keys[starts], tot_n.T, tot_mean.T, tot_m2.T,
                      np.minimum.reduceat(mn, starts, axis=1).T, np.maximum.reduceat(mx, starts, axis=1).T)
