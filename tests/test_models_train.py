import io
import json
import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_diabetes
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.model_selection import TimeSeriesSplit, cross_val_score

from engine.errors import UserError
from engine.models.data import model_columns, read_csv, training_rows
from engine.models.spec import ALGORITHMS, TASKS, ModelSpec, algorithms_for, build
from engine.models.train import train
from models_data import Payload, breast_cancer_csv, mixed_frame
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
    assert out["rows"] == {"used": 569, "train": 455, "holdout": 114, "missing_target": 0, "quarantined": 0,
                           "ordered_by": None, "holdout_kind": "newest"}
    assert out["baseline"]["accuracy"] < out["accuracy"]


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory):
    table, _ = read_csv(breast_cancer_csv(tmp_path_factory.mktemp("bc")))
    names = [c for c in table.column_names if c != "target"]
    return names, training_rows(table, "target", names, [], "classification")


@pytest.mark.parametrize("algorithm", [a for a, (c, _) in ALGORITHMS.items() if c])
def test_each_classifier_learns_breast_cancer_and_scores_like_sklearn(algorithm, breast_cancer):
    names, rows = breast_cancer
    spec = ModelSpec("classification", "target", tuple(names), algorithm=algorithm, cv=3)
    result = train(rows, spec)
    h, base = result.report["holdout"], result.report["baseline"]
    X_test, y_test = rows.X.iloc[455:], rows.y[455:]
    pred = result.model.predict(X_test)
    assert h["f1"] == pytest.approx(skm.f1_score(y_test, pred, average="macro"), abs=1e-12)
    assert h["f1"] >= 0.9 and h["accuracy"] > base["accuracy"] + 0.1
    assert h["roc_auc"] == pytest.approx(skm.roc_auc_score(y_test, result.model.predict_proba(X_test)[:, 1]),
                                         abs=1e-12)


@pytest.mark.parametrize("algorithm", [a for a, (_, r) in ALGORITHMS.items() if r])
def test_each_regressor_learns_diabetes_and_scores_like_sklearn(algorithm):
    df = load_diabetes(as_frame=True).frame
    names = [c for c in df.columns if c != "target"]
    rows = rows_of(df, "target", names, task="regression")
    result = train(rows, ModelSpec("regression", "target", tuple(names), algorithm=algorithm, cv=3))
    h, base = result.report["holdout"], result.report["baseline"]
    pred = result.model.predict(rows.X.iloc[-len(h["residuals"]["residual"]):])
    y_test = rows.y[-len(pred):]
    assert h["r2"] == pytest.approx(skm.r2_score(y_test, pred), abs=1e-12)
    assert h["r2"] > base["r2"] + 0.1 and h["mae"] < base["mae"]


def test_cv_scores_equal_sklearn_cross_validation(breast_cancer):
    names, rows = breast_cancer
    spec = ModelSpec("classification", "target", tuple(names), algorithm="logreg", cv=4)
    cv = train(rows, spec).report["cv"]
    want = cross_val_score(build(spec), rows.X.iloc[:455], rows.y[:455], cv=TimeSeriesSplit(4), scoring="f1_macro")
    np.testing.assert_allclose(cv["scores"], want, rtol=0, atol=1e-12)
    assert cv["std"] == pytest.approx(np.std(want, ddof=1), abs=1e-12)


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
    (lambda df: df.head(8), "too few for 5 folds"),
])
def test_clear_errors(change, message):
    df = change(mixed_frame(200))
    spec = ModelSpec("classification", "label", ("a", "b"), algorithm="logreg", cv=5)
    with pytest.raises(UserError, match=message):
        train(rows_of(df, "label", spec.numeric), spec)


@pytest.mark.parametrize("task", TASKS)
def test_algorithms_for_a_task_are_those_a_spec_accepts(task):
    accepted = []
    for algorithm in ALGORITHMS:
        try:
            ModelSpec(task, "y", ("a",), algorithm=algorithm)
            accepted.append(algorithm)
        except UserError:
            pass
    assert algorithms_for(task) == accepted
    assert ("logreg" in accepted, "ridge" in accepted) == (task == "classification", task == "regression")


