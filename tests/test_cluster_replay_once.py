"""Seek and loop on the cluster: a source row is stored at most once (the embedded rule, test_replay_once.py).

Rows a seek back or a loop plays again reach the partitions flagged as replayed: they go through the
windows and buckets, not into the Delta history, the quarantine or `cumulative`. Checked through the
dashboard's ClusterEngine (2 partitions) on the session's servers, against pandas over the file.
"""
import time

import pytest

from engine.ingest.replay import Speed
from engine.stats.operators import WindowSpec
from tests.conftest import wait_for
from tests.test_cluster_engine import cluster_engine, engine  # noqa: F401  (engine: a fixture)
from tests.test_replay_once import (N, assert_cumulative_is_the_file_once, days,  # noqa: F401  (fixture)
                                    loop_then_stop, stored_ids)
from tests.test_replay_once import count as ingested


def paused(engine, name) -> int:
    """Rows stored once the paused producer's last batch is committed by every partition."""
    def still():
        before = ingested(engine, name)
        time.sleep(1.0)
        return engine.progress(name)["settled"] and ingested(engine, name) == before
    assert wait_for(still, timeout=60)
    return ingested(engine, name)


def same_window(out, df, first):
    """The configured count window (100,000 rows a partition) holds the rows from the seek on."""
    got, want = out["stats"]["x"], df["x"].iloc[first:]
    assert out["window"]["count"] == N - first == got["count"]
    assert got["mean"] == pytest.approx(want.mean(), rel=1e-9)
    assert got["var"] == pytest.approx(want.var(), rel=1e-9)


def test_a_seek_back_replays_rows_on_the_partitions_without_storing_them_again(engine, days):
    path, df = days
    name = engine.add_replay(path, speed=Speed("rows", 500), window=WindowSpec("count", 100_000))
    assert wait_for(lambda: ingested(engine, name) >= 600, timeout=120)
    engine.pause(name)
    at_pause = paused(engine, name)
    assert 600 <= at_pause < N
    assert stored_ids(engine, name) == list(range(at_pause))

    engine.seek(name, row=100)
    engine.set_speed(name, "max")
    engine.resume(name)
    out = engine.wait(name, timeout=120).to_json()
    assert out["rows"]["ingested"] == N and out["rows"]["replayed"] == at_pause - 100
    assert stored_ids(engine, name) == list(range(N))      # each row once, in file order over 2 partitions
    assert_cumulative_is_the_file_once(out, df)
    same_window(out, df, 100)

    engine.seek(name, row=50)          # the replay had ended: its tasks run again for the seek
    out = engine.wait(name, timeout=120).to_json()
    assert out["rows"]["ingested"] == N and out["rows"]["replayed"] == at_pause - 100 + N - 50
    assert stored_ids(engine, name) == list(range(N))
    assert_cumulative_is_the_file_once(out, df)
    same_window(out, df, 50)
    assert engine.health()["errors"] == []


def test_loop_passes_on_the_cluster_are_replayed_not_stored(engine, days):
    path, df = days
    name = engine.add_replay(path, loop=True, partitions=1, window=WindowSpec("count", 500))
    out = loop_then_stop(engine, name, df, passes=2, timeout=120).to_json()
    got, want = out["stats"]["x"], df["x"].iloc[-500:]          # one partition: the count window is exact
    assert got["count"] == 500 and got["mean"] == pytest.approx(want.mean(), rel=1e-9)


@pytest.fixture
def own_engine(own_cluster, tmp_path, monkeypatch):
    """A ClusterEngine of 2 partitions on servers of its own (the test kills a Dask worker)."""
    yield from cluster_engine(own_cluster, tmp_path, monkeypatch)


def kill_producer(engine, name) -> None:
    """kill -9 of the Dask worker process running the stream's producer task (Dask runs it again elsewhere)."""
    import os
    import signal
    key = engine.tasks[name]["producer"].key
    where = None
    for _ in range(100):
        where = next((w for w, keys in engine.client.processing().items() if key in keys), None)
        if where is not None:
            break
        time.sleep(0.05)
    assert where is not None, "the producer task runs nowhere"
    pid = engine.client.run(os.getpid, workers=[where])[where]
    os.kill(pid, signal.SIGKILL)


def test_a_producer_killed_right_after_a_seek_applies_it_once(own_engine, days):
    engine, (path, df) = own_engine, days
    name = engine.add_replay(path, speed=Speed("rows", 500), window=WindowSpec("count", 100_000))
    assert wait_for(lambda: ingested(engine, name) >= 600, timeout=120)
    engine.pause(name)
    at_pause = paused(engine, name)
    engine.seek(name, row=100)
    # the paused producer applied the seek in memory (its source now reads stored rows again) and sent nothing
    # since: a rerun knows of it only from the request, and must apply it (the log's newest entry has the old id)
    assert wait_for(lambda: engine.streams[name].source.status().get("replaying"), timeout=30)
    kill_producer(engine, name)
    time.sleep(1.0)
    engine.resume(name)
    assert wait_for(lambda: ingested(engine, name, "replayed") >= 200, timeout=120)
    # entries with the seek's id are in the log now: a producer run again after this kill must not seek again
    kill_producer(engine, name)
    engine.set_speed(name, "max")
    out = engine.wait(name, timeout=240).to_json()
    assert out["rows"]["ingested"] == N and out["rows"]["replayed"] == at_pause - 100
    assert stored_ids(engine, name) == list(range(N))      # nothing stored twice, nothing lost
    assert_cumulative_is_the_file_once(out, df)
    # the window: every row stored since the pause, and no row before the seek. (A partition the kill restarted
    # rebuilds it from stored rows: rows it had replayed and committed the position of are not in it.)
    assert N - at_pause <= out["window"]["count"] <= N - 100
    assert engine.health()["errors"] == []


def test_an_old_task_computed_again_does_not_take_its_part_from_the_running_one(engine, days):
    """Dask computes a finished task again when the worker holding its result dies (kill -9; CI saw an old
    task fence its successor: "claimed by another worker"). An old task, here one of p0's run on purpose
    while the stream runs, finds it is not the task the engine runs for the part and leaves it alone."""
    from engine.cluster.worker import run_partition
    path, df = days
    name = engine.add_replay(path, speed=Speed("rows", 4_000))
    assert wait_for(lambda: (engine.snapshot(name) or None) is not None
                    and engine.snapshot(name).counts["ingested"] > 500, 120)
    old = engine.client.submit(run_partition, engine.cluster.to_json(), name, 0, engine.streams[name].config,
                               True, task="rivulet-an-old-task", pure=False)
    assert old.result(timeout=60) == {"partition": 0, "fenced": False, "stale": True}
    engine.set_speed(name, "max")
    out = engine.wait(name, timeout=240).to_json()           # raises if a part was fenced
    assert out["rows"]["ingested"] == len(df)
    assert engine.health()["errors"] == []
