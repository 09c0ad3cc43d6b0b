import numpy as np
import pyarrow as pa
import pytest

import engine.models.selection as selection
import engine.models.train as train_module
from engine.models import evaluate
from engine.models.data import training_rows
from engine.models.spec import ModelSpec
from engine.models.train import train
from models_data import mixed_frame


def with_noise(n=600, k=4, seed=0):
    df = mixed_frame(n, seed)
    rng = np.random.default_rng(seed + 1)
    for i in range(k):
        df[f"pure_noise_{i}"] = rng.normal(size=n)
    return df


def rows_of(df, target, numeric, categorical=(), task="classification"):
    return training_rows(pa.Table.from_pandas(df, preserve_index=False), target, list(numeric), list(categorical),
                         task)


NOISE = [f"pure_noise_{i}" for i in range(4)]


@pytest.mark.parametrize("method", ["mutual_info", "f_test"])
@pytest.mark.parametrize("task, target", [("classification", "label"), ("regression", "value")])
def test_ranking_puts_informative_columns_above_noise(method, task, target):
    df = with_noise()
    rows = rows_of(df, target, ["a", "b", "noise", *NOISE], ["site"], task)
    ranking = selection.rank_features(rows, task, method)
    order = [r["feature"] for r in ranking]
    assert set(order[:2]) == {"a", "b"}
    assert all(order.index(f) > order.index("b") for f in ["noise", *NOISE])


def test_permutation_importance_ranks_a_trained_model():
    df = with_noise()
    spec = ModelSpec("classification", "label", ("a", "b", *NOISE), ("site",), "logreg", cv=3)
    rows = rows_of(df, "label", spec.numeric, spec.categorical)
    ranking = selection.permutation_ranking(train(rows, spec).model, rows, "classification")
    assert ranking[0]["feature"] == "a"
    scores = {r["feature"]: r["score"] for r in ranking}
    assert all(scores[f] < scores["b"] for f in NOISE)


def test_k_best_keeps_raw_columns_as_input():
    df = with_noise()
    spec = ModelSpec("classification", "label", ("a", "b", *NOISE), (), "logreg", k_best=2, cv=3)
    model = train(rows_of(df, "label", spec.numeric), spec).model
    kept = model.named_steps["select"].get_feature_names_out(model.named_steps["prepare"].get_feature_names_out())
    assert set(kept) == {"a", "b"}
    assert list(model.feature_names_in_) == ["a", "b", *NOISE]


@pytest.mark.parametrize("method", ["random", "halving"])
def test_search_never_scores_on_rows_its_folds_do_not_allow(monkeypatch, method):
    """Every fit sees only rows older than the rows it is scored on, and no search fold reaches the holdout."""
    df = mixed_frame(300)
    spec = ModelSpec("classification", "label", ("a", "b"), ("site",), "logreg", cv=3)
    rows = rows_of(df, "label", spec.numeric, spec.categorical)
    events = []
    real_fit, real_score = train_module.fit, train_module.evaluate.score

    def fit(spec, X, y, where="training"):
        events.append(("fit", X.index.min(), X.index.max()))
        return real_fit(spec, X, y, where)

    def score(model, X, y, task):
        events.append(("score", X.index.min(), X.index.max()))
        return real_score(model, X, y, task)

    monkeypatch.setattr(train_module, "fit", fit)
    monkeypatch.setattr(train_module.evaluate, "score", score)
    result = selection.search(rows, spec, method, n_iter=5)
    cut = evaluate.holdout_split(300, spec.holdout)
    fits = [e for e in events if e[0] == "fit"]
    scores = [e for e in events if e[0] == "score"]
    assert len(fits) == len(scores)
    for f, s in zip(fits[:-1], scores[:-1]):        # the search's folds (the last pair is the holdout)
        assert f[2] < s[1]                          # trained only on rows before the scored ones
        assert s[2] < cut                           # never scored on the holdout
    assert scores[-1][1:] == (cut, 299) and fits[-1][2] == cut - 1
    table = result.report["search"]["table"]
    assert len(table) == 5 and result.report["search"]["best"] == table[0]["params"]
    assert table[0]["mean"] == max(r["mean"] for r in table if r["round"] == table[0]["round"])


def test_compare_orders_models_best_first():
    df = mixed_frame(300)
    specs = [ModelSpec("classification", "label", ("a", "b"), ("site",), alg, p, cv=3)
             for alg, p in [("rf", {"n_estimators": 10}), ("logreg", {}), ("sgd", {})]]
    rows = rows_of(df, "label", ("a", "b"), ("site",))
    results = selection.compare(rows, specs)
    table = selection.comparison_table([r.report for r in results])
    holdout = [t["holdout"] for t in table]
    assert holdout == sorted(holdout, reverse=True)          # the newest rows judge, not the folds
    assert [t["holdout"] for t in table] == [r.report["holdout"]["f1"] for r in results]
    assert {t["algorithm"] for t in table} == {"rf", "logreg", "sgd"}
    assert all(t["baseline"] is not None for t in table)


def test_search_and_compare_run_as_engine_jobs(tmp_path):
    from engine.runtime import Engine
    path = tmp_path / "d.csv"
    mixed_frame(400).to_csv(path, index=False)
    with Engine(str(tmp_path / "data")) as engine:
        stream = engine.add_replay(str(path))
        engine.wait(stream, timeout=60)
        spec = ModelSpec("classification", "label", ("a", "b"), ("site",), "logreg", cv=3)
        job = engine.models.jobs.wait(engine.models.search(stream, spec, method="random", n_iter=3), timeout=120)
        assert job.state == "done", job.error
        card = engine.models.registry.card(job.result)
        assert card["spec"]["params"] == card["metrics"]["search"]["best"]
        assert card["name"] == "logreg · searched"        # the table lists it beside plain "logreg" runs
        job = engine.models.jobs.wait(engine.models.compare(stream, [spec, spec.with_(algorithm="sgd")]),
                                      timeout=120)
        assert job.state == "done", job.error
        assert [r["algorithm"] for r in job.result] and all(r["model"] for r in job.result)
        ranking = engine.models.rank(stream, "label", ["a", "b", "noise", "site"], "classification")
        assert ranking[-1]["feature"] == "noise"
