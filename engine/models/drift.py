"""Page-Hinkley change detection on a model's error stream, a whole batch at a time.

The same test as River's `drift.PageHinkley(mode="up")` (Page, 1954): with x̄ the
running mean of the values since the last reset,

    S_t = alpha * S_{t-1} + (x_t - x̄_t) - delta,    m_t = min(S_1..S_t)

and a change when S_t - m_t > threshold once `min_instances` values were seen;
the detector then starts afresh with the next value. River updates one value at
a time in Python; here the recurrence runs over the batch with
`scipy.signal.lfilter` and the running minimum with `np.minimum.accumulate`, so
Python only loops over detections. tests/test_models_online.py checks that the
detections fall on the same rows as River's.

>>> ph = PageHinkley(threshold=5.0, min_instances=10)
>>> ph.update(np.r_[np.zeros(100), np.ones(100)]).tolist()
[105]
"""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


class PageHinkley:
    def __init__(self, min_instances: int = 30, delta: float = 0.005, threshold: float = 50.0,
                 alpha: float = 1 - 0.0001):
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.seen = 0                  # values since the detector started, across resets
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.sum = 0.0
        self.min = np.inf

    def update(self, x: np.ndarray) -> np.ndarray:
        """Feed values in order; returns the positions in `x` where a change was detected."""
        x = np.asarray(x, np.float64)
        found = []
        start = 0
        while start < len(x):
            part = x[start:]
            n = self.n + np.arange(1, len(part) + 1)
            mean = (self.n * self.mean + np.cumsum(part)) / n
            s = lfilter([1.0], [1.0, -self.alpha], part - mean - self.delta, zi=[self.alpha * self.sum])[0]
            low = np.minimum(np.minimum.accumulate(s), self.min)
            hit = np.flatnonzero((n >= self.min_instances) & (s - low > self.threshold))
            if not len(hit):
                self.n, self.mean, self.sum, self.min = int(n[-1]), float(mean[-1]), float(s[-1]), float(low[-1])
                break
            found.append(start + int(hit[0]))
            self._reset()
            start += int(hit[0]) + 1
        self.seen += len(x)
        return np.array(found, dtype=np.int64)
