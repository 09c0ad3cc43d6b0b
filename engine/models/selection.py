"""Feature and model selection: rank features, search hyperparameters, compare models.

Searches and comparisons score with the same time-series folds as evaluation,
on the older rows only; the newest rows (the holdout) stay unseen until the
chosen model is scored on them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_selection import f_classif, f_regression, mutual_info_classif, mutual_info_regression
from sklearn.inspection import permutation_importance
from sklearn.model_selection import ParameterSampler

from ..errors import UserError
from . import evaluate
from .data import Rows
from .spec import ModelSpec
from .train import Trained, check_rows, fold_scores, train

# The small documented grid per algorithm that a search samples from.
GRIDS = {
    "logreg": {"C": [0.01, 0.1, 1.0, 10.0, 100.0]},
    "ridge": {"alpha": [0.1, 1.0, 10.0, 100.0]},
    "svm": {"C": [0.1, 1.0, 10.0], "gamma": ["scale", 0.01, 0.1]},
    "svm-linear": {"C": [0.01, 0.1, 1.0, 10.0]},
    "rf": {"n_estimators": [50, 100, 200], "max_depth": [None, 5, 10], "min_samples_leaf": [1, 5]},
    "hgb": {"learning_rate": [0.03, 0.1, 0.3], "max_leaf_nodes": [15, 31, 63], "max_iter": [100, 200]},
    "sgd": {"alpha": [1e-5, 1e-4, 1e-3, 1e-2]},
}
MAX_CANDIDATES = 20


# --- feature ranking -------------------------------------------------------------------

def _encoded(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """Numbers with missing values at the median; categories as integer codes (marked discrete)."""
    cols, discrete = [], []
    for c in rows.X.columns:
        s = rows.X[c]
        if s.dtype == object:
            codes, _ = pd.factorize(s, use_na_sentinel=False)
            cols.append(codes.astype(np.float64))
            discrete.append(True)
        else:
            v = s.to_numpy(np.float64)
            cols.append(np.where(np.isnan(v), np.nanmedian(v) if np.isfinite(v).any() else 0.0, v))
            discrete.append(False)
    return np.column_stack(cols), np.array(discrete)


def rank_features(rows: Rows, task: str, method: str = "mutual_info") -> list[dict]:
    """Each feature's score for predicting the target, best first.

    mutual_info: mutual information (nats; categories as discrete); f_test: univariate F
    statistic (categories by their integer codes, so only a rough guide for them).
    """
    if len(rows.y) < 5:
        raise UserError(f"{len(rows.y)} rows are too few to rank features")
    X, discrete = _encoded(rows)
    classify = task == "classification"
    if method == "mutual_info":
        fn = mutual_info_classif if classify else mutual_info_regression
        scores, pvalues = fn(X, rows.y, discrete_features=discrete, random_state=0), None
    elif method == "f_test":
        fn = f_classif if classify else f_regression
        scores, pvalues = fn(X, rows.y)
    else:
        raise UserError(f"unknown ranking method {method!r}; use mutual_info or f_test")
    scores = np.nan_to_num(np.asarray(scores, float), nan=0.0)
    order = np.argsort(-scores, kind="stable")
    return [{"feature": rows.X.columns[i], "score": float(scores[i]),
             **({"p_value": float(pvalues[i])} if pvalues is not None else {})} for i in order]


def permutation_ranking(model, rows: Rows, task: str, holdout: float = 0.2, repeats: int = 5,
                        progress=None, kind: str = "time") -> list[dict]:
    """How much the holdout score drops when each raw column is shuffled; best first."""
    _, held = evaluate.holdout_rows(rows.y, holdout, kind)
    if progress:
        progress(0, 1, "permuting features")
    scoring = "f1_macro" if task == "classification" else "r2"
    r = permutation_importance(model, rows.X.iloc[held], rows.y[held], scoring=scoring, n_repeats=repeats,
                               random_state=0)
    order = np.argsort(-r.importances_mean, kind="stable")
    return [{"feature": rows.X.columns[i], "score": float(r.importances_mean[i]),
             "std": float(r.importances_std[i])} for i in order]


# --- hyperparameter search --------------------------------------------------------------

def candidates(spec: ModelSpec, n_iter: int) -> list[dict]:
    grid = GRIDS[spec.algorithm]
    size = int(np.prod([len(v) for v in grid.values()]))
    return list(ParameterSampler(grid, n_iter=min(n_iter, size, MAX_CANDIDATES), random_state=0))


def search(rows: Rows, spec: ModelSpec, method: str = "halving", n_iter: int = 8, progress=None) -> Trained:
    """Pick hyperparameters on the older rows' time-series folds, then train and score the best.

    random: every candidate on every fold. halving (successive halving): every candidate
    on the first folds' budget, then the better third on all folds, keeping search time
    bounded while the winner is judged on the full folds.
    """
    if method not in ("random", "halving"):
        raise UserError(f"unknown search {method!r}; use random or halving")
    check_rows(rows, spec)
    fit_at, _ = evaluate.holdout_rows(rows.y, spec.holdout, spec.cv_kind)
    X, y = rows.X.iloc[fit_at], rows.y[fit_at]
    cands = candidates(spec, n_iter)
    rounds = [(X, y, cands)]
    table: list[dict] = []
    total = len(cands) * spec.cv + (max(1, len(cands) // 3) * spec.cv if method == "halving" else 0)
    done = 0
    if method == "halving" and len(cands) > 2:
        # first round: the older half of the training rows (still time-ordered)
        half = max(2 * (spec.cv + 1), len(y) // 2)
        rounds = [(X.iloc[:half], y[:half], cands)]
    for rnd in range(2):
        Xr, yr, cs = rounds[-1]
        results = []
        for i, params in enumerate(cs):
            s = spec.with_(params={**spec.params, **params})
            def step(k, K, msg, i=i, n=len(cs)):
                if progress:
                    progress(done + k, total, f"candidate {i + 1} of {n}, {msg}")
            cv = fold_scores(s, Xr, yr, step, total=spec.cv)
            done += spec.cv
            results.append({"params": params, "mean": cv["mean"], "std": cv["std"], "scores": cv["scores"],
                            "rows": len(yr), "round": rnd + 1})
        results.sort(key=lambda r: -np.nan_to_num(r["mean"], nan=-np.inf))
        table = results + [r for r in table if r["params"] not in [x["params"] for x in results]]
        if method != "halving" or len(rounds[0][2]) <= 2 or rnd == 1:
            break
        keep = [r["params"] for r in results[:max(1, len(cs) // 3)]]
        rounds.append((X, y, keep))
    best = table[0]["params"]
    if progress:
        progress(total, total + 1, "training the best candidate")
    result = train(rows, spec.with_(params={**spec.params, **best}))
    result.report["search"] = {"method": method, "metric": result.report["cv"]["metric"], "grid": GRIDS[spec.algorithm],
                               "table": table, "best": best}
    return result


# --- comparison ---------------------------------------------------------------------------

def compare(rows: Rows, specs: list[ModelSpec], progress=None) -> list[Trained]:
    """Train each spec on the same rows, folds and holdout; best holdout score first."""
    if not specs:
        raise UserError("nothing to compare; pick at least one model")
    if len({(s.target, s.task, s.cv, s.cv_kind, s.holdout) for s in specs}) > 1:
        raise UserError("compared models must share the target, task, folds and holdout")
    out = []
    for i, s in enumerate(specs):
        def step(k, K, msg, i=i):
            if progress:
                progress(i * (s.cv + 1) + k, len(specs) * (s.cv + 1), f"model {i + 1} of {len(specs)}: {msg}")
        out.append(train(rows, s, step))
    main = evaluate.HEADLINE[specs[0].task][0]
    out.sort(key=lambda t: _descending(t.report["holdout"].get(main), t.report["cv"]["mean"]))
    return out


GAP = 0.15      # holdout and cross-validation scores further apart than this are flagged


def comparison_table(reports: list[dict]) -> list[dict]:
    """One row per model: its holdout (newest rows) score, cross-validation mean/std and baseline in the
    task's headline metric, and a warning when holdout and cross-validation disagree; best holdout first."""
    rows = []
    for r in reports:
        main = r["cv"]["metric"]
        holdout, cv = r["holdout"].get(main), r["cv"]["mean"]
        rows.append({"model": r.get("model_id"), "algorithm": r["algorithm"], "params": r.get("params", {}),
                     "metric": main, "metric_label": evaluate.metric_label(main),
                     "cv_mean": cv, "cv_std": r["cv"]["std"], "cv_kind": r["cv"].get("kind"),
                     "holdout": holdout, "baseline": r["baseline"].get(main),
                     "gap": None if holdout is None or cv is None else holdout - cv,
                     "warning": gap_warning(holdout, cv, r["cv"].get("kind"))})
    return sorted(rows, key=lambda x: _descending(x["holdout"], x["cv_mean"]))


def gap_warning(holdout: float | None, cv: float | None, kind: str | None = None) -> str | None:
    """A short reason when the holdout and cross-validation scores are further apart than GAP, else None.

    Not scaled by the folds' spread: folds that disagree that much (data sorted by class, say) are
    themselves a reason to look."""
    if holdout is None or cv is None or not np.isfinite(holdout - cv) or abs(holdout - cv) <= GAP:
        return None
    if holdout < cv:
        return ("holdout much worse than cross-validation: likely leakage in the folds"
                + (" (stratified folds mix future rows into training)" if kind == "stratified" else "")
                + " or overfitting, or the newest rows differ from the older ones")
    return "holdout much better than cross-validation: the newest rows may be easier or few; trust neither alone"


def _descending(first, second) -> tuple:
    return (-np.nan_to_num(first if first is not None else np.nan, nan=-np.inf),
            -np.nan_to_num(second if second is not None else np.nan, nan=-np.inf))
