"""Columns a file wrote as integers come back as integers: the store's rows view (plain duckdb), the
history download (CSV, Parquet), the preview, `engine predict`; statistics stay float64. A later
value that is not whole turns the column to floats for good, and nothing is rounded."""
import io
import json

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataclasses import replace

from engine.ingest.jsonl import infer_schema as infer_json
from engine.ingest.parse import infer_schema, sniff
from engine.models.spec import ModelSpec
from engine.prep.pipeline import Pipeline
from engine.read import downloads
from engine.runtime import Engine
from engine.schema import Column, Schema, whole_numbers
from tests.conftest import run_cli, tail_once

EXACT = 2 ** 53


def csv_schema(text: str) -> Schema:
    data = text.encode()
    fmt = sniff(data, True)
    return infer_schema(fmt, data[fmt.data_start:])


def duck(data_dir) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(data_dir / "rivulet.duckdb"), read_only=True)


def types(con, view="rows_1") -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {view}").fetchall()}


def test_integer_literals_are_marked_when_inferred():
    rows = ["1,1.5,3.0,+4,x,1e3,", "-2,2,4.0,007,y,2,NA", f"{EXACT},3,5.0,9,z,3,"] + ["5,4,6.0,10,w,4,"] * 8
    s = csv_schema("a,b,c,d,e,f,g\n" + "\n".join(rows + ["oops,4,6.0,10,w,4,"]) + "\n")
    assert s.integers == ["a", "d"]       # `oops` (under 10% of a) goes missing; 3.0 and 1e3 are not integers
    assert [c.kind for c in s.columns] == ["number", "number", "number", "number", "text", "number", "text"]
    big = csv_schema(f"big\n{EXACT + 1}\n").columns[0]         # beyond 2**53: int64, never floats
    assert (big.kind, big.integer, big.wide) == ("number", True, True)
    assert csv_schema(f"id\n{2 ** 63}\n").columns[0].kind == "text"                # beyond int64: text (ids)
    assert csv_schema(f"x\n{EXACT + 1}\n2.5\n").columns[0].kind == "text"        # floats would round it
    j = infer_json(b'{"n": 1, "x": 1.5, "m": 2, "t": "a"}\n{"n": 2, "x": 2, "m": 2.5}\n')
    assert j.integers == ["n"]


def test_schema_json_keeps_the_flag_and_reads_old_schemas_as_floats():
    s = Schema((Column("n", "number", integer=True), Column("x", "number"), Column("t", "text")))
    assert Schema.from_json(s.to_json()) == s
    old = '[{"name": "n", "kind": "number", "utc": false}, {"name": "t", "kind": "text", "utc": false}]'
    assert Schema.from_json(old).integers == []
    assert Schema.from_json(replace(s, columns=(Column("n", "number", integer=True, wide=True),)).to_json()
                            ).columns[0].wide
    t = pa.table({"n": pa.array([1, 2, None], pa.int64()), "x": [1.0, 2.5, 3.0]})
    assert s.settled(t) is None                   # x holds 2.5, but it was never an integer column
    assert s.settled(pa.table({"n": [1.0, 2.5]})).integers == []       # the parser gave floats: a fraction
    assert s.settled(pa.table({"n": pa.array([1, -EXACT], pa.int64())})) is None
    wide = s.settled(pa.table({"n": pa.array([1, -EXACT - 1], pa.int64())}))
    assert wide.integers == ["n"] and wide["n"].wide
    shown = whole_numbers(pa.table({"n": [3.0, None], "x": [1.0, 2.0], "y": [1.0, 2.5]}), ["n", "y"])
    assert shown.schema.types == [pa.int64(), pa.float64(), pa.float64()]        # x was not integer; y is not whole
    assert shown.column("n").to_pylist() == [3, None]


def frame_of(n, seed=3):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(n), "count": rng.integers(-10**6, 10**6, n),
                         "x": rng.normal(size=n), "k": rng.choice(["a", "b"], n)})


