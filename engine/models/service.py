"""The engine's model API (what the Models and Export pages call): slices, jobs, registry, deploy.

    engine.models.train("sensors", spec, slice={"last": 5000}) -> job id
    engine.models.jobs.get(job_id).to_dict()                     -> progress, state, result (model id)
    engine.models.registry.list()                                 -> model cards, newest first
    engine.deploy("sensors", model_id); engine.undeploy("sensors")
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from ..schema import whole_numbers
from .data import Rows, column_kinds, feature_roles, training_rows
from .deploy import Deployment
from .registry import Registry, make_card
from .spec import ModelSpec


class Models:
    def __init__(self, engine):
        self.engine = engine
        self.registry = Registry(engine.data_dir)
        self.jobs = engine.compute         # the engine's Compute (seams.py): jobs off the ingest path

    # --- training data -------------------------------------------------------------
    def history(self, stream: str, slice: dict | None = None) -> pa.Table:
        """Stored rows of a stream after its current pipeline, oldest first; columns the source wrote as
        integers are int64 while every value is whole (schema.whole_numbers), the other numbers float64.

        slice: None or {} for every retained row, {"last": N}, or {"start": t0, "end": t1}
        (epoch seconds or ISO 8601) on the stream's time column, else on ingest time.
        """
        s = self.engine._get(stream)
        slice = slice or {}
        last = slice.get("last")
        if last is not None and int(last) < 1:
            raise UserError(f"the slice needs at least one row, got last={last}")
        stored = self.engine.store.rows(s.id, last=int(last) if last else None)
        if stored.num_rows == 0:
            raise UserError(f"stream {stream!r} has no stored rows yet")
        table = s.pipeline.apply(stored, keep=("_rid", "_ingest"))
        if s.schema is not None:     # the stored integers where a step left them as they were: exact
            table = whole_numbers(table, s.pipeline.integers(s.schema), exact=stored)
        if "start" in slice or "end" in slice:
            # event time, as the stream's views use it (a pipeline's cast to time included), else arrival
            column = next((c for c in (getattr(s.operators, "time_column", None), s.source.time_column)
                           if c and c in table.column_names), "_ingest")
            t = _epoch(table.column(column))
            keep = np.ones(len(t), bool)
            if slice.get("start") is not None:
                keep &= t >= _seconds(slice["start"])
            if slice.get("end") is not None:
                keep &= t <= _seconds(slice["end"])
            table = table.filter(pa.array(keep))
            if table.num_rows == 0:
                raise UserError("no stored rows fall in that time range")
        return table

    def rows(self, stream: str, spec: ModelSpec, slice: dict | None = None) -> tuple[Rows, pa.Table]:
        table = self.history(stream, slice)
        return training_rows(table, spec.target, list(spec.numeric), list(spec.categorical), spec.task), table

    # --- jobs ------------------------------------------------------------------------
    def _saver(self, stream: str, spec_of, table: pa.Table, rows: Rows, slice, name: str | None):
        s = self.engine._get(stream)
        kinds = column_kinds(table)
        pipeline = json.loads(s.pipeline.to_json())
        training = {"stream": stream, "slice": slice or {"all": True}, "rows": len(rows.y),
                    "missing_target": rows.missing_target, "rid_range": rows.rid_range,
                    "time_range": rows.time_range}

        source_kinds = column_kinds(s.schema.arrow().empty_table()) if s.schema is not None else None

        def save(trained):
            spec = spec_of(trained)
            card = make_card(trained.model, spec, trained.report, kinds, training, pipeline, name, source_kinds)
            return self.registry.save(trained.model, card)
        return save

    def train(self, stream: str, spec: ModelSpec, slice: dict | None = None, name: str | None = None) -> str:
        """Start a training job; its result is the new model's id in the registry."""
        rows, table = self.rows(stream, spec, slice)
        save = self._saver(stream, lambda t: spec, table, rows, slice, name)
        return self.jobs.submit("train", {"rows": rows, "spec": spec.to_dict()}, f"train {spec.algorithm}", save)

    def search(self, stream: str, spec: ModelSpec, slice: dict | None = None, method: str = "halving",
               n_iter: int = 8, name: str | None = None) -> str:
        """A hyperparameter search job; the best candidate is trained, scored and stored."""
        rows, table = self.rows(stream, spec, slice)
        # named apart from the plain training of the same algorithm, which the table lists beside it
        name = name or f"{spec.algorithm} · searched"
        save = self._saver(stream, lambda t: spec.with_(params=t.report["params"]), table, rows, slice, name)
        return self.jobs.submit("search", {"rows": rows, "spec": spec.to_dict(), "method": method,
                                           "n_iter": n_iter}, f"search {spec.algorithm}", save)

    def compare(self, stream: str, specs: list[ModelSpec], slice: dict | None = None) -> str:
        """Train several specs on the same rows and folds; the result is the comparison table."""
        if not specs:
            raise UserError("nothing to compare; pick at least one model")
        rows, table = self.rows(stream, specs[0], slice)
        from .selection import comparison_table
        savers = {s.algorithm + json.dumps(s.params, sort_keys=True): s for s in specs}

        def save_all(results):
            reports = []
            for trained in results:
                key = trained.report["algorithm"] + json.dumps(trained.report["params"], sort_keys=True)
                spec = savers[key]
                model_id = self._saver(stream, lambda t: spec, table, rows, slice, None)(trained)
                reports.append({**trained.report, "model_id": model_id})
            return comparison_table(reports)
        return self.jobs.submit("compare", {"rows": rows, "specs": [s.to_dict() for s in specs]},
                                f"compare {len(specs)} models", save_all)

    def listed(self, stream: str, archived: bool = False) -> list[dict]:
        """Cards of the models to offer on a stream, newest first: those trained on it, and the imported ones
        whose features the stream has (with their kinds); archived ones only when asked."""
        kinds = self._kinds_or_none(stream)
        out = []
        for c in self.registry.list():
            if bool(c.get("archived")) != archived:
                continue
            training = c.get("training") or {}
            if training.get("stream") == stream and "imported" not in training:
                out.append(c)
            elif "imported" in training and kinds is not None and _misfit(c, kinds) is None:
                out.append(c)
        return out

    def misfit(self, stream: str, model_id: str) -> str | None:
        """Why the model cannot run on the stream's current columns (a feature missing or of another kind), or None."""
        return _misfit(self.registry.card(model_id), self._kinds(stream))

    def describe(self, model_id: str, name: str | None = None, note: str | None = None) -> dict:
        """Rename a model and/or set its note."""
        changes = {k: v for k, v in (("name", name), ("note", note)) if v is not None}
        return self.registry.update(model_id, **changes)

    def archive(self, model_id: str, archived: bool = True) -> dict:
        """Hide a model from the lists and the leaderboard (or bring it back); it stays stored and exportable."""
        return self.registry.update(model_id, archived=bool(archived))

    def delete(self, model_id: str) -> None:
        """Remove a stored model for good; a model deployed on a stream must be undeployed first."""
        for name in self.engine.names():
            d = self.engine._get(name).deployment
            if d is not None and d.model_id == model_id:
                raise UserError(f"{model_id} is deployed on {name}; undeploy it first")
        self.registry.delete(model_id)

    def leaderboard(self, stream: str | None = None, target: str | None = None) -> list[dict]:
        """Stored models (of a stream, for a target; not archived) as comparison rows, best holdout score first."""
        from .selection import comparison_table
        cards = [c for c in self.registry.list() if c.get("metrics") and c["metrics"].get("cv")
                 and not c.get("archived")
                 and (stream is None or (c.get("training") or {}).get("stream") == stream)
                 and (target is None or (c.get("spec") or {}).get("target") == target)]
        named = {c["id"]: c for c in cards}
        rows = comparison_table([{**c["metrics"], "model_id": c["id"]} for c in cards])
        return [{**r, "name": named[r["model"]].get("name"), "note": named[r["model"]].get("note"),
                 "created": named[r["model"]].get("created"),
                 "rows": (named[r["model"]].get("training") or {}).get("rows")} for r in rows]

    def at_threshold(self, model_id: str, threshold: float) -> dict:
        """Precision, recall and F1 of a binary model's holdout rows when probability >= threshold means positive."""
        from .evaluate import at_threshold
        report = self.registry.card(model_id).get("metrics") or {}
        return at_threshold(report.get("holdout") or {}, threshold)

    def predictions(self, stream: str, last: int | None = 200, target: str | None = None) -> pa.Table:
        """The newest `last` stored rows (all when None) after the pipeline, each with the prediction stored
        for it (empty where none was made), the model that made it and, for a classifier, the probability of
        the predicted class. With `target`, `correct` (classes) or `error` (values) compares the prediction
        with the row's true label, empty until that label arrived."""
        s = self.engine._get(stream)
        rows = self.history(stream, {"last": last} if last else None)
        preds = self.engine.store.predictions(s.id, last=last)
        if preds.num_rows:
            preds = preds.filter(pc.greater_equal(preds.column("_rid"), pc.min(rows.column("_rid"))))
        proba = preds.column("proba").combine_chunks() if preds.num_rows else pa.array([], pa.list_(pa.float64()))
        best = np.full(preds.num_rows, np.nan)
        np.fmax.at(best, pc.list_parent_indices(proba).to_numpy(zero_copy_only=False),
                   pc.list_flatten(proba).to_numpy(zero_copy_only=False))
        values = preds.num_rows and pc.all(pc.is_null(preds.column("prediction"))).as_py()
        made = pa.table({"_rid": preds.column("_rid") if preds.num_rows else pa.array([], pa.int64()),
                         "prediction": preds.column("value") if values else
                         (preds.column("prediction") if preds.num_rows else pa.array([], pa.string())),
                         "probability": pa.array(best, pa.float64(), from_pandas=True),
                         "model": preds.column("model") if preds.num_rows else pa.array([], pa.string())})
        out = rows.join(made, "_rid", join_type="left outer", right_suffix=" (model)")
        out = out.take(pc.sort_indices(out, [("_rid", "ascending")]))
        if target is not None and target in rows.column_names:
            predicted, actual = out.column("prediction"), out.column(target)
            if pa.types.is_floating(predicted.type):
                out = out.append_column("error", pc.subtract(predicted, pc.cast(actual, pa.float64())))
            else:
                from .data import target_values      # labels as the deployment stores them (deploy.rows)
                valid = pc.is_valid(actual).to_numpy(zero_copy_only=False)
                labels = np.full(len(valid), None, object)
                labels[valid] = pc.cast(pa.array(target_values(actual.filter(pa.array(valid)), "classification")),
                                        pa.string()).to_numpy(zero_copy_only=False)
                out = out.append_column("correct", pc.equal(predicted, pa.array(labels, pa.string())))
        return out

    def rank(self, stream: str, target: str, features: list[str], task: str, method: str = "mutual_info",
             slice: dict | None = None) -> list[dict]:
        from .data import split_features
        from .selection import rank_features
        table = self.history(stream, slice)
        numeric, categorical = split_features(table, features, target)
        return rank_features(training_rows(table, target, numeric, categorical, task), task, method)

    def importance(self, model_id: str, stream: str, slice: dict | None = None) -> str:
        """A job: permutation importance of a stored model on the slice's holdout rows (as it was trained)."""
        model, card = self.registry.load(model_id)
        if not (card.get("spec") or {}).get("target"):
            raise UserError(f"model {model_id!r} was imported without its training spec (target, features); "
                            f"permutation importance needs them: train the model here instead")
        spec = ModelSpec.from_dict(card["spec"])
        rows, _ = self.rows(stream, spec, slice)
        return self.jobs.submit("importance", {"model": model, "rows": rows, "task": spec.task,
                                               "holdout": spec.holdout, "kind": spec.cv_kind},
                                f"importance of {model_id}")

    # --- import ------------------------------------------------------------------------
    def import_model(self, src, filename: str, stream: str | None = None, limit_bytes: int | None = None,
                     card_data: bytes | None = None) -> str:
        """Store an uploaded .skops model (bytes or a binary file) in the registry; returns its id.

        Read up to the upload limit, then through `export.import_bytes` (pickles refused unread, sizes
        bounded, types checked against our allow-list, trees checked, first predictions tried in
        another process). With `card_data` (its .card.json) the card is kept
        once its features are checked against the model's own. With `stream`, its features
        are checked against that stream first, so a model that cannot run on it is refused
        with the reason.
        """
        from ..ingest.uploads import upload_limit_bytes
        from .export import import_bytes
        limit = upload_limit_bytes() if limit_bytes is None else limit_bytes
        data = src if isinstance(src, (bytes, bytearray)) else src.read(limit + 1)
        if len(data) > limit:
            raise UserError(f"{filename} is over the upload limit of {limit / 2**20:.0f} MB; "
                            f"raise RIVULET_UPLOAD_LIMIT_MB or upload a smaller model")
        model, card = import_bytes(bytes(data), filename, card_data)
        card.pop("id", None)
        card["training"] = {**(card.get("training") or {}), "imported": filename}
        if stream is not None:
            kinds = self._kinds(stream)
            numeric, categorical = feature_roles(card["features"], kinds)
            roles = {**{n: "numeric" for n in numeric}, **{n: "categorical" for n in categorical}}
            card["features"] = [{**f, "role": roles[f["name"]], "kind": kinds.get(f["name"])} for f in card["features"]]
            Deployment("import", card, model).check(kinds)
        return self.registry.save(model, card)

    # --- deploy -------------------------------------------------------------------------
    def live(self, stream: str) -> dict | None:
        """The deployed model's live status, its score after each batch and the rows where drift fired."""
        d = self.engine._get(stream).deployment
        if d is None:
            return None
        m = d.metrics
        curve = m.curve                  # one read: the ingest thread replaces the tuple whole
        return {**d.status(), "curve": {"labelled": [c[0] for c in curve], "score": [c[1] for c in curve],
                                        "time": [c[2] for c in curve]},
                "drift_rows": list(m.drifts[-100:]), "window_size": m.window}

    def deployment(self, stream: str, model_id: str) -> Deployment:
        model, card = self.registry.load(model_id)
        d = Deployment(model_id, card, model)
        d.check(self._kinds(stream))
        return d

    def online(self, stream: str, target: str, features: list[str], classes=None, task: str = "classification",
               alpha: float = 1e-4, window: int = 1000) -> Deployment:
        """An online SGD learner deployed on the stream: it learns from every labelled row."""
        from .online import OnlineLearner
        kinds = self._kinds(stream)
        if classes is None and task == "classification":
            classes = self._classes(stream, target)
        learner = OnlineLearner(task, classes, alpha=alpha, window=window)
        card = {"name": f"online sgd -> {target}", "spec": {"task": task, "target": target},
                "features": [{"name": f, "kind": kinds.get(f), "role": "numeric"} for f in features],
                "classes": list(classes) if classes is not None else None}
        d = Deployment(f"online-{target}", card, learner=learner)
        d.check(kinds)
        return d

    def _kinds_or_none(self, stream: str) -> dict[str, str] | None:
        try:
            return self._kinds(stream)
        except UserError:
            return None

    def _kinds(self, stream: str) -> dict[str, str]:
        s = self.engine._get(stream)
        snap = s.snapshot
        if snap is not None and len(snap.schema):
            return column_kinds(snap.schema.empty_table())
        if s.schema is None:
            raise UserError(f"stream {stream!r} has no columns yet; wait for its first rows")
        return column_kinds(s.pipeline.apply(s.schema.arrow().empty_table()))

    def _classes(self, stream: str, target: str) -> list:
        table = self.history(stream)
        if target not in table.column_names:
            raise UserError(f"no target column {target!r} in stream {stream!r}")
        from .data import target_values
        values = target_values(table.column(target).drop_null(), "classification")
        classes = np.unique(values).tolist()
        if len(classes) < 2:
            raise UserError(f"the stored rows have {len(classes)} class(es) of {target!r}; an online classifier "
                            f"needs the classes up front: pass them")
        return classes


def _misfit(card: dict, kinds: dict[str, str]) -> str | None:
    try:
        Deployment(card.get("id") or "model", card).check(kinds)
    except UserError as e:
        return str(e)
    return None


def _seconds(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        raise UserError(f"{value!r} is not a time; use epoch seconds or ISO 8601") from None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def _epoch(arr) -> np.ndarray:
    from ..schema import time_seconds
    return time_seconds(arr)
