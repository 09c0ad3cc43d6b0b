"""Mergeable count, mean and co-moment state of k columns, NaN-aware and pairwise.

Every statistic the windows, buckets and cumulative views report is derived from a
`Moments` value. Partial results merge exactly with the parallel formulas of
Chan, Golub & LeVeque (1979), so batches, window chunks or partitions computed on
other machines combine into the same numbers a single pass would give.

Missing values follow pandas: per-column statistics skip them, and each pair
(i, j) of the covariance/correlation uses only rows where both are present. So
the pair state is kept per pair: for pair (i, j), ``n[i, j]`` rows, ``mean[i, j]``
and ``m2[i, j]`` of column i over those rows, and the co-moment ``c[i, j]``.

Pair state grows with the square of the columns (4 x 8 bytes per pair), so it is
kept for the first `pairs` columns only (PAIR_LIMIT, 200 by default): covariance
and correlation cover those; count, mean, var, std, min and max (``count_``,
``cmean``, ``cm2``, ``min_``, ``max_``) cover every column at 8 bytes each.

Means are stored relative to a per-column ``shift`` (the first batch's mean), so
values around 1e9 with a spread of 1 keep their digits through every merge; an
absolute mean near 1e9 could not hold more than about 1e-7 of them.
"""
from __future__ import annotations

import json

import numpy as np

PAIR_LIMIT = 200      # numeric columns whose pairs (covariance, correlation) are kept

_PAIRS = ("n", "mean_", "m2", "c")                              # (p, p)
_COLUMNS = ("count_", "cmean", "cm2", "min_", "max_", "shift")  # (k,)


def _merge(na, ma, m2a, nb, mb, m2b):
    """Chan's merge of (count, mean, M2) parts of any shape: (n, mean, m2, d, f) where d is the
    difference of the means and f = na * nb / n, for a co-moment update of d * d.T * f."""
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(n > 0, nb / n, 0.0)
        f = np.where(n > 0, na * nb / n, 0.0)
    d = np.where(nb > 0, np.where(na > 0, mb - ma, 0.0), 0.0)
    return n, np.where(na > 0, ma + d * w, mb), m2a + m2b + d * d * f, d, f


def _unmerge(n, mean, m2, nb, mb, m2b):
    """The inverse of `_merge`: (na, mean_a, m2a, d, f) of the rows left after removing part b."""
    na = n - nb
    if np.any(na < 0):
        raise ValueError("cannot subtract more rows than were added")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_a = np.where(na > 0, (n * mean - nb * mb) / na, 0.0)
        f = np.where(n > 0, na * nb / n, 0.0)
    d = np.where((na > 0) & (nb > 0), mb - mean_a, 0.0)
    return na, mean_a, np.where(na > 0, np.maximum(m2 - m2b - d * d * f, 0.0), 0.0), d, f


