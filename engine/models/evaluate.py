"""Scores of a model: time-ordered holdout, cross-validation folds, and a trivial baseline beside each.

Folds never look ahead by default: `TimeSeriesSplit` trains on older rows and
scores on the rows right after them. Stratified k-fold is there on request.
"""
from __future__ import annotations

import numpy as np
from sklearn import metrics as skm
from sklearn.model_selection import StratifiedKFold, TimeSeriesSplit

from ..errors import UserError

ROC_POINTS = 200          # ROC curves are thinned to about this many points


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
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=classes, average=avg,
                                                         zero_division=0)
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = p, r, f
    out["precision"], out["recall"], out["f1"] = out["precision_macro"], out["recall_macro"], out["f1_macro"]
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=classes, average=None, zero_division=0)
    out["per_class"] = {str(_label(c)): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                         "support": int(s[i])} for i, c in enumerate(classes)}
    out["classes"] = [_label(c) for c in classes]
    out["confusion"] = skm.confusion_matrix(y_true, y_pred, labels=classes).tolist()
    out["roc_auc"], out["roc"] = None, None
    present = np.unique(y_true)
    if proba is not None and len(present) >= 2 and set(present) <= set(classes.tolist()):
        if len(classes) == 2:
            out["roc_auc"] = skm.roc_auc_score(y_true == classes[1], proba[:, 1])
            fpr, tpr, _ = skm.roc_curve(y_true == classes[1], proba[:, 1])
            keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), ROC_POINTS)).astype(int))
            out["roc"] = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}
        elif len(present) == len(classes):
            out["roc_auc"] = skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes)
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in out.items()}


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

def holdout_split(n: int, share: float) -> int:
    """Index where the newest `share` of n rows starts."""
    cut = n - max(1, int(round(n * share)))
    if cut < 2:
        raise UserError(f"{n} rows are too few to train and keep a holdout; add rows")
    return cut


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