def test_rows_view_is_bigint_for_plain_duckdb_in_table_and_segments(tmp_path):
    """A full-speed replay of 200,000 rows commits them to Parquet segment files; a small one to the
    DuckDB table. Both read through rows_N as BIGINT, exactly; the statistics are the float64 ones."""
    big, small = frame_of(200_000), frame_of(50, seed=4)
    big.loc[0, "count"], big.loc[1, "count"] = EXACT, -EXACT
    big.to_csv(tmp_path / "big.csv", index=False)
    small.to_csv(tmp_path / "small.csv", index=False)
    data = tmp_path / "data"
    for f in ("big.csv", "small.csv"):
        r = run_cli("replay", str(tmp_path / f), "--data-dir", str(data), "--json")
        assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    assert snap["stats"]["count"]["mean"] == pytest.approx(small["count"].mean(), rel=1e-12)
    with duck(data) as con:
        assert con.execute("SELECT count(*) FROM segments WHERE stream = 1").fetchone()[0] >= 1
        assert con.execute("SELECT count(*) FROM rows_2_table").fetchone()[0] == 50
        for view, df in (("rows_1", big), ("rows_2", small)):
            assert types(con, view) == {"_rid": "BIGINT", "_ingest": "TIMESTAMP", "id": "BIGINT",
                                        "count": "BIGINT", "x": "DOUBLE", "k": "VARCHAR"}
            got = con.execute(f"SELECT id, count, x, k FROM {view} ORDER BY _rid").df()
            pd.testing.assert_frame_equal(got, df, check_dtype=False)
            assert got["count"].dtype == np.int64
        assert con.execute("SELECT count FROM rows_1 WHERE id < 2 ORDER BY id").fetchall() == [(EXACT,), (-EXACT,)]


def widening_file(path, n=120_000):
    """`i` stays whole; `n` is whole for over 1 MiB (the sample kinds come from), then 2.5;
    `big` is whole, then 10**20 (beyond int64: flagged, the column stays integer)."""
    lines = ["i,n,big"] + [f"{i},{i * 7},{i}" for i in range(n)]
    lines += [f"{n},2.5,{n}", f"{n + 1},9,100000000000000000000", f"{n + 2},11,{n + 2}"]
    path.write_text("\n".join(lines) + "\n")
    assert len("\n".join(lines[:-3]).encode()) > 1 << 20


def test_a_fraction_after_the_sample_turns_the_column_to_floats_for_good(tmp_path):
    widening_file(tmp_path / "w.csv")
    data = tmp_path / "data"
    with Engine(str(data)) as e:
        name = e.add_replay(str(tmp_path / "w.csv"), name="w")
        e.wait(name, timeout=120)
        assert e._get(name).schema.integers == ["i", "big"]
        bad = e.quarantine(name).to_pydict()
    assert bad["raw"] == ["120001,9,100000000000000000000"] and "beyond the 64-bit range" in bad["reason"][0]
    with duck(data) as con:
        assert types(con)["i"] == "BIGINT" and types(con)["n"] == "DOUBLE" and types(con)["big"] == "BIGINT"
        tail = con.execute("SELECT i, n, big FROM rows_1 ORDER BY _rid DESC LIMIT 4").fetchall()[::-1]
        assert tail == [(119_999, 839_993.0, 119_999), (120_000, 2.5, 120_000),
                        (120_001, 9.0, None), (120_002, 11.0, 120_002)]
        assert con.execute("SELECT sum(n) FROM rows_1 WHERE i < 120000").fetchone()[0] == 7 * 119_999 * 120_000 / 2
        stored = json.loads(con.execute("SELECT schema FROM streams").fetchone()[0])
    assert [c.get("integer", False) for c in stored] == [True, False, True]
    # resumed with whole values only: the column does not turn back, and a restart reads it as floats
    with open(tmp_path / "w.csv", "a") as f:
        f.write("120003,13,5\n")
    with Engine(str(data)) as e:
        name = e.add_replay(str(tmp_path / "w.csv"), name="w")
        e.wait(name, timeout=120)
        history = e.models.history(name, {"last": 5})
    assert history.schema.field("i").type == pa.int64() and history.schema.field("n").type == pa.float64()
    assert history.column("n").to_pylist() == [839_993.0, 2.5, 9.0, 11.0, 13.0]
    with duck(data) as con:
        assert types(con)["n"] == "DOUBLE" and types(con)["i"] == "BIGINT"


