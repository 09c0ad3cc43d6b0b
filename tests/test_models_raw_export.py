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
    spec.write_text(json.dumps({"steps": [SPEC["steps"][0], {"kind": "derive", "params": {"name": "c", "expr": "a // b"}},
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
    ({"kind": "derive", "params": {"name": "a", "expr": "a % 2"}}, "step 1 (derive)"),
    ({"kind": "fill_missing", "params": {"columns": ["a"], "method": "ffill"}}, "forward fill"),
    ({"kind": "normalise", "params": {"columns": ["a"]}}, "running statistics"),
    ({"kind": "filter", "params": {"where": {"column": "a", "op": ">", "value": 0}}}, "step 1 (filter)"),
    ({"kind": "rename", "params": {"columns": {"b": "a"}}}, "renamed"),
])
def test_steps_without_a_sklearn_equivalent_say_why(step, reason):
    got = compiled.check({"steps": [step]}, ["a"])
    assert got is not None and reason in got
    assert compiled.check({"steps": [{"kind": "select", "params": {"columns": ["a", "b"]}}]}, ["a"]) is None


# --- raw CSV columns of every dtype pandas gives them; derive compiled -------------------------

def tips_like(n, seed):
    """Columns of each kind a CSV holds: whole numbers with and without gaps, yes/no with and without gaps."""
    rng = np.random.default_rng(seed)
    bill = np.round(rng.gamma(4, 5, n), 2)
    size = rng.integers(1, 7, n)
    party = rng.integers(1, 5, n).astype(float)
    party[::9] = np.nan
    flag = rng.random(n) < 0.3
    flag_gaps = np.where(np.arange(n) % 7 == 0, None, rng.random(n) < 0.5).astype(object)
    day = rng.choice(["Thur", "Fri", "Sat", "Sun"], n)
    tip = 0.15 * bill + 0.2 * size - 0.3 * flag + 0.1 * (day == "Sat") + rng.normal(0, 0.3, n)
    return pd.DataFrame({"total_bill": bill, "size": size, "party": party, "vip": flag, "regular": flag_gaps,
                         "day": day, "tip": np.round(tip, 3)})


TIPS_SPEC = {"steps": [
    {"kind": "fill_missing", "params": {"columns": ["size"], "value": 2}},
    {"kind": "fill_missing", "params": {"columns": ["party"], "value": 1}},
    {"kind": "onehot", "params": {"column": "day"}},
    {"kind": "derive", "params": {"name": "gap", "expr": "total_bill - size"}},
    {"kind": "derive", "params": {"name": "per_head", "expr": "total_bill / (party + 1) - 2 * vip + regular"}},
    {"kind": "normalise", "params": {"columns": ["total_bill", "gap"], "method": "zscore", "stats": "frozen"}},
]}
# how an analyst reads the raw CSV: pandas' defaults (int64, float64, bool, object, str), text as object,
# and the nullable dtypes (Int64, Float64, boolean, string; and the same backed by pyarrow)
READERS = {"default": {}, "object text": {"dtype": {"day": "object"}}, "nullable": {"dtype_backend": "numpy_nullable"},
           "pyarrow": {"dtype_backend": "pyarrow"}}


def test_raw_csv_of_every_pandas_dtype_predicts_in_plain_sklearn(tmp_path):
    """The issue: fill `size` with 2 on an int64 column failed ("cannot be cast to ... int64"); each pandas
    reading of the raw CSV now gives the predictions `python -m engine predict` gives."""
    data, spec, model, raw = tmp_path / "tips.csv", tmp_path / "p.json", tmp_path / "m.skops", tmp_path / "raw.csv"
    tips_like(600, 1).to_csv(data, index=False)
    tips_like(200, 2).drop(columns="tip").to_csv(raw, index=False)
    spec.write_text(json.dumps(TIPS_SPEC))
    features = "total_bill,size,party,vip,gap,per_head,day_Thur,day_Fri,day_Sat,day_Sun"
    r = run_cli("train", str(data), "--target", "tip", "--features", features, "--model", "ridge",
                "--pipeline", str(spec), "--out", str(model), "--json")
    assert r.returncode == 0, r.stderr
    card = json.loads((tmp_path / "m.skops.card.json").read_text())
    assert card["raw_columns"] is True and card["pipeline_in_model"] is True, card["raw_columns_reason"]
    assert {f["name"]: f["kind"] for f in card["features"]} == {
        "total_bill": "number", "size": "number", "party": "number", "vip": "bool", "regular": "bool",
        "day": "text"}
    dtypes = pd.read_csv(raw).dtypes.astype(str).to_dict()
    assert dtypes["size"] == "int64" and dtypes["vip"] == "bool" and dtypes["regular"] == "object"
    script = f"""
import sys, json, warnings, pandas as pd, skops.io as sio
warnings.simplefilter("error")                   # no "X does not have valid feature names" either
allowed = {json.dumps(card["skops_trusted"])}
model = sio.load({str(model)!r}, trusted=allowed)
out = {{}}
for name, kw in {READERS!r}.items():
    X = pd.read_csv({str(raw)!r}, **kw)
    out[name] = {{"dtypes": sorted(set(X.dtypes.astype(str))), "pred": model.predict(X).tolist()}}
assert not any(m == 'engine' or m.startswith('engine.') for m in sys.modules)
print(json.dumps(out))
"""
    got = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120)
    assert got.returncode == 0, got.stderr
    fresh = json.loads(got.stdout)
    assert {"Int64", "boolean"} <= set(fresh["nullable"]["dtypes"])
    p = run_cli("predict", str(model), str(raw))
    assert p.returncode == 0, p.stderr
    want = pd.read_csv(io.StringIO(p.stdout))["prediction"].to_numpy()
    for name, result in fresh.items():
        np.testing.assert_allclose(result["pred"], want, rtol=1e-12, atol=1e-12, err_msg=name)


DERIVED = ["a - b", "2 * a + b - 3", "a / b", "a * b * c", "(a - b) / (c + 1)", "-a + log1p(abs(b))",
           "a ** 2 - sqrt(abs(c))", "3 - a", "1 / a", "flag * a + flag", "a / 4 - exp(-abs(c))"]


@pytest.mark.parametrize("expr", DERIVED)
def test_compiled_derive_equals_the_engine_derive(expr):
    rng = np.random.default_rng(5)
    n = 400
    frame = pd.DataFrame({"a": rng.normal(3, 2, n), "b": rng.normal(size=n), "c": rng.integers(0, 7, n),
                          "flag": pd.array(rng.random(n) < 0.5, dtype="boolean")})
    frame.loc[::11, "a"] = np.nan
    frame.loc[::13, "flag"] = pd.NA
    spec = {"steps": [{"kind": "derive", "params": {"name": "d", "expr": expr}},
                      {"kind": "normalise", "params": {"columns": ["d"], "method": "zscore", "stats": "frozen",
                                                       "values": {"d": {"mean": 0.5, "std": 2.0}}}}]}
    kinds = {"a": "number", "b": "number", "c": "number", "flag": "bool"}
    assert compiled.check(spec, ["d", "b"], kinds) is None
    ct, raw = compiled.transformer(spec, ["d", "b"], {"d": "numeric", "b": "numeric"}, kinds)
    assert set(c for c, _ in raw) <= set(kinds)
    ours = ct.transform(frame)
    table = pa.Table.from_pandas(frame.astype({"c": "int64"}), preserve_index=False)
    want = Pipeline.from_dict(spec).apply(table).column("d").to_numpy(zero_copy_only=False)
    assert list(ours.columns) == ["d", "b"]
    np.testing.assert_allclose(ours["d"].to_numpy(np.float64), want.astype(np.float64), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("expr, what", [("a // b", "a // b"), ("a > b", "a > b"), ("round(a)", "round(a)"),
                                        ("min(a, b)", "min(a, b)"), ("a ** 3", "a ** 3"), ("5", "a number on its own")])
def test_a_derive_that_does_not_compile_says_what_does(expr, what):
    reason = compiled.check({"steps": [{"kind": "derive", "params": {"name": "d", "expr": expr}}]}, ["d"],
                            {"a": "number", "b": "number"})
    assert reason.startswith(f"step 1 (derive) uses {what}, which does not compile") and "+ - * /" in reason


def test_compiled_derive_reads_backticked_columns():
    rng = np.random.default_rng(6)
    frame = pd.DataFrame({"worst area": rng.normal(900, 50, 50), "mean area": rng.normal(600, 40, 50)})
    spec = {"steps": [{"kind": "derive", "params": {"name": "ratio", "expr": "`worst area` / `mean area`"}}]}
    kinds = {"worst area": "number", "mean area": "number"}
    assert compiled.check(spec, ["ratio"], kinds) is None
    ct, _ = compiled.transformer(spec, ["ratio"], {"ratio": "numeric"}, kinds)
    np.testing.assert_allclose(ct.transform(frame)["ratio"].to_numpy(np.float64),
                               frame["worst area"] / frame["mean area"], rtol=1e-12)
