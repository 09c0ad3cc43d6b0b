"""A source row is stored at most once, whatever seek and loop do (issue 14.1).

A seek back or a loop re-plays rows through the live views (the window shows that part of
the file again) without storing them again, so training, export, backfill and `cumulative`
see each row of the file once. Checked through the Engine against pandas over the file.
"""
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from engine.ingest.replay import Speed
from engine.runtime import Engine
from engine.stats.operators import WindowSpec
from tests.conftest import ROOT, wait_for

N = 1461                                   # the file: four years of days


@pytest.fixture
def days(tmp_path):
    rng = np.random.default_rng(14)
    df = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=N, freq="D").strftime("%Y-%m-%d"),
                       "id": np.arange(N), "x": rng.normal(size=N).round(4), "y": rng.normal(size=N).round(4),
                       "label": np.where(rng.random(N) < 0.4, "yes", "no")})
    path = tmp_path / "days.csv"
    df.to_csv(path, index=False)
    return str(path), df


def count(e, name, key="ingested"):
    snap = e.snapshot(name)
    return snap.counts.get(key, 0) if snap is not None else 0


def settled(e, name):
    """Counts once the source is paused and every batch it cut is committed."""
    s = e.streams[name]
    assert wait_for(lambda: s.inflight == 0 and not s.busy, timeout=30)
    time.sleep(0.1)
    assert wait_for(lambda: s.inflight == 0 and not s.busy, timeout=30)
    return e.snapshot(name).to_json()["rows"]


def paused_after(e, path, rows, **options):
    """A replay at 500 rows/s, paused once it has stored `rows` rows: (name, rows stored at the pause)."""
    name = e.add_replay(path, speed=Speed("rows", 500), **options)
    assert wait_for(lambda: count(e, name) >= rows, timeout=30)
    e.pause(name)
    return name, settled(e, name)["ingested"]


def seek_and_finish(e, name, row):
    """Seek to `row`, then replay the rest at full speed; the final snapshot."""
    e.seek(name, row=row)
    e.set_speed(name, "max")
    e.resume(name)
    return e.wait(name, timeout=60)


def stored_ids(e, name):
    return e.store.rows(e.streams[name].id, columns=["id"]).column("id").to_pylist()


def loop_then_stop(e, name, df, passes, timeout):
    """Let a looping replay of `days` play `passes` more times, stop its loop and wait for the end: every
    row stored once, however many passes replayed it; the final snapshot (also on a cluster)."""
    assert wait_for(lambda: count(e, name, "replayed") > passes * N, timeout=timeout)
    e.set_loop(name, False)
    snap = e.wait(name, timeout=timeout)
    out = snap.to_json()
    assert snap.source["loops"] >= passes
    assert out["rows"]["ingested"] == N and out["rows"]["replayed"] >= passes * N
    assert stored_ids(e, name) == list(range(N))
    assert_cumulative_is_the_file_once(out, df)
    return snap


def assert_cumulative_is_the_file_once(snap, df):
    for col in ("x", "y"):
        got, want = snap["cumulative"][col], df[col]
        assert got["count"] == N
        assert got["mean"] == pytest.approx(want.mean(), rel=1e-9)
        assert got["var"] == pytest.approx(want.var(), rel=1e-9)
        assert (got["min"], got["max"]) == (want.min(), want.max())


