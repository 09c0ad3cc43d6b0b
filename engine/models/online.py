"""Learning while the stream flows: predict each batch, score it, then learn from it (test-then-train).

`LiveMetrics` keeps prequential scores over the last `window` labelled rows and
runs Page-Hinkley on the error stream; deployments of any model use it.
`OnlineLearner` is an SGD model with a z-score scaler, both updated by
`partial_fit`, that resets itself when drift is detected so it relearns the
new concept instead of averaging the old one in.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.preprocessing import StandardScaler

from .drift import PageHinkley

# River's default threshold (50) fires about every 100,000 rows on a steady 5% error stream
# (bench/online.py); 100 still flags a jump from 5% to 50% errors within about 60 rows.
DRIFT_THRESHOLD = 100.0


class LiveMetrics:
    """Rolling prequential accuracy (or MAE) and a drift flag on the error rate."""

    def __init__(self, task: str = "classification", window: int = 1000, drift: PageHinkley | None = None):
        self.task = task
        self.window = window
        self.ring = np.zeros(window)         # per row: 1 for a miss (classification) or |error|
        self.filled = 0
        self.pos = 0
        self.rows = 0                        # labelled rows seen
        self.total_error = 0.0
        self.drift = drift or PageHinkley(threshold=DRIFT_THRESHOLD)
        self.drifts: list[int] = []          # row numbers (labelled rows, from 0) where drift fired

    def update(self, predicted, actual) -> np.ndarray:
        """Score one batch of predictions; returns the rows of this batch where drift fired."""
        predicted, actual = np.asarray(predicted), np.asarray(actual)
        if self.task == "classification":
            err = (predicted != actual).astype(np.float64)
            signal = err
        else:
            err = np.abs(predicted.astype(np.float64) - actual.astype(np.float64))
            scale = np.mean(self.ring[:self.filled]) if self.filled else (np.mean(err) if len(err) else 1.0)
            signal = np.minimum(err / (2 * scale + 1e-12), 1.0)     # errors twice the usual count as misses
        self._push(err)
        hits = self.drift.update(signal)
        self.drifts.extend((self.rows + hits).tolist())
        self.rows += len(err)
        self.total_error += float(err.sum())
        return hits

    def _push(self, err: np.ndarray) -> None:
        err = err[-self.window:]
        idx = (self.pos + np.arange(len(err))) % self.window
        self.ring[idx] = err
        self.pos = int((self.pos + len(err)) % self.window)
        self.filled = min(self.window, self.filled + len(err))

    def score(self) -> float | None:
        """Accuracy (classification) or mean absolute error over the window; None before any label."""
        if not self.filled:
            return None
        mean = float(self.ring[:self.filled].mean())
        return 1.0 - mean if self.task == "classification" else mean

    def status(self) -> dict:
        name = "accuracy" if self.task == "classification" else "mae"
        return {"metric": name, name: self.score(), "window": self.filled, "labelled": self.rows,
                "drifts": len(self.drifts), "last_drift_row": self.drifts[-1] if self.drifts else None,
                "drift": bool(self.drifts and self.rows - self.drifts[-1] <= self.window)}


class OnlineLearner:
    """SGD + scaler learning by `partial_fit`, batch by batch, test-then-train."""

    def __init__(self, task: str = "classification", classes=None, alpha: float = 1e-4, window: int = 1000,
                 reset_on_drift: bool = True, drift: PageHinkley | None = None):
        if task == "classification" and classes is None:
            raise ValueError("an online classifier needs its classes up front")
        self.task = task
        self.classes = np.asarray(classes) if classes is not None else None
        self.alpha = alpha
        self.reset_on_drift = reset_on_drift
        self.metrics = LiveMetrics(task, window, drift)
        self.resets = 0
        self._fresh()

    def _fresh(self) -> None:
        self.scaler = StandardScaler()
        self.model = (SGDClassifier(loss="log_loss", alpha=self.alpha, random_state=0)
                      if self.task == "classification" else SGDRegressor(alpha=self.alpha, random_state=0))
        self.fitted = False

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        Z = self.scaler.transform(X)
        return np.nan_to_num(Z, nan=0.0, posinf=0.0, neginf=0.0)      # missing -> the running mean

    def predict(self, X: np.ndarray) -> np.ndarray | None:
        return self.model.predict(self._scaled(X)) if self.fitted else None

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        if not self.fitted or self.task != "classification":
            return None
        return self.model.predict_proba(self._scaled(X))

    def learn(self, X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        """Predict the batch, score it, then learn from it; returns the predictions made before learning."""
        X = np.asarray(X, np.float64)
        pred = self.predict(X)
        start = 0
        if pred is not None:
            hits = self.metrics.update(pred, y)
            if len(hits) and self.reset_on_drift:
                self._fresh()
                self.resets += 1
                start = int(hits[-1]) + 1        # relearn from the rows after the change only
        if start < len(y):
            self.partial_fit(X[start:], y[start:])
        return pred

    def partial_fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.scaler.partial_fit(X)
        if self.task == "classification":
            self.model.partial_fit(self._scaled(X), y, classes=self.classes)
        else:
            self.model.partial_fit(self._scaled(X), y)
        self.fitted = True

    def status(self) -> dict:
        return {**self.metrics.status(), "resets": self.resets}
