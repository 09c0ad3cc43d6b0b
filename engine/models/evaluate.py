"""Scores of a model: a time-ordered (or, with stratified folds, stratified) holdout, cross-validation folds, and a trivial baseline beside each.

Folds never look ahead by default: `TimeSeriesSplit` trains on older rows and
scores on the rows right after them. Stratified k-fold is there on request.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.model_selection import StratifiedKFold, TimeSeriesSplit

from ..errors import UserError

# the one score per task that ranks models and heads every table and card: macro F1 (every class counts the
# same), R² (share of the target's variance explained)
HEADLINE = {"classification": ("f1", "macro F1"), "regression": ("r2", "R²")}
ROC_POINTS = 200          # ROC and precision-recall curves are thinned to about this many points


def metric_label(key: str) -> str:
    return dict(HEADLINE.values()).get(key, key)


def _num(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _label(v):
    return v.item() if isinstance(v, np.generic) else v


def classification(y_true, y_pred, proba=None, classes=None) -> dict:
    """Accuracy; precision, recall, F1 (macro, weighted, per class); ROC AUC and curve; confusion matrix.

    Top-level precision/recall/f1 are macro averages (every class counts the same).
    """
    classes = np.asarray(classes if classes is not None else np.unique(np.concatenate([y_true, y_pred])))
    out = {"accuracy": skm.accuracy_score(y_true, y_pred), "average": "macro"}
    # averages over the classes these rows hold or the model predicted, as scikit-learn's own scores do: a class
    # the rows never show, never predicted, would count as F1 0 (a perfect holdout of one class read 0.33)
    seen = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]))
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=seen, average=avg,
                                                         zero_division=0)
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = p, r, f
    out["precision"], out["recall"], out["f1"] = out["precision_macro"], out["recall_macro"], out["f1_macro"]
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=classes, average=None, zero_division=0)
    out["per_class"] = {str(_label(c)): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                         "support": int(s[i])} for i, c in enumerate(classes)}
    out["classes"] = [_label(c) for c in classes]
    out["confusion"] = confusion(y_true, y_pred, classes)
    out.update(scores_of(y_true, proba, classes))
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in out.items()}


def confusion(y_true, y_pred, classes) -> list[list[int]]:
    """Rows: true class, columns: predicted, over the model's classes. Rows of a class the model never saw (a
    time fold's model may know two of four) are left out; scikit-learn refuses when no row is of its classes."""
    index = pd.Index(classes)
    t, p = index.get_indexer(np.asarray(y_true)), index.get_indexer(np.asarray(y_pred))    # -1: not a class
    known = (t >= 0) & (p >= 0)
    m = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(m, (t[known], p[known]), 1)
    return m.tolist()


def scores_of(y_true, proba, classes) -> dict:
    """ROC AUC (binary; one-vs-rest macro for more classes), the ROC and precision-recall curves and the
    counts behind precision/recall/F1 at each threshold (binary), from the predicted probabilities."""
    out = {"roc_auc": None, "roc": None, "roc_auc_note": None}
    present = np.unique(y_true)
    if proba is None:
        out["roc_auc_note"] = "the model gives no probabilities"
        return out
    if len(present) < 2:
        out["roc_auc_note"] = f"the holdout rows hold one class only ({_label(present[0])!r}); ROC AUC needs two"
        return out
    if len(classes) == 2:
        positive = y_true == classes[1]
        if positive.all() or not positive.any():      # a fold's model that saw two of more classes
            out["roc_auc_note"] = (f"the rows hold only one of the model's two classes "
                                   f"({_label(classes[0])!r}, {_label(classes[1])!r}); ROC AUC needs both")
            return out
        out["roc_auc"] = skm.roc_auc_score(positive, proba[:, 1])
        fpr, tpr, _ = skm.roc_curve(positive, proba[:, 1])
        keep = _thin(len(fpr))
        out["roc"] = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}
        precision, recall, _ = skm.precision_recall_curve(positive, proba[:, 1])
        keep = _thin(len(precision))
        out["pr"] = {"precision": precision[keep].tolist(), "recall": recall[keep].tolist(),
                     "average_precision": float(skm.average_precision_score(positive, proba[:, 1]))}
        out["thresholds"] = threshold_counts(positive, proba[:, 1])
        return out
    # one-vs-rest per class, averaged over the classes the holdout holds (a class absent from it has no ROC)
    seen = [i for i, c in enumerate(classes) if 0 < np.sum(y_true == c) < len(y_true)]
    if not seen:
        out["roc_auc_note"] = "no class the model knows is in the holdout rows beside another"
        return out
    out["roc_auc"] = float(np.mean([skm.roc_auc_score(y_true == classes[i], proba[:, i]) for i in seen]))
    out["roc_auc_note"] = (f"one-vs-rest, macro average over the {len(seen)} class{'es' * (len(seen) > 1)}" +
                           (f" of {len(classes)} that the holdout rows hold" if len(seen) < len(classes) else ""))
    return out


THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)     # the threshold slider's steps


def threshold_counts(positive: np.ndarray, score: np.ndarray) -> dict:
    """True/false positives and negatives when "score >= t" predicts the positive class, for each t in THRESHOLDS."""
    pos, neg = np.sort(score[positive]), np.sort(score[~positive])
    tp = len(pos) - np.searchsorted(pos, THRESHOLDS, side="left")
    fp = len(neg) - np.searchsorted(neg, THRESHOLDS, side="left")
    return {"t": THRESHOLDS.tolist(), "tp": tp.tolist(), "fp": fp.tolist(), "fn": (len(pos) - tp).tolist(),
            "tn": (len(neg) - fp).tolist()}


