"""Mergeable count, mean and co-moment state of k columns, NaN-aware and pairwise.

Every statistic the windows, buckets and cumulative views report is derived from a
`Moments` value. Partial results merge exactly with the parallel formulas of
Chan, Golub & LeVeque (1979), so batches, window chunks or partitions computed on
other machines combine into the same numbers a single pass would give.

Missing values follow pandas: per-column statistics skip them, and each pair
(i, j) of the covariance/correlation uses only rows where both are present. So
the state is kept per pair: for pair (i, j), ``n[i, j]`` rows, ``mean[i, j]`` and
``m2[i, j]`` of column i over those rows, and the co-moment ``c[i, j]``. The
diagonal holds the plain per-column values.

Means are stored relative to a per-column ``shift`` (the first batch's mean), so
values around 1e9 with a spread of 1 keep their digits through every merge; an
absolute mean near 1e9 could not hold more than about 1e-7 of them.
"""
from __future__ import annotations

import json

import numpy as np


class Moments:
    """Count, means and co-moments of k columns; merge with += (Chan et al., 1979).

    >>> m = Moments.of(np.array([[1.0], [3.0]]))
    >>> float(m.var()[0])
    2.0
    >>> m += Moments.of(np.array([[5.0]]))
    >>> float(m.mean()[0]), float(m.var()[0])
    (3.0, 4.0)
    """

    __slots__ = ("n", "mean_", "m2", "c", "min_", "max_", "shift")

    def __init__(self, k: int):
        self.shift = np.zeros(k)
        self.n = np.zeros((k, k))
        self.mean_ = np.zeros((k, k))
        self.m2 = np.zeros((k, k))
        self.c = np.zeros((k, k))
        self.min_ = np.full(k, np.inf)
        self.max_ = np.full(k, -np.inf)

    @property
    def k(self) -> int:
        return self.n.shape[0]

    @classmethod
    def of(cls, X: np.ndarray) -> "Moments":
        """Moments of the rows of X (n x k), vectorised; NaN marks a missing value."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError("Moments.of expects a 2-D array")
        k = X.shape[1]
        m = cls(k)
        if X.shape[0] == 0 or k == 0:
            return m
        valid = ~np.isnan(X)
        if valid.all():
            return cls._of_complete(X)
        V = valid.astype(np.float64)
        counts = V.sum(axis=0)
        # Shift by each column's own mean first: co-moments of values around 1e9
        # with a small spread would otherwise cancel catastrophically.
        with np.errstate(invalid="ignore", divide="ignore"):
            shift = np.where(counts > 0, np.where(valid, X, 0.0).sum(axis=0) / counts, 0.0)
        D = np.where(valid, X - shift, 0.0)
        n = V.T @ V                       # rows where both i and j are present
        s = D.T @ V                       # sum of (x_i - shift_i) over pair (i, j)
        with np.errstate(invalid="ignore", divide="ignore"):
            d_mean = np.where(n > 0, s / n, 0.0)
            m.n = n
            m.shift = shift
            m.mean_ = d_mean
            m.m2 = np.where(n > 0, (D * D).T @ V - s * d_mean, 0.0)
            m.c = np.where(n > 0, D.T @ D - s * d_mean.T, 0.0)
        np.maximum(m.m2, 0.0, out=m.m2)
        m.min_ = np.where(counts > 0, np.nanmin(np.where(valid, X, np.inf), axis=0), np.inf)
        m.max_ = np.where(counts > 0, np.nanmax(np.where(valid, X, -np.inf), axis=0), -np.inf)
        return m

    @classmethod
    def _of_complete(cls, X: np.ndarray) -> "Moments":
        """`of` for a batch without missing values: one product instead of four."""
        rows, k = X.shape
        m = cls(k)
        m.shift = X.mean(axis=0)
        D = X - m.shift
        s = D.sum(axis=0)                  # ~0, kept so results match `of` to the last digit
        C = D.T @ D
        m.n = np.full((k, k), float(rows))
        m.mean_ = np.repeat((s / rows)[:, None], k, axis=1)
        m.m2 = np.repeat(np.maximum(np.diag(C) - s * s / rows, 0.0)[:, None], k, axis=1)
        m.c = C - np.outer(s, s) / rows
        m.min_ = X.min(axis=0)
        m.max_ = X.max(axis=0)
        return m

    def copy(self) -> "Moments":
        out = Moments.__new__(Moments)
        for name in self.__slots__:
            setattr(out, name, getattr(self, name).copy())
        return out

    def _other_mean(self, other: "Moments") -> np.ndarray:
        """other's pair means relative to this value's shift."""
        if not self.n.any():
            self.shift = other.shift.copy()
        return other.mean_ + (other.shift - self.shift)[:, None]

    def __iadd__(self, other: "Moments") -> "Moments":
        mean_b = self._other_mean(other)
        na, nb = self.n, other.n
        n = na + nb
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(n > 0, nb / n, 0.0)
            f = np.where(n > 0, na * nb / n, 0.0)
        d = mean_b - self.mean_
        d = np.where(nb > 0, np.where(na > 0, d, 0.0), 0.0)
        self.mean_ = np.where(na > 0, self.mean_ + d * w, mean_b)
        self.m2 = self.m2 + other.m2 + d * d * f
        self.c = self.c + other.c + d * d.T * f
        self.n = n
        self.min_ = np.minimum(self.min_, other.min_)
        self.max_ = np.maximum(self.max_, other.max_)
        return self

    def __add__(self, other: "Moments") -> "Moments":
        out = self.copy()
        out += other
        return out

    def __isub__(self, other: "Moments") -> "Moments":
        """Remove rows that were added earlier (a batch leaving a window).

        min and max cannot be un-merged: they become unknown (NaN). Windows in
        this engine recompute from the rows they keep instead of subtracting,
        because subtraction loses precision when the rows that remain have a
        much smaller spread than the rows removed.
        """
        mean_b = self._other_mean(other)
        n, nb = self.n, other.n
        na = n - nb
        if np.any(na < 0):
            raise ValueError("cannot subtract more rows than were added")
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_a = np.where(na > 0, (n * self.mean_ - nb * mean_b) / na, 0.0)
            f = np.where(n > 0, na * nb / n, 0.0)
        d = np.where((na > 0) & (nb > 0), mean_b - mean_a, 0.0)
        self.m2 = np.where(na > 0, np.maximum(self.m2 - other.m2 - d * d * f, 0.0), 0.0)
        self.c = np.where(na > 0, self.c - other.c - d * d.T * f, 0.0)
        self.mean_ = mean_a
        self.n = na
        self.min_ = np.full(self.k, np.nan)
        self.max_ = np.full(self.k, np.nan)
        return self

    # --- reading ---------------------------------------------------------
    def count(self) -> np.ndarray:
        return np.diag(self.n).copy()

    def mean(self) -> np.ndarray:
        return np.where(self.count() > 0, self.shift + np.diag(self.mean_), np.nan)

    def var(self, ddof: int = 1) -> np.ndarray:
        n = self.count()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n - ddof > 0, np.diag(self.m2) / (n - ddof), np.nan)

    def std(self, ddof: int = 1) -> np.ndarray:
        return np.sqrt(self.var(ddof))

    def min(self) -> np.ndarray:
        return np.where(self.count() > 0, self.min_, np.nan)

    def max(self) -> np.ndarray:
        return np.where(self.count() > 0, self.max_, np.nan)

    def cov(self, ddof: int = 1) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n - ddof > 0, self.c / (self.n - ddof), np.nan)

    def corr(self) -> np.ndarray:
        """Pearson correlation, pairwise complete like pandas; NaN where undefined."""
        denom = np.sqrt(self.m2 * self.m2.T)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where((self.n > 0) & (denom > 0), self.c / denom, np.nan)
        return np.clip(r, -1.0, 1.0)

    # --- persistence -----------------------------------------------------
    def to_bytes(self) -> bytes:
        head = json.dumps({"k": self.k}).encode()
        body = b"".join(np.ascontiguousarray(getattr(self, s), dtype="<f8").tobytes() for s in self.__slots__)
        return len(head).to_bytes(4, "little") + head + body

    @classmethod
    def from_bytes(cls, blob: bytes) -> "Moments":
        size = int.from_bytes(blob[:4], "little")
        k = json.loads(blob[4:4 + size])["k"]
        m = cls(k)
        pos = 4 + size
        for name in cls.__slots__:
            shape = (k, k) if name in ("n", "mean_", "m2", "c") else (k,)
            if pos >= len(blob):
                break
            length = 8 * int(np.prod(shape))
            setattr(m, name, np.frombuffer(blob[pos:pos + length], dtype="<f8").reshape(shape).copy())
            pos += length
        return m

    def select(self, idx) -> "Moments":
        """The moments of a subset of the columns (no recomputation needed)."""
        idx = np.asarray(idx, dtype=np.intp)
        out = Moments.__new__(Moments)
        for name in ("n", "mean_", "m2", "c"):
            setattr(out, name, getattr(self, name)[np.ix_(idx, idx)].copy())
        for name in ("min_", "max_", "shift"):
            setattr(out, name, getattr(self, name)[idx].copy())
        return out


def merge_all(parts: list[Moments], k: int) -> Moments:
    """The merge of many Moments at once (partitions' parts): Chan's formulas over a stacked axis,
    equal to adding them one by one up to rounding, and one numpy pass however many there are."""
    parts = [m for m in parts if m.k == k and m.n.any()]
    if not parts:
        return Moments(k)
    if len(parts) == 1:
        return parts[0].copy()
    n = np.stack([m.n for m in parts])
    shift = parts[0].shift
    mean = np.stack([m.mean_ + (m.shift - shift)[:, None] for m in parts])
    total = n.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.where(total > 0, (n * mean).sum(axis=0) / total, 0.0)
    d = np.where(n > 0, mean - centre, 0.0)
    out = Moments(k)
    out.shift = shift.copy()
    out.n = total
    out.mean_ = centre
    out.m2 = (np.stack([m.m2 for m in parts]) + n * d * d).sum(axis=0)
    out.c = (np.stack([m.c for m in parts]) + n * d * d.transpose(0, 2, 1)).sum(axis=0)
    out.min_ = np.min(np.stack([m.min_ for m in parts]), axis=0)
    out.max_ = np.max(np.stack([m.max_ for m in parts]), axis=0)
    return out
