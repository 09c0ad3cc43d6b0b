"""Re-running stored history on the cluster (backfill): each partition maps a task over its Delta rows on Dask
and swaps the rebuilt state in at a batch boundary; the merged snapshot equals the embedded replay + backfill
of the same file through the same versions.

Through the dashboard's ClusterEngine on the session's servers (tests/test_cluster_engine.py's fixture).
"""
import pandas as pd
import pytest

from engine.ingest.replay import Speed
from engine.runtime import Engine
from engine.stats.operators import WindowSpec
from tests.conftest import wait_for
from tests.reference import close
from tests.test_cluster_engine import engine  # noqa: F401  (the fixture: a ClusterEngine of 2 partitions)
from tests.test_cluster_pipeline import RUNNING
from tests.test_cluster_replay import make_csv, same_buckets, same_numbers

FIRST = {"steps": [{"kind": "derive", "params": {"name": "z", "expr": "x * 3 + 1"}}]}
STATELESS = {"steps": [     # nothing carried from row to row: every partition gives what one stream gives
    {"kind": "fill_missing", "params": {"columns": ["x"], "method": "value", "value": 0}},
    {"kind": "derive", "params": {"name": "xy", "expr": "x * 2 + y"}},
    {"kind": "clip", "params": {"columns": ["x"], "lower": -1.5, "upper": 1.5}},
    {"kind": "filter", "params": {"where": {"column": "site", "op": "!=", "value": "west"}}}]}


def embedded(path, data_dir, window, specs):
    """The embedded replay of `path`, then each spec applied with a backfill: its snapshot."""
    with Engine(data_dir) as e:
        name = e.add_replay(path, window=window)
        e.wait(name, timeout=120)
        for spec in specs:
            e.apply(name, spec, backfill=True)
            assert e.wait_backfill(name, timeout=120)["state"] == "done"
        return e.snapshot(name)


def same_snapshot(engine, name, ref):
    """The merged snapshot equals `ref` (statistics, cumulative, buckets, the window's group-by)."""
    from engine.cluster.redis_snapshots import RedisSnapshots
    snap = engine.snapshot(name)
    out, want = snap.to_json(), ref.to_json()
    assert out["rows"] == want["rows"] and out["window"] == want["window"]
    assert (out["pipeline"], out["pipeline_from"]) == (want["pipeline"], want["pipeline_from"])
    for key in ("stats", "cov", "corr", "cumulative"):
        same_numbers(out[key], want[key], key)
    same_buckets(snap, ref, snap.columns)
    parts = RedisSnapshots(engine.store.redis).latest(name)      # the partitions' own group-by partials, merged
    size = {"rows": int(want["window"]["size"])} if want["window"]["kind"] == "count" else \
        {"seconds": want["window"]["size"]}
    same_numbers(parts.group_stats("site"), ref.group_stats("site", **size), "group-by")


def stored_ids(engine, name):
    return engine.store.rows(engine.streams[name].id, columns=["id"]).column("id").to_pylist()


def flowing(engine, path, window, rate: int, after: int) -> str:
    """A replay of `path` paced at `rate` rows/s, once it has ingested more than `after` rows."""
    name = engine.add_replay(path, window=window, speed=Speed("rows", rate))
    assert wait_for(lambda: (engine.snapshot(name) or None) is not None
                    and engine.snapshot(name).counts["ingested"] > after, 120)
    return name


@pytest.mark.parametrize("partitions, window, spec", [
    (1, WindowSpec("count", 5_000), RUNNING),          # count windows and running statistics: one partition
    (3, WindowSpec("time", 120, "event"), STATELESS)])
def test_a_backfill_on_the_cluster_equals_the_embedded_one(engine, tmp_path, partitions, window, spec):
    n = 15_000
    path = make_csv(tmp_path / "bf.csv", n=n)
    ref = embedded(path, str(tmp_path / "e"), window, [FIRST, spec])
    name = engine.add_replay(path, window=window, partitions=partitions)
    engine.wait(name, timeout=240)
    for version, s in enumerate((FIRST, spec), start=1):
        out = engine.apply(name, s, backfill=True)
        assert out["version"] == version and out["backfill"]["state"] == "running"
        status = engine.wait_backfill(name, timeout=240)
        assert status["state"] == "done", status
        assert status["rows"] >= n and status["version"] == version
        assert len(status["workers"]) == partitions and all(w.startswith("tcp://") for w in status["workers"])
    snap = engine.wait(name, timeout=240)         # the tasks that ran the backfill have ended again
    assert snap.pipeline == snap.pipeline_from == 2
    same_snapshot(engine, name, ref)
    assert stored_ids(engine, name) == list(range(n))
    assert engine.health()["errors"] == []