def at_threshold(holdout: dict, t: float) -> dict:
    """Precision, recall, F1 and accuracy of the positive class at threshold t (a step of THRESHOLDS), from a
    binary holdout's stored counts."""
    c = holdout.get("thresholds")
    if not c:
        raise UserError("this model's evaluation has no threshold counts: they exist for two classes; "
                        "train it again to get them")
    k = int(np.argmin(np.abs(np.asarray(c["t"]) - t)))
    tp, fp, fn, tn = c["tp"][k], c["fp"][k], c["fn"][k], c["tn"][k]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"threshold": c["t"][k], "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "accuracy": (tp + tn) / (tp + fp + fn + tn), "predicted_positive": tp + fp,
            "tp": tp, "fp": fp, "fn": fn, "tn": tn, "positive": holdout["classes"][1]}


def _thin(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, ROC_POINTS)).astype(int))


def regression(y_true, y_pred) -> dict:
    resid = np.asarray(y_true, float) - np.asarray(y_pred, float)
    keep = np.unique(np.linspace(0, len(resid) - 1, min(len(resid), 1000)).astype(int)) if len(resid) else []
    return {"mae": float(skm.mean_absolute_error(y_true, y_pred)),
            "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
            "r2": _num(skm.r2_score(y_true, y_pred)) if len(resid) > 1 else None,
            "residuals": {"predicted": np.asarray(y_pred, float)[keep].tolist(), "residual": resid[keep].tolist()}}


def score(model, X, y, task: str) -> dict:
    pred = model.predict(X)
    if task == "regression":
        return regression(y, pred)
    proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
    with warnings.catch_warnings():
        # a fold whose model saw one class (a forest accepts that) gives a 1x1 confusion matrix; the report
        # says what its scores mean, scikit-learn's warning on stderr adds nothing
        warnings.simplefilter("ignore", UserWarning)
        return classification(y, pred, proba, model.classes_)


def baseline(y_train, y_test, task: str, classes=None) -> dict:
    """The trivial model: the training majority class, or the training mean."""
    if task == "regression":
        return regression(y_test, np.full(len(y_test), float(np.mean(y_train))))
    values, counts = np.unique(y_train, return_counts=True)
    majority = values[np.argmax(counts)]
    pred = np.full(len(y_test), majority, dtype=np.asarray(y_train).dtype)
    proba = np.tile((np.asarray(classes) == majority).astype(float), (len(y_test), 1)) if classes is not None \
        else None
    out = classification(y_test, pred, proba, classes)
    out["predicts"] = _label(majority)
    return out


# --- splits -------------------------------------------------------------------------

def holdout_size(n: int, share: float) -> int:
    """Rows in a holdout of `share` of n rows (at least one); refused when under two would be left to train."""
    size = max(1, int(round(n * share)))
    if n - size < 2:
        raise UserError(f"{n} rows are too few to train and keep a holdout; add rows")
    return size


def holdout_split(n: int, share: float) -> int:
    """Index where the newest `share` of n rows starts."""
    return n - holdout_size(n, share)


def holdout_rows(y, share: float, kind: str = "time") -> tuple[np.ndarray, np.ndarray]:
    """Positions of the rows to train on and of the holdout, each in row order.

    With time folds the holdout is the newest `share`. With stratified folds the rows are taken as
    exchangeable, so the holdout is a seeded random `share` of each class (a class of one row stays
    in training): a file sorted by its target then still gets every class in its holdout.
    """
    n = len(y)
    if kind != "stratified":
        cut = holdout_split(n, share)
        return np.arange(cut), np.arange(cut, n)
    holdout_size(n, share)          # too few rows are refused as with time folds, whatever the classes
    rng = np.random.default_rng(0)
    held = np.zeros(n, bool)
    codes = pd.factorize(pd.Series(np.asarray(y)))[0]
    for c in np.unique(codes):
        idx = np.flatnonzero(codes == c)
        take = int(round(len(idx) * share)) if len(idx) > 1 else 0
        held[rng.choice(idx, size=min(take, len(idx) - 1), replace=False)] = True
    if not held.any() or held.sum() > n - 2:
        raise UserError(f"{n} rows are too few to train and keep a holdout; add rows")
    return np.flatnonzero(~held), np.flatnonzero(held)


def folds(n: int, k: int, kind: str, y=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs: time-ordered by default (never training on later rows)."""
    need = 2 * (k + 1) if kind == "time" else 2 * k
    if n < need:
        raise UserError(f"{n} training rows are too few for {k} folds (need at least {need}); "
                        f"use fewer folds or more rows")
    if kind == "time":
        return list(TimeSeriesSplit(n_splits=k).split(np.zeros(n)))
    _, counts = np.unique(y, return_counts=True)
    if counts.min() < k:
        raise UserError(f"the rarest class has {counts.min()} rows, too few for {k} stratified folds")
    return list(StratifiedKFold(n_splits=k).split(np.zeros(n), y))


def fold_summary(scores: list[float]) -> dict:
    a = np.asarray(scores, float)
    return {"scores": a.tolist(), "mean": float(a.mean()) if len(a) else None,
            "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}