def test_a_seek_back_replays_rows_into_the_window_without_storing_them_again(tmp_path, days):
    path, df = days
    with Engine(str(tmp_path / "d")) as e:
        name, at_pause = paused_after(e, path, 691, window=WindowSpec("count", 100_000))
        assert 691 <= at_pause < N
        assert stored_ids(e, name) == list(range(at_pause))
        snap = seek_and_finish(e, name, 100)
        # the live window shows the part played again, from the seek on
        assert snap.window_table().column("id").to_pylist() == list(range(100, N))
        out = snap.to_json()
        assert out["rows"]["ingested"] == N and out["rows"]["replayed"] == at_pause - 100
        assert stored_ids(e, name) == list(range(N))          # each row once, in file order
        assert_cumulative_is_the_file_once(out, df)
        history = e.models.history(name)
        assert history.num_rows == N and sorted(history.column("id").to_pylist()) == list(range(N))

        e.seek(name, row=50)                                    # the second seek
        snap = e.wait(name, timeout=60)
        assert snap.window_table().column("id").to_pylist() == list(range(50, N))
        out = snap.to_json()
        assert out["rows"]["ingested"] == N and out["rows"]["replayed"] == at_pause - 100 + N - 50
        assert stored_ids(e, name) == list(range(N))
        assert_cumulative_is_the_file_once(out, df)


def test_a_seek_forward_then_back_stores_the_skipped_rows_once(tmp_path, days):
    path, df = days
    with Engine(str(tmp_path / "d")) as e:
        name, first = paused_after(e, path, 200, window=WindowSpec("count", 100_000))
        seek_and_finish(e, name, 1000)          # rows first..999 skipped for now
        assert stored_ids(e, name) == list(range(first)) + list(range(1000, N))
        e.seek(name, row=0)                     # replays 0..first-1, stores first..999, replays the rest
        out = e.wait(name, timeout=60).to_json()
        assert sorted(stored_ids(e, name)) == list(range(N))
        assert out["rows"]["ingested"] == N and out["rows"]["replayed"] == first + (N - 1000)
        assert_cumulative_is_the_file_once(out, df)


def test_loop_passes_are_replayed_not_stored(tmp_path, days):
    path, df = days
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(path, loop=True, window=WindowSpec("count", 500))
        snap = loop_then_stop(e, name, df, passes=3, timeout=60)
        assert snap.window_table().column("id").to_pylist() == list(range(N - 500, N))
        assert sorted(e.models.history(name).column("id").to_pylist()) == list(range(N))


def test_quarantine_and_predictions_are_not_doubled_by_a_seek(tmp_path, days):
    from engine.models.registry import make_card
    from engine.models.spec import ModelSpec
    from engine.models.train import train
    from engine.models.data import training_rows
    import pyarrow as pa
    path, df = days
    lines = open(path).read().splitlines()
    lines.insert(300, "not,a,row,at,all,too,many")            # quarantined
    lines.insert(600, "2021-08-23,599x,oops,0.1,no")          # flagged (values missing)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    spec = ModelSpec("classification", "label", ("x", "y"), (), "logreg", cv=3)
    trained = train(training_rows(pa.Table.from_pandas(df), "label", ["x", "y"], [], "classification"), spec)
    with Engine(str(tmp_path / "d")) as e:
        model_id = e.models.registry.save(trained.model, make_card(trained.model, spec, trained.report,
                                                                   {"x": "number", "y": "number"}, {}, None))
        name = e.add_replay(path, speed=Speed("rows", 3000), paused=True)
        e.deploy(name, model_id)
        e.resume(name)
        assert wait_for(lambda: count(e, name) >= 900, timeout=30)
        e.seek(name, row=0)
        e.set_speed(name, "max")
        out = e.wait(name, timeout=60).to_json()
        sid = e.streams[name].id
        assert out["rows"]["ingested"] == N + 1 and out["rows"]["quarantined"] == 1 and out["rows"]["flagged"] >= 1
        assert e.quarantine(name).num_rows == 1 + out["rows"]["flagged"]
        rids = e.store.predictions(sid, last=100_000).column("_rid").to_pylist()
        assert rids == list(range(N + 1))                      # one prediction a stored row, none twice
        assert out["model"]["predicted"] == N + 1