def test_a_store_from_before_the_flag_stays_floats(tmp_path):
    (tmp_path / "a.csv").write_text("n,x\n1,0.5\n2,1.5\n")
    data = tmp_path / "data"
    with Engine(str(data)) as e:
        e.wait(e.add_replay(str(tmp_path / "a.csv"), name="a"), timeout=60)
    con = duckdb.connect(str(data / "rivulet.duckdb"))       # the schema as the code before this wrote it
    old = [{k: v for k, v in c.items() if k != "integer"} for c in json.loads(con.execute(
        "SELECT schema FROM streams").fetchone()[0])]
    con.execute("UPDATE streams SET schema = ?", [json.dumps(old)])
    con.execute("CREATE OR REPLACE VIEW rows_1 AS SELECT * FROM rows_1_table")
    con.close()
    with open(tmp_path / "a.csv", "a") as f:
        f.write("3,2.5\n")
    with Engine(str(data)) as e:
        name = e.add_replay(str(tmp_path / "a.csv"), name="a")
        e.wait(name, timeout=60)
        assert e.models.history(name).column("n").to_pylist() == [1.0, 2.0, 3.0]
    with duck(data) as con:
        assert types(con)["n"] == "DOUBLE"


def test_a_store_that_kept_integers_as_double_takes_big_ones_exactly(tmp_path):
    """A store from before int64 storage kept an integer column as DOUBLE (its view cast it): the
    next start makes the column BIGINT, so a value beyond 2**53 is not cast to a float on insert."""
    (tmp_path / "a.csv").write_text("n,x\n1,0.5\n2,1.5\n")
    data = tmp_path / "data"
    with Engine(str(data)) as e:
        e.wait(e.add_replay(str(tmp_path / "a.csv"), name="a"), timeout=60)
    con = duckdb.connect(str(data / "rivulet.duckdb"))       # the layout the code before this wrote
    con.execute("ALTER TABLE rows_1_table ALTER COLUMN n TYPE DOUBLE")
    con.execute("CREATE OR REPLACE VIEW rows_1 AS SELECT * REPLACE (CAST(n AS BIGINT) AS n) FROM rows_1_table")
    con.close()
    Engine(str(data)).close()                # opened, no new rows: the view still gives BIGINT
    with duck(data) as con:
        assert types(con)["n"] == "BIGINT"
    with open(tmp_path / "a.csv", "a") as f:
        f.write(f"{EXACT + 1},2.5\n")
    with Engine(str(data)) as e:
        name = e.add_replay(str(tmp_path / "a.csv"), name="a")
        e.wait(name, timeout=60)
        assert e.models.history(name).column("n").to_pylist() == [1, 2, EXACT + 1]
    with duck(data) as con:
        assert types(con)["n"] == "BIGINT"
        assert con.execute("SELECT n FROM rows_1 ORDER BY _rid").fetchall() == [(1,), (2,), (EXACT + 1,)]


def test_tailed_json_lines_integers_are_bigint_until_a_fraction(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps({"n": i, "m": i * 2, "t": "x"}) + "\n" for i in range(5)))
    data = tmp_path / "data"
    tail_once(path, data)
    with duck(data) as con:
        assert types(con)["n"] == "BIGINT" and types(con)["m"] == "BIGINT"
    with open(path, "a") as f:
        f.write(json.dumps({"n": 5, "m": 10.5, "t": "y"}) + "\n")
    _, _, rows = tail_once(path, data)
    assert rows.column("m").to_pylist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.5]
    with duck(data) as con:
        assert types(con)["n"] == "BIGINT" and types(con)["m"] == "DOUBLE"


