"""Exactly-once in cluster mode, with real servers and real kill -9s.

Worker processes die while a file streams (Dask reruns the partition tasks, which resume from the
Delta app transaction); the producer and the workers die mid-file and the command is run again (the
entries the log already holds are refused by id); two workers claim one partition (the stale one is
fenced); every worker dies while a backfill re-runs the history (the reruns apply it once). Every time the
history holds each written id once and the snapshot agrees with it.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

from engine.cluster.delta_store import DeltaStore, Fenced, committed, create_tables, rows_uri
from engine.cluster.redis_log import Producer, log_key, newest_entry, seq_of
from engine.cluster.replay import stream_config
from engine.cluster.worker import run_partition
from engine.ingest.replay import ReplaySource
from engine.stats.operators import WindowSpec
from tests.conftest import ROOT, cluster_env, wait_for
from tests.reference import check_stats
from tests.test_cluster_replay import make_csv


def history(cluster, name) -> pd.DataFrame:
    from deltalake import DeltaTable
    return DeltaTable(rows_uri(cluster.history, name)).to_pyarrow_dataset().to_table().to_pandas()


def start_replay(cluster, path, data_dir, *args):
    return subprocess.Popen([sys.executable, "-m", "engine", "replay", path, "--cluster", cluster.log,
                             "--data-dir", data_dir, "--json", *args], cwd=ROOT, env=cluster_env(cluster),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def delta_version(cluster, name) -> int:
    from deltalake import DeltaTable
    try:
        return DeltaTable(rows_uri(cluster.history, name)).version()
    except Exception:
        return -1


def kill_workers(client) -> int:
    """kill -9 every Dask worker process (their nannies start new ones); how many were killed."""
    for _ in range(100):
        try:
            pids = client.run(os.getpid, wait=True)
            break
        except Exception:          # a worker is still coming back
            time.sleep(0.1)
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    return len(pids)


def test_worker_kill9_while_streaming_stores_every_row_once(own_cluster, tmp_path):
    cluster = own_cluster
    from distributed import Client
    n = 500_000
    path = make_csv(tmp_path / "kills.csv", n=n)
    # 40 s of stream: a kill, the worker's restart (a fresh process importing the engine, restoring from
    # Delta) and its next commit take 3 s a round at load 4 and stretch with the load: 20 s (25,000 rows/s)
    # left little room for four rounds (a loaded run of the cluster files failed here once, message lost)
    proc = start_replay(cluster, path, str(tmp_path / "c"), "--partitions", "2", "--rows-per-second", "12500")
    kills = 0
    with Client(cluster.scheduler) as client:
        seen = -1
        while proc.poll() is None and kills < 4:
            # kill only after the history moved on since the last kill: each rerun made progress
            assert wait_for(lambda: delta_version(cluster, "kills") > seen or proc.poll() is not None, 120), \
                f"no commit within 120 s after kill {kills}"
            if proc.poll() is not None:
                break
            seen = delta_version(cluster, "kills")
            kill_workers(client)
            kills += 1
            time.sleep(1.0)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert kills >= 3, f"the file ended after {kills} kills"
    snap = json.loads(out)
    stored = history(cluster, "kills")
    assert sorted(stored["id"]) == list(range(n))          # every row once
    assert snap["rows"]["ingested"] == n
    numbers = stored.sort_values("id")[["id", "x", "y"]]
    check_stats(snap["cumulative"], numbers)
    # count windows are per partition: two partitions of 10,000 rows each, round-robin = the last 20,000
    assert snap["window"]["count"] == 20_000
    check_stats(snap["stats"], numbers.tail(20_000))


def test_producer_and_workers_kill9_then_rerun_doubles_nothing(own_cluster, tmp_path):
    cluster = own_cluster
    from distributed import Client
    n, parts = 300_000, 2
    path = make_csv(tmp_path / "crash.csv", n=n)
    args = ("--partitions", str(parts), "--batch-bytes", "65536")
    proc = start_replay(cluster, path, str(tmp_path / "c"), *args)
    r = cluster.redis()
    # 40 batches sent: the newest entry's seq, not the log's length, which the workers trim below what
    # they commit (when they keep up with the producer it stays short however far the producer got)
    assert wait_for(lambda: newest_entry(r, "crash")[0] >= 40 or proc.poll() is not None, 120)
    assert proc.poll() is None, "the producer finished before it could be killed"
    proc.kill()                                   # kill -9 of the producer mid-file ...
    proc.wait()
    with Client(cluster.scheduler) as client:
        kill_workers(client)                      # ... and of the workers it had started
    time.sleep(1.0)
    top = seq_of(r.xrevrange(log_key("crash", 0), count=1)[0][0])
    states = committed(cluster.history, "crash", parts)
    done = min(s["seq"] if s else 0 for s in states)
    assert top < 300_000 and done <= top

    again = start_replay(cluster, path, str(tmp_path / "c"), *args)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    snap = json.loads(out)
    # the rerun re-sent every batch after the oldest committed one: those the log held were refused
    assert snap["cluster"]["log_entries"]["refused"] == parts * (top - done)
    stored = history(cluster, "crash")
    assert sorted(stored["id"]) == list(range(n))
    assert snap["rows"]["ingested"] == n
    check_stats(snap["cumulative"], stored.sort_values("id")[["id", "x", "y"]])


def produce(cluster, path, name, batches=None):
    """Send a file's batches to one partition; returns (producer, source) to send the rest later."""
    source = ReplaySource(path, block=65536)
    create_tables(cluster.history, name, source.schema)
    producer = Producer(cluster.redis(), name, 1, source.time_column)
    sent = 0
    while not source.done and (batches is None or sent < batches):
        batch = source.next_batch()
        if batch is not None:
            producer.send(batch)
            sent += 1
    return producer, source


