import os
import pickle
import sys
import time
import types

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn import metrics as skm

from engine.errors import UserError
from engine.models.data import training_rows
from engine.compute import LocalCompute as Jobs
from engine.models.registry import Registry, make_card
from engine.models.spec import ModelSpec
from engine.models.train import train
from engine.runtime import Engine
from engine.ingest.replay import Speed
from models_data import Payload, mixed_frame
from conftest import wait_for

SPEC = ModelSpec("classification", "label", ("a", "b"), ("site",), "logreg", cv=3)


@pytest.fixture
def engine(tmp_path):
    e = Engine(str(tmp_path / "data"))
    yield e
    e.close()


def replayed(engine, tmp_path, df, name="train") -> str:
    path = tmp_path / f"{name}.csv"
    df.to_csv(path, index=False)
    stream = engine.add_replay(str(path), name=name)
    engine.wait(stream, timeout=60)
    return stream


def paused_replay(engine, tmp_path, df, name="live", speed=Speed()) -> str:
    """A replay of `df` that starts paused, so a model deployed on it sees every row (a seek back would
    only replay stored rows, which are never predicted twice)."""
    path = tmp_path / f"{name}.csv"
    df.to_csv(path, index=False)
    return engine.add_replay(str(path), name=name, speed=speed, paused=True)


def test_training_job_on_a_slice_stores_the_model_with_its_card(engine, tmp_path):
    stream = replayed(engine, tmp_path, mixed_frame(1500))
    job_id = engine.models.train(stream, SPEC, slice={"last": 1000}, name="first")
    job = engine.models.jobs.wait(job_id, timeout=120)
    assert job.state == "done", job.error
    assert (job.done, job.total) == (SPEC.cv + 1, SPEC.cv + 1)
    card = engine.models.registry.card(job.result)
    assert card["name"] == "first" and card["training"]["rid_range"] == [500, 1499]
    assert card["training"]["rows"] == 1000 and card["pipeline"]["version"] == 0
    start, end = card["training"]["time_range"]
    assert start <= end and start.startswith("20")
    assert card["metrics"]["rows"]["train"] == 800


def test_time_range_slice(engine, tmp_path):
    df = mixed_frame(600)
    df.insert(0, "t", pd.date_range("2024-01-01", periods=600, freq="min", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))
    stream = replayed(engine, tmp_path, df)
    table = engine.models.history(stream, {"start": "2024-01-01T01:00:00+00:00", "end": "2024-01-01T02:59:00Z"})
    assert table.num_rows == 120
    with pytest.raises(UserError, match="no stored rows"):
        engine.models.history(stream, {"start": "2030-01-01"})


def test_failed_job_reports_a_clear_error(engine, tmp_path):
    stream = replayed(engine, tmp_path, mixed_frame(300).assign(label="yes"))
    job = engine.models.jobs.wait(engine.models.train(stream, SPEC), timeout=120)
    assert job.state == "failed" and "one class only" in job.error
    assert engine.models.registry.list() == []


def test_cancelled_job_leaves_nothing_behind(tmp_path):
    df = mixed_frame(3000)
    rows = training_rows(pa.Table.from_pandas(df), "label", ["a", "b", "noise"], [], "classification")
    spec = ModelSpec("classification", "label", ("a", "b", "noise"), (), "rf", {"n_estimators": 3000}, cv=2)
    registry = Registry(str(tmp_path))
    jobs = Jobs()
    saved = []
    job_id = jobs.submit("train", {"rows": rows, "spec": spec.to_dict()}, on_done=lambda t: saved.append(
        registry.save(t.model, make_card(t.model, spec, t.report, {}, {}, None))))
    job = jobs.get(job_id)
    deadline = time.time() + 60
    while job.message != "fold 1 of 2" and time.time() < deadline:    # the worker is fitting the forest
        time.sleep(0.01)
    assert job.message == "fold 1 of 2"
    proc = jobs._procs[job_id]
    jobs.cancel(job_id)
    jobs.wait(job_id, timeout=30)
    assert job.state == "cancelled" and not proc.is_alive()
    assert saved == [] and registry.list() == []
    assert not os.path.exists(registry.root) or os.listdir(registry.root) == []


