"""Models and Export pages under AppTest: train on an uploaded CSV and check the scores against
scikit-learn, deploy, export a .skops that loads back, import it, refuse a pickle, download data."""
import io
import json
import pickle
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import skops.io as sio
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from streamlit.runtime.media_file_manager import MediaFileManager

from tests.test_app import SOURCES, app, button, metric, open_app, rerun_until  # noqa: F401  (fixture)

MODELS, EXPORT = "pages/5_Models.py", "pages/6_Export.py"


def frame(n=600, one_class=False) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=n), rng.normal(size=n)
    label = np.zeros(n, int) if one_class else ((x + 0.5 * y + rng.normal(0, 0.7, n)) > 0).astype(int)
    kind = np.where(rng.random(n) < 0.1, "=HYPERLINK(\"x\")", rng.choice(["a", "b"], n))
    return pd.DataFrame({"kind": kind, "x": x.round(6), "y": y.round(6), "label": label})


@pytest.fixture
def downloads(monkeypatch):
    """Bytes of every download button drawn, by file name (AppTest keeps them in a mock runtime)."""
    got = {}
    add = MediaFileManager.add

    def record(self, data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        if file_name is not None:
            got[file_name] = data if isinstance(data, bytes) else data.encode()
        return add(self, data, mimetype, coordinates, file_name, is_for_static_download)
    monkeypatch.setattr(MediaFileManager, "add", record)
    return got


def uploaded(df: pd.DataFrame, name: str, monkeypatch):
    monkeypatch.setenv("RIVULET_DEMO", "0")
    at = open_app(SOURCES)
    at.file_uploader[0].set_value((f"{name}.csv", df.to_csv(index=False).encode(), "text/csv")).run()
    button(at, "Start replay").click().run()
    rerun_until(at, lambda a: metric(a, "Rows") == f"{len(df):,}")
    at.switch_page(MODELS).run()
    assert not at.exception
    return at


def train_clicked(at, target="label", features=("x", "y"), folds=3):
    at.selectbox(key="m_target").set_value(target).run()
    at.multiselect(key="m_features").set_value(list(features)).run()
    at.radio(key="m_slice").set_value("All stored rows").run()
    at.number_input(key="m_folds").set_value(folds).run()
    button(at, "Train").click().run()
    assert not at.exception, at.exception
    return rerun_until(at, lambda a: "m_job" not in a.session_state, timeout=120)


def test_train_deploy_export_and_import(app, monkeypatch, downloads):
    df = frame()
    at = uploaded(df, "plant", monkeypatch)
    assert any("No trained models" in i.value for i in at.info)
    at = train_clicked(at)
    assert any("done, stored as" in s.value for s in at.success), [e.value for e in at.error]
    # the holdout scores equal scikit-learn's on the same time-ordered split
    cut = len(df) - round(len(df) * 0.2)
    ref = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression())
    ref.fit(df[["x", "y"]][:cut], df["label"][:cut])
    pred = ref.predict(df[["x", "y"]][cut:])
    assert metric(at, "Macro F1") == f"{f1_score(df['label'][cut:], pred, average='macro'):.3f}"
    assert metric(at, "Accuracy") == f"{accuracy_score(df['label'][cut:], pred):.3f}"
    # macro averages, and named so: the threshold panel beside them shows one class's precision and recall
    assert metric(at, "Macro precision") == f"{precision_score(df['label'][cut:], pred, average='macro'):.3f}"
    assert metric(at, "Macro recall") == f"{recall_score(df['label'][cut:], pred, average='macro'):.3f}"
    charts = at.get("plotly_chart")
    assert len(charts) >= 3                        # confusion matrix, ROC, folds
    assert any(f"trained on {cut:,} of {len(df):,} rows (all stored rows), scored on the newest {len(df) - cut:,}"
               in c.value for c in at.caption), [c.value for c in at.caption]
    board = at.dataframe[-1].value
    assert board["algorithm"].tolist() == ["Logistic regression"]

    button(at, "Deploy onto plant").click().run()
    assert not at.exception
    at = rerun_until(at, lambda a: metric(a, "Rows predicted") == "0")
    assert any("deployed" in m.value for m in at.markdown)
    button(at, "Undeploy").click().run()
    at = rerun_until(at, lambda a: any("No model is deployed" in i.value for i in a.info))

    at.switch_page(EXPORT).run()
    assert not at.exception
    model_id = at.selectbox(key="x_model").value
    data = downloads[f"{model_id}.skops"]
    model = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    np.testing.assert_array_equal(model.predict(df[["x", "y"]][cut:]), pred)
    assert b"sha256" in downloads[f"{model_id}.skops.card.json"]

    at.radio(key="x_format").set_value("joblib").run()
    assert any("pickles" in w.value for w in at.warning)

    # import: the .skops comes back as a new model; a pickle is refused with a message
    at.file_uploader(key="x_import_0").set_value(("mine.skops", data, "application/octet-stream")).run()
    button(at, "Import").click().run()
    assert not at.exception
    assert any("Imported as" in s.value for s in at.success)
    assert len(at.selectbox(key="x_model").options) == 2
    at.file_uploader(key="x_import_1").set_value(("evil.skops", pickle.dumps(model), "application/octet-stream"))
    at.run()
    button(at, "Import").click().run()
    assert any("never loaded" in e.value for e in at.error)
    assert len(at.selectbox(key="x_model").options) == 2

    # the import came without its card: the Models page lists it with what the file records
    imported = at.session_state["x_imported"]
    at.switch_page(MODELS).run()
    at.selectbox(key="m_model").set_value(imported).run()
    assert not at.exception
    assert len(at.selectbox(key="m_model").options) == 2
    assert any("imported without its model card" in i.value for i in at.info)
    assert any(r"**mine** · LogisticRegression · imported from mine\.skops · classification of 0, 1 · x, y" in c.value
               for c in at.caption), [c.value for c in at.caption]
    assert any(b.label == "Deploy onto plant" for b in at.button)
    at.switch_page(EXPORT).run()

    # stored history as CSV has formula cells escaped; as Parquet it keeps the values
    at.radio(key="x_data").set_value("Stored history").run()
    csv = downloads["plant-history.csv"].decode()
    assert "'=HYPERLINK" in csv and "\n=HYPERLINK" not in csv and ",=HYPERLINK" not in csv
    at.radio(key="x_data_format").set_value("parquet").run()
    table = pq.read_table(io.BytesIO(downloads["plant-history.parquet"]))
    assert table.num_rows == len(df) and table.column("kind").to_pylist() == df["kind"].tolist()