def test_model_columns_are_text_bool_and_number_columns_but_not_internal_or_time():
    schema = pa.schema([("_rid", pa.int64()), ("ts", pa.timestamp("us", "UTC")), ("at", pa.int64()),
                        ("site", pa.string()), ("x", pa.float64()), ("n", pa.int32()), ("ok", pa.bool_()),
                        ("day", pa.date32())])
    assert model_columns(schema, "at") == ["site", "x", "n", "ok"]
    assert model_columns(schema, None) == ["at", "site", "x", "n", "ok"]


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


def test_cli_train_holds_out_the_newest_rows_by_time_not_by_file_order(tmp_path):
    """The newest 20% by time flip the concept; a holdout taken by file order would not see that."""
    df = mixed_frame(500)
    df.insert(0, "t", pd.date_range("2024-01-01", periods=500, freq="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))
    df.loc[400:, "label"] = np.where(df.loc[400:, "label"] == "yes", "no", "yes")
    path = tmp_path / "shuffled.csv"
    df.sample(frac=1, random_state=0).to_csv(path, index=False)
    r = run_cli("train", str(path), "--target", "label", "--features", "a,b,site", "--cv", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rows"]["ordered_by"] == "t" and out["rows"]["holdout"] == 100
    assert out["accuracy"] < 0.2 and min(out["cv_scores"]) > 0.8      # learned the old concept, scored on the new
    r = run_cli("train", str(path), "--target", "label", "--features", "a,b,site", "--time-column", "nope")
    assert r.returncode == 2 and "time column 'nope'" in r.stderr


def test_cli_train_counts_missing_targets_and_takes_a_pipeline(tmp_path):
    df = mixed_frame(200)
    df.loc[[5, 6, 150], "label"] = None
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    spec = tmp_path / "p.json"
    spec.write_text('{"version": 3, "steps": []}')
    model = tmp_path / "m.skops"
    r = run_cli("train", str(path), "--target", "label", "--features", "a,b", "--cv", "3", "--pipeline", str(spec),
                "--out", str(model), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rows"]["missing_target"] == 3 and out["rows"]["used"] == 197
    assert json.loads((tmp_path / "m.skops.card.json").read_text())["pipeline"]["version"] == 3
    spec.write_text('{"version": 4, "steps": [{"kind": "no-such-step"}]}')
    r = run_cli("train", str(path), "--target", "label", "--pipeline", str(spec), "--json")
    assert r.returncode == 2 and "unknown kind 'no-such-step'" in r.stderr and r.stderr.count("\n") == 1


def cli_model(tmp_path, df):
    """`df` written to d.csv and a model trained on it by the CLI: (csv path, model path)."""
    path, model = tmp_path / "d.csv", tmp_path / "m.skops"
    df.to_csv(path, index=False)
    r = run_cli("train", str(path), "--target", "label", "--features", "a,b,site", "--cv", "3", "--out", str(model))
    assert r.returncode == 0, r.stderr
    return path, model


def test_cli_predict_errors_are_one_line(tmp_path):
    df = mixed_frame(120)
    path, model = cli_model(tmp_path, df)
    lacking = tmp_path / "lacking.csv"
    df.drop(columns=["site"]).to_csv(lacking, index=False)
    sentinel = tmp_path / "pwned"
    evil = tmp_path / "evil.skops"
    evil.write_bytes(pickle.dumps(Payload(str(sentinel))))
    for args, message in [((str(model), str(lacking)), "features missing from the data: site"),
                          ((str(evil), str(path)), "never loaded"),
                          ((str(tmp_path / "none.skops"), str(path)), "cannot read"),
                          ((str(model), str(tmp_path / "none.csv")), "no such file"),
                          ((str(model), str(path), "--proba"), None)]:
        r = run_cli("predict", *args)
        if message is None:
            assert r.returncode == 0, r.stderr
            continue
        assert r.returncode == 2 and message in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1 and r.stdout == ""
    assert not sentinel.exists()
    r = run_cli("train", str(tmp_path / "none.csv"), "--target", "label")
    assert r.returncode == 2 and "no such file" in r.stderr


def test_cli_predict_writes_one_line_per_input_row_even_for_bad_rows(tmp_path):
    df = mixed_frame(200)
    good, model = cli_model(tmp_path, df)
    lines = good.read_text().splitlines()
    lines[11] = lines[11] + ",EXTRA,FIELDS"             # row 10: too many fields -> quarantined
    lines[51] = "a,b,noise,site,label,value"            # row 50: the header again -> quarantined
    lines[101] = lines[101].replace(lines[101].split(",")[0], "oops", 1)   # row 100: text in a number: kept
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    r = run_cli("predict", str(model), str(bad))
    assert r.returncode == 0, r.stderr
    assert "2 rows" in r.stderr
    out = pd.read_csv(io.StringIO(r.stdout), skip_blank_lines=False)
    assert len(out) == 200
    assert out.loc[[10, 50], "prediction"].isna().all() and out.loc[[10, 50], "a"].isna().all()
    from engine.models.export import import_file
    m, _ = import_file(str(model))
    X = df[["a", "b", "site"]].astype({"site": object}).copy()
    X.loc[100, "a"] = np.nan
    keep = [i for i in range(200) if i not in (10, 50)]
    assert out.loc[keep, "prediction"].tolist() == m.predict(X.loc[keep]).tolist()


# --- issue 14: one-vs-rest AUC, precision-recall and thresholds from the holdout ---------------------------

def test_multiclass_roc_auc_is_one_vs_rest_macro_over_the_classes_the_holdout_holds():
    from sklearn.datasets import load_wine
    from engine.models import evaluate
    X, y = load_wine(return_X_y=True)
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), len(y)) * 0.5 + np.eye(3)[y] * 0.5
    got = evaluate.classification(y, proba.argmax(axis=1), proba, [0, 1, 2])
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert got["roc_auc_note"] == "one-vs-rest, macro average over the 3 classes"
    two = y > 0                                     # class 0 absent from these rows: sklearn refuses, we say so
    got = evaluate.classification(y[two], proba[two].argmax(axis=1), proba[two], [0, 1, 2])
    want = np.mean([skm.roc_auc_score(y[two] == c, proba[two][:, c]) for c in (1, 2)])
    assert got["roc_auc"] == pytest.approx(want) and "2 classes of 3 that the holdout rows hold" in got["roc_auc_note"]
    one = y == 2
    got = evaluate.classification(y[one], proba[one].argmax(axis=1), proba[one], [0, 1, 2])
    assert got["roc_auc"] is None and "one class only (2)" in got["roc_auc_note"]


def test_binary_holdout_keeps_precision_recall_and_threshold_counts():
    from sklearn.datasets import load_breast_cancer
    from engine.models import evaluate
    X, y = load_breast_cancer(return_X_y=True)
    score = 1 / (1 + np.exp(-(X[:, 0] - 14) / 2))             # a plausible score from one feature
    proba = np.column_stack([1 - score, score])
    h = evaluate.classification(y, (score >= 0.5).astype(int), proba, [0, 1])
    assert h["pr"]["average_precision"] == pytest.approx(skm.average_precision_score(y, score))
    assert len(h["pr"]["precision"]) <= evaluate.ROC_POINTS
    for t in (0.0, 0.2, 0.37, 0.5, 0.81, 1.0):
        pred = (score >= t).astype(int)
        got = evaluate.at_threshold(h, t)
        assert got["threshold"] == t
        assert got["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0))
        assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
        assert got["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0))
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    multi = evaluate.classification(np.array([0, 1, 2, 1]), np.array([0, 1, 2, 2]), np.eye(3)[[0, 1, 2, 2]], [0, 1, 2])
    with pytest.raises(UserError, match="exist for two classes"):
        evaluate.at_threshold(multi, 0.5)


def test_macro_scores_average_the_classes_the_rows_hold_as_sklearn_does():
    """iris in file order: the newest fifth is all virginica. A model right on every row had macro F1 0.333,
    because setosa and versicolor (no rows, never predicted) counted as F1 0."""
    from engine.models import evaluate
    classes = ["setosa", "versicolor", "virginica"]
    cases = [(["virginica"] * 5, ["virginica"] * 5),
             (["virginica"] * 5, ["virginica"] * 4 + ["versicolor"]),
             (["versicolor", "virginica", "virginica"], ["setosa", "virginica", "versicolor"])]
    for y_true, y_pred in cases:
        y_true, y_pred = np.array(y_true), np.array(y_pred)
        h = evaluate.classification(y_true, y_pred, None, classes)
        for avg in ("macro", "weighted"):
            assert h[f"f1_{avg}"] == pytest.approx(skm.f1_score(y_true, y_pred, average=avg, zero_division=0))
            assert h[f"precision_{avg}"] == pytest.approx(
                skm.precision_score(y_true, y_pred, average=avg, zero_division=0))
            assert h[f"recall_{avg}"] == pytest.approx(skm.recall_score(y_true, y_pred, average=avg, zero_division=0))
        assert list(h["per_class"]) == classes and h["per_class"]["setosa"]["support"] == 0
    assert evaluate.classification(*cases[0], None, classes)["f1"] == 1.0


def test_time_order_puts_rows_without_a_time_first_without_a_warning():
    """`train` on a file with gaps in its time column printed pyarrow's FutureWarning on null_placement."""
    import warnings
    import pyarrow as pa
    from engine.models.data import in_time_order
    table = pa.table({"t": pa.array([3.0, None, 1.0, None, 2.0]), "v": [0, 1, 2, 3, 4]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ordered, column = in_time_order(table, "t")
    assert column == "t" and ordered.column("v").to_pylist() == [1, 3, 2, 4, 0]


def test_cli_train_on_class_sorted_files_prints_no_sklearn_warnings(tmp_path):
    """wine and tips in file order: time folds whose models saw one class, or two of four; `train --json`
    printed scikit-learn's UserWarning and UndefinedMetricWarning lines on stderr around the JSON."""
    from sklearn.datasets import load_wine
    wine = load_wine(as_frame=True).frame                 # sorted by class, as the file ships
    wine["target"] = wine["target"].map({0: "a", 1: "b", 2: "c"})
    path = tmp_path / "wine.csv"
    wine.to_csv(path, index=False)
    import plotly.express as px
    px.data.tips().to_csv(tmp_path / "tips.csv", index=False)      # days in runs: Sun, Sat, Thur, Fri, ...
    for file, target, model in ((path, "target", "rf"), (tmp_path / "tips.csv", "day", "logreg"),
                                (tmp_path / "tips.csv", "day", "rf")):
        r = run_cli("train", str(file), "--target", target, "--model", model, "--json")
        assert r.returncode == 0, r.stderr
        assert r.stderr == "", r.stderr
        assert json.loads(r.stdout)["task"] == "classification"


def test_stratified_folds_hold_out_a_share_of_every_class_of_a_class_sorted_file():
    """wine ships sorted by class: the newest-rows holdout is one class. With stratified folds the rows are
    exchangeable, so the holdout is a seeded stratified share (row order kept), which the CLI, the report
    and a rerun agree on; time folds keep the newest rows."""
    from sklearn.datasets import load_wine
    from engine.models import evaluate
    wine = load_wine(as_frame=True).frame
    names = [c for c in wine.columns if c != "target"]
    rows = rows_of(wine, "target", names)
    spec = ModelSpec("classification", "target", tuple(names), algorithm="logreg", cv=3, cv_kind="stratified")
    fit_at, held = evaluate.holdout_rows(rows.y, 0.2, "stratified")
    assert sorted(np.concatenate([fit_at, held]).tolist()) == list(range(len(rows.y)))
    assert (np.diff(held) > 0).all() and (np.diff(fit_at) > 0).all()
    counts = pd.Series(rows.y).value_counts()
    assert pd.Series(rows.y[held]).value_counts().to_dict() == (counts * 0.2).round().astype(int).to_dict()
    assert (evaluate.holdout_rows(rows.y, 0.2, "stratified")[1] == held).all()      # seeded: the same rows again
    report = train(rows, spec).report
    assert report["rows"]["holdout_kind"] == "stratified" and report["rows"]["holdout"] == len(held)
    assert all(v["support"] > 0 for v in report["holdout"]["per_class"].values())
    model = train(rows, spec).model
    assert report["holdout"]["f1"] == pytest.approx(
        skm.f1_score(rows.y[held], model.predict(rows.X.iloc[held]), average="macro"), abs=1e-12)
    fit_at, held = evaluate.holdout_rows(rows.y, 0.2, "time")                       # time folds: the newest
    assert fit_at.tolist() == list(range(142)) and held.tolist() == list(range(142, 178))
    assert set(rows.y[held].tolist()) == {2}
    assert evaluate.holdout_rows(np.array(["a"] * 5 + ["b"]), 0.2, "stratified")[1].tolist() == [4]   # b: 1 row


@pytest.mark.parametrize("n,share", [(2, 0.2), (3, 0.5), (10, 0.9)])
def test_both_holdout_kinds_refuse_too_few_rows_alike(n, share):
    from engine.models import evaluate
    y = np.array(["a", "b"] * n)[:n]
    for kind in ("time", "stratified"):
        with pytest.raises(UserError, match=f"^{n} rows are too few to train and keep a holdout; add rows$"):
            evaluate.holdout_rows(y, share, kind)
    assert evaluate.holdout_size(20, share) == max(1, round(20 * share))


def test_roc_needs_both_of_a_binary_models_classes_in_the_rows():
    import warnings
    from engine.models import evaluate
    y = np.array(["Sun", "Sun", "Thur", "Thur"])                 # the model knows Fri and Sat only
    proba = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.9, 0.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = evaluate.classification(y, np.array(["Sat", "Fri", "Fri", "Fri"]), proba, ["Fri", "Sat"])
    assert h["roc_auc"] is None and "only one of the model's two classes" in h["roc_auc_note"]
    assert h["confusion"] == [[0, 0], [0, 0]] and h["accuracy"] == 0.0   # scikit-learn's confusion_matrix raised


def test_id_like_text_columns_are_left_out_of_the_default_features():
    """A tailed file whose dd.mm.yyyy times all fell in March's first days stayed text: trained with every
    column, the model one-hot encoded a column per row of it."""
    from engine.models.data import id_like, split_features
    n = 300
    rng = np.random.default_rng(0)
    table = pa.table({"ts": [f"01.03.2024 {i // 60:02d}:{i % 60:02d}" for i in range(n)],
                      "order": [f"A-{i:05d}" for i in range(n)],
                      "site": rng.choice(["north", "south", "east"], n).tolist(),
                      "code": [f"c{i % 15}" for i in range(n)],          # 15 values: a category, not an id
                      "x": rng.normal(size=n), "label": rng.choice(["a", "b"], n).tolist()})
    assert id_like(table, table.column_names) == ["ts", "order"]
    assert split_features(table, None, "label") == (["x"], ["site", "code"])
    assert split_features(table, ["order", "x"], "label") == (["x"], ["order"])      # named: taken as asked
    few = table.slice(0, 15)                                                          # under 20 values: no id
    assert id_like(few, few.column_names) == []


@pytest.mark.parametrize("algorithm, task, target", [
    (a, task, target) for task, target in (("classification", "continent"), ("regression", "lifeExp"))
    for a in algorithms_for(task)])
def test_every_algorithm_trains_with_a_category_of_many_values(algorithm, task, target):
    """plotly's gapminder: 142 countries one-hot make the encoded rows 3% filled, which scikit-learn
    passes on sparse; gradient boosting refused sparse input with a traceback."""
    import plotly.express as px
    df = px.data.gapminder()[["country", "continent", "year", "lifeExp", "pop", "gdpPercap"]]
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)          # every country on both sides
    numeric = [c for c in ("year", "lifeExp", "pop", "gdpPercap") if c != target]
    spec = ModelSpec(task, target, tuple(numeric), ("country",), algorithm, FAST.get(algorithm, {}), cv=3)
    result = train(rows_of(df, target, spec.numeric, spec.categorical, task), spec)
    if task == "classification":                  # a country has one continent
        assert result.report["holdout"]["accuracy"] > result.report["baseline"]["accuracy"] + 0.2
    else:
        assert result.report["holdout"]["rmse"] < result.report["baseline"]["rmse"]


def test_a_file_sorted_by_its_target_says_which_fold_saw_one_class_in_plain_words():
    """scikit-learn's wine rows are sorted by class: the first time-ordered fold trains on class 0 only. The
    page showed 'This solver needs samples of at least 2 classes ... only one class: np.int64(0)'."""
    from sklearn.datasets import load_wine
    df = load_wine(as_frame=True).frame
    features = [c for c in df.columns if c != "target"][:5]
    spec = ModelSpec("classification", "target", tuple(features), algorithm="logreg", cv=5)
    with pytest.raises(UserError) as e:
        train(rows_of(df, "target", features), spec)
    assert str(e.value).startswith("fold 1 of 5 trains on one class only (0)"), str(e.value)
    assert "np." not in str(e.value) and "solver" not in str(e.value)
    stratified = ModelSpec("classification", "target", tuple(features), algorithm="logreg", cv=5,
                           cv_kind="stratified")
    assert train(rows_of(df, "target", features), stratified).report["cv"]["k"] == 5    # what it suggests works
