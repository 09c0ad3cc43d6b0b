"""Tailing edge cases: confinement to the data roots, over-long lines, a file deleted while read,
an observer that dies or a folder that vanishes, and the command line's errors."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from engine.errors import UserError
from engine.runtime import Engine
from engine.ingest import tail as tail_module
from engine.ingest import watch as watch_module
from engine.ingest.tail import TailSource
from engine.stats.operators import WindowSpec
from tests.conftest import run_cli, wait_for
from tests.test_tail import DEADLINE, assert_exactly_once, folders, stored_ids, tail, wait_rows


def rows_csv(start, n, header=True):
    return ("id,x\n" if header else "") + "".join(f"{i},{i * 0.5}\n" for i in range(start, start + n))


def drain(source, until, deadline=DEADLINE):
    """next_batch until `until(tables, bad)` holds; returns (ids, bad)."""
    tables, bad = [], []
    end = time.time() + deadline
    while time.time() < end:
        b = source.next_batch()
        if b is not None:
            tables.append(b.table)
            bad += b.bad
        ids = np.concatenate([np.zeros(0)] + [t.column("id").to_numpy() for t in tables if t.num_rows])
        if until(ids, bad):
            return ids.astype(np.int64), bad
        time.sleep(0.01)
    raise AssertionError(f"gave up: {len(ids)} rows, {len(bad)} bad")


# --- confinement ------------------------------------------------------------------------------

@pytest.fixture
def roots(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "logs").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(rows_csv(1_000, 5))
    monkeypatch.setenv("RIVULET_DATA_ROOTS", str(root))
    return root, outside


def test_paths_outside_the_roots_are_refused(tmp_path, roots):
    root, outside = roots
    os.symlink(outside, root / "link")
    with Engine(str(tmp_path / "data")) as engine:
        with pytest.raises(UserError, match="climbs out of the data roots"):
            engine.add_tail("logs/../../outside/*.csv")
        with pytest.raises(UserError, match="outside the data roots"):
            engine.add_tail(str(outside / "secret.csv"))
        with pytest.raises(UserError, match="through a symlink"):
            engine.add_tail("link/*.csv")
        assert engine.names() == []


def test_a_symlink_planted_in_a_followed_folder_is_not_read(tmp_path, roots):
    root, outside = roots
    (root / "logs" / "good.csv").write_text(rows_csv(0, 10))
    os.symlink(outside / "secret.csv", root / "logs" / "evil.csv")
    data = str(tmp_path / "data")
    with Engine(data) as engine:
        name = engine.add_tail("logs/*.csv")             # relative: inside the first root
        assert wait_rows(engine, name, 10) == 10
        assert "outside the data roots" in engine.snapshot(name).source["last_error"]
    assert_exactly_once(stored_ids(data), 10)


FLIPPER = """
import os, sys, time
race, inside, outside, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
end = time.time() + seconds
while time.time() < end:
    for tmp, make in ((race + ".l", lambda t: os.symlink(outside, t)), (race + ".h", lambda t: os.link(inside, t))):
        make(tmp)
        os.rename(tmp, race)
