"""Learning while the stream flows: predict each batch, score it, then learn from it (test-then-train).

`LiveMetrics` keeps prequential scores over the last `window` labelled rows (the
task's headline, macro F1 or R², as the leaderboard ranks by; and accuracy or MAE)
and runs Page-Hinkley on the error stream; deployments of any model use it.
`OnlineLearner` is an SGD model with a z-score scaler, both updated by
`partial_fit`, that resets itself when drift is detected so it relearns the
new concept instead of averaging the old one in.
"""
from __future__ import annotations

import time

import numpy as np
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.preprocessing import StandardScaler

from .drift import PageHinkley
from .evaluate import HEADLINE

# River's default threshold (50) fires about every 100,000 rows on a steady 5% error stream
# (bench/online.py); 100 still flags a jump from 5% to 50% errors within about 60 rows.
DRIFT_THRESHOLD = 100.0
CURVE_POINTS = 600        # batches of live score history kept for the Models page


class LiveMetrics:
    """Rolling prequential accuracy (or MAE) and a drift flag on the error rate."""

    def __init__(self, task: str = "classification", window: int = 1000, drift: PageHinkley | None = None):
        self.task = task
        self.window = window
        self.ring = np.zeros(window)         # per row: 1 for a miss (classification) or |error|
        # per row, beside it: codes of the predicted and true class, or the predicted and true value
        self.pred_ring = np.zeros(window, np.int64 if task == "classification" else np.float64)
        self.true_ring = np.zeros(window, np.int64 if task == "classification" else np.float64)
        self.codes: dict = {}                # class label -> code in the rings
        self.filled = 0
        self.pos = 0
        self.rows = 0                        # labelled rows seen
        self.total_error = 0.0
        self.drift = drift or PageHinkley(threshold=DRIFT_THRESHOLD)
        self.drifts: list[int] = []          # row numbers (labelled rows, from 0) where drift fired
        # (labelled rows so far, windowed headline score, epoch seconds) after each batch, newest last; replaced
        # whole so a reader on another thread always sees a complete tuple
        self.curve: tuple = ()

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
        self._push(err, *self._pair(predicted, actual))
        hits = self.drift.update(signal)
        self.drifts.extend((self.rows + hits).tolist())
        self.rows += len(err)
        self.total_error += float(err.sum())
        if len(err):
            self.curve = self.curve[-(CURVE_POINTS - 1):] + ((self.rows, self.headline(), time.time()),)
        return hits

    def _pair(self, predicted: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted and true values as the rings keep them (class labels as small integer codes)."""
        if self.task != "classification":
            return predicted.astype(np.float64), actual.astype(np.float64)
        both = np.concatenate([predicted, actual])
        try:
            labels, inverse = np.unique(both, return_inverse=True)
        except TypeError:                    # labels of mixed types do not sort; their text does
            labels, inverse = np.unique(both.astype(str), return_inverse=True)
        for label in labels:                 # a few classes, not rows
            self.codes.setdefault(label, len(self.codes))
        code = np.array([self.codes[label] for label in labels], np.int64)[inverse]
        return code[:len(predicted)], code[len(predicted):]

    def _push(self, err: np.ndarray, pred: np.ndarray, true: np.ndarray) -> None:
        err, pred, true = err[-self.window:], pred[-self.window:], true[-self.window:]
        idx = (self.pos + np.arange(len(err))) % self.window
        self.ring[idx] = err
        self.pred_ring[idx], self.true_ring[idx] = pred, true
        self.pos = int((self.pos + len(err)) % self.window)
        self.filled = min(self.window, self.filled + len(err))

    def score(self) -> float | None:
        """Accuracy (classification) or mean absolute error over the window; None before any label."""
        if not self.filled:
            return None
        mean = float(self.ring[:self.filled].mean())
        return 1.0 - mean if self.task == "classification" else mean

    def headline(self) -> float | None:
        """Macro F1 (classification: over the classes predicted or seen in the window) or R² over the window."""
        if not self.filled:
            return None
        pred, true = self.pred_ring[:self.filled], self.true_ring[:self.filled]
        if self.task == "classification":
            n = len(self.codes)
            tp = np.bincount(true[pred == true], minlength=n)
            both = np.bincount(pred, minlength=n) + np.bincount(true, minlength=n)
            return float(np.mean(2 * tp[both > 0] / both[both > 0]))
        total = float(np.sum((true - true.mean()) ** 2))
        return 1.0 - float(np.sum((true - pred) ** 2)) / total if self.filled > 1 and total > 0 else None

    def status(self) -> dict:
        name = "accuracy" if self.task == "classification" else "mae"
        main, label = HEADLINE[self.task]
        return {"metric": main, "metric_label": label, main: self.headline(), name: self.score(),
                "window": self.filled, "labelled": self.rows,
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