def test_ingest_keeps_its_pace_while_a_forest_trains(engine, tmp_path):
    stream = replayed(engine, tmp_path, mixed_frame(4000))
    rate = 2000
    live = tmp_path / "live.csv"
    mixed_frame(200_000, seed=1).to_csv(live, index=False)
    paced = engine.add_replay(str(live), name="live", speed=Speed("rows", rate))
    time.sleep(1.0)                               # let the paced replay settle
    spec = ModelSpec("classification", "label", ("a", "b", "noise"), ("site",), "rf",
                     {"n_estimators": 400}, cv=3)
    job_id = engine.models.train(stream, spec)
    job = engine.models.jobs.get(job_id)
    while job.message == "starting":              # count from when the worker is really computing
        time.sleep(0.005)
    before, t0 = engine.snapshot(paced).counts["ingested"], time.time()
    engine.models.jobs.wait(job_id, timeout=300)
    after, t1 = engine.snapshot(paced).counts["ingested"], time.time()
    assert job.state == "done", job.error
    expected = rate * (t1 - t0)
    assert expected > rate                        # training lasted more than a second
    # Training in the engine's process would stall ingest for the whole fit; a worker process leaves it
    # at pace. 0.6 leaves room for a CPU shared with other work, not for a stall.
    assert after - before >= 0.6 * expected, (after - before, expected)


def deployable(engine, tmp_path):
    df = mixed_frame(2000)
    stream = replayed(engine, tmp_path, df)
    rows = training_rows(pa.Table.from_pandas(df), "label", ["a", "b"], ["site"], "classification")
    result = train(rows, SPEC)
    card = make_card(result.model, SPEC, result.report, {"a": "number", "b": "number", "site": "text"},
                     {"stream": stream}, None)
    return stream, df, result.model, engine.models.registry.save(result.model, card)


def test_deployed_model_predicts_every_new_row_and_scores_labels(engine, tmp_path):
    _, df, model, model_id = deployable(engine, tmp_path)
    stream = paused_replay(engine, tmp_path, df)
    status = engine.deploy(stream, model_id)
    assert status["model_id"] == model_id and status["accuracy"] is None
    engine.resume(stream)
    snap = engine.wait(stream, timeout=60)
    sid = engine.streams[stream].id
    pred = engine.store.predictions(sid, last=10_000)
    assert pred.num_rows == 2000
    assert pred.column("_rid").to_pylist() == list(range(2000))
    want = model.predict(df[["a", "b", "site"]].astype({"site": object}))
    assert pred.column("prediction").to_pylist() == want.tolist()
    proba = np.array(pred.column("proba").to_pylist())
    np.testing.assert_allclose(proba, model.predict_proba(df[["a", "b", "site"]].astype({"site": object})),
                               atol=1e-12)
    live = snap.model
    assert live["deployed"] and live["predicted"] == 2000 and live["labelled"] == 2000
    assert live["accuracy"] == pytest.approx(skm.accuracy_score(df["label"][-1000:], want[-1000:]))
    assert snap.to_json()["model"]["accuracy"] == live["accuracy"]
    assert set(snap.to_json()) >= {"rows", "window", "stats", "cov", "corr", "cumulative", "pipeline"}
    engine.seek(stream, row=1000)                  # replayed rows are stored, predicted and scored once only
    snap = engine.wait(stream, timeout=60)
    assert engine.store.predictions(sid, last=10_000).num_rows == 2000
    assert snap.model["predicted"] == 2000 and snap.model["labelled"] == 2000


def saved_logreg(engine, df):
    """A logistic regression on `a` and `b` of `df`, saved to the engine's registry: (model, id)."""
    rows = training_rows(pa.Table.from_pandas(df), "label", ["a", "b"], [], "classification")
    spec = ModelSpec("classification", "label", ("a", "b"), (), "logreg", cv=3)
    trained = train(rows, spec)
    card = make_card(trained.model, spec, trained.report, {"a": "number", "b": "number"}, {}, None)
    return trained.model, engine.models.registry.save(trained.model, card)


def wait_predictions(engine, sid, n, timeout):
    """Until the store holds `n` predictions of stream `sid` (or `timeout` seconds pass)."""
    deadline = time.time() + timeout
    while engine.store.predictions(sid, last=10_000).num_rows < n and time.time() < deadline:
        time.sleep(0.05)


