"""`--pipeline P.json` on replay and train, in real subprocesses."""
import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli
from tests.reference import check_stats, close

SPEC = {"version": 0, "steps": [
    {"kind": "fill_missing", "params": {"columns": ["a"], "value": 0}},
    {"kind": "derive", "params": {"name": "c", "expr": "a * 2 + b"}},
    {"kind": "filter", "params": {"where": {"column": "b", "op": ">", "value": -1}}},
    {"kind": "onehot", "params": {"column": "s", "categories": ["x", "y"]}},
]}


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(4)
    n = 3000
    a = rng.normal(5, 2, n)
    a[::9] = np.nan
    df = pd.DataFrame({"a": np.round(a, 4), "b": np.round(rng.normal(size=n), 4), "s": rng.choice(["x", "y", "z"], n)})
    path = tmp_path / "in.csv"
    df.to_csv(path, index=False)
    spec = tmp_path / "p.json"
    spec.write_text(json.dumps(SPEC))
    return str(path), str(spec), df


def want_frame(df):
    out = df.assign(a=df["a"].fillna(0))
    out["c"] = out["a"] * 2 + out["b"]
    out = out[out["b"] > -1]
    return out.assign(s_x=(out["s"] == "x").astype(float), s_y=(out["s"] == "y").astype(float)).drop(columns="s")


def test_replay_applies_the_spec_file(tmp_path, files):
    path, spec, df = files
    r = run_cli("replay", path, "--pipeline", spec, "--window-rows", "100000", "--data-dir", str(tmp_path / "d"), "--json")
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    assert snap["pipeline"] == 1 and snap["pipeline_from"] == 1
    want = want_frame(df)
    assert set(snap["stats"]) == {"a", "b", "c", "s_x", "s_y"}
    check_stats(snap["stats"], want[["a", "b", "c", "s_x", "s_y"]])
    assert snap["rows"]["ingested"] == len(df)          # rows a filter drops are still stored raw


def test_replay_again_with_another_spec_backfills(tmp_path, files):
    path, spec, df = files
    d = str(tmp_path / "d")
    assert run_cli("replay", path, "--window-rows", "100000", "--data-dir", d, "--json").returncode == 0
    r = run_cli("replay", path, "--pipeline", spec, "--window-rows", "100000", "--data-dir", d, "--json")
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    assert snap["pipeline"] == snap["pipeline_from"] == 1
    want = want_frame(df)
    check_stats(snap["stats"], want[["a", "b", "c", "s_x", "s_y"]])
    check_stats(snap["cumulative"], want[["a", "b", "c", "s_x", "s_y"]])


