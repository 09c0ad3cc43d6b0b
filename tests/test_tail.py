"""Tailing with a real writer process: every written row id arrives exactly once.

The writer (tests/tail_writer.py) appends in random chunk sizes that split lines, and rotates.
Checks compare the ids stored in DuckDB with the ids written; waits are on counts with
generous deadlines, never on wall-clock time.
"""
import json
import os
import subprocess
import sys
import time

import duckdb
import numpy as np
import pytest

from engine.errors import UserError
from engine.operators import WindowSpec
from engine.runtime import Engine
from tests.conftest import ROOT

WRITER = os.path.join(ROOT, "tests", "tail_writer.py")
DEADLINE = 120


def writer(folder, rows, *args, wait=True, **kw):
    cmd = [sys.executable, WRITER, str(folder), "--rows", str(rows), "--manifest", str(folder / ".manifest.json"),
           *[str(a) for a in args]]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    proc = subprocess.Popen(cmd)
    if wait:
        assert proc.wait(timeout=DEADLINE) == 0
    return proc


def manifest(folder):
    with open(folder / ".manifest.json") as f:
        return json.load(f)


def ingested(engine, name):
    snap = engine.snapshot(name)
    return snap.counts["ingested"] if snap is not None else 0


def wait_rows(engine, name, n, deadline=DEADLINE):
    """Wait until `n` rows are stored, then a little longer so a duplicate would show."""
    end = time.time() + deadline
    while ingested(engine, name) < n and time.time() < end:
        time.sleep(0.05)
    settle = time.time() + 1.5
    while time.time() < settle:
        time.sleep(0.05)
    return ingested(engine, name)


def stored_ids(data_dir, stream=1):
    con = duckdb.connect(os.path.join(data_dir, "rivulet.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT id FROM rows_{stream} ORDER BY _rid").fetchnumpy()["id"].astype(np.int64)
    finally:
        con.close()


def assert_exactly_once(ids, n, start=0):
    assert len(ids) == len(np.unique(ids)), f"{len(ids) - len(np.unique(ids))} rows doubled"
    missing = np.setdiff1d(np.arange(start, start + n), ids)
    assert len(missing) == 0, f"{len(missing)} rows lost, first {missing[:10]}"
    assert len(ids) == n


def tail(engine, pattern, **kw):
    return engine.add_tail(str(pattern), trusted=True, window=WindowSpec("count", 1000), retention_rows=None, **kw)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_appends_with_partial_lines(tmp_path, fmt):
    logs = tmp_path / "logs"
    logs.mkdir()
    data = str(tmp_path / "data")
    with Engine(data) as engine:
        name = tail(engine, logs / ("*.jsonl" if fmt == "jsonl" else "*.csv"))
        w = writer(logs, 20_000, format=fmt, rate=20_000, seed=1, wait=False)
        assert w.wait(timeout=DEADLINE) == 0
        assert wait_rows(engine, name, 20_000) == 20_000
        src = engine.snapshot(name).source
        assert src["rows"] == 20_000 and src["bytes_behind"] == 0 and src["file_count"] == 1
        assert src["files"][0]["rows"] == 20_000
    ids = stored_ids(data)
    assert_exactly_once(ids, 20_000)
    assert np.array_equal(ids, np.arange(20_000))          # in write order


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_rename_rotation_drains_old_file_first(tmp_path, fmt):
    logs = tmp_path / "logs"
    logs.mkdir()
    data = str(tmp_path / "data")
    fname = "app.jsonl" if fmt == "jsonl" else "app.csv"
    with Engine(data) as engine:
        name = tail(engine, logs / fname)              # the rotated names (app.csv.1, ...) are not matched
        writer(logs, 30_000, "--rotate", "rename", format=fmt, every=3_000, rate=30_000, seed=2, wait=False).wait()
        assert wait_rows(engine, name, 30_000) == 30_000
    ids = stored_ids(data)
    assert_exactly_once(ids, 30_000)
    assert np.array_equal(ids, np.arange(30_000))          # the old file drained before the new one
    assert len(manifest(logs)["generations"]) == 10


def test_rotated_names_the_glob_also_matches_are_not_read_twice(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    data = str(tmp_path / "data")
    with Engine(data) as engine:
        name = tail(engine, logs / "app*.csv")
        writer(logs, 30_000, "--rotate", "rename", every=2_000, rotated="app-{n}.csv", rate=30_000, seed=3)
        assert wait_rows(engine, name, 30_000) == 30_000
        assert engine.snapshot(name).source["file_count"] == 15
    assert_exactly_once(stored_ids(data), 30_000)