def test_a_restart_mid_replay_after_a_seek_back_stores_each_row_once(tmp_path, days):
    path, df = days
    data = str(tmp_path / "d")
    with Engine(data) as e:
        name, at_pause = paused_after(e, path, 1000, window=WindowSpec("count", 100_000))
        e.seek(name, row=100)
        e.set_speed(name, "rows", 1000)
        e.resume(name)
        assert wait_for(lambda: count(e, name, "replayed") >= 300, timeout=30)
        replaying = count(e, name, "replayed") < at_pause - 100
    assert replaying                                        # closed inside the part played again
    with Engine(data) as e:
        e.set_speed(name, "max")
        out = e.wait(name, timeout=60).to_json()
        assert stored_ids(e, name) == list(range(N))
        assert out["rows"]["ingested"] == N and out["rows"]["replayed"] == at_pause - 100
        assert_cumulative_is_the_file_once(out, df)


KILLED = """
import sys, time
from engine.runtime import Engine
from engine.ingest.replay import Speed
e = Engine(sys.argv[1])
if not e.names():
    e.add_replay(sys.argv[2], name="big", speed=Speed("rows", 20000), loop=True)
print("ready", flush=True)
while True:
    time.sleep(0.05)
    snap = e.snapshot("big")
    if snap is not None and snap.counts["ingested"] > 8000 and snap.counts["replayed"] == 0 \
            and snap.source["loops"] == 0:
        e.seek("big", row=2000)
"""


def test_kill_9_while_seeking_back_and_looping_stores_each_row_once(tmp_path):
    """A process seeks back once it has 8,000 rows and loops; kill -9 at random moments, then finish."""
    n = 30_000
    path = tmp_path / "big.csv"
    rng = np.random.default_rng(9)
    df = pd.DataFrame({"id": np.arange(n), "x": rng.normal(size=n).round(3)})
    df.to_csv(path, index=False)
    data = str(tmp_path / "d")
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-c", KILLED, data, str(path)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()[-2000:]
        time.sleep(random.Random(attempt).uniform(0.2, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with Engine(data) as e:
        e.set_loop("big", False)
        e.set_speed("big", "max")
        out = e.wait("big", timeout=120).to_json()
        ids = stored_ids(e, "big")
    assert out["rows"]["replayed"] > 0
    assert len(ids) == n and sorted(ids) == list(range(n))      # none lost, none twice
    assert out["cumulative"]["x"]["count"] == n
    assert out["cumulative"]["x"]["mean"] == pytest.approx(df.x.mean(), rel=1e-9)
    assert out["cumulative"]["x"]["var"] == pytest.approx(df.x.var(), rel=1e-9)


def test_replayed_rows_leave_the_pipelines_running_state_as_a_backfill_finds_it(tmp_path, days):
    """Running z-scores carry state from batch to batch; rows played again must not move it, or the rows
    stored after a seek would be scaled otherwise than a backfill of the stored rows scales them."""
    path, df = days
    spec = [{"kind": "normalise", "params": {"columns": ["x"], "method": "zscore", "stats": "running"}},
            {"kind": "fill_missing", "params": {"columns": ["y"], "method": "ffill"}}]
    with Engine(str(tmp_path / "d")) as e:
        name, _ = paused_after(e, path, 600, pipeline=spec)
        live = seek_and_finish(e, name, 0).to_json()
        assert live["rows"]["ingested"] == N and live["rows"]["replayed"] >= 600
        assert e.wait_backfill(name) is None
        e.backfill(name)
        assert e.wait_backfill(name, timeout=60)["state"] == "done"
        rebuilt = e.snapshot(name).to_json()
    for stat in ("count", "mean", "var", "min", "max"):
        assert live["cumulative"]["x"][stat] == pytest.approx(rebuilt["cumulative"]["x"][stat], rel=1e-9, abs=1e-12)
    x = df.x
    z = ((x - x.expanding().mean()) / x.expanding().std()).dropna()     # pandas' running z-score
    assert rebuilt["cumulative"]["x"]["mean"] == pytest.approx(z.mean(), rel=1e-9)
