"""A model deployed onto a stream: predicts every batch on the ingest thread, scores labelled rows.

Predictions are stored beside the rows (table `predictions_<stream id>`, keyed
by `_rid`) in the same transaction as the batch. A row that carries the target
is a label arriving: the prediction made for it is scored (test-then-train) and
an online learner then learns from it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from .data import column_kinds, target_values
from .online import LiveMetrics, OnlineLearner
from .stored import PREDICTION_SCHEMA


def predictions_table(stream_id: int) -> str:
    return f"predictions_{int(stream_id)}"


@dataclass
class Predicted:
    labels: np.ndarray | None           # per row; None when the model cannot predict yet
    proba: np.ndarray | None


class Deployment:
    def __init__(self, model_id: str, card: dict, model=None, learner: OnlineLearner | None = None,
                 window: int = 1000):
        self.model_id = model_id
        self.card = card
        self.model = model
        self.learner = learner
        spec = card.get("spec") or {}
        self.task = spec.get("task") or ("classification" if card.get("classes") is not None else "regression")
        self.target = spec.get("target")
        feats = card["features"]
        self.numeric = [f["name"] for f in feats if f.get("role") != "categorical"]
        self.categorical = [f["name"] for f in feats if f.get("role") == "categorical"]
        self.classes = card.get("classes")
        self.metrics = learner.metrics if learner is not None else LiveMetrics(self.task, window)
        self.predicted = 0
        self.since = time.time()     # counts start here: at deployment, or again when the engine restarts

    @property
    def name(self) -> str:
        return self.card.get("name") or self.model_id

    def check(self, kinds: dict[str, str]) -> None:
        """A clear error when the stream lacks a feature or has it with another kind."""
        from .data import check_features
        check_features(kinds, self.numeric, self.categorical, "the stream")
        for f in self.card["features"]:
            want = f.get("kind")
            if want and kinds[f["name"]] != want and not (want in ("number", "bool") and
                                                          kinds[f["name"]] in ("number", "bool")):
                raise UserError(f"feature {f['name']!r} is {kinds[f['name']]} in the stream but the model "
                                f"was trained on {want}")

    # --- ingest thread -------------------------------------------------------------
    def apply(self, table: pa.Table) -> Predicted:
        """Predict a batch (after the stream's pipeline), then score and learn from its labelled rows."""
        if table.num_rows == 0:
            return Predicted(None, None)
        self.check(column_kinds(table))
        if self.learner is not None:
            X = self._matrix(table)
            labels = self.learner.predict(X)
            proba = self.learner.predict_proba(X)
        else:
            from .data import features_frame
            frame = features_frame(table, self.numeric, self.categorical)
            frame = frame[[f["name"] for f in self.card["features"]]]
            labels = self.model.predict(frame)
            proba = self.model.predict_proba(frame) if hasattr(self.model, "predict_proba") else None
        self.predicted += table.num_rows
        self._learn(table, labels)
        return Predicted(labels, proba)

    def _matrix(self, table: pa.Table) -> np.ndarray:
        return np.column_stack([pc.cast(table.column(c), pa.float64()).to_numpy(zero_copy_only=False)
                                for c in self.numeric]).astype(np.float64)

    def _learn(self, table: pa.Table, labels) -> None:
        if not self.target or self.target not in table.column_names:
            return
        present = table.column(self.target).is_valid().to_numpy(zero_copy_only=False)
        if not present.any():
            return
        y = target_values(table.column(self.target).filter(pa.array(present)), self.task)
        if self.learner is not None:
            self.learner.learn(self._matrix(table)[present], y)      # scores, then learns
        elif labels is not None:
            self.metrics.update(np.asarray(labels)[present], y)

    def rows(self, rids: np.ndarray, predicted: Predicted) -> pa.Table | None:
        """The batch's rows of the predictions table."""
        if predicted.labels is None or not len(rids):
            return None
        n = len(rids)
        labels = np.asarray(predicted.labels)
        numeric = self.task == "regression"
        proba = None
        if predicted.proba is not None:
            p = np.asarray(predicted.proba, np.float64)
            proba = pa.ListArray.from_arrays(pa.array(np.arange(0, p.size + 1, p.shape[1], dtype=np.int32)),
                                             pa.array(p.ravel()))
        return pa.table({
            "_rid": pa.array(rids, pa.int64()),
            "model": pa.array(np.full(n, self.model_id, dtype=object), pa.string()),
            "prediction": pc.cast(pa.array(labels), pa.string()) if not numeric else pa.nulls(n, pa.string()),
            "value": pa.array(labels.astype(np.float64)) if numeric else pa.nulls(n, pa.float64()),
            "proba": proba if proba is not None else pa.nulls(n, pa.list_(pa.float64())),
        }, schema=PREDICTION_SCHEMA)

    def status(self) -> dict:
        return {"name": self.name, "model_id": self.model_id, "task": self.task, "target": self.target,
                "online": self.learner is not None, "predicted": self.predicted, "since": self.since,
                "classes": self.classes,
                **self.metrics.status(), **({"resets": self.learner.resets} if self.learner else {})}