def public_datasets():
    import plotly.data
    from sklearn.datasets import load_iris, load_wine
    iris = load_iris(as_frame=True).frame
    wine = load_wine(as_frame=True).frame        # magnesium and proline are whole, but written as 100.0
    return {"tips": plotly.data.tips(), "gapminder": plotly.data.gapminder(), "iris": iris, "wine": wine}


@pytest.mark.parametrize("dataset", ["tips", "gapminder", "iris", "wine"])
def test_downloads_give_a_public_dataset_back_with_its_types(tmp_path, dataset):
    df = public_datasets()[dataset]
    df.to_csv(tmp_path / "d.csv", index=False)
    with Engine(str(tmp_path / "data")) as e:
        name = e.add_replay(str(tmp_path / "d.csv"), name=dataset)
        snap = e.wait(name, timeout=120)
        table = e.models.history(name)
        before = e.preview(name, [], n=5).before
    ints = [c for c in df.columns if df[c].dtype == np.int64]
    assert ints and {c for c in table.column_names if table.schema.field(c).type == pa.int64()} - {"_rid"} == set(ints)
    assert {c for c in before.column_names if before.schema.field(c).type == pa.int64()} == set(ints)
    back = pq.read_table(io.BytesIO(downloads.to_bytes(table, "parquet"))).to_pandas().drop(columns=["_rid", "_ingest"])
    assert list(back.columns) == list(df.columns)
    for c in df.columns:
        if pd.api.types.is_numeric_dtype(df[c]):
            assert back[c].dtype == df[c].dtype, c            # int64 where the frame had int64
            assert (back[c] == df[c]).all(), c
        else:
            assert back[c].tolist() == df[c].tolist(), c
    csv = downloads.to_bytes(table, "csv").decode()
    want = (tmp_path / "d.csv").read_text().splitlines()
    got = pd.read_csv(io.StringIO(csv), dtype=str, keep_default_na=False).drop(columns=["_rid", "_ingest"])
    src = pd.read_csv(tmp_path / "d.csv", dtype=str, keep_default_na=False)
    for c in ints:
        assert got[c].tolist() == src[c].tolist(), c       # 3 where the file had 3
    assert len(got) == len(want) - 1
    for c in ints:          # statistics are float64 as ever, equal to pandas
        assert snap.to_json()["stats"][c]["mean"] == pytest.approx(df[c].astype(float).mean(), rel=1e-12)


def test_integers_follow_the_pipeline():
    s = Schema((Column("a", "number", integer=True), Column("b", "number", integer=True),
                Column("c", "number", integer=True), Column("d", "number", integer=True),
                Column("x", "number"), Column("t", "text")))
    p = Pipeline.from_dict([
        {"kind": "fill_missing", "params": {"columns": ["a"], "value": 0}},
        {"kind": "fill_missing", "params": {"columns": ["b"], "value": 0.5}},
        {"kind": "clip", "params": {"columns": ["c"], "lower": 0, "upper": 10}},
        {"kind": "normalise", "params": {"columns": ["d"], "stats": "frozen",
                                          "values": {"d": {"mean": 0, "std": 1}}}},
        {"kind": "rename", "params": {"columns": {"a": "a2", "x": "a"}}},
        {"kind": "derive", "params": {"name": "c2", "expr": "c * 2"}},
        {"kind": "cast", "params": {"columns": ["c2"], "to": "number"}},
    ])
    assert p.integers(s) == ["a2", "c"]
    assert Pipeline.from_dict([{"kind": "select", "params": {"columns": ["d", "x"]}}]).integers(s) == ["d"]
    assert Pipeline.from_dict([{"kind": "cast", "params": {"columns": ["a"], "to": "text"}},
                               {"kind": "clip", "params": {"columns": ["b"], "upper": 2.5}},
                               {"kind": "derive", "params": {"name": "c", "expr": "c / 2"}}]).integers(s) == ["d"]


