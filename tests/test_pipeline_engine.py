"""The pipeline on a running engine: preview, apply from the next batch, versions, backfill, restart."""

import numpy as np
import pandas as pd
import pytest

from engine.prep.backfill import Backfill
from engine.errors import UserError
from engine.stats.operators import WindowSpec
from engine.runtime import Engine
from engine.ingest.replay import Speed
from tests.conftest import wait_for
from tests.reference import check_matrix, check_stats, close

N = 40_000
BIG = WindowSpec("count", 1_000_000)      # a window over every row, so pandas can compute it whole

# ffill, a running z-score (state across batches), a derived column, a filter and one-hot:
# the rows and the statistics depend on every earlier row, so a backfill must replay history in order
STATEFUL = [
    {"kind": "fill_missing", "params": {"columns": ["a"], "method": "ffill"}},
    {"kind": "normalise", "params": {"columns": ["b"], "method": "zscore", "stats": "running"}},
    {"kind": "derive", "params": {"name": "c", "expr": "a * b + 1"}},
    {"kind": "filter", "params": {"where": {"or": [{"column": "a", "op": ">", "value": 9},
                                                   {"column": "s", "op": "==", "value": "x"}]}}},
    {"kind": "onehot", "params": {"column": "s"}},
]


def make_frame(n=N, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(10, 3, n)
    a[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"t": (pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="s")).astype(str),
                         "a": np.round(a, 4), "b": np.round(rng.normal(-2, 1, n), 4),
                         "s": rng.choice(["x", "y", "z"], n)})


@pytest.fixture
def csv(tmp_path):
    df = make_frame()
    path = tmp_path / "p.csv"
    df.to_csv(path, index=False)
    return str(path), df