def test_analyst_errors_are_messages(app, monkeypatch):
    at = uploaded(frame(300, one_class=True), "flat", monkeypatch)
    at = train_clicked(at)
    assert any("one class only" in e.value for e in at.error), [e.value for e in at.error]
    # a text target cannot be regressed: a message, before any job starts
    at.selectbox(key="m_target").set_value("kind").run()
    at.multiselect(key="m_features").set_value(["x"]).run()
    at.radio(key="m_task_kind").set_value("regression").run()
    button(at, "Train").click().run()
    assert any("regression needs a numeric target" in e.value for e in at.error)
    # too few rows for the folds
    at.radio(key="m_task_kind").set_value("classification").run()
    at.radio(key="m_slice").set_value("Last N rows").run()
    at.number_input(key="m_last").set_value(20).run()
    at.number_input(key="m_folds").set_value(10).run()
    button(at, "Train").click().run()
    at = rerun_until(at, lambda a: "m_job" not in a.session_state, timeout=120)
    assert any("too few" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.exception
    assert all("Traceback" not in e.value for e in at.error)


def test_models_page_renders_with_the_demo_and_cancels_a_job(app):
    at = open_app(MODELS)
    at = rerun_until(at, lambda a: any(s.key == "m_target" for s in a.selectbox), timeout=30)
    time.sleep(2)
    at.run()
    assert at.selectbox(key="m_target").value == "alarm"
    assert at.radio(key="m_task_alarm").value == "classification"
    at.selectbox(key="m_algorithm_classification").set_value("rf").run()
    at.number_input(key="m_trees").set_value(1000).run()
    at.radio(key="m_slice").set_value("All stored rows").run()
    at.number_input(key="m_folds").set_value(2).run()
    button(at, "Train").click().run()
    assert any(b.label == "Cancel" for b in at.button)
    button(at, "Cancel").click().run()
    at = rerun_until(at, lambda a: "m_job" not in a.session_state, timeout=60)
    assert any("cancelled" in i.value for i in at.info), [e.value for e in at.error]
    assert not at.exception


def test_regression_cards_search_and_comparison(app, monkeypatch):
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_absolute_error
    rng = np.random.default_rng(4)
    n = 400
    df = pd.DataFrame({"a": rng.normal(size=n).round(5), "b": rng.normal(size=n).round(5)})
    df["z"] = (2 * df["a"] - df["b"] + rng.normal(0, 0.3, n)).round(5)
    at = uploaded(df, "reg", monkeypatch)
    at.selectbox(key="m_target").set_value("z").run()
    assert at.radio(key="m_task_z").value == "regression"            # guessed from a continuous target
    at.selectbox(key="m_algorithm_regression").set_value("ridge").run()
    at = train_clicked(at, target="z", features=("a", "b"))
    cut = n - round(n * 0.2)
    ref = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), Ridge()).fit(df[["a", "b"]][:cut],
                                                                                         df["z"][:cut])
    assert metric(at, "MAE") == f"{mean_absolute_error(df['z'][cut:], ref.predict(df[['a', 'b']][cut:])):.3f}"
    assert [m.label for m in at.metric][:3] == ["R²", "MAE", "RMSE"]

    button(at, "Start search").click().run()
    at = rerun_until(at, lambda a: "m_job" not in a.session_state, timeout=180)
    assert any("search ridge: done" in s.value for s in at.success), [e.value for e in at.error]
    assert any(e.label.startswith("Hyperparameter search") for e in at.expander)

    at.multiselect(key="m_compare").set_value(["ridge", "rf"]).run()
    button(at, "Start comparison").click().run()
    at = rerun_until(at, lambda a: "m_job" not in a.session_state, timeout=180)
    assert any("Compared 2 models" in s.value for s in at.success), [e.value for e in at.error]
    board = at.dataframe[-1].value
    assert len(board) == 4                                     # train, search, and the two compared
    assert board["holdout"].is_monotonic_decreasing             # ranked by the newest rows
    assert "CV" in board.columns and any("Scores are R²" in c.value for c in at.caption)