def test_history_after_a_pipeline_and_page_frames(tmp_path):
    (tmp_path / "p.csv").write_text("n,m,x\n1,4,0.5\n,5,1.5\n3,6,2.5\n")
    with Engine(str(tmp_path / "data")) as e:
        name = e.add_replay(str(tmp_path / "p.csv"), name="p")
        e.wait(name, timeout=60)
        raw = e.models.history(name)
        p = e.preview(name, [{"kind": "normalise", "params": {"columns": ["m"], "stats": "frozen"}}], n=3)
        e.apply(name, [{"kind": "fill_missing", "params": {"columns": ["n"], "method": "mean"}}])
        filled = e.models.history(name)
    assert raw.column("n").to_pylist() == [1, None, 3] and raw.schema.field("n").type == pa.int64()
    assert p.before.schema.field("m").type == pa.int64() and p.after.schema.field("m").type == pa.float64()
    assert filled.column("n").to_pylist() == [1.0, 2.0, 3.0] and filled.schema.field("m").type == pa.int64()
    from ui.format import frame
    shown = frame(raw)
    assert str(shown["n"].dtype) == "Int64" and shown["n"].tolist()[0] == 1 and shown["n"].isna().tolist()[1]


def test_predict_output_and_a_model_trained_on_integer_columns(tmp_path):
    """`engine predict` writes the file's integers as integers; a model trained in the engine (whose
    history gives `size` as int64) predicts exactly what the same model trained from the file does."""
    import plotly.data
    from engine.models.export import export
    df = plotly.data.tips()
    df.to_csv(tmp_path / "tips.csv", index=False)
    features = ("total_bill", "tip")
    r = run_cli("train", str(tmp_path / "tips.csv"), "--target", "size", "--features", "total_bill,tip,day",
                "--model", "logreg", "--cv", "3", "--out", str(tmp_path / "cli.skops"), "--json")
    assert r.returncode == 0, r.stderr
    with Engine(str(tmp_path / "data")) as e:
        name = e.add_replay(str(tmp_path / "tips.csv"), name="tips")
        e.wait(name, timeout=60)
        spec = ModelSpec("classification", "size", features, ("day",), "logreg", cv=3)
        job = e.models.jobs.wait(e.models.train(name, spec), timeout=180)
        assert job.state == "done", job.error
        model, card = e.models.registry.load(job.result)
        export(model, card, str(tmp_path / "engine.skops"))
    assert [f["kind"] for f in card["features"]] == ["number", "number", "text"]
    out = {}
    for m in ("cli", "engine"):
        p = run_cli("predict", str(tmp_path / f"{m}.skops"), str(tmp_path / "tips.csv"))
        assert p.returncode == 0, p.stderr
        out[m] = p.stdout
        got = pd.read_csv(io.StringIO(p.stdout), dtype=str)
        assert got["size"].tolist() == df["size"].astype(str).tolist()
        assert set(got["prediction"]) <= {str(k) for k in range(1, 7)}     # classes as written: 2, not 2.0
    assert pd.read_csv(io.StringIO(out["cli"]))["prediction"].tolist() == \
        pd.read_csv(io.StringIO(out["engine"]))["prediction"].tolist()


# --- integers beyond 2**53: no input bends a number --------------------------------------------

BIG = [EXACT + 1, -(EXACT + 3), 2 ** 63 - 1, -(2 ** 63), 1_700_000_000_123_456_789]    # ids, ns stamps