def test_swapping_models_on_a_running_stream_gives_each_row_one_prediction(engine, tmp_path):
    stream, df, model, first = deployable(engine, tmp_path)
    _, second = saved_logreg(engine, df)
    live = tmp_path / "live.csv"
    mixed_frame(6000, seed=2).to_csv(live, index=False)
    paced = engine.add_replay(str(live), name="live", speed=Speed("rows", 3000), paused=True)
    engine.deploy(paced, first)                    # before the first row (a loaded machine ran rows before it)
    engine.resume(paced)
    sid = engine.streams[paced].id
    wait_predictions(engine, sid, 1500, 60)
    engine.deploy(paced, second)                   # swapped while batches flow
    engine.wait(paced, timeout=120)
    pred = engine.store.predictions(sid, last=100_000)
    rids = pred.column("_rid").to_numpy()
    models = pred.column("model").to_pylist()
    assert len(rids) == 6000 and len(set(rids.tolist())) == 6000      # every row once, none twice
    switch = models.index(second)
    assert set(models[:switch]) == {first} and set(models[switch:]) == {second}
    assert 1500 <= switch < 6000


def test_deploy_refuses_a_model_whose_features_the_stream_lacks(engine, tmp_path):
    stream, df, model, model_id = deployable(engine, tmp_path)
    other = replayed(engine, tmp_path, df.drop(columns=["site"]), name="nosite")
    with pytest.raises(UserError, match="features missing from the stream: site"):
        engine.deploy(other, model_id)
    engine.deploy(stream, model_id)                # the right stream takes it


def test_online_learner_deployed_learns_from_labels(engine, tmp_path):
    stream = paused_replay(engine, tmp_path, mixed_frame(1000), speed=Speed("rows", 5000))
    engine.deploy_online(stream, "label", ["a", "b"], classes=["no", "yes"])
    engine.resume(stream)
    snap = engine.wait(stream, timeout=60)
    assert snap.model["online"] and 0 < snap.model["labelled"] < 1000    # the first batch only teaches
    assert engine.store.predictions(engine.streams[stream].id).num_rows == snap.model["labelled"]
    assert snap.model["accuracy"] > 0.7
    engine.seek(stream, row=0)                     # rows it learned from are not learned or scored again
    assert engine.wait(stream, timeout=60).model["labelled"] == snap.model["labelled"]


def test_jobs_start_cleanly_when_main_is_a_page_script(tmp_path, monkeypatch):
    """Under Streamlit, __main__ is the page script; a spawned worker must not run it."""
    script = tmp_path / "page.py"
    script.write_text("import sys\nsys.exit(3)\n")
    page = types.ModuleType("__main__")
    page.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", page)
    jobs = Jobs()
    job = jobs.wait(jobs.submit("sleep", {"steps": 1, "seconds": 0, "result": 7}), timeout=60)
    assert job.state == "done" and job.result == 7, job.error
    assert sys.modules["__main__"] is page


def test_imported_model_is_checked_against_the_stream_and_deploys(engine, tmp_path):
    stream, df, model, model_id = deployable(engine, tmp_path)
    from engine.models.export import export
    path = tmp_path / "shared.skops"
    export(model, engine.models.registry.card(model_id), str(path))
    other = replayed(engine, tmp_path, df.drop(columns=["site"]), name="nosite")
    with pytest.raises(UserError, match="features missing from the stream: site"):
        engine.models.import_model(path.read_bytes(), "shared.skops", stream=other)
    with open(path, "rb") as f:
        with pytest.raises(UserError, match="over the upload limit"):
            engine.models.import_model(f, "shared.skops", limit_bytes=1000)
    sentinel = tmp_path / "pwned"
    with pytest.raises(UserError, match="never loaded"):
        engine.models.import_model(pickle.dumps(Payload(str(sentinel))), "evil.skops", stream=stream)
    assert not sentinel.exists()
    assert [c["id"] for c in engine.models.registry.list()] == [model_id]     # nothing refused was stored

    with open(path, "rb") as f:
        imported = engine.models.import_model(f, "shared.skops", stream=stream)
    card = engine.models.registry.card(imported)
    assert card["name"] == "shared" and card["classes"] == ["no", "yes"]
    assert {f["name"]: f["role"] for f in card["features"]} == {"a": "numeric", "b": "numeric", "site": "categorical"}
    with pytest.raises(UserError, match="imported without its training spec"):
        engine.models.importance(imported, stream)
    fresh = paused_replay(engine, tmp_path, df)
    engine.deploy(fresh, imported)
    engine.resume(fresh)
    engine.wait(fresh, timeout=60)
    pred = engine.store.predictions(engine.streams[fresh].id, last=10_000)
    want = model.predict(df[["a", "b", "site"]].astype({"site": object}))
    assert pred.column("prediction").to_pylist() == want.tolist()


