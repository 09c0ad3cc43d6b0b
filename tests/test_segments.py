"""Big commits' rows are Parquet segment files that the DuckDB catalog names in the commit's transaction
(issue 15): every reader sees them through `rows_N`, a crash between writing a file and committing
leaves nothing a reader sees (and the next open deletes it), and retention is exact by row id."""
import os
import subprocess
import sys
import textwrap

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from engine.schema import Column, Schema
from engine.store import segments
from engine.store.duck import DuckStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wide_csv(path, n, k, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, k)).round(3) * 10, columns=[f"c{i}" for i in range(k)])
    df.insert(0, "id", np.arange(n))
    df.to_csv(path, index=False)
    return df


def stored(data):
    con = duckdb.connect(os.path.join(data, "rivulet.duckdb"), read_only=True)
    try:
        return (con.sql("SELECT * EXCLUDE (_ingest) FROM rows_1 ORDER BY _rid").df(),
                con.execute("SELECT count(*), coalesce(sum(rows), 0) FROM segments").fetchone())
    finally:
        con.close()


def replay(path, data, *extra):
    return subprocess.run([sys.executable, "-m", "engine", "replay", str(path), "--data-dir", str(data), "--json",
                           *extra], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_wide_replay_stores_its_rows_as_segments_that_every_reader_sees(tmp_path):
    df = wide_csv(tmp_path / "w.csv", 30_000, 60)
    out = replay(tmp_path / "w.csv", tmp_path / "d")
    assert out.returncode == 0, out.stderr[-2000:]
    rows, (files, in_files) = stored(tmp_path / "d")
    assert files > 0 and in_files > 0                       # segments were written, and are in the catalog
    assert (rows["_rid"].to_numpy() == np.arange(len(df))).all()
    pd.testing.assert_frame_equal(rows.drop(columns="_rid"), df, check_dtype=False)
    store = DuckStore(str(tmp_path / "d"))
    try:
        assert store.count(1) == len(df)
        last = store.rows(1, last=1234).to_pandas()
        assert (last["id"].to_numpy() == np.arange(len(df) - 1234, len(df))).all()
        part = store.rows(1, since_rid=7_000, limit=5_000).to_pandas()
        assert (part["id"].to_numpy() == np.arange(7_000, 12_000)).all()
        assert store.rows(1, last=0).num_rows == 0
    finally:
        store.close()


CRASHING = textwrap.dedent("""
    import os, signal, sys
    from engine.store import duck
    real, calls = duck.DuckStore._segment, [0]

    def segment_then_die(self, stream_id, rows):
        name = real(self, stream_id, rows)
        calls[0] += name is not None
        if calls[0] == 2:               # the second segment is on disk, its commit never happens (a commit
                                        # takes every block parsed meanwhile, so how many come depends on load)
            os.kill(os.getpid(), signal.SIGKILL)
        return name

    duck.DuckStore._segment = segment_then_die
    from engine.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_a_crash_between_a_segment_file_and_its_commit_stores_nothing_twice(tmp_path):
    df = wide_csv(tmp_path / "w.csv", 60_000, 60, seed=1)       # 34 MB: five blocks of 8 MiB
    data = tmp_path / "d"
    died = subprocess.run([sys.executable, "-c", CRASHING, "replay", str(tmp_path / "w.csv"), "--data-dir", str(data),
                           "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert died.returncode == -9, died.stderr[-2000:]
    rows, (files, _) = stored(data)               # a reader meanwhile: only committed rows
    on_disk = [n for n in os.listdir(segments.folder(str(data), 1)) if n != segments.ANCHOR]
    assert len(on_disk) == files + 1              # the orphan is there, but no reader sees it
    assert (rows["id"].to_numpy() == np.arange(len(rows))).all()
    out = replay(tmp_path / "w.csv", data)        # resumes from the committed offset
    assert out.returncode == 0, out.stderr[-2000:]
    rows, (files, _) = stored(data)
    assert (rows["id"].to_numpy() == np.arange(len(df))).all()          # each row once, in order
    assert (rows["_rid"].to_numpy() == np.arange(len(df))).all()
    on_disk = [n for n in os.listdir(segments.folder(str(data), 1)) if n != segments.ANCHOR]
    assert len(on_disk) == files                  # the orphan was deleted when the store opened again


def test_retention_drops_whole_segments_and_hides_the_rest_exactly(tmp_path):
    k, n, batches = 30, 10_000, 6
    store = DuckStore(str(tmp_path / "d"))
    try:
        sid = store.create_stream("s", {})
        store.set_schema(sid, Schema(tuple(Column(f"c{i}", "number") for i in range(k))))
        for b in range(batches):
            rid = np.arange(b * n, (b + 1) * n)
            t = pa.table({"_rid": rid, "_ingest": pa.array(np.full(n, 10**15), pa.timestamp("us")),
                          **{f"c{i}": rid * 1.0 + i for i in range(k)}})
            store.commit(sid, t, [], "replay", {"replay": {"offset": b}},
                         {"next_rid": (b + 1) * n, "ingested": (b + 1) * n, "quarantined": 0, "flagged": 0,
                          "late": 0, "window_from": 0, "cumulative": None})
        names = sorted(n_ for n_ in os.listdir(segments.folder(store.data_dir, sid)) if n_ != segments.ANCHOR)
        assert len(names) == batches
        store.prune(sid, batches * n, 25_000, None)
        assert store.count(sid) == 25_000
        assert (store.rows(sid).column("_rid").to_numpy() == np.arange(35_000, 60_000)).all()
        store.prune(sid, batches * n, 25_000, None)         # files left the catalog one prune ago: gone now
        left = sorted(n_ for n_ in os.listdir(segments.folder(store.data_dir, sid)) if n_ != segments.ANCHOR)
        assert left == names[3:]
    finally:
        store.close()
