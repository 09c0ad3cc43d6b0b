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
from tests.test_cluster_engine import engine  # noqa: F401  (the fixture: a ClusterEngine of 2 partitions)
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