def pandas_stateful(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["a"] = out["a"].ffill()
    e = out["b"].expanding()
    out["b"] = (out["b"] - e.mean()) / e.std()
    out["c"] = out["a"] * out["b"] + 1
    out = out[(out["a"] > 9) | (out["s"] == "x")]
    return pd.concat([out, pd.get_dummies(out["s"], prefix="s", dtype=float)], axis=1).drop(columns=["s", "t"])


def same_snapshot(ours: dict, want: dict):
    assert ours["rows"] == want["rows"]
    assert ours["window"] == want["window"]
    assert ours["pipeline"] == want["pipeline"] and ours["pipeline_from"] == want["pipeline_from"]
    for part in ("stats", "cumulative"):
        assert ours[part].keys() == want[part].keys()
        for col in want[part]:
            for stat, value in want[part][col].items():
                close(ours[part][col][stat], value, 1e-9, 1e-9, f"{part}.{col}.{stat}")
    for part in ("cov", "corr"):
        for a in want[part]:
            for b in want[part][a]:
                close(ours[part][a][b], want[part][a][b], 1e-9, 1e-9, f"{part}[{a},{b}]")


def test_preview_changes_nothing_and_matches_pandas(tmp_path, csv):
    path, df = csv
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(path, time_column="t")
        before = e.wait(name, 60)
        s = e.streams[name]
        runner_state = s.runner.state_json()
        spec = [{"kind": "clip", "params": {"columns": ["a"], "lower": 8, "upper": 12}},
                {"kind": "derive", "params": {"name": "c", "expr": "abs(a - b) / 2"}},
                {"kind": "filter", "params": {"where": {"column": "s", "op": "!=", "value": "y"}}}]
        p = e.preview(name, spec, 500)
        want = df.tail(500).reset_index(drop=True)
        assert p.before.to_pandas()["a"].equals(want["a"])
        want["a"] = want["a"].clip(8, 12)
        want["c"] = (want["a"] - want["b"]).abs() / 2
        keep = want["s"] != "y"
        assert p.kept.tolist() == np.flatnonzero(keep).tolist() and p.dropped == int((~keep).sum())
        got = p.after.to_pandas()
        np.testing.assert_allclose(got["c"], want.loc[keep, "c"], rtol=1e-12)
        assert p.added == ["c"] and p.removed == []
        # nothing moved: no version, same snapshot, same runner state, same columns
        assert e.pipelines(name) == [] and s.pipeline.version == 0 and s.runner.state_json() == runner_state
        after = e.snapshot(name)
        assert after.seq == before.seq and after.to_json() == before.to_json()


def test_apply_takes_effect_from_the_next_batch(tmp_path, csv):
    path, df = csv
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(path, time_column="t", speed=Speed("rows", 20_000), window=BIG)
        assert wait_for(lambda: e.snapshot(name) and e.snapshot(name).counts["ingested"] >= 2000, 60)
        out = e.apply(name, [{"kind": "derive", "params": {"name": "c", "expr": "a * 2 - b"}}])
        k = out["from_row"]
        assert out["version"] == 1 and out["rebuilt"] and 2000 <= k < N
        snap = e.wait(name, 60)
    # the derive changed the columns: the window restarted with exactly the rows after the switch
    assert snap.window_rows == N - k and snap.pipeline == snap.pipeline_from == 1
    after = df.iloc[k:].assign(c=lambda d: d["a"] * 2 - d["b"])
    check_stats(snap.stats, after[["a", "b", "c"]])
    check_stats(snap.to_json()["cumulative"], after[["a", "b", "c"]])


def test_apply_keeping_columns_keeps_the_window_then_backfill_rebuilds_it(tmp_path, csv):
    path, df = csv
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(path, time_column="t", speed=Speed("rows", 20_000), window=BIG)
        assert wait_for(lambda: e.snapshot(name) and e.snapshot(name).counts["ingested"] >= 2000, 60)
        out = e.apply(name, [{"kind": "clip", "params": {"columns": ["a"], "lower": 9, "upper": 11}}])
        k = out["from_row"]
        assert not out["rebuilt"]
        snap = e.wait(name, 60)
        assert snap.window_rows == N and (snap.pipeline, snap.pipeline_from) == (1, 0)
        mixed = pd.concat([df["a"][:k], df["a"][k:].clip(9, 11)])
        check_stats({"a": snap.stats["a"]}, mixed.to_frame())
        status = e.backfill(name).wait(60)
        assert status["state"] == "done" and status["rows"] == N and status["progress"] == 1.0
        snap = e.snapshot(name)
    assert (snap.pipeline, snap.pipeline_from) == (1, 1)
    check_stats(snap.stats, df[["a", "b"]].assign(a=df["a"].clip(9, 11)))
    check_stats(snap.to_json()["cumulative"], df[["a", "b"]].assign(a=df["a"].clip(9, 11)))


def test_backfill_during_ingest_equals_a_fresh_replay_with_the_spec(tmp_path, csv):
    path, df = csv
    with Engine(str(tmp_path / "live")) as e:
        name = e.add_replay(path, time_column="t", speed=Speed("rows", 15_000), window=WindowSpec("count", 5000))
        assert wait_for(lambda: e.snapshot(name) and e.snapshot(name).counts["ingested"] >= 5000, 60)
        out = e.apply(name, STATEFUL, backfill=True)
        assert out["backfill"]["state"] == "running"
        assert e.wait(name, 120) is not None
        assert wait_for(lambda: e.backfill_status(name)["state"] != "running", 60)
        assert e.backfill_status(name)["state"] == "done"
        assert e.snapshot(name).counts["ingested"] == N
        ours = e.snapshot(name).to_json()
        frozen = e.pipeline(name)
    with Engine(str(tmp_path / "fresh")) as e:
        name = e.add_replay(path, time_column="t", window=WindowSpec("count", 5000), pipeline=frozen)
        want = e.wait(name, 120).to_json()
    same_snapshot(ours, want)
    # and the fresh replay is what pandas computes (categories frozen from the recent rows)
    ref = pandas_stateful(df)
    check_stats(want["cumulative"], ref[list(want["cumulative"])])
    check_matrix(want["corr"], ref[list(want["corr"])].tail(5000).corr(), rtol=1e-8, atol=1e-10)


def test_cancelled_backfill_leaves_the_live_state(tmp_path, csv):
    path, df = csv
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(path, time_column="t", window=BIG)
        e.wait(name, 60)
        e.apply(name, [{"kind": "clip", "params": {"columns": ["a"], "upper": 10}}])
        s = e.streams[name]
        ops, before = s.operators, e.snapshot(name).to_json()
        b = Backfill(s)
        b.cancel()
        assert b.start().wait(30)["state"] == "cancelled"
        assert s.operators is ops and e.snapshot(name).to_json() == before
        e.backfill(name)
        with pytest.raises(UserError, match="already running"):
            e.backfill(name)
        assert e.streams[name].backfill.wait(60)["state"] == "done"


@pytest.mark.parametrize("spec, message", [
    ([{"kind": "clip", "params": {"columns": ["zz"], "lower": 0}}], r"step 1 \(clip\): unknown column 'zz'"),
    ([{"kind": "cast", "params": {"columns": ["s"], "to": "time"}}],
     r"step 1 \(cast\): casting column 's' to time fails on every one"),
    ([{"kind": "select", "params": {"columns": ["a", "b"]}}, {"kind": "derive", "params": {"name": "c", "expr": "a ** b"}}],
     r"step 2 \(derive\): the exponent b must be a plain number"),
    ([{"kind": "derive", "params": {"name": "c", "expr": "a.real"}}], r"step 1 \(derive\): attribute access"),
    ({"steps": "nope"}, "a pipeline spec is an object"),
])
def test_a_spec_that_does_not_fit_is_refused_and_nothing_changes(tmp_path, csv, spec, message):
    path, _ = csv
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(path, time_column="t")
        before = e.wait(name, 60).to_json()
        with pytest.raises(UserError, match=message):
            e.apply(name, spec)
        with pytest.raises(UserError, match=message):
            e.preview(name, spec, 10)
        assert e.pipelines(name) == [] and e.snapshot(name).to_json() == before


def test_versions_are_kept_and_the_stream_can_go_back(tmp_path, csv):
    path, df = csv
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(path, time_column="t", window=BIG)
        e.wait(name, 60)
        e.apply(name, [{"kind": "normalise", "params": {"columns": ["a"], "stats": "frozen"}}], backfill=True)
        e.streams[name].backfill.wait(60)
        first = e.snapshot(name).to_json()
        e.apply(name, [{"kind": "derive", "params": {"name": "d", "expr": "b * 3"}}], backfill=True)
        e.streams[name].backfill.wait(60)
        assert "d" in e.snapshot(name).columns
        history = e.pipelines(name)
        assert [v["version"] for v in history] == [1, 2]
        # the frozen statistics came from the newest 10,000 rows and are kept with the version
        tail = df["a"].tail(10_000)
        v = history[0]["spec"]["steps"][0]["params"]["values"]["a"]
        assert v["mean"] == pytest.approx(tail.mean(), rel=1e-12) and v["std"] == pytest.approx(tail.std(), rel=1e-12)
        out = e.use_pipeline(name, 1, backfill=True)
        assert out["version"] == 1 and out["rebuilt"]
        e.streams[name].backfill.wait(60)
        back = e.snapshot(name).to_json()
        assert e.snapshot(name).columns == ["a", "b"] and back["pipeline"] == 1
        assert back["stats"] == first["stats"] and len(e.pipelines(name)) == 2
        check_stats(back["stats"], df[["a", "b"]].assign(a=(df["a"] - v["mean"]) / v["std"]))
        with pytest.raises(UserError, match="no pipeline version 7"):
            e.use_pipeline(name, 7)


def test_restart_resumes_the_version_and_rebuilds_windows_through_it(tmp_path, csv):
    path, df = csv
    d = str(tmp_path / "d")
    with Engine(d) as e:
        name = e.add_replay(path, time_column="t", window=WindowSpec("count", 5000))
        e.wait(name, 60)
        e.apply(name, STATEFUL, backfill=True)
        assert e.streams[name].backfill.wait(60)["state"] == "done"
        before = e.snapshot(name).to_json()
    with Engine(d) as e:
        after = e.wait(name, 60).to_json()
    same_snapshot(after, before)


def test_a_spec_given_before_any_row_freezes_from_the_first_batch(tmp_path, csv):
    path, df = csv
    spec = [{"kind": "normalise", "params": {"columns": ["b"], "stats": "frozen"}}]
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(path, time_column="t", window=BIG, pipeline={"steps": spec})
        snap = e.wait(name, 60)
        values = e.pipelines(name)[0]["spec"]["steps"][0]["params"]["values"]["b"]
    assert values["mean"] == pytest.approx(df["b"].mean(), rel=1e-12)      # the whole file is one first batch
    close(snap.stats["b"]["mean"], 0.0, atol=1e-9)
    close(snap.stats["b"]["std"], 1.0)


def test_training_history_goes_through_the_pipeline_and_keeps_row_ids(tmp_path, csv):
    path, df = csv
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(path, time_column="t")
        e.wait(name, 60)
        e.apply(name, [{"kind": "filter", "params": {"where": {"column": "s", "op": "==", "value": "x"}}},
                       {"kind": "derive", "params": {"name": "c", "expr": "b * 2"}},
                       {"kind": "select", "params": {"columns": ["c", "a"]}}])
        hist = e.models.history(name).to_pandas()
    want = df[df["s"] == "x"]
    assert list(hist.columns) == ["_rid", "_ingest", "c", "a"]
    assert hist["_rid"].tolist() == want.index.tolist()
    np.testing.assert_allclose(hist["c"], want["b"] * 2, rtol=1e-12)


def test_a_spec_given_at_start_that_the_first_rows_refuse_leaves_the_stream_running(tmp_path, csv):
    path, df = csv
    bad = [{"kind": "cast", "params": {"columns": ["s"], "to": "time"}}]
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(path, time_column="t", window=BIG, pipeline=bad)
        snap = e.wait(name, 60)
        assert snap.pipeline == 0 and snap.error is None
        assert snap.to_json()["pipeline_error"].startswith("step 1 (cast): casting column 's' to time fails")
        assert snap.counts["ingested"] == N and e.pipelines(name) == []
        check_stats(snap.stats, df[["a", "b"]])
        e.apply(name, [{"kind": "clip", "params": {"columns": ["a"], "upper": 10}}], backfill=True)
        e.wait_backfill(name, 60)
        snap = e.snapshot(name)
        assert "pipeline_error" not in snap.to_json() and snap.pipeline == 1
        check_stats(snap.stats, df[["a", "b"]].assign(a=df["a"].clip(upper=10)))


def test_restart_after_a_column_change_without_backfill_keeps_the_rebuilt_state(tmp_path, csv):
    path, df = csv
    d = str(tmp_path / "d")
    with Engine(d) as e:
        name = e.add_replay(path, time_column="t", speed=Speed("rows", 20_000), window=BIG)
        assert wait_for(lambda: e.snapshot(name) and e.snapshot(name).counts["ingested"] >= 2000, 60)
        k = e.apply(name, [{"kind": "derive", "params": {"name": "c", "expr": "a - b"}}])["from_row"]
        before = e.wait(name, 60).to_json()
    with Engine(d) as e:
        after = e.wait(name, 60).to_json()
    # cumulative: the rows since the switch (saved); windows: every stored row re-run through version 1
    assert set(after["cumulative"]) == {"a", "b", "c"}
    assert after["cumulative"] == before["cumulative"]
    check_stats(after["cumulative"], df.iloc[k:][["a", "b"]].assign(c=df["a"] - df["b"]))
    check_stats(after["stats"], df[["a", "b"]].assign(c=df["a"] - df["b"]))
    assert after["window"]["count"] == N and before["window"]["count"] == N - k