def test_two_workers_claiming_one_partition_commit_no_version_twice(cluster, tmp_path):
    n = 40_000
    path = make_csv(tmp_path / "claim.csv", n=n)
    producer, source = produce(cluster, path, "claim", batches=20)
    config = stream_config("claim", path, source, WindowSpec(), None, 1)
    results = {}

    def work(label):
        results[label] = run_partition(cluster.to_json(), "claim", 0, config)

    first = threading.Thread(target=work, args=("first",))
    first.start()
    assert wait_for(lambda: (committed(cluster.history, "claim", 1)[0] or {}).get("seq") == producer.seq, 60)
    second = threading.Thread(target=work, args=("second",))
    second.start()                                # claims the partition while the first still runs
    time.sleep(0.5)
    while not source.done:
        batch = source.next_batch()
        if batch is not None:
            producer.send(batch)
    producer.finish()
    first.join(120)
    second.join(120)
    assert results["first"]["fenced"] and not results["second"]["fenced"]
    assert results["second"]["seq"] == producer.seq

    from deltalake import DeltaTable
    table = DeltaTable(rows_uri(cluster.history, "claim"))
    seqs = [c["rivulet"]["seq"] for c in reversed(table.history()) if "rivulet" in c]
    assert seqs == sorted(set(seqs)), f"a seq was committed twice: {seqs}"
    assert sorted(history(cluster, "claim")["id"]) == list(range(n))


def test_a_stale_store_is_fenced_by_the_history(cluster, tmp_path):
    """Two stores of one partition that both think they own it: the second commit is refused."""
    import pyarrow as pa
    path = make_csv(tmp_path / "fence.csv", n=100)
    source = ReplaySource(path)
    create_tables(cluster.history, "fence", source.schema)
    config = stream_config("fence", path, source, WindowSpec(), None, 1)
    a, b = (DeltaStore(cluster.history, "fence", 0, config) for _ in range(2))
    batch = source.next_batch()
    rows = batch.table.add_column(0, "_ingest", pa.array(np.zeros(100, "int64"), pa.timestamp("us")))
    rows = rows.add_column(0, "_rid", pa.array(np.arange(100), pa.int64()))
    state = {"next_rid": 100, "ingested": 100, "quarantined": 0, "flagged": 0, "late": 0, "window_from": 0, "replayed": 0,
             "cumulative": None}
    for store in (a, b):
        store.commit(0, rows, [], "log", {"log": {"seq": 1, "newest": None, "source": {}}}, state)
    assert a.flush()
    with pytest.raises(Fenced):
        b.flush()
    assert sorted(history(cluster, "fence")["id"]) == list(range(100))


def test_workers_killed_during_a_backfill_start_it_again(own_cluster, tmp_path, monkeypatch):
    """kill -9 of every Dask worker once the partitions' tasks re-ran their history, before or after the swap:
    the reruns apply the request once (its id is in each partition's last commit), as embedded."""
    from engine.cluster.backfill import status_key
    from engine.cluster.engine import ClusterEngine
    from tests.test_cluster_backfill import STATELESS, embedded, same_snapshot, stored_ids
    monkeypatch.setenv("RIVULET_DASK", own_cluster.scheduler)
    monkeypatch.setenv("RIVULET_HISTORY", own_cluster.history)
    n, window = 12_000, WindowSpec("time", 120, "event")
    path = make_csv(tmp_path / "killed.csv", n=n)
    ref = embedded(path, str(tmp_path / "e"), window, [STATELESS])
    e = ClusterEngine(own_cluster.log, str(tmp_path / "c"), partitions=2)
    try:
        name = e.add_replay(path, window=window)
        e.wait(name, timeout=240)
        e.apply(name, STATELESS, backfill=True)
        r = own_cluster.redis()

        def re_run() -> bool:
            rows = [json.loads(v) for f, v in r.hgetall(status_key(name)).items() if f.endswith(b":rows")]
            return len(rows) == 2 and all(p["rows"] == p["total"] > 0 for p in rows)
        assert wait_for(re_run, 60)
        kill_workers(e.client)
        assert e.wait_backfill(name, timeout=240)["state"] == "done"
        e.wait(name, timeout=240)
        same_snapshot(e, name, ref)
        assert stored_ids(e, name) == list(range(n))
    finally:
        e.close()
