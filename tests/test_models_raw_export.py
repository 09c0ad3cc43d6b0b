"""Pipeline steps compiled into the exported model: it takes the raw columns (real subprocesses)."""
import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from engine.models import compiled
from engine.prep.pipeline import Pipeline
from tests.conftest import run_cli

SPEC = {"version": 0, "steps": [
    {"kind": "fill_missing", "params": {"columns": ["a"], "method": "median"}},
    {"kind": "fill_missing", "params": {"columns": ["color"], "value": "none"}},
    {"kind": "normalise", "params": {"columns": ["a", "b"], "method": "zscore", "stats": "frozen"}},
    {"kind": "clip", "params": {"columns": ["b"], "lower": -2}},
    {"kind": "onehot", "params": {"column": "color", "max_categories": 3}},
]}


def raw_frame(n, seed):
    rng = np.random.default_rng(seed)
    a = np.round(rng.normal(5, 2, n), 4)
    a[::7] = np.nan
    color = rng.choice(["red", "blue", "green", "pink"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    color[::11] = None
    b = np.round(rng.normal(size=n), 4)
    label = ((np.nan_to_num(a, nan=5) - 5) / 2 + b + (color == "red") > 0.3).astype(int)
    return pd.DataFrame({"a": a, "b": b, "color": color, "label": label})


@pytest.fixture
def trained(tmp_path):
    data, spec, model = tmp_path / "train.csv", tmp_path / "p.json", tmp_path / "m.skops"
    raw_frame(2000, 1).to_csv(data, index=False)
    spec.write_text(json.dumps(SPEC))
    r = run_cli("train", str(data), "--target", "label", "--pipeline", str(spec), "--out", str(model), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"]["raw_columns"] is True and "warning" not in r.stderr
    rows = raw_frame(300, 2).drop(columns="label")
    rows.loc[3, "color"] = "violet"                     # unseen in training: all zeros, as the step does
    rows.to_csv(tmp_path / "raw.csv", index=False)
    return tmp_path, model, rows


def test_exported_skops_predicts_from_raw_columns_in_a_fresh_python(trained):
    tmp_path, model, rows = trained
    card = json.loads((tmp_path / "m.skops.card.json").read_text())
    assert card["raw_columns"] is True and card["pipeline_in_model"] is True
    assert [(f["name"], f["role"]) for f in card["features"]] == [("a", "numeric"), ("b", "numeric"),
                                                                   ("color", "categorical")]
    script = f"""
import sys, json, pandas as pd, skops.io as sio
allowed = {json.dumps(list(__import__('engine.models.safe', fromlist=['ALLOWED']).ALLOWED))}
path = {str(model)!r}
assert set(sio.get_untrusted_types(file=path)) <= set(allowed), sio.get_untrusted_types(file=path)
model = sio.load(path, trusted=allowed)
X = pd.read_csv({str(tmp_path / 'raw.csv')!r}).astype({{'color': object}})
assert not any(m == 'engine' or m.startswith('engine.') for m in sys.modules)
print(json.dumps({{"pred": model.predict(X).tolist(), "proba": model.predict_proba(X).tolist()}}))
"""
    r = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    fresh = json.loads(r.stdout)
    p = run_cli("predict", str(model), str(tmp_path / "raw.csv"), "--proba")
    assert p.returncode == 0, p.stderr
    cli = pd.read_csv(io.StringIO(p.stdout))
    assert fresh["pred"] == cli["prediction"].tolist()
    np.testing.assert_allclose(fresh["proba"], cli[["proba_0", "proba_1"]].to_numpy(), rtol=0, atol=1e-12)
    assert len(set(fresh["pred"])) == 2


def test_compiled_steps_equal_the_engine_steps_on_raw_rows(trained):
    """The scikit-learn transformers give exactly the engine pipeline's columns, so the model sees the same input."""
    from engine.models.data import features_frame
    from engine.models.export import import_file
    tmp_path, model, rows = trained
    card = json.loads((tmp_path / "m.skops.card.json").read_text())
    exported, _ = import_file(str(model))
    ct = exported.named_steps["pipeline"]
    ours = ct.transform(rows.astype({"color": object}))
    engine = Pipeline.from_dict(card["pipeline"]).apply(pa.Table.from_pandas(rows, preserve_index=False))
    names = [f["name"] for f in card["processed_features"]]
    want = features_frame(engine, names, [])
    assert set(names) <= set(ours.columns) and len(names) == 2 + 3
    np.testing.assert_array_equal(ours[names].to_numpy(np.float64), want.to_numpy())
    assert ours.loc[3, [n for n in names if n.startswith("color_")]].sum() == 0          # unseen "violet"


def test_onnx_export_of_a_compiled_pipeline_is_refused_in_one_line(trained):
    """skl2onnx cannot chain a ColumnTransformer's named columns into the model's; the export says so."""
    tmp_path, _, _ = trained
    r = run_cli("train", str(tmp_path / "train.csv"), "--target", "label", "--pipeline", str(tmp_path / "p.json"),
                "--out", str(tmp_path / "m.onnx"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "compiled pipeline steps cannot be exported to ONNX; export it as .skops" in r.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_a_step_that_does_not_compile_marks_the_card_and_warns(tmp_path):
    data, spec, model = tmp_path / "train.csv", tmp_path / "p.json", tmp_path / "m.skops"
    raw_frame(800, 3).to_csv(data, index=False)
    spec.write_text(json.dumps({"steps": [SPEC["steps"][0], {"kind": "derive", "params": {"name": "c", "expr": "a + b"}},
                                          SPEC["steps"][4]]}))
    r = run_cli("train", str(data), "--target", "label", "--pipeline", str(spec), "--out", str(model), "--json")
    assert r.returncode == 0, r.stderr
    assert "warning: this model takes the columns after the stream's pipeline" in r.stderr
    card = json.loads((tmp_path / "m.skops.card.json").read_text())
    assert card["raw_columns"] is False and "step 2 (derive)" in card["raw_columns_reason"]
    assert "pipeline_in_model" not in card and "c" in [f["name"] for f in card["features"]]
    raw = tmp_path / "raw.csv"
    raw_frame(50, 4).drop(columns="label").to_csv(raw, index=False)
    p = run_cli("predict", str(model), str(raw))                   # predict still applies the card's pipeline
    assert p.returncode == 0, p.stderr
    assert len(pd.read_csv(io.StringIO(p.stdout))) == 50


@pytest.mark.parametrize("step, reason", [
    ({"kind": "derive", "params": {"name": "a", "expr": "a * 2"}}, "step 1 (derive)"),
    ({"kind": "fill_missing", "params": {"columns": ["a"], "method": "ffill"}}, "forward fill"),
    ({"kind": "normalise", "params": {"columns": ["a"]}}, "running statistics"),
    ({"kind": "filter", "params": {"where": {"column": "a", "op": ">", "value": 0}}}, "step 1 (filter)"),
    ({"kind": "rename", "params": {"columns": {"b": "a"}}}, "renamed"),
])
def test_steps_without_a_sklearn_equivalent_say_why(step, reason):
    got = compiled.check({"steps": [step]}, ["a"])
    assert got is not None and reason in got
    assert compiled.check({"steps": [{"kind": "select", "params": {"columns": ["a", "b"]}}]}, ["a"]) is None
