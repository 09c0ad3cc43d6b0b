"""Train one model: cross-validate on the older rows, fit, score on the newest rows (the holdout).

The model kept is the one scored on the holdout, so its card's numbers describe
exactly the stored artefact.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..errors import UserError
from ..seams import Mapper, serial_map
from . import evaluate
from .data import Rows
from .spec import ModelSpec, build

Progress = Callable[[int, int, str], None]


@dataclass
class Trained:
    model: object          # the fitted sklearn Pipeline
    report: dict


def _quiet(progress: Progress | None) -> Progress:
    return progress or (lambda done, total, message: None)


def _plain(value) -> str:
    """A class as the user wrote it: 0, not np.int64(0)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def check_rows(rows: Rows, spec: ModelSpec) -> None:
    if len(rows.y) == 0:
        raise UserError(f"no rows with a value for the target {spec.target!r}"
                        + (f" ({rows.missing_target} rows have it missing)" if rows.missing_target else ""))
    if spec.task == "classification":
        classes = np.unique(rows.y)
        if len(classes) < 2:
            raise UserError(f"the target {spec.target!r} has one class only ({_plain(classes[0])}); "
                            f"a classifier needs at least two")


def fit(spec: ModelSpec, X, y, where: str = "training"):
    """A fresh pipeline fitted on X, y; scikit-learn's complaints become one-line user errors."""
    model = build(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            return model.fit(X, y)
        except ValueError as e:
            msg = str(e).splitlines()[0]
            if spec.task == "classification" and len(one := np.unique(y)) < 2:
                # a forest fits one class; a linear model refuses it in its own words ("np.int64(0)")
                raise UserError(f"{where} trains on one class only ({_plain(one[0])}): the older rows hold one "
                                f"class, as in a file sorted by its target; use stratified folds if the rows "
                                f"are not a time series, or fewer folds") from None
            if "class" in msg and spec.task == "classification":
                raise UserError(f"{where}: {msg} (a time-ordered fold saw one class only; "
                                f"use fewer folds, stratified folds, or more rows)") from None
            raise UserError(f"{where}: {msg}") from None


def fit_fold(spec: ModelSpec, X, y, splits: list, k: int) -> dict:
    """Fit on fold k's training rows, score on its test rows."""
    tr, te = splits[k]
    model = fit(spec, X.iloc[tr], y[tr], where=f"fold {k + 1} of {len(splits)}")
    return evaluate.score(model, X.iloc[te], y[te], spec.task)


def fold_scores(spec: ModelSpec, X, y, progress: Progress | None = None, offset: int = 0,
                total: int | None = None, map_folds: Mapper = serial_map) -> dict:
    """Cross-validation on X, y with the spec's folds; one fit per fold, fanned out by `map_folds`."""
    progress = _quiet(progress)
    splits = evaluate.folds(len(y), spec.cv, spec.cv_kind, y)
    total = total or len(splits)
    main = evaluate.HEADLINE[spec.task][0]
    second = "accuracy" if spec.task == "classification" else "rmse"

    # a partial of a module-level function: a cluster Mapper ships its arguments (the data) once
    folds = map_folds(functools.partial(fit_fold, spec, X, y, splits), range(len(splits)),
                      lambda i: progress(offset + i, total, f"fold {i + 1} of {len(splits)}"))
    scores = [s[main] if s[main] is not None else np.nan for s in folds]
    extra = [s[second] for s in folds]
    return {"kind": spec.cv_kind, "k": len(splits), "metric": main, **evaluate.fold_summary(scores),
            second: evaluate.fold_summary(extra)}


def train(rows: Rows, spec: ModelSpec, progress: Progress | None = None, map_folds: Mapper = serial_map) -> Trained:
    progress = _quiet(progress)
    check_rows(rows, spec)
    X, y = rows.X, rows.y
    fit_at, held = evaluate.holdout_rows(y, spec.holdout, spec.cv_kind)
    X_train, y_train, X_test, y_test = X.iloc[fit_at], y[fit_at], X.iloc[held], y[held]
    if spec.task == "classification" and len(np.unique(y_train)) < 2:
        raise UserError(f"the older {len(fit_at)} rows hold one class only; the newest rows kept for the "
                        f"holdout carry the others; train on a longer slice, or pick stratified folds if "
                        f"the rows are not a time series")
    cv = fold_scores(spec, X_train, y_train, progress, total=spec.cv + 1, map_folds=map_folds)
    progress(spec.cv, spec.cv + 1, "final fit")
    model = fit(spec, X_train, y_train)
    holdout = evaluate.score(model, X_test, y_test, spec.task)
    classes = getattr(model, "classes_", None)
    base = evaluate.baseline(y_train, y_test, spec.task, classes)
    progress(spec.cv + 1, spec.cv + 1, "done")
    report = {
        "task": spec.task, "algorithm": spec.algorithm, "params": dict(spec.params), "target": spec.target,
        "rows": {"used": len(y), "train": len(fit_at), "holdout": len(held), "missing_target": rows.missing_target,
                 "holdout_kind": "stratified" if spec.cv_kind == "stratified" else "newest"},
        "holdout": holdout, "baseline": base, "cv": cv,
    }
    return Trained(model, report)


def headline(report: dict) -> dict:
    """The numbers `train --json` leads with, then the full report."""
    h = report["holdout"]
    keys = ("accuracy", "precision", "recall", "f1", "roc_auc") if report["task"] == "classification" \
        else ("mae", "rmse", "r2")
    return {**{k: h.get(k) for k in keys}, "cv_scores": report["cv"]["scores"], "cv_mean": report["cv"]["mean"],
            "cv_std": report["cv"]["std"], "cv_metric": report["cv"]["metric"], **report}