def big_file(path, n=80_000):
    """`id` is small for over 1 MiB (the sample), then integers floats cannot hold; `x` holds fractions,
    then an integer literal beyond 2**53 (flagged: float64 would change it) and one it holds (1e20)."""
    lines = ["id,x"] + [f"{i},{i}.5" for i in range(n)]
    lines += [f"{v},1.5" for v in BIG] + [f"{n},{EXACT + 1}", f"{n + 1},{10 ** 20}", f"{n + 2},0.5"]
    path.write_text("\n".join(lines) + "\n")
    assert len("\n".join(lines[:n]).encode()) > 1 << 20
    return list(range(n)) + BIG + [n, n + 1, n + 2]


def check_exact(data, want: list[int], history: pa.Table):
    with duck(data) as con:
        assert types(con)["id"] == "BIGINT"
        assert [r[0] for r in con.execute("SELECT id FROM rows_1 ORDER BY _rid").fetchall()] == want
    assert history.schema.field("id").type == pa.int64() and history.column("id").to_pylist() == want
    back = pq.read_table(io.BytesIO(downloads.to_bytes(history, "parquet")))
    assert back.column("id").to_pylist() == want
    csv = pd.read_csv(io.BytesIO(downloads.to_bytes(history, "csv")), dtype=str)
    assert [int(v) if isinstance(v, str) else None for v in csv["id"]] == want


def test_a_replay_stores_and_downloads_integers_beyond_2_53_exactly(tmp_path):
    want = big_file(tmp_path / "b.csv")
    data = tmp_path / "data"
    with Engine(str(data)) as e:
        name = e.add_replay(str(tmp_path / "b.csv"), name="b")
        snap = e.wait(name, timeout=120).to_json()
        history = e.models.history(name)
        bad = e.quarantine(name).to_pylist()
        schema = e._get(name).schema
    check_exact(data, want, history)
    assert schema["id"].wide
    # the statistics are float64 (as documented): the mean of the values as floats
    assert snap["cumulative"]["id"]["mean"] == pytest.approx(float(np.mean(np.array(want, np.float64))), rel=1e-12)
    x = history.column("x").to_pylist()
    assert x[-3:] == [None, 1e20, 0.5]
    assert [(b["raw"], b["kept"]) for b in bad] == [(f"{want[-3]},{EXACT + 1}", True)]
    assert "cannot hold exactly" in bad[0]["reason"]


def test_a_fraction_after_big_integers_is_flagged_and_the_column_stays_exact(tmp_path):
    """Big integers in the sample (inferred wide), then in a later batch a fraction: flagged, never a
    turn to floats that would round what is stored."""
    want = [EXACT + i for i in range(1, 4)]
    (tmp_path / "w.csv").write_text("id,k\n" + "".join(f"{v},a\n" for v in want))
    data = tmp_path / "data"
    with Engine(str(data)) as e:
        e.wait(e.add_replay(str(tmp_path / "w.csv"), name="w"), timeout=60)
    with open(tmp_path / "w.csv", "a") as f:
        f.write("2.5,b\n9223372036854775808,c\n")
    with Engine(str(data)) as e:
        name = e.add_replay(str(tmp_path / "w.csv"), name="w")
        e.wait(name, timeout=60)
        history = e.models.history(name)
        reasons = [b["reason"] for b in e.quarantine(name).to_pylist()]
    check_exact(data, want + [None, None], history)
    assert sorted("not a whole number" in r for r in reasons) == [False, True]
    assert sorted("beyond the 64-bit range" in r for r in reasons) == [False, True]


def test_tailed_csv_and_json_lines_keep_integers_beyond_2_53(tmp_path):
    csv_path, json_path = tmp_path / "t.csv", tmp_path / "t.jsonl"
    csv_path.write_text("id,v\n1,2\n")
    json_path.write_text(json.dumps({"id": 1, "v": 2}) + "\n")
    for path, data in ((csv_path, tmp_path / "csv"), (json_path, tmp_path / "json")):
        tail_once(path, data)
        with open(path, "a") as f:       # after the columns were fixed on small integers
            for v in BIG:
                f.write(f"{v},3\n" if path == csv_path else json.dumps({"id": v, "v": 3}) + "\n")
        snap, bad, rows = tail_once(path, data)
        assert bad == [] and rows.column("id").to_pylist() == [1] + BIG, path
        with duck(data) as con:
            assert [r[0] for r in con.execute("SELECT id FROM rows_1 ORDER BY _rid").fetchall()] == [1] + BIG
        assert snap["cumulative"]["id"]["max"] == float(2 ** 63 - 1)


