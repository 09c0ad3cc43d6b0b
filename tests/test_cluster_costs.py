"""What keeps the cluster's CPU per row down, checked as behaviour: how Delta files are written, when an
idle partition commits, what the command imports, how Redis clients send large values, and the local
servers' settings (bench/cluster.py measures the CPU itself)."""
import glob
import os
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq

from engine.cluster.config import connect
from engine.cluster.delta_store import DeltaStore, STATE_KEYS, create_tables, rows_uri
from engine.cluster.redis_log import decode_entry, encode_entry
from engine.cluster.replay import stream_config
from engine.cluster.worker import run_partition
from engine.ingest.replay import ReplaySource
from engine.stats.operators import WindowSpec
from tests.conftest import ROOT
from tests.test_cluster_exactly_once import produce
from tests.test_cluster_replay import make_csv


def test_delta_commits_write_plain_files_that_compaction_compresses(tmp_path):
    """A commit's file is written as the embedded segments are: uncompressed, no dictionary, statistics for
    `_rid` and `_ingest` only (delta-rs's writer with zstd cost 4x the CPU). Compaction rewrites it with
    zstd, floats without a dictionary (measured values rarely repeat), statistics per file; the text column
    keeps its dictionary."""
    path = make_csv(tmp_path / "f.csv", n=20_000)
    source = ReplaySource(path)
    history = str(tmp_path / "history")
    create_tables(history, "f", source.schema)
    store = DeltaStore(history, "f", 0, {})
    batch = source.next_batch()
    rows = batch.table
    rows = rows.add_column(0, "_ingest", pa.array([0] * rows.num_rows, pa.timestamp("us")))
    rows = rows.add_column(0, "_rid", pa.array(range(rows.num_rows), pa.int64()))
    store.commit(0, rows, [], "log", {"log": {"seq": 1}}, dict.fromkeys(STATE_KEYS, 0) | {"cumulative": None})
    assert store.flush()
    source.close()
    files = glob.glob(os.path.join(rows_uri(history, "f"), "_part=0", "*.parquet"))
    assert len(files) == 1
    columns = column_meta(files[0])
    for name in ("x", "y", "site"):
        assert not any("DICT" in e for e in columns[name].encodings), columns[name].encodings
        assert columns[name].compression == "UNCOMPRESSED" and not columns[name].is_stats_set
    assert columns["_rid"].statistics.has_min_max
    got = pq.read_table(files[0], columns=["id", "x"])
    assert got.column("id").to_pylist() == list(range(rows.num_rows))
    store.table.update_incremental()
    added = pa.table(store.table.get_add_actions(flatten=True)).to_pydict()      # Delta's statistics of the file
    assert added["num_records"] == [rows.num_rows]
    assert (added["min._rid"], added["max._rid"]) == ([0], [rows.num_rows - 1])

    store.commit(0, rows, [], "log", {"log": {"seq": 2}}, dict.fromkeys(STATE_KEYS, 0) | {"cumulative": None})
    assert store.flush()
    store.compact(0)                                    # the two files as one, with zstd
    store.table.update_incremental()
    [compacted] = [u.removeprefix("file://") for u in store.table.file_uris()]
    columns = column_meta(compacted)
    for name in ("x", "y"):
        assert not any("DICT" in e for e in columns[name].encodings), columns[name].encodings
        assert columns[name].compression == "ZSTD"
        assert columns[name].statistics is not None and columns[name].statistics.has_min_max
    assert any("DICT" in e for e in columns["site"].encodings)
    assert pq.read_table(compacted).num_rows == 2 * rows.num_rows


def column_meta(path: str) -> dict:
    meta = pq.ParquetFile(path).metadata
    return {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}


def test_an_idle_partition_commits_about_once_a_second_not_at_every_pause(cluster, tmp_path):
    """Entries arriving with pauses between them (a paced stream): the worker publishes each, and commits
    when a commit is due, not whenever the log is idle for a moment."""
    path = make_csv(tmp_path / "paced.csv", n=30_000)
    producer, source = produce(cluster, path, "paced", batches=1)
    config = stream_config("paced", path, source, WindowSpec(), None, 1)
    result = {}
    started = time.monotonic()
    worker = threading.Thread(target=lambda: result.update(run_partition(cluster.to_json(), "paced", 0, config)))
    worker.start()
    while not source.done:
        batch = source.next_batch()
        if batch is not None:
            producer.send(batch)
            time.sleep(0.25)              # the worker idles between entries
    producer.finish()
    worker.join(120)
    elapsed = time.monotonic() - started
    assert result["seq"] == producer.seq and result["rows"] == 30_000
    assert producer.seq >= 10
    assert result["commits"] <= elapsed + 2, (result["commits"], producer.seq, elapsed)