def _arrays(body: bytes, shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
    """Float64 arrays stored one after another in `body`, in the order and shapes given."""
    out, pos = {}, 0
    for name, shape in shapes.items():
        length = 8 * int(np.prod(shape))
        out[name] = np.frombuffer(body[pos:pos + length], dtype="<f8").reshape(shape).copy()
        pos += length
    return out


class Moments:
    """Count, means and co-moments of k columns; merge with += (Chan et al., 1979).

    >>> m = Moments.of(np.array([[1.0], [3.0]]))
    >>> float(m.var()[0])
    2.0
    >>> m += Moments.of(np.array([[5.0]]))
    >>> float(m.mean()[0]), float(m.var()[0])
    (3.0, 4.0)
    """

    __slots__ = _PAIRS + _COLUMNS

    def __init__(self, k: int, pairs: int | None = None):
        p = min(k, PAIR_LIMIT if pairs is None else pairs)
        for name in ("count_", "cmean", "cm2", "shift"):
            setattr(self, name, np.zeros(k))
        self.min_ = np.full(k, np.inf)
        self.max_ = np.full(k, -np.inf)
        self.c = np.zeros((p, p))
        self._share_pairs(p)

    def _share_pairs(self, p: int) -> None:
        """n, mean_ and m2 of every pair as read-only views of the first column's values: what they are
        when nothing is missing, at no memory (3 of the 4 p x p arrays) and merged as columns."""
        for pair, col in (("n", "count_"), ("mean_", "cmean"), ("m2", "cm2")):
            setattr(self, pair, np.broadcast_to(getattr(self, col)[:p, None], (p, p)))

    @property
    def shared(self) -> bool:
        """Whether the pair counts, means and M2 are views of the columns' (see `_share_pairs`)."""
        return all(getattr(self, pair).strides[1] == 0 for pair in ("n", "mean_", "m2"))

    @property
    def k(self) -> int:
        return len(self.count_)

    @property
    def pairs(self) -> int:
        """How many leading columns covariance and correlation cover."""
        return self.n.shape[0]

    @classmethod
    def of(cls, X: np.ndarray, pairs: int | None = None) -> "Moments":
        """Moments of the rows of X (n x k), vectorised; NaN marks a missing value."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError("Moments.of expects a 2-D array")
        k = X.shape[1]
        m = cls(k, pairs)
        if X.shape[0] == 0 or k == 0:
            return m
        total = X.sum(axis=0)
        if np.isfinite(total).all():       # the common case, nothing missing: no masks, fewer passes
            return m._of_complete(X, total)
        valid = ~np.isnan(X)
        complete = bool(valid.all())
        V = valid.astype(np.float64)
        counts = V.sum(axis=0)
        # Shift by each column's own mean first: co-moments of values around 1e9
        # with a small spread would otherwise cancel catastrophically.
        with np.errstate(invalid="ignore", divide="ignore"):
            m.shift = np.where(counts > 0, np.where(valid, X, 0.0).sum(axis=0) / counts, 0.0)
        D = X - m.shift if complete else np.where(valid, X - m.shift, 0.0)
        s = D.sum(axis=0)                  # ~0, kept so pair and column values agree to the last digit
        with np.errstate(invalid="ignore", divide="ignore"):
            m.count_, m.cmean = counts, np.where(counts > 0, s / counts, 0.0)
        m.cm2 = np.maximum((D * D).sum(axis=0) - s * m.cmean, 0.0)
        m.min_ = np.where(counts > 0, np.min(np.where(valid, X, np.inf), axis=0), np.inf)
        m.max_ = np.where(counts > 0, np.max(np.where(valid, X, -np.inf), axis=0), -np.inf)
        p = m.pairs
        Dp = D[:, :p]
        if complete:
            return m._complete_pairs(Dp, s)
        Vp = V[:, :p]
        n = Vp.T @ Vp                      # rows where both i and j are present
        sp = Dp.T @ Vp                     # sum of (x_i - shift_i) over pair (i, j)
        with np.errstate(invalid="ignore", divide="ignore"):
            d_mean = np.where(n > 0, sp / n, 0.0)
            m.n, m.mean_ = n, d_mean
            m.m2 = np.maximum(np.where(n > 0, (Dp * Dp).T @ Vp - sp * d_mean, 0.0), 0.0)
            m.c = np.where(n > 0, Dp.T @ Dp - sp * d_mean.T, 0.0)
        return m

    def _of_complete(self, X: np.ndarray, total: np.ndarray) -> "Moments":
        """`of` for rows with no missing (or infinite) value; `total` is their column sums."""
        n = X.shape[0]
        self.count_ = np.full(X.shape[1], float(n))
        self.shift = total / n
        D = X - self.shift
        s = D.sum(axis=0)
        self.cmean = s / n
        self.cm2 = np.maximum(np.einsum("ij,ij->j", D, D) - s * self.cmean, 0.0)
        self.min_, self.max_ = X.min(axis=0), X.max(axis=0)
        return self._complete_pairs(D[:, :self.pairs], s)

    def _complete_pairs(self, Dp: np.ndarray, s: np.ndarray) -> "Moments":
        """Pair state when every pair has every row: one product instead of four."""
        n, p = Dp.shape
        self._share_pairs(p)
        self.c = Dp.T @ Dp - np.outer(s[:p], s[:p]) / n
        return self

    def copy(self) -> "Moments":
        out = Moments.__new__(Moments)
        shared = self.shared
        for name in _COLUMNS + ("c",) if shared else self.__slots__:
            setattr(out, name, getattr(self, name).copy())
        if shared:
            out._share_pairs(self.pairs)
        return out

    def _rebase(self, other: "Moments") -> tuple[np.ndarray, np.ndarray]:
        """other's column and pair means relative to this value's shift."""
        if not self.count_.any():
            self.shift = other.shift.copy()
        delta = other.shift - self.shift
        return other.cmean + delta, other.mean_ + delta[:self.pairs, None]

    def __iadd__(self, other: "Moments") -> "Moments":
        cmean_b, mean_b = self._rebase(other)
        shared = self.shared and other.shared
        self.count_, self.cmean, self.cm2, d, f = _merge(self.count_, self.cmean, self.cm2,
                                                         other.count_, cmean_b, other.cm2)
        c = self.c + other.c
        if shared:         # the pairs' merge is the columns': only the co-moments' update is left
            p = self.pairs
            self._share_pairs(p)
            self.c = c + d[:p, None] * d[None, :p] * f[:p, None]
            self.min_ = np.minimum(self.min_, other.min_)
            self.max_ = np.maximum(self.max_, other.max_)
            return self
        self.n, self.mean_, self.m2, d, f = _merge(self.n, self.mean_, self.m2, other.n, mean_b, other.m2)
        self.c = c + d * d.T * f
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
        cmean_b, mean_b = self._rebase(other)
        self.count_, self.cmean, self.cm2, _, _ = _unmerge(self.count_, self.cmean, self.cm2,
                                                           other.count_, cmean_b, other.cm2)
        n, mean_a, m2, d, f = _unmerge(self.n, self.mean_, self.m2, other.n, mean_b, other.m2)
        self.c = np.where(n > 0, self.c - other.c - d * d.T * f, 0.0)
        self.n, self.mean_, self.m2 = n, mean_a, m2
        self.min_ = np.full(self.k, np.nan)
        self.max_ = np.full(self.k, np.nan)
        return self

    # --- reading ---------------------------------------------------------
    def count(self) -> np.ndarray:
        return self.count_.copy()

    def mean(self) -> np.ndarray:
        return np.where(self.count_ > 0, self.shift + self.cmean, np.nan)

    def var(self, ddof: int = 1) -> np.ndarray:
        n = self.count_
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n - ddof > 0, self.cm2 / (n - ddof), np.nan)

    def std(self, ddof: int = 1) -> np.ndarray:
        return np.sqrt(self.var(ddof))

    def min(self) -> np.ndarray:
        return np.where(self.count_ > 0, self.min_, np.nan)

    def max(self) -> np.ndarray:
        return np.where(self.count_ > 0, self.max_, np.nan)

    def cov(self, ddof: int = 1) -> np.ndarray:
        """(pairs x pairs): the first `pairs` columns."""
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(self.n - ddof > 0, self.c / (self.n - ddof), np.nan)
        # a column with itself is its variance: the per-column sum, so cov and var never differ in the last digits
        np.fill_diagonal(out, self.var(ddof)[:self.pairs])
        return out

    def corr(self) -> np.ndarray:
        """Pearson correlation of the first `pairs` columns, pairwise complete like pandas; NaN where undefined."""
        denom = np.sqrt(self.m2 * self.m2.T)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where((self.n > 0) & (denom > 0), self.c / denom, np.nan)
        r = np.clip(r, -1.0, 1.0)
        np.fill_diagonal(r, np.where(np.diagonal(denom) > 0, 1.0, np.nan))     # not 0.9999999999999992
        return r

    # --- persistence -----------------------------------------------------
    def _broadcast(self) -> bool:
        """Whether n, mean_ and m2 of every pair are those of its first column (nothing was missing):
        then they need not be stored, and the stored state is a quarter the size."""
        if self.shared:
            return True
        p = self.pairs
        return all(np.array_equal(getattr(self, pair), np.broadcast_to(getattr(self, col)[:p, None], (p, p)))
                   for pair, col in (("n", "count_"), ("mean_", "cmean"), ("m2", "cm2")))

    def to_bytes(self) -> bytes:
        broadcast = self._broadcast()
        head = json.dumps({"k": self.k, "p": self.pairs, **({"broadcast": True} if broadcast else {})}).encode()
        names = [s for s in self.__slots__ if not (broadcast and s in ("n", "mean_", "m2"))]
        body = b"".join(np.ascontiguousarray(getattr(self, s), dtype="<f8").tobytes() for s in names)
        return len(head).to_bytes(4, "little") + head + body

    @classmethod
    def from_bytes(cls, blob: bytes) -> "Moments":
        size = int.from_bytes(blob[:4], "little")
        head = json.loads(blob[4:4 + size])
        k, p, body = head["k"], head.get("p"), blob[4 + size:]
        m = cls(k, p)
        if p is None:          # stored before pairs were limited: k x k pair arrays, columns on their diagonals
            old = _arrays(body, {name: (k, k) if name in _PAIRS else (k,)
                                 for name in ("n", "mean_", "m2", "c", "min_", "max_", "shift")})
            p = m.pairs
            for name in _PAIRS:
                setattr(m, name, old[name][:p, :p].copy())
            m.count_, m.cmean, m.cm2 = (np.diag(old[name]).copy() for name in ("n", "mean_", "m2"))
            m.min_, m.max_, m.shift = old["min_"], old["max_"], old["shift"]
            return m
        broadcast = head.get("broadcast", False)
        names = [s for s in cls.__slots__ if not (broadcast and s in ("n", "mean_", "m2"))]
        for name, a in _arrays(body, {name: (p, p) if name in _PAIRS else (k,) for name in names}).items():
            setattr(m, name, a)
        if broadcast:
            m._share_pairs(p)
        return m

    def select(self, idx) -> "Moments":
        """The moments of a subset of the columns (no recomputation): pairs for the leading
        selected columns that have them."""
        idx = np.asarray(idx, dtype=np.intp)
        inside = idx < self.pairs
        p = len(idx) if inside.all() else int(np.argmin(inside))
        out = Moments.__new__(Moments)
        for name in _PAIRS:
            setattr(out, name, getattr(self, name)[np.ix_(idx[:p], idx[:p])].copy())
        for name in _COLUMNS:
            setattr(out, name, getattr(self, name)[idx].copy())
        return out


def _merge_many(n: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> tuple[np.ndarray, ...]:
    """Chan's merge of parts stacked on axis 0: (n, mean, m2) of the whole, and each part's n and its
    mean's distance to the whole's (for the co-moment update)."""
    total = n.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.where(total > 0, (n * mean).sum(axis=0) / total, 0.0)
    d = np.where(n > 0, mean - centre, 0.0)
    return total, centre, (m2 + n * d * d).sum(axis=0), d


def merge_all(parts: list[Moments], k: int) -> Moments:
    """The merge of many Moments at once (partitions' parts): Chan's formulas over a stacked axis,
    equal to adding them one by one up to rounding, and one numpy pass however many there are."""
    parts = [m for m in parts if m.k == k and m.count_.any()]
    if not parts:
        return Moments(k)
    if len(parts) == 1:
        return parts[0].copy()
    return merge_stacked({name: np.stack([getattr(m, name) for m in parts]) for name in Moments.__slots__}, k)


def merge_stacked(s: dict[str, np.ndarray], k: int) -> Moments:
    """merge_all of parts whose slots are already stacked on axis 0 (`s["n"]` is (parts, p, p), `s["count_"]`
    (parts, k), ...): what a reader of many partitions' snapshots gets without building a Moments each."""
    rows = s["count_"].any(axis=1)
    if not rows.all():
        s = {name: a[rows] for name, a in s.items()}
    out = Moments(k, s["n"].shape[1])
    if len(rows) == 0 or not rows.any():
        return out
    if len(s["count_"]) == 1:
        for name in Moments.__slots__:
            setattr(out, name, s[name][0].copy())
        return out
    out.shift = s["shift"][0].copy()
    delta = s["shift"] - out.shift                                         # (parts, k)
    out.count_, out.cmean, out.cm2, _ = _merge_many(s["count_"], s["cmean"] + delta, s["cm2"])
    p = out.pairs
    n = s["n"]
    out.n, out.mean_, out.m2, d = _merge_many(n, s["mean_"] + delta[:, :p, None], s["m2"])
    out.c = (s["c"] + n * d * d.transpose(0, 2, 1)).sum(axis=0)
    out.min_ = np.min(s["min_"], axis=0)
    out.max_ = np.max(s["max_"], axis=0)
    return out