def test_a_backfill_while_rows_flow_counts_each_row_once(engine, tmp_path):
    n = 16_000
    path = make_csv(tmp_path / "flow.csv", n=n)
    window = WindowSpec("time", 120, "event")
    ref = embedded(path, str(tmp_path / "e"), window, [FIRST])
    name = flowing(engine, path, window, 2_500, after=2_000)
    engine.apply(name, FIRST, backfill=True)
    with pytest.raises(Exception, match="already running"):
        engine.backfill(name)
    status = engine.wait_backfill(name, timeout=240)
    assert status["state"] == "done", status
    arrived = engine.snapshot(name).counts["ingested"]
    snap = engine.wait(name, timeout=240)
    assert arrived < n                      # rows still flowed after the swap
    # every row counted once in the cumulative statistics: the ones before the cut by the tasks on Dask, the
    # ones since at the swap or live, through the new version
    df = pd.read_csv(path)
    z = df["x"] * 3 + 1
    cum = snap.to_json()["cumulative"]
    assert cum["y"]["count"] == n and cum["z"]["count"] == z.count()
    close(cum["z"]["mean"], z.mean(), 1e-9, 1e-12, "z mean")
    close(cum["z"]["var"], z.var(), 1e-9, 1e-12, "z var")
    same_snapshot(engine, name, ref)
    assert stored_ids(engine, name) == list(range(n))


def test_a_cancelled_or_failed_backfill_leaves_the_state_as_it_was(engine, tmp_path):
    import json

    from engine.cluster.pipelines import Versions, versions_key
    n = 6_000
    path = make_csv(tmp_path / "cancel.csv", n=n)
    name = engine.add_replay(path, window=WindowSpec("time", 120, "event"))
    before = engine.wait(name, timeout=240).to_json()
    engine.apply(name, FIRST, backfill=True)
    engine.cancel_backfill(name)        # before the ended replay's tasks run again for it
    status = engine.wait_backfill(name, timeout=120)
    assert status["state"] == "cancelled" and status["error"] is None
    after = engine.wait(name, timeout=240).to_json()          # the tasks end again without it
    assert after["rows"] == before["rows"] and "z" not in after["cumulative"]
    same_numbers(after["cumulative"], before["cumulative"], "cumulative")

    # a version gone from the catalogue before the tasks ran again: each partition fails in one line, and the
    # stream goes on with its state as it was
    assert engine.apply(name, FIRST, backfill=True)["version"] == 2
    versions = Versions(engine.store.redis, name)
    row = versions.get(2)
    versions.drop(2)
    status = engine.wait_backfill(name, timeout=120)
    assert status["state"] == "failed" and "pipeline version 2" in status["error"]
    assert "\n" not in status["error"] and "Traceback" not in status["error"]
    after = engine.wait(name, timeout=240).to_json()
    same_numbers(after["cumulative"], before["cumulative"], "cumulative")
    assert engine.health()["errors"] == []

    engine.store.redis.hset(versions_key(name), "v2", json.dumps(row))      # the version back: asked again, it runs
    assert engine.backfill(name).wait(120)["state"] == "done"
    assert engine.wait(name, timeout=240).to_json()["cumulative"]["z"]["count"] == pd.read_csv(path)["x"].count()


def test_replay_run_again_with_another_spec_re_runs_the_history(cluster, tmp_path):
    """`replay --cluster` run again with another --pipeline, as the embedded command: a new version, history re-run."""
    import json

    from tests.test_cluster_replay import cluster_replay
    n = 12_000
    path = make_csv(tmp_path / "again.csv", n=n)
    window = WindowSpec("time", 120, "event")
    ref = embedded(path, str(tmp_path / "e"), window, [STATELESS]).to_json()
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(STATELESS))
    args = ("--window-seconds", "120", "--partitions", "3")
    first = cluster_replay(cluster, path, str(tmp_path / "c"), *args)
    assert first["pipeline"] == 0 and "xy" not in first["cumulative"]
    out = cluster_replay(cluster, path, str(tmp_path / "c"), *args, "--pipeline", str(spec))
    assert out["cluster"]["log_entries"]["sent"] == 0                 # nothing new: the history was re-run
    assert out["rows"] == ref["rows"] and (out["pipeline"], out["pipeline_from"]) == (1, 1)
    for key in ("stats", "cov", "corr", "cumulative"):
        same_numbers(out[key], ref[key], key)
    again = cluster_replay(cluster, path, str(tmp_path / "c"), *args, "--pipeline", str(spec))
    assert again["pipeline"] == 1                                      # the same spec: no new version


def test_a_backfill_of_a_paused_stream_swaps_while_it_waits(engine, tmp_path):
    """No entry comes while the stream is paused: each partition takes the version itself once entries stamped
    before the request can no longer come, swaps, and the rows after the resume go through it."""
    from tests.test_cluster_replay_once import paused
    n = 8_000
    path = make_csv(tmp_path / "paused.csv", n=n)
    window = WindowSpec("time", 120, "event")
    ref = embedded(path, str(tmp_path / "e"), window, [FIRST])
    name = flowing(engine, path, window, 2_000, after=1_000)
    engine.pause(name)
    at_pause = paused(engine, name)
    engine.apply(name, FIRST, backfill=True)
    assert engine.wait_backfill(name, timeout=120)["state"] == "done"
    snap = engine.snapshot(name)
    assert snap.counts["ingested"] == at_pause < n and snap.pipeline_from == 1
    assert snap.to_json()["cumulative"]["z"]["count"] == pd.read_csv(path)["x"].iloc[:at_pause].count()
    engine.set_speed(name, "max")
    engine.resume(name)
    engine.wait(name, timeout=240)
    same_snapshot(engine, name, ref)
    assert stored_ids(engine, name) == list(range(n))