@pytest.mark.parametrize("text, message", [
    ('{"steps": [{"kind": "clip", "params": {"columns": ["nope"], "lower": 0}}]}', "step 1 (clip): unknown column 'nope'"),
    ('{"steps": [{"kind": "derive", "params": {"name": "q", "expr": "__import__(\'os\')"}}]}', "step 1 (derive)"),
    ('{"steps": [', "is not valid JSON"),
    # fits the columns, but not the rows: found on the first batch, the stream stops with the step named
    ('[{"kind": "cast", "params": {"columns": ["s"], "to": "time"}}]', "step 1 (cast): casting column 's' to time fails"),
])
def test_a_bad_spec_file_exits_2_with_one_line(tmp_path, files, text, message):
    path, _, _ = files
    spec = tmp_path / "bad.json"
    spec.write_text(text)
    r = run_cli("replay", path, "--pipeline", str(spec), "--data-dir", str(tmp_path / "d"), "--json")
    assert r.returncode == 2 and r.stdout == ""
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_missing_spec_file_exits_2(tmp_path, files):
    path, _, _ = files
    r = run_cli("replay", path, "--pipeline", str(tmp_path / "none.json"), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "cannot read the pipeline" in r.stderr


def test_train_with_a_pipeline_and_predict_on_raw_columns(tmp_path, files):
    path, _, df = files
    df = df.assign(label=(df["a"].fillna(0) * 2 + df["b"] > 10).astype(int))
    data = tmp_path / "train.csv"
    df.to_csv(data, index=False)
    spec = tmp_path / "train.json"
    spec.write_text(json.dumps({"steps": [{"kind": "fill_missing", "params": {"columns": ["a"], "value": 0}},
                                          {"kind": "derive", "params": {"name": "c", "expr": "a * 2 + b"}}]}))
    model = tmp_path / "m.skops"
    r = run_cli("train", str(data), "--target", "label", "--features", "c", "--model", "logreg",
                "--pipeline", str(spec), "--out", str(model), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accuracy"] > 0.97         # c alone separates the classes
    raw = tmp_path / "raw.csv"
    df.drop(columns="label").head(200).to_csv(raw, index=False)
    p = run_cli("predict", str(model), str(raw))
    assert p.returncode == 0, p.stderr
    pred = pd.read_csv(__import__("io").StringIO(p.stdout)).iloc[:, -1].to_numpy()
    truth = df["label"].head(200).to_numpy()
    close((pred == truth).mean(), 1.0, atol=0.05)


def test_train_freezes_the_spec_from_the_training_rows_into_the_card(tmp_path, files):
    from engine.models.export import import_file
    path, _, df = files
    df = df.assign(label=(df["b"] > 0).astype(int))
    data = tmp_path / "train.csv"
    df.to_csv(data, index=False)
    spec = tmp_path / "z.json"
    spec.write_text(json.dumps([{"kind": "normalise", "params": {"columns": ["b"], "stats": "frozen"}}]))
    model = tmp_path / "m.skops"
    r = run_cli("train", str(data), "--target", "label", "--features", "b", "--model", "logreg",
                "--pipeline", str(spec), "--out", str(model), "--json")
    assert r.returncode == 0, r.stderr
    _, card = import_file(str(model))
    values = card["pipeline"]["steps"][0]["params"]["values"]["b"]
    close(values["mean"], df["b"].mean(), 1e-12)
    close(values["std"], df["b"].std(), 1e-12)
    # new rows far from the training mean are scaled with the training statistics, not their own
    shifted = tmp_path / "shifted.csv"
    df.drop(columns="label").assign(b=df["b"] + 100).head(50).to_csv(shifted, index=False)
    p = run_cli("predict", str(model), str(shifted))
    assert p.returncode == 0, p.stderr
    assert (pd.read_csv(__import__("io").StringIO(p.stdout)).iloc[:, -1] == 1).all()


def test_replay_restarted_with_the_same_spec_records_no_new_version(tmp_path, files):
    """The spec (frozen statistics aside) matches the stored current version, so a restart loop records
    nothing and re-runs no history. Before, the comparison was with the stream's pipeline before its
    ingest thread had restored it (empty), and each run added a version and a backfill."""
    import duckdb
    path, _, df = files
    spec = tmp_path / "frozen.json"
    spec.write_text(json.dumps({"steps": [
        {"kind": "normalise", "params": {"columns": ["b"], "stats": "frozen"}},   # statistics frozen into v1
        {"kind": "derive", "params": {"name": "c", "expr": "b * 2"}}]}))
    d = str(tmp_path / "d")
    snaps = []
    for _ in range(3):
        r = run_cli("replay", path, "--pipeline", str(spec), "--data-dir", d, "--json")
        assert r.returncode == 0, r.stderr
        snaps.append(json.loads(r.stdout))
    assert [(s["pipeline"], s["pipeline_from"]) for s in snaps] == [(1, 1)] * 3
    con = duckdb.connect(f"{d}/rivulet.duckdb", read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM pipelines").fetchone()[0] == 1
    finally:
        con.close()
    assert snaps[2]["stats"] == snaps[0]["stats"]