def test_the_cluster_command_creates_its_tables_without_scikit_learn(tmp_path):
    path = make_csv(tmp_path / "t.csv", n=100)
    code = ("import sys; from engine.cluster.delta_store import create_tables; "
            "from engine.ingest.replay import ReplaySource; s = ReplaySource(%r); "
            "create_tables(%r, 't', s.schema); print('sklearn' in sys.modules)" % (path, str(tmp_path / "h")))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_large_values_go_to_redis_without_a_copy(cluster):
    r = connect(cluster.log)
    blob = os.urandom(1 << 20)
    conn = r.connection_pool.get_connection()
    try:
        packed = conn.pack_command("XADD", "rivulet:copy:p0", "1-0", "rows", blob)
    finally:
        r.connection_pool.release(conn)
    assert any(part is blob for part in packed)
    r.xadd("rivulet:copy:p0", {"rows": blob}, id="1-0")
    assert r.xrange("rivulet:copy:p0")[0][1][b"rows"] == blob
    table = pa.table({"x": [1.0, 2.0]})                 # a log entry's rows: a view of Arrow's buffer, not bytes
    fields = encode_entry(table, [], {"rows": 2}, None)
    assert isinstance(fields["rows"], memoryview)
    r.xadd("rivulet:copy:p1", fields, id="1-0")
    assert decode_entry(r.xrange("rivulet:copy:p1")[0][1])[0].equals(table)


def test_local_servers_workers_without_profiler_slow_ticks_and_aof_rewritten_from_512_mb(cluster, cluster_servers):
    import dask
    from distributed import Client
    with Client(cluster.scheduler) as client:
        enabled = client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
        tick = client.run(lambda: dask.config.get("distributed.admin.tick.interval"))
        trim = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert enabled and not any(enabled.values())
    assert set(tick.values()) == {"1s"}
    assert set(trim.values()) == {None}         # glibc's adaptive mmap threshold stays on (local.start_dask)
    assert connect(cluster.log).config_get("auto-aof-rewrite-min-size") == {"auto-aof-rewrite-min-size": "536870912"}


def test_a_worker_behind_reads_waiting_entries_in_batches_of_bounded_size(cluster, tmp_path):
    """Entries waiting together are read as one batch, but not past MERGE_ROWS rows: the operators cost
    twice as much a row on batches much bigger than their cache-sized best."""
    from engine.cluster.redis_log import MERGE_ROWS, PartitionLog, Producer
    from engine.ingest.source import Batch
    from engine.schema import Schema
    schema = pa.schema([("x", pa.float64())])
    producer = Producer(cluster.redis(), "behind", 1, None)
    for i in range(6):
        producer.send(Batch(pa.table({"x": pa.array([float(i)] * 30_000)}), [], {"replay": i}))
    small = 800
    for i in range(40):                      # and small entries after them: merged as before
        producer.send(Batch(pa.table({"x": pa.array([1.0] * small)}), [], {"replay": 6 + i}))
    log = PartitionLog(cluster.redis(), "behind", 0, Schema.from_arrow(schema), None, count=32)
    sizes = []
    while log.seq < producer.seq:
        batch = log.next_batch()
        sizes.append(batch.table.num_rows)
    assert sum(sizes) == 6 * 30_000 + 40 * small
    assert max(sizes) < MERGE_ROWS + 30_000
    assert sizes[:3] == [60_000] * 3
    assert any(size >= 20 * small for size in sizes[3:])


def test_log_entries_go_to_redis_lz4_compressed_and_plain_ones_still_read(cluster, tmp_path):
    """Every byte of an entry is written to the AOF (appendfsync always), sent and read back: LZ4-frame
    buffers make the benchmark's kind of rows about 40% smaller, for less CPU than those bytes cost. Entries
    a log holds from before (plain Arrow IPC) still read."""
    rows = ReplaySource(make_csv(tmp_path / "f.csv", n=20_000))
    table = rows.next_batch().table
    rows.close()
    plain = pa.BufferOutputStream()
    with pa.ipc.new_stream(plain, table.schema) as w:
        w.write_table(table)
    plain = plain.getvalue().to_pybytes()
    r = connect(cluster.log)
    r.xadd("rivulet:lz4:p0", encode_entry(table, [], {"rows": table.num_rows}, None), id="1-0")
    r.xadd("rivulet:lz4:p0", {**encode_entry(table, [], {"rows": table.num_rows}, None), "rows": plain}, id="2-0")
    (_, new), (_, old) = r.xrange("rivulet:lz4:p0")
    assert len(new[b"rows"]) < 0.7 * len(plain)
    assert decode_entry(new)[0].equals(table)
    assert decode_entry(old)[0].equals(table)