def test_a_column_of_fractions_flags_only_the_integers_float64_would_change():
    """Big floats (1.5e18, 10**20 written out) are kept; 9007199254740993 is not what float64 holds."""
    from engine.ingest.parse import Parser
    body = f"1.5e18,a\n100000000000000000000,b\n-{EXACT + 1},c\n{EXACT + 2},d\n0.25,e\n".encode()
    fmt = sniff(b"x,k\n", final=True)
    schema = Schema((Column("x", "number"), Column("k", "text")))
    parsed = Parser(fmt, schema).parse(body, fmt.data_start, positions=True)
    assert parsed.table.column("x").to_pylist() == [1.5e18, 1e20, None, float(EXACT + 2), 0.25]
    assert [(b.raw, b.kept) for b in parsed.bad] == [(f"-{EXACT + 1},c", True)]
    assert "cannot hold exactly" in parsed.bad[0].reason
    exact = body.replace(f"-{EXACT + 1}".encode(), b"-2e300")
    assert Parser(fmt, schema).parse(exact, fmt.data_start).bad == []


def test_tailed_json_lines_flag_an_integer_a_column_of_fractions_cannot_hold(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps({"i": 1, "f": 1.5}) + "\n")
    data = tmp_path / "data"
    tail_once(path, data)
    with open(path, "a") as f:
        for i, v in ((2, EXACT + 1), (3, 10 ** 20), (4, -(EXACT + 3)), (5, 2.25)):
            f.write(json.dumps({"i": i, "f": v}) + "\n")
    snap, bad, rows = tail_once(path, data)
    assert rows.column("f").to_pylist() == [1.5, None, 1e20, None, 2.25]
    assert sorted(b["raw"] for b in bad) == sorted([json.dumps({"i": 2, "f": EXACT + 1}),
                                                    json.dumps({"i": 4, "f": -(EXACT + 3)})])
    assert all("cannot hold exactly" in b["reason"] and b["kept"] for b in bad)
    assert snap["rows"]["flagged"] == 2


@pytest.mark.parametrize("odd", [None, np.nan, np.inf, -np.inf, float(EXACT), -float(EXACT), 1e300])
def test_the_fast_path_sends_a_batch_to_the_slow_one_for_any_float_beyond_2_53_in_any_column(odd):
    """The check that routes a batch to the text-reading path looks at every float column: one odd value
    (NaN, ±inf, ±2**53, 1e300) in the 37th of 50 columns fails it; the rest pass."""
    from engine.ingest.parse import _within_floats
    rng = np.random.default_rng(3)
    X = np.round(rng.normal(size=(200, 50)) * 1e6, 3)
    if odd is not None:
        X[123, 36] = odd
    table = pa.table({f"c{i}": X[:, i] for i in range(50)})
    assert _within_floats(table, table.column_names) is (odd is None)
    assert _within_floats(table, [n for n in table.column_names if n != "c36"])


def test_a_model_takes_an_integer_column_beyond_2_53_as_a_rounded_feature():
    """A deployed model's raw rows can hold ids beyond 2**53 (stored int64): as a feature they round to
    float64 as everywhere the engine computes; the safe cast raised ArrowInvalid."""
    from engine.models.data import features_frame
    t = pa.table({"id": pa.array([2 ** 60 + 1, 5], pa.int64()), "x": [1.0, 2.0]})
    frame = features_frame(t, ["id", "x"], [])
    assert frame["id"].tolist() == [float(2 ** 60), 5.0] and frame["x"].tolist() == [1.0, 2.0]