"""


def test_a_file_swapped_with_a_symlink_out_of_the_roots_is_never_read(tmp_path, roots):
    """race.csv flips between a regular file (a hard link to inside.csv) and a symlink to a file outside
    the roots while a confined tail scans it on every call: not one outside row may be read."""
    root, outside = roots
    (root / "logs" / "inside.csv").write_text(rows_csv(0, 10))
    race = root / "logs" / "race.csv"
    os.link(root / "logs" / "inside.csv", race)
    flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(race), str(root / "logs" / "inside.csv"),
                                str(outside / "secret.csv"), "10"])
    source = TailSource(str(race), roots=[str(root)], rescan=0)
    ids = []
    try:
        while flipper.poll() is None:
            b = source.next_batch()
            if b is not None and b.table.num_rows:
                ids += b.table.column("id").to_pylist()
    finally:
        flipper.kill()
        flipper.wait()
        source.close()
    assert not [i for i in ids if i >= 1_000], "rows of the file outside the roots were read"
    assert sorted(ids) == list(range(10))


# --- bad lines and vanishing files ------------------------------------------------------------

def test_an_over_long_line_is_skipped_counted_and_the_file_keeps_being_read(tmp_path):
    path = tmp_path / "app.csv"
    path.write_text(rows_csv(0, 100))
    source = TailSource(str(path), max_line=1_000)
    try:
        drain(source, lambda ids, bad: len(ids) == 100)
        with open(path, "a") as f:                       # an over-long line, written in two parts
            f.write("100," + "9" * 3_000)
            f.flush()
            drain(source, lambda ids, bad: len(bad) == 1)
            f.write("9" * 3_000 + "\n" + rows_csv(101, 100, header=False))
        ids, bad = drain(source, lambda ids, bad: len(ids) == 100)
        assert np.array_equal(ids, np.arange(101, 201))
        assert source.status()["files"][0]["skipped_lines"] == 1
    finally:
        source.close()


def test_a_file_deleted_while_being_read_is_read_to_its_end_then_forgotten(tmp_path, monkeypatch):
    monkeypatch.setattr(tail_module, "BLOCK", 1 << 14)  # many batches for one file
    path = tmp_path / "app.csv"
    path.write_text(rows_csv(0, 20_000))
    source = TailSource(str(path), rotate_wait=0.2, max_line=1_000)
    try:
        first = source.next_batch()
        assert 0 < first.table.num_rows < 20_000
        key = next(iter(source.files))
        os.unlink(path)
        ids, _ = drain(source, lambda ids, bad: len(ids) == 20_000 - first.table.num_rows)
        assert_exactly_once(np.concatenate([first.table.column("id").to_numpy(), ids]), 20_000)
        end = time.time() + DEADLINE
        while source.files and time.time() < end:
            b = source.next_batch()
            if b is not None and b.offsets.get(key, 1) is None:
                break
            time.sleep(0.05)
        assert source.files == {}                           # closed, and its stored offset deleted
    finally:
        source.close()


def test_a_dead_observer_and_a_vanished_folder_are_recovered(tmp_path, monkeypatch):
    logs, data = folders(tmp_path)
    (logs / "a.csv").write_text(rows_csv(0, 100))
    failed = []

    def broken(self, event):            # the first event handler call raises: the observer thread dies
        if not failed:
            failed.append(event)
            raise RuntimeError("handler failed")
    monkeypatch.setattr(watch_module._Hints, "on_any_event", broken)
    with Engine(data) as engine:
        name = tail(engine, logs / "*.csv")
        assert wait_rows(engine, name, 100) == 100
        with open(logs / "a.csv", "a") as f:
            f.write(rows_csv(100, 100, header=False))
        assert wait_rows(engine, name, 200) == 200
        end = time.time() + DEADLINE
        while engine.snapshot(name).source["observer_restarts"] < 1 and time.time() < end:
            time.sleep(0.05)
        assert failed and engine.snapshot(name).source["observer_restarts"] >= 1
        for p in logs.iterdir():
            p.unlink()
        logs.rmdir()
        time.sleep(0.5)
        logs.mkdir()
        (logs / "b.csv").write_text(rows_csv(200, 100))
        assert wait_rows(engine, name, 300) == 300
        assert engine.snapshot(name).source["observer"] == "inotify"
    assert_exactly_once(stored_ids(data), 300)


# --- the command line ----------------------------------------------------------------------------

def test_cli_tail_user_errors_exit_2_with_one_line(tmp_path):
    out = run_cli("tail", str(tmp_path / "missing.csv"), "--data-dir", str(tmp_path / "d"), "--idle-exit", "1")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "no such file" in out.stderr
    out = run_cli("tail", str(tmp_path), "--format", "xml")
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_cli_tail_jsonl_folder_prints_the_snapshot(tmp_path):
    import json
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_text("".join(f'{{"id": {i}, "x": {i * 0.5}}}\n' for i in range(50))
                                  + '{"id": 50, "x": \n' + '{"id": 51, "x": 25.5}\n' + '{"id": 52, "x"')
    out = run_cli("tail", str(logs), "--data-dir", str(tmp_path / "d"), "--idle-exit", "1", "--json")
    assert out.returncode == 0, out.stderr
    snap = json.loads(out.stdout)
    assert snap["rows"] == {"ingested": 51, "quarantined": 1, "late": 0, "flagged": 0, "replayed": 0}   # the partial line waits
    assert snap["stats"]["x"]["mean"] == pytest.approx(np.mean(np.r_[np.arange(50) * 0.5, 25.5]), rel=1e-12)
    assert snap["source"]["format"] == "jsonl"


def test_exhausted_inotify_falls_back_to_polling_with_a_warning(tmp_path, monkeypatch):
    import errno

    class Exhausted:
        def schedule(self, *a, **kw):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

        def stop(self):
            pass
    monkeypatch.setattr(watch_module, "Observer", Exhausted)
    logs, data = folders(tmp_path)
    with Engine(data) as engine:
        name = tail(engine, logs / "*.csv")
        (logs / "a.csv").write_text(rows_csv(0, 500))
        assert wait_rows(engine, name, 500) == 500
        src = engine.snapshot(name).source
        assert src["observer"] == "polling" and "inotify watch limit reached" in src["warning"]
    assert_exactly_once(stored_ids(data), 500)


def test_cli_tail_accepts_a_pipeline_file_like_replay(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.csv").write_text(rows_csv(0, 20))
    spec = tmp_path / "p.json"
    spec.write_text('{"version": 1, "steps": []}')
    out = run_cli("tail", str(logs / "*.csv"), "--pipeline", str(spec), "--data-dir", str(tmp_path / "d"),
                  "--idle-exit", "1", "--json")
    assert out.returncode == 0, out.stderr
    out = run_cli("tail", str(logs / "*.csv"), "--pipeline", str(tmp_path / "missing.json"), "--idle-exit", "1")
    assert out.returncode == 2 and "cannot read the pipeline" in out.stderr


def test_a_csv_file_with_other_columns_is_not_read_and_says_why(tmp_path):
    logs, data = folders(tmp_path)
    (logs / "a.csv").write_text(rows_csv(0, 100))
    with Engine(data) as engine:
        name = tail(engine, logs)
        assert wait_rows(engine, name, 100) == 100
        (logs / "b.csv").write_text("id,y,z\n1,2,3\n")
        (logs / "c.csv").write_text(rows_csv(100, 50))
        assert wait_rows(engine, name, 150) == 150
        src = engine.snapshot(name).source
        assert "differs from the stream's columns" in src["last_error"] and src["file_count"] == 3
    assert_exactly_once(stored_ids(data), 150)


def test_status_counts_rows_bytes_and_what_is_behind(tmp_path):
    path = tmp_path / "app.csv"
    path.write_text(rows_csv(0, 10) + "10,5")          # a last line still being written
    source = TailSource(str(path))
    try:
        drain(source, lambda ids, bad: len(ids) == 10)
        time.sleep(0.05)
        st = source.status()
        f = st["files"][0]
        assert (st["rows"], f["rows"], st["file_count"]) == (10, 10, 1)
        assert f["bytes"] == len(rows_csv(0, 10)) - len("id,x\n") and f["offset"] == len(rows_csv(0, 10))
        assert st["bytes_behind"] == f["bytes_behind"] == len("10,5") and st["seconds_behind"] > 0
        assert st["last_error"] is None and st["observer"] in ("inotify", "polling")
        with open(path, "a") as out:
            out.write("\n")
        drain(source, lambda ids, bad: len(ids) == 1)
        assert source.status()["bytes_behind"] == 0 and source.status()["seconds_behind"] == 0
    finally:
        source.close()


def test_a_wall_clock_set_back_does_not_stall_scans(tmp_path, monkeypatch):
    """Scans are paced on the monotonic clock: with the wall clock set back an hour (injected into
    the tail module), a file created next is still found by the next rescan. Before, no scan ran
    until the wall clock had caught up with the last one."""
    import types
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.csv").write_text(rows_csv(0, 10))
    back = [0.0]
    clock = types.SimpleNamespace(time=lambda: time.time() - back[0], monotonic=time.monotonic, sleep=time.sleep)
    monkeypatch.setattr(tail_module, "time", clock)
    source = TailSource(str(tmp_path / "logs" / "*.csv"), rescan=0.2)
    try:
        drain(source, lambda ids, bad: len(ids) == 10)
        back[0] = 3600.0
        (tmp_path / "logs" / "b.csv").write_text(rows_csv(10, 5))
        ids, _ = drain(source, lambda ids, bad: len(ids) == 5, deadline=15)
        assert sorted(ids.tolist()) == list(range(10, 15))
    finally:
        source.close()


@pytest.mark.parametrize("start", ["", "id,x\n"], ids=["empty", "header-only"])
def test_a_file_empty_or_header_only_when_first_seen_is_followed_with_retention_on(tmp_path, start):
    """Retention runs every few seconds from the first commit; before, on a stream whose rows table
    did not exist yet it failed ("Table with name rows_1 does not exist!") and stopped the stream."""
    logs, data = folders(tmp_path)
    path = logs / "app.csv"
    path.write_text(start)
    with Engine(data) as engine:
        name = engine.add_tail(str(path), trusted=True, window=WindowSpec("count", 1000), retention_rows=1000)
        stream = engine.streams[name]
        assert wait_for(lambda: stream.done_count > 0, timeout=DEADLINE)     # the first commit, then retention
        time.sleep(0.5)
        assert stream.error is None
        with open(path, "a") as out:
            out.write(rows_csv(0, 1500, header=not start))
        assert wait_rows(engine, name, 1500) == 1500
        assert stream.error is None
        engine.store.prune(engine.streams[name].id, 1500, 1000, None)
    ids = stored_ids(data)
    assert len(ids) == 1000 and ids.min() == 500           # retention kept the newest 1,000
