import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier, DummyRegressor

from engine.errors import UserError
from engine.models.data import read_csv, training_rows
from engine.models.spec import ALGORITHMS, ModelSpec
from engine.models.train import train
from models_data import breast_cancer_csv, mixed_frame
from conftest import run_cli

FAST = {"rf": {"n_estimators": 10}, "hgb": {"max_iter": 10}}


def rows_of(df, target, numeric, categorical=(), task="classification"):
    return training_rows(pa.Table.from_pandas(df, preserve_index=False), target, list(numeric),
                         list(categorical), task)


def test_cli_train_breast_cancer_logreg_f1(tmp_path):
    path = breast_cancer_csv(tmp_path)
    r = run_cli("train", path, "--target", "target", "--model", "logreg", "--cv", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["f1"] >= 0.95
    assert set(out) >= {"accuracy", "precision", "recall", "f1", "cv_scores", "baseline"}
    assert len(out["cv_scores"]) == 3
    assert out["rows"] == {"used": 569, "train": 455, "holdout": 114, "missing_target": 0, "quarantined": 0}
    assert out["baseline"]["accuracy"] < out["accuracy"]


@pytest.mark.parametrize("algorithm", [a for a, (c, _) in ALGORITHMS.items() if c])
def test_each_classifier_trains(algorithm):
    df = mixed_frame(240)
    spec = ModelSpec("classification", "label", ("a", "b", "noise"), ("site",), algorithm, FAST.get(algorithm, {}),
                     cv=3)
    result = train(rows_of(df, "label", spec.numeric, spec.categorical), spec)
    assert result.report["holdout"]["accuracy"] > 0.75
    assert result.report["holdout"]["accuracy"] > result.report["baseline"]["accuracy"]
    assert len(result.report["cv"]["scores"]) == 3
    assert sorted(result.model.classes_) == ["no", "yes"]


@pytest.mark.parametrize("algorithm", [a for a, (_, r) in ALGORITHMS.items() if r])
def test_each_regressor_trains(algorithm):
    df = mixed_frame(240)
    spec = ModelSpec("regression", "value", ("a", "b", "noise"), ("site",), algorithm, FAST.get(algorithm, {}),
                     cv=3)
    result = train(rows_of(df, "value", spec.numeric, spec.categorical, "regression"), spec)
    assert result.report["holdout"]["r2"] > 0.6
    assert result.report["holdout"]["rmse"] < result.report["baseline"]["rmse"]


def test_classification_metrics_equal_sklearn(tmp_path):
    table, _ = read_csv(breast_cancer_csv(tmp_path))
    names = [c for c in table.column_names if c != "target"]
    spec = ModelSpec("classification", "target", tuple(names), algorithm="logreg", cv=3)
    rows = training_rows(table, "target", names, [], "classification")
    result = train(rows, spec)
    X_test, y_test = rows.X.iloc[455:], rows.y[455:]
    pred = result.model.predict(X_test)
    proba = result.model.predict_proba(X_test)[:, 1]
    h = result.report["holdout"]
    assert h["accuracy"] == pytest.approx(skm.accuracy_score(y_test, pred), abs=1e-12)
    assert h["f1"] == pytest.approx(skm.f1_score(y_test, pred, average="macro"), abs=1e-12)
    assert h["f1_weighted"] == pytest.approx(skm.f1_score(y_test, pred, average="weighted"), abs=1e-12)
    assert h["precision"] == pytest.approx(skm.precision_score(y_test, pred, average="macro"), abs=1e-12)
    assert h["recall_weighted"] == pytest.approx(skm.recall_score(y_test, pred, average="weighted"), abs=1e-12)
    assert h["per_class"]["1"]["f1"] == pytest.approx(skm.f1_score(y_test, pred), abs=1e-12)
    assert h["roc_auc"] == pytest.approx(skm.roc_auc_score(y_test, proba), abs=1e-12)
    assert h["confusion"] == skm.confusion_matrix(y_test, pred).tolist()
    dummy = DummyClassifier(strategy="most_frequent").fit(rows.X.iloc[:455], rows.y[:455])
    assert result.report["baseline"]["accuracy"] == pytest.approx(
        skm.accuracy_score(y_test, dummy.predict(X_test)), abs=1e-12)


def test_regression_metrics_equal_sklearn():
    df = mixed_frame(200)
    spec = ModelSpec("regression", "value", ("a", "b"), ("site",), "ridge", cv=3)
    rows = rows_of(df, "value", spec.numeric, spec.categorical, "regression")
    result = train(rows, spec)
    X_test, y_test = rows.X.iloc[160:], rows.y[160:]
    pred = result.model.predict(X_test)
    h = result.report["holdout"]
    assert h["mae"] == pytest.approx(skm.mean_absolute_error(y_test, pred), abs=1e-12)
    assert h["rmse"] == pytest.approx(skm.root_mean_squared_error(y_test, pred), abs=1e-12)
    assert h["r2"] == pytest.approx(skm.r2_score(y_test, pred), abs=1e-12)
    mean = DummyRegressor().fit(rows.X.iloc[:160], rows.y[:160]).predict(X_test)
    assert result.report["baseline"]["mae"] == pytest.approx(skm.mean_absolute_error(y_test, mean), abs=1e-12)


def test_folds_are_time_ordered_and_spread_is_reported():
    df = mixed_frame(200)
    spec = ModelSpec("classification", "label", ("a", "b"), algorithm="logreg", cv=4)
    result = train(rows_of(df, "label", spec.numeric), spec)
    cv = result.report["cv"]
    assert cv["kind"] == "time" and cv["k"] == 4
    assert cv["mean"] == pytest.approx(np.mean(cv["scores"]))
    assert cv["std"] == pytest.approx(np.std(cv["scores"], ddof=1))


def test_missing_targets_are_dropped_and_counted():
    df = mixed_frame(200)
    df.loc[[3, 50, 51], "label"] = None
    rows = rows_of(df, "label", ["a", "b"])
    assert rows.missing_target == 3 and len(rows.y) == 197


@pytest.mark.parametrize("change, message", [
    (lambda df: df.assign(label="yes"), "one class only"),
    (lambda df: df.head(8), "too few"),
])
def test_clear_errors(change, message):
    df = change(mixed_frame(200))
    spec = ModelSpec("classification", "label", ("a", "b"), algorithm="logreg", cv=5)
    with pytest.raises(UserError, match=message):
        train(rows_of(df, "label", spec.numeric), spec)


def test_regression_on_text_target_and_missing_features_are_refused():
    df = mixed_frame(50)
    with pytest.raises(UserError, match="numeric target"):
        rows_of(df, "label", ["a"], task="regression")
    with pytest.raises(UserError, match="features missing.*nope"):
        rows_of(df, "label", ["a", "nope"])


def test_cli_errors_are_one_line(tmp_path):
    path = tmp_path / "d.csv"
    mixed_frame(60).to_csv(path, index=False)
    for args in (["--target", "nope"], ["--target", "label", "--features", "a,zzz"],
                 ["--target", "label", "--task", "regression"]):
        r = run_cli("train", str(path), *args, "--json")
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_cli_predict_matches_model(tmp_path):
    df = mixed_frame(200)
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    model = tmp_path / "m.skops"
    r = run_cli("train", str(path), "--target", "label", "--features", "a,b,site", "--model", "rf",
                "--param", "n_estimators=10", "--cv", "3", "--out", str(model), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"]["format"] == "skops"
    r = run_cli("predict", str(model), str(path), "--proba")
    assert r.returncode == 0, r.stderr
    out = pd.read_csv(io.StringIO(r.stdout))
    assert len(out) == len(df)
    assert list(out.columns[-3:]) == ["proba_no", "proba_yes", "prediction"]
    from engine.models.export import import_file
    m, card = import_file(str(model))
    want = m.predict(df[["a", "b", "site"]].astype({"site": object}))
    assert (out["prediction"].to_numpy() == want).all()
    np.testing.assert_allclose(out["proba_yes"], m.predict_proba(df[["a", "b", "site"]])[:, 1], atol=1e-12)
    assert card["spec"]["algorithm"] == "rf" and card["classes"] == ["no", "yes"]