def test_public_data_threshold_names_and_what_fits_the_target(app, monkeypatch):
    """scikit-learn's breast-cancer rows: the precision at a chosen threshold equals scikit-learn's on the
    holdout; a model is renamed with a note; a regression target offers only time-ordered folds and keeps
    the Train button; a feature ranking shows only for the choice it was made for."""
    from sklearn.datasets import load_breast_cancer
    df = load_breast_cancer(as_frame=True).frame[["mean radius", "mean texture", "mean smoothness", "target"]]
    at = uploaded(df, "cancer", monkeypatch)
    at = train_clicked(at, target="target", features=("mean radius", "mean texture"))
    model_id = at.session_state["m_model"]
    cut = len(df) - round(len(df) * 0.2)
    X = df[["mean radius", "mean texture"]]
    ref = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression())
    score = ref.fit(X[:cut], df["target"][:cut]).predict_proba(X[cut:])[:, 1]
    at.slider(key=f"m_threshold_{model_id}").set_value(0.2).run()
    assert not at.exception
    assert metric(at, "Precision at 0.20") == f"{precision_score(df['target'][cut:], score >= 0.2):.3f}"
    assert metric(at, "Recall at 0.20") == f"{recall_score(df['target'][cut:], score >= 0.2):.3f}"
    assert any('"threshold 0.20"' in c.proto.spec for c in at.get("plotly_chart"))     # the point on the PR curve

    at.text_input(key=f"m_name_{model_id}").set_value("radius only")
    at.text_area(key=f"m_note_{model_id}").set_value("two features, a first look")
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception
    assert any("**radius only**" in c.value and "_two features, a first look_" in c.value for c in at.caption)
    board = at.dataframe[-1].value
    assert board["model"].tolist() == ["radius only"] and "holdout" in board.columns
    assert any("Scores are macro F1" in c.value for c in at.caption)

    button(at, "Rank features").click().run()
    assert any("mutual information" in str(c.proto.spec) for c in at.get("plotly_chart"))
    at.multiselect(key="m_features").set_value(["mean radius"]).run()
    assert not any("mutual information" in str(c.proto.spec) for c in at.get("plotly_chart"))

    at.selectbox(key="m_target").set_value("mean smoothness").run()
    assert at.radio(key="m_task_mean smoothness").value == "regression"
    assert at.radio(key="m_cv_kind_regression").options == ["Time-series split"]
    assert any(b.label == "Train" for b in at.button)
    at.selectbox(key="m_target").set_value("target").run()
    at.radio(key="m_cv_kind_classification").set_value("Stratified k-fold").run()
    assert any(b.label == "Train" for b in at.button) and not at.exception


