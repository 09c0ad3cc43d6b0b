"""Prequential online learning: Rivulet's OnlineLearner beside River, on the same rows, in one run.

    python bench/online.py [--rows 1000000] [--river-rows 100000]

Rivulet predicts each batch of 1,000 rows x 10 features, scores it (rolling
accuracy, Page-Hinkley drift) and then learns from it with `partial_fit`
(StandardScaler + SGDClassifier). River's StandardScaler | LogisticRegression
does the same one row at a time (predict_one, then learn_one) over the first
--river-rows of the same rows. One core: BLAS threads are pinned to 1.
Prints a table (case, rows/s, prequential accuracy, ratio to Rivulet).
"""
from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from engine.models.online import OnlineLearner  # noqa: E402

BATCH = 1000


def make_rows(n: int, seed: int = 0):
    """10 features; the label's rule flips half-way (an abrupt concept change)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10)) * np.arange(1, 11) + np.arange(10) * 5
    w = rng.normal(size=10)
    y = ((X - np.arange(10) * 5) / np.arange(1, 11) @ w + 0.3 * rng.normal(size=n) > 0).astype(int)
    y[n // 2:] = 1 - y[n // 2:]
    return X, y


def rivulet(X, y) -> tuple[float, float, int]:
    learner = OnlineLearner("classification", classes=[0, 1], window=10_000)
    correct = 0
    t = time.perf_counter()
    for s in range(0, len(y), BATCH):
        pred = learner.learn(X[s:s + BATCH], y[s:s + BATCH])
        if pred is not None:
            correct += int((pred == y[s:s + BATCH]).sum())
    secs = time.perf_counter() - t
    return len(y) / secs, correct / (len(y) - BATCH), len(learner.metrics.drifts)


def river(X, y) -> tuple[float, float, int]:
    from river import drift, linear_model, preprocessing
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    ph = drift.PageHinkley(mode="up")
    names = [f"x{i}" for i in range(X.shape[1])]
    rows = [dict(zip(names, r)) for r in X.tolist()]       # conversion outside the timed loop
    labels = y.tolist()
    correct, drifts = 0, 0
    t = time.perf_counter()
    for x, label in zip(rows, labels):
        p = model.predict_one(x)
        if p is not None:
            hit = p == label
            correct += hit
            ph.update(0.0 if hit else 1.0)
            drifts += ph.drift_detected
        model.learn_one(x, label)
    secs = time.perf_counter() - t
    return len(labels) / secs, correct / len(labels), drifts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--river-rows", type=int, default=100_000)
    args = ap.parse_args()
    X, y = make_rows(args.rows)
    ours = rivulet(X, y)
    m = min(args.river_rows, args.rows)
    ours_small = rivulet(X[:m], y[:m]) if m != args.rows else ours
    theirs = river(X[:m], y[:m])
    print(f"# prequential predict + learn, batches of {BATCH} x {X.shape[1]} features, one core; "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{'case':64} {'rows/s':>12} {'accuracy':>9} {'drifts':>7} {'ratio':>7}")
    rows = [(f"Rivulet OnlineLearner ({args.rows:,} rows, batches of {BATCH})", ours),
            (f"Rivulet OnlineLearner ({m:,} rows, batches of {BATCH})", ours_small),
            (f"River StandardScaler | LogisticRegression ({m:,} rows, one at a time)", theirs)]
    for name, (rate, acc, drifts) in rows:
        print(f"{name:64} {rate:12,.0f} {acc:9.3f} {drifts:7d} {rate / ours_small[0]:7.3f}")


if __name__ == "__main__":
    main()