def test_predictions_keep_their_row_ids_when_the_pipeline_drops_rows(engine, tmp_path):
    _, df, model, model_id = deployable(engine, tmp_path)
    stream = paused_replay(engine, tmp_path, df)
    engine.apply(stream, [{"kind": "filter", "params": {"where": {"column": "a", "op": ">", "value": 0}}}])
    engine.deploy(stream, model_id)
    engine.resume(stream)                          # 2000 rows arrive through the filter
    engine.wait(stream, timeout=60)
    pred = engine.store.predictions(engine.streams[stream].id, last=10_000)
    kept = df[df["a"] > 0]
    assert 0 < len(kept) < len(df)
    assert pred.column("_rid").to_pylist() == kept.index.tolist()
    want = model.predict(kept[["a", "b", "site"]].astype({"site": object}))
    assert pred.column("prediction").to_pylist() == want.tolist()


def test_a_model_imported_without_its_card_is_listed_on_every_stream(engine, tmp_path):
    """The Export page imports with no stream and maybe no card; the Models page must still offer it."""
    from engine.models import safe
    stream, df, model, first = deployable(engine, tmp_path)
    job = engine.models.jobs.wait(engine.models.train(stream, SPEC, slice={"last": 500}), timeout=120)
    assert job.state == "done", job.error
    other = replayed(engine, tmp_path, df.head(300), name="other")
    imported = engine.models.import_model(safe.dumps(model), "shared.skops")
    assert {c["id"] for c in engine.models.listed(stream)} == {first, job.result, imported}
    assert [c["id"] for c in engine.models.listed(other)] == [imported]
    card = engine.models.listed(other)[0]
    assert card["training"] == {"imported": "shared.skops"} and card["metrics"] is None
    assert card["name"] == "shared" and card["estimator"] == "LogisticRegression"
    assert card["classes"] == ["no", "yes"] and card["spec"] == {"task": "classification"}
    assert {f["name"]: f["role"] for f in card["features"]} == {"a": "numeric", "b": "numeric", "site": "categorical"}
    engine.deploy(other, imported)                 # what the page offers there can run there


# --- issue 14: honest comparison, stored predictions, model housekeeping, models that fit a stream -----------

def test_live_predictions_table_and_download_join_the_stored_rows(engine, tmp_path):
    first, df, model, model_id = deployable(engine, tmp_path)
    stream = paused_replay(engine, tmp_path, df)          # deployed before its first row: every row predicted
    engine.deploy(stream, model_id)
    engine.resume(stream)
    engine.wait(stream, timeout=60)
    X = df[["a", "b", "site"]].astype({"site": object})
    want, proba = model.predict(X), model.predict_proba(X).max(axis=1)
    newest = engine.models.predictions(stream, last=50, target="label")
    assert newest.num_rows == 50 and newest.column("_rid").to_pylist() == list(range(1950, 2000))
    assert newest.column("prediction").to_pylist() == want[-50:].tolist()
    np.testing.assert_allclose(newest.column("probability").to_numpy(), proba[-50:], atol=1e-12)
    assert newest.column("correct").to_pylist() == (want[-50:] == df["label"].to_numpy()[-50:]).tolist()
    every = engine.models.predictions(stream, last=None)             # the stored history with its predictions
    assert every.num_rows == 2000 and every.column("prediction").null_count == 0
    assert every.column("label").to_pylist() == df["label"].tolist()
    assert set(every.column("model").drop_null().to_pylist()) == {model_id}
    unseen = engine.models.predictions(first, last=None)            # rows stored before any model ran
    assert unseen.num_rows == 2000 and unseen.column("prediction").null_count == 2000


