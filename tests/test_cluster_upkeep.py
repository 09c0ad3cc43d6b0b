"""What keeps cluster storage bounded: the Redis log trimmed below each partition's committed seq, and the
Delta files compacted (and old ones vacuumed) on a schedule, with every row still stored once."""
import glob
import os
import time

from deltalake import DeltaTable

import engine.cluster.delta_store as delta_store
from engine.cluster.delta_store import committed, rows_uri
from engine.cluster.redis_log import end_key, log_key, seq_of
from engine.cluster.redis_snapshots import RedisSnapshots
from engine.cluster.replay import stream_config
from engine.cluster import worker
from engine.cluster.worker import run_partition
from engine.stats.operators import WindowSpec
from tests.test_cluster_exactly_once import produce
from tests.test_cluster_replay import make_csv


def test_log_trimmed_and_files_compacted_without_losing_a_row(cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(delta_store, "COMMIT_EVERY", 0.0)          # a Delta commit per batch: many small files
    monkeypatch.setattr(worker, "READ_ENTRIES", 1)                 # a batch per log entry
    path = make_csv(tmp_path / "upkeep.csv", n=40_000)
    producer, source = produce(cluster, path, "upkeep")
    producer.finish()
    config = {**stream_config("upkeep", path, source, WindowSpec(), None, 1), "compact_every": 0, "vacuum_hours": 0}
    done = run_partition(cluster.to_json(), "upkeep", 0, config)
    assert done["seq"] == producer.seq and done["commits"] > 5 and done["compactions"] >= done["commits"] - 1

    entries = cluster.redis().xrange(log_key("upkeep", 0))
    assert [seq_of(e[0]) for e in entries] == [producer.seq]       # everything below the committed seq trimmed
    table = DeltaTable(rows_uri(cluster.history, "upkeep"))
    on_disk = glob.glob(os.path.join(rows_uri(cluster.history, "upkeep"), "_part=0", "*.parquet"))
    assert len(table.file_uris()) == 1 and len(on_disk) == 1           # compacted, the small files vacuumed
    ids = table.to_pyarrow_dataset().to_table(columns=["id"]).column("id").to_pylist()
    assert sorted(ids) == list(range(40_000))
    assert committed(cluster.history, "upkeep", 1)[0]["seq"] == producer.seq      # the position survived

    again = run_partition(cluster.to_json(), "upkeep", 0, config)  # a rerun resumes after the compactions
    assert again["seq"] == producer.seq and again["rows"] == 40_000 and again["commits"] == 0


def test_history_pruned_to_the_retention_and_exactly_once_survives(cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(delta_store, "COMMIT_EVERY", 0.0)
    monkeypatch.setattr(worker, "READ_ENTRIES", 1)
    path = make_csv(tmp_path / "kept.csv", n=40_000)
    producer, source = produce(cluster, path, "kept")
    producer.finish()
    config = {**stream_config("kept", path, source, WindowSpec(), 10_000, 1), "compact_every": 0, "vacuum_hours": 0}
    done = run_partition(cluster.to_json(), "kept", 0, config)
    assert done["seq"] == producer.seq and done["pruned"] >= 25_000

    table = DeltaTable(rows_uri(cluster.history, "kept"))
    kept = table.to_pyarrow_dataset().to_table(columns=["_rid", "id"]).to_pandas().sort_values("_rid")
    batch = 40_000 // producer.seq + 1
    assert 10_000 <= len(kept) <= 10_000 + batch                  # the newest rows, pruned at the last commits
    assert kept["_rid"].tolist() == list(range(40_000 - len(kept), 40_000))
    assert kept["id"].tolist() == kept["_rid"].tolist()
    state = committed(cluster.history, "kept", 1)[0]
    assert state["seq"] == producer.seq and state["ingested"] == 40_000     # position and state survived
    assert table.transaction_version("kept:p0") == producer.seq

    again = run_partition(cluster.to_json(), "kept", 0, config)   # a rerun resumes, stores nothing twice
    assert again["seq"] == producer.seq and again["rows"] == 40_000 and again["commits"] == 0
    snap = RedisSnapshots(cluster.redis()).latest("kept").to_json()
    assert snap["rows"]["ingested"] == 40_000 and snap["cumulative"]["id"]["count"] == 40_000
    assert snap["window"]["count"] == 10_000 and snap["stats"]["id"]["min"] == 30_000


def test_history_pruned_by_age_and_exactly_once_survives(cluster, tmp_path, monkeypatch):
    """Retention by age (`retention_seconds`): rows that arrived longer ago leave the history; the position,
    counts and cumulative statistics stay, and a rerun stores nothing twice."""
    monkeypatch.setattr(delta_store, "COMMIT_EVERY", 0.0)
    monkeypatch.setattr(worker, "READ_ENTRIES", 1)
    path = make_csv(tmp_path / "aged.csv", n=40_000)
    producer, source = produce(cluster, path, "aged", batches=10)
    r = cluster.redis()
    r.set(end_key("aged"), producer.seq)                # the first part only
    config = {**stream_config("aged", path, source, WindowSpec(), None, 1), "compact_every": 0, "vacuum_hours": 0,
              "retention_seconds": 3.0}
    first = run_partition(cluster.to_json(), "aged", 0, config)
    old = first["rows"]
    assert 0 < old < 40_000 and first["pruned"] == 0            # nothing is 3 s old yet
    time.sleep(4.0)
    r.delete(end_key("aged"))
    while not source.done:                                       # the rest of the file, 4 s later
        batch = source.next_batch()
        if batch is not None:
            producer.send(batch)
    producer.finish()
    done = run_partition(cluster.to_json(), "aged", 0, config)
    assert done["seq"] == producer.seq and done["pruned"] >= old

    ids = DeltaTable(rows_uri(cluster.history, "aged")).to_pyarrow_dataset().to_table(columns=["id"])
    ids = sorted(int(i) for i in ids.column("id").to_pylist())
    assert ids and ids[0] >= old and ids == list(range(ids[0], 40_000))      # the rows that arrived since, each once
    state = committed(cluster.history, "aged", 1)[0]
    assert state["seq"] == producer.seq and state["ingested"] == 40_000

    again = run_partition(cluster.to_json(), "aged", 0, config)
    assert again["seq"] == producer.seq and again["rows"] == 40_000 and again["commits"] == 0
    snap = RedisSnapshots(r).latest("aged").to_json()
    assert snap["rows"]["ingested"] == 40_000 and snap["cumulative"]["id"]["count"] == 40_000