EVIL = "[click](http://evil.example/x) ![img](http://evil.example/i.png)"


def test_an_imported_cards_text_is_shown_as_text_not_markdown(app, monkeypatch):
    """A card's name, target and features come from the uploaded file: no link or image may render."""
    from engine.runtime import Engine
    from sklearn.tree import DecisionTreeClassifier
    df = frame()
    model = DecisionTreeClassifier(max_depth=3).fit(df[["x", "y"]], df["label"])
    card = {"name": EVIL, "spec": {"task": "classification", "target": EVIL},
            "features": [{"name": "x", "kind": "number", "role": "numeric"},
                         {"name": "y", "kind": "number", "role": "numeric"}],
            "libraries": {EVIL: "1.0"}}
    with Engine(str(app)) as engine:
        engine.models.import_model(sio.dumps(model), "evil.skops", card_data=json.dumps(card).encode())
    at = open_app(EXPORT)
    seen = []
    for page in (EXPORT, MODELS):
        at.switch_page(page).run()
        assert not at.exception, at.exception
        texts = [e.value for kind in ("markdown", "caption", "success", "info", "warning")
                 for e in at.get(kind)]
        assert not [t for t in texts if "](http" in t], [t for t in texts if "](http" in t]
        seen += [t for t in texts if "evil" in t]
    assert seen, "the card's name is not shown at all"


def test_the_feature_picker_starts_without_id_like_text_columns(app, monkeypatch):
    df = frame(300)
    df.insert(0, "order", [f"A-{i:05d}" for i in range(len(df))])
    at = uploaded(df, "orders", monkeypatch)
    at.selectbox(key="m_target").set_value("label").run()
    assert at.multiselect(key="m_features").value == ["kind", "x", "y"]
    assert "order" in at.multiselect(key="m_features").options


def test_a_holdout_of_one_class_is_called_out(app, monkeypatch):
    """iris and wine in file order: the newest fifth is one class, and the cards read 1.000 with nothing
    saying that the other classes were never scored."""
    df = frame(400)
    one = df[df["label"] == df["label"].iloc[0]].iloc[:60]          # the newest 60 rows: one class
    df = pd.concat([df.drop(one.index).iloc[:240], one], ignore_index=True)
    at = uploaded(df, "sorted", monkeypatch)
    at = train_clicked(at)
    warned = [w.value for w in at.warning if "holdout rows are" in w.value]
    assert warned and "sorted by its target" in warned[0] and "stratified" in warned[0], \
        [w.value for w in at.warning]
    at.radio(key="m_cv_kind_classification").set_value("Stratified k-fold").run()   # as the warning says
    assert at.slider(key="m_holdout").label == "Holdout (stratified sample)"
    at = train_clicked(at)
    assert not [w.value for w in at.warning if "holdout rows are" in w.value]
    assert any("stratified random 60 rows" in c.value for c in at.caption), [c.value for c in at.caption]


def test_the_target_stays_the_label_after_a_step_appends_a_column(app, monkeypatch):
    """A derive step appends its column last; the form took the last column as the target, so the
    derived ratio became the target and the label a feature (seen on breast_cancer's `target`)."""
    import os
    from ui.engine import _shared_engine
    at = uploaded(frame(), "plant", monkeypatch)
    assert at.selectbox(key="m_target").value == "label"
    engine = _shared_engine(os.environ["RIVULET_DATA_DIR"], False)      # the page's own engine
    engine.apply("plant", {"steps": [{"kind": "derive", "params": {"name": "ratio", "expr": "x / (abs(y) + 1)"}}]})
    at = rerun_until(at, lambda a: "ratio" in a.selectbox(key="m_target").options)
    for page in (at, open_app(MODELS)):         # this session, and a new one's first visit
        assert page.selectbox(key="m_target").value == "label", page.selectbox(key="m_target").options
        assert "label" not in page.multiselect(key="m_features").value