def test_models_are_named_noted_archived_and_deleted(engine, tmp_path):
    stream, df, model, model_id = deployable(engine, tmp_path)
    card = engine.models.describe(model_id, name="  churn v1 ", note="first try, no site")
    assert (card["name"], card["note"]) == ("churn v1", "first try, no site")
    assert engine.models.registry.card(model_id)["sha256"] == card["sha256"]       # the file untouched
    engine.models.registry.load(model_id)
    with pytest.raises(UserError, match="needs a name"):
        engine.models.describe(model_id, name=" ")
    engine.models.archive(model_id)
    assert model_id not in [c["id"] for c in engine.models.listed(stream)]
    assert model_id in [c["id"] for c in engine.models.listed(stream, archived=True)]
    engine.models.archive(model_id, False)
    engine.deploy(stream, model_id)
    with pytest.raises(UserError, match="undeploy it first"):
        engine.models.delete(model_id)
    engine.undeploy(stream)
    engine.models.delete(model_id)
    assert engine.models.registry.list() == []


def test_imports_are_offered_only_on_streams_whose_columns_they_fit(engine, tmp_path):
    from engine.models.export import export_bytes
    stream, df, model, model_id = deployable(engine, tmp_path)
    other = replayed(engine, tmp_path, pd.DataFrame({"x": np.arange(50.0), "y": np.arange(50) % 2}), name="other")
    data, card = export_bytes(*engine.models.registry.load(model_id), "skops", "m.skops")
    imported = engine.models.import_model(data, "m.skops")
    assert imported in [c["id"] for c in engine.models.listed(stream)]
    assert imported not in [c["id"] for c in engine.models.listed(other)]
    assert "features missing from the stream: a, b, site" in engine.models.misfit(other, imported)
    assert engine.models.misfit(stream, imported) is None


def test_leaderboard_ranks_by_holdout_and_flags_a_gap_with_cross_validation(engine, tmp_path):
    """The newest rows follow another rule than the older ones: folds over the older rows agree with each
    other, the holdout does not; the table says so instead of ranking by cross-validation alone."""
    df = mixed_frame(1500)
    flip = np.arange(len(df)) >= 1200
    df.loc[flip, "label"] = np.where(df.loc[flip, "label"] == "yes", "no", "yes")
    stream = replayed(engine, tmp_path, df)
    spec = ModelSpec("classification", "label", ("a", "b"), ("site",), "logreg", cv=3)
    for s in (spec, spec.with_(numeric=("noise",), categorical=())):
        assert engine.models.jobs.wait(engine.models.train(stream, s), timeout=120).state == "done"
    board = engine.models.leaderboard(stream, "label")
    assert [r["holdout"] for r in board] == sorted((r["holdout"] for r in board), reverse=True)
    assert board[0]["metric"] == "f1" and board[0]["metric_label"] == "macro F1"
    leaky = next(r for r in board if r["params"] == {} and r["cv_mean"] > 0.8)
    assert leaky["holdout"] < 0.3 and leaky["gap"] < -0.5
    assert leaky["warning"].startswith("holdout much worse than cross-validation")
    assert board[0]["model"] != leaky["model"]               # ranked by CV it would lead


def test_live_counts_say_since_when_they_count_after_a_restart(engine, tmp_path):
    """After a restart the redeployed model counts from zero; the page said 'since deployment' beside a
    count of the rows since the restart (395 for a model that had predicted thousands)."""
    _, df, _, model_id = deployable(engine, tmp_path)
    stream = paused_replay(engine, tmp_path, df)
    before = time.time()
    engine.deploy(stream, model_id)
    engine.resume(stream)
    engine.wait(stream, timeout=60)
    first = engine.models.live(stream)
    assert first["predicted"] == 2000 and before <= first["since"] <= time.time()
    engine.close()
    restart = time.time()
    with Engine(str(tmp_path / "data")) as again:
        assert wait_for(lambda: again.models.live(stream) is not None, timeout=60)
        live = again.models.live(stream)
        assert live["model_id"] == model_id and live["since"] >= restart and live["predicted"] == 0
        assert again.store.predictions(again.streams[stream].id, last=10_000).num_rows == 2000   # kept
