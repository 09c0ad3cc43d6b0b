"""What to train: task, target, features, algorithm, and the scikit-learn pipeline built from it.

The model is one scikit-learn `Pipeline` holding the preprocessing it needs at
prediction time (imputation, scaling, one-hot encoding, optional top-k
selection), so a saved or exported model takes the raw columns.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.feature_selection import SelectKBest, f_classif, f_regression
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier, SGDRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR

from ..errors import UserError

TASKS = ("classification", "regression")

# algorithm -> (classifier factory, regressor factory); each takes the spec's params.
# SVMs get probabilities from a sigmoid calibration on internal folds (SVC(probability=True)
# is deprecated in scikit-learn 1.9).
ALGORITHMS = {
    "logreg": (lambda p: LogisticRegression(C=p.get("C", 1.0), max_iter=p.get("max_iter", 1000)), None),
    "ridge": (None, lambda p: Ridge(alpha=p.get("alpha", 1.0))),
    "svm": (lambda p: CalibratedClassifierCV(SVC(C=p.get("C", 1.0), gamma=p.get("gamma", "scale")),
                                             ensemble=False, cv=3),
            lambda p: SVR(C=p.get("C", 1.0), gamma=p.get("gamma", "scale"))),
    "svm-linear": (lambda p: CalibratedClassifierCV(LinearSVC(C=p.get("C", 1.0)), ensemble=False, cv=3),
                   lambda p: LinearSVR(C=p.get("C", 1.0), max_iter=p.get("max_iter", 5000))),
    "rf": (lambda p: RandomForestClassifier(n_estimators=p.get("n_estimators", 100), max_depth=p.get("max_depth"),
                                            min_samples_leaf=p.get("min_samples_leaf", 1),
                                            random_state=p.get("random_state", 0), n_jobs=1),
           lambda p: RandomForestRegressor(n_estimators=p.get("n_estimators", 100), max_depth=p.get("max_depth"),
                                           min_samples_leaf=p.get("min_samples_leaf", 1),
                                           random_state=p.get("random_state", 0), n_jobs=1)),
    "hgb": (lambda p: HistGradientBoostingClassifier(max_iter=p.get("max_iter", 100),
                                                     learning_rate=p.get("learning_rate", 0.1),
                                                     max_leaf_nodes=p.get("max_leaf_nodes", 31), random_state=0),
            lambda p: HistGradientBoostingRegressor(max_iter=p.get("max_iter", 100),
                                                    learning_rate=p.get("learning_rate", 0.1),
                                                    max_leaf_nodes=p.get("max_leaf_nodes", 31), random_state=0)),
    "sgd": (lambda p: SGDClassifier(loss="log_loss", alpha=p.get("alpha", 1e-4), random_state=0),
            lambda p: SGDRegressor(alpha=p.get("alpha", 1e-4), random_state=0)),
}

DENSE_ONLY = {"hgb"}          # algorithms that take no sparse input


def algorithms_for(task: str) -> list[str]:
    """The algorithms that do `task`, in ALGORITHMS order."""
    return [a for a, makers in ALGORITHMS.items() if makers[TASKS.index(task)] is not None]


@dataclass(frozen=True)
class ModelSpec:
    task: str
    target: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    algorithm: str = "logreg"
    params: dict = field(default_factory=dict)
    k_best: int | None = None          # keep the top k encoded features (SelectKBest, F-test)
    cv: int = 5
    cv_kind: str = "time"              # "time" (TimeSeriesSplit) or "stratified" (StratifiedKFold)
    holdout: float = 0.2               # newest share of the rows kept for the final evaluation

    def __post_init__(self):
        if self.task not in TASKS:
            raise UserError(f"unknown task {self.task!r}; use classification or regression")
        if self.algorithm not in ALGORITHMS:
            raise UserError(f"unknown model {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
        if ALGORITHMS[self.algorithm][TASKS.index(self.task)] is None:
            other = "ridge" if self.task == "regression" else "logreg"
            raise UserError(f"{self.algorithm} does not do {self.task}; use {other}")
        if not self.numeric and not self.categorical:
            raise UserError("the model needs at least one feature column")
        if self.target in self.features:
            raise UserError(f"the target {self.target!r} cannot also be a feature")
        if self.cv_kind not in ("time", "stratified"):
            raise UserError(f"unknown cross-validation {self.cv_kind!r}; use time or stratified")
        if self.cv_kind == "stratified" and self.task != "classification":
            raise UserError("stratified folds need a classification target")
        if self.cv < 2:
            raise UserError(f"cross-validation needs at least 2 folds, got {self.cv}")
        if not 0 < self.holdout < 1:
            raise UserError(f"the holdout share must be between 0 and 1, got {self.holdout}")
        if self.k_best is not None and self.k_best < 1:
            raise UserError(f"k best must be at least 1, got {self.k_best}")

    @property
    def features(self) -> list[str]:
        return list(self.numeric) + list(self.categorical)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["numeric"], d["categorical"] = list(self.numeric), list(self.categorical)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known["numeric"] = tuple(known.get("numeric", ()))
        known["categorical"] = tuple(known.get("categorical", ()))
        return cls(**known)

    def with_(self, **changes) -> "ModelSpec":
        return ModelSpec.from_dict({**self.to_dict(), **changes})


def estimator(spec: ModelSpec):
    return ALGORITHMS[spec.algorithm][TASKS.index(spec.task)](spec.params)


def preprocessor(spec: ModelSpec) -> ColumnTransformer:
    """Median imputation + z-score for numbers, one-hot for categories (unseen -> all zeros).

    Categories go straight to the encoder: a missing value is a category of its own,
    and skl2onnx cannot convert an imputer over strings.
    """
    parts = []
    if spec.numeric:
        parts.append(("num", Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                                       ("scale", StandardScaler())]), list(spec.numeric)))
    if spec.categorical:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", dtype=np.float64), list(spec.categorical)))
    # many categories make the encoded rows sparse (under 30% filled), which gradient boosting refuses
    sparse = 0.0 if spec.algorithm in DENSE_ONLY else 0.3
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False, sparse_threshold=sparse)


def build(spec: ModelSpec) -> Pipeline:
    steps = [("prepare", preprocessor(spec))]
    if spec.k_best is not None:
        score = f_classif if spec.task == "classification" else f_regression
        steps.append(("select", SelectKBest(score, k=spec.k_best)))
    steps.append(("model", estimator(spec)))
    return Pipeline(steps)
