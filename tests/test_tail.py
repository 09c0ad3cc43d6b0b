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

from engine.stats.operators import WindowSpec
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


def wait_engine_running(proc, data):
    """Wait until `proc` (a Popen) holds the data folder's lock: its engine has started."""
    lock, end = os.path.join(data, "engine.lock"), time.time() + DEADLINE
    while not os.path.exists(lock):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.time() < end, f"no engine started within {DEADLINE}s"
        time.sleep(0.05)


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


def wait_idle(engine, name, quiet=1.5, deadline=DEADLINE):
    """Wait until the source has nothing left to read and no row arrived for `quiet` seconds."""
    end = time.time() + deadline
    seen, since = -1, time.time()
    while time.time() < end:
        n = ingested(engine, name)
        if n != seen or engine.snapshot(name).source["bytes_behind"] > 0:
            seen, since = n, time.time()
        elif time.time() - since >= quiet:
            return n
        time.sleep(0.05)
    return seen


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


def folders(tmp_path):
    """A folder the writer writes to, and the engine's data folder."""
    (tmp_path / "logs").mkdir()
    return tmp_path / "logs", str(tmp_path / "data")


def tail_once(logs, data, rows):
    """Tail logs/app.csv until `rows` are stored, then stop the engine."""
    with Engine(data) as engine:
        assert wait_rows(engine, tail(engine, logs / "app.csv"), rows) == rows


def tail(engine, pattern, **kw):
    return engine.add_tail(str(pattern), trusted=True, window=WindowSpec("count", 1000), **kw)   # retention on


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_appends_with_partial_lines(tmp_path, fmt):
    logs, data = folders(tmp_path)
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
    logs, data = folders(tmp_path)
    fname = "app.jsonl" if fmt == "jsonl" else "app.csv"
    with Engine(data) as engine:
        name = tail(engine, logs / fname)              # the rotated names (app.csv.1, ...) are not matched
        writer(logs, 30_000, "--rotate", "rename", format=fmt, every=3_000, rate=30_000, seed=2, wait=False).wait()
        assert wait_rows(engine, name, 30_000) == 30_000
    ids = stored_ids(data)
    assert_exactly_once(ids, 30_000)
    gens = manifest(logs)["generations"]
    assert len(gens) == 10
    of = generation_of(ids, gens)
    for g in range(len(gens)):                              # each file in its order
        assert np.all(np.diff(ids[of == g]) == 1)


def test_rotated_names_the_glob_also_matches_are_not_read_twice(tmp_path):
    logs, data = folders(tmp_path)
    with Engine(data) as engine:
        name = tail(engine, logs / "app*.csv")
        writer(logs, 30_000, "--rotate", "rename", every=2_000, rotated="app-{n}.csv", rate=30_000, seed=3)
        assert wait_rows(engine, name, 30_000) == 30_000
        assert engine.snapshot(name).source["file_count"] == 15
    assert_exactly_once(stored_ids(data), 30_000)


def test_copytruncate_with_the_copies_beside_it_exactly_once(tmp_path):
    """The copies (app.csv.1, ...) are recognised by their first bytes: the part of the file the
    truncation took before we read it is read from the copy, the rest of the copy is not read again."""
    logs, data = folders(tmp_path)
    with Engine(data) as engine:
        name = tail(engine, logs / "app.csv")
        writer(logs, 30_000, "--rotate", "copytruncate", every=3_000, rate=30_000, seed=4)
        assert wait_rows(engine, name, 30_000) == 30_000
        resets = engine.snapshot(name).source["files"]
    assert_exactly_once(stored_ids(data), 30_000)
    assert sum(f["resets"] for f in resets) >= 1


def generation_of(ids, gens):
    return np.searchsorted(np.array([g["last"] for g in gens]), ids)


def test_copytruncate_copies_elsewhere_lose_at_most_the_unread_end_of_a_generation(tmp_path):
    """The documented bound: with copies the engine cannot see, only rows written after its last read
    of the file and before the truncation are lost, so lost ids are a run at the end of a generation."""
    logs, data = folders(tmp_path)
    with Engine(data) as engine:
        name = tail(engine, logs / "app.csv")
        writer(logs, 30_000, "--rotate", "copytruncate", every=3_000, rotated="archive-{n}.txt", rate=30_000, seed=5)
        wait_idle(engine, name)
    ids = stored_ids(data)
    assert len(ids) == len(np.unique(ids)), "rows doubled"
    gens = manifest(logs)["generations"]
    lost = np.setdiff1d(np.arange(30_000), ids)
    for g, ids_lost in zip(*np.unique(generation_of(lost, gens), return_counts=True)):
        first_lost = lost[generation_of(lost, gens) == g][0]
        assert ids_lost == gens[g]["last"] - first_lost + 1, f"generation {g}: a gap that is not its end"
        assert g < len(gens) - 1               # the live file, never truncated, loses nothing
    assert len(lost) < 30_000 * 0.5


def test_new_files_in_a_folder_are_picked_up(tmp_path):
    logs, data = folders(tmp_path)
    with Engine(data) as engine:
        name = tail(engine, logs)                       # a folder: every file in it
        procs = [writer(logs, 5_000, name=f"part-{i}.csv", start=i * 5_000, rate=20_000, seed=10 + i, wait=False)
                 for i in range(4)]
        assert all(p.wait(timeout=DEADLINE) == 0 for p in procs)
        assert wait_rows(engine, name, 20_000) == 20_000
        assert engine.snapshot(name).source["file_count"] == 4
    assert_exactly_once(stored_ids(data), 20_000)


def test_rotation_and_appends_while_stopped_resume_by_identity(tmp_path):
    logs, data = folders(tmp_path)
    writer(logs, 5_000, seed=20)
    tail_once(logs, data, 5_000)
    # stopped: the writer appends, renames the file away (to a name neither the pattern nor the
    # rotated-name rule matches, so only its inode finds it), and writes more generations
    writer(logs, 3_000, "--rotate", "rename", every=2_000, start=5_000, rotated="old-{n}.log", seed=21)
    with Engine(data) as engine:
        assert wait_rows(engine, "app", 8_000) == 8_000
    assert_exactly_once(stored_ids(data), 8_000)


def test_truncation_while_stopped_resets_once(tmp_path):
    logs, data = folders(tmp_path)
    writer(logs, 3_000, seed=30)
    tail_once(logs, data, 3_000)
    with open(logs / "app.csv", "w") as f:           # truncated and rewritten while stopped
        f.write("id,x\n" + "".join(f"{i},1.0\n" for i in range(3_000, 3_500)))
    for _ in range(3):                               # restarts after the reset read nothing again
        with Engine(data) as engine:
            assert wait_rows(engine, "app", 3_500) == 3_500
    assert_exactly_once(stored_ids(data), 3_500)


def test_inode_reuse_reads_the_new_file_from_the_start(tmp_path):
    logs, data = folders(tmp_path)
    path = logs / "app.csv"
    path.write_text("id,x\n" + "".join(f"{i},1.0\n" for i in range(2_000)))
    ino = os.stat(path).st_ino
    with Engine(data) as engine:
        assert wait_rows(engine, tail(engine, path), 2_000) == 2_000
    os.unlink(path)
    new = "id,x\n" + "".join(f"{i},2.0\n" for i in range(2_000, 2_300))
    reused = False
    for attempt in range(50):                        # the file system hands freed inodes out again
        path.write_text(new)
        if os.stat(path).st_ino == ino:
            reused = True
            break
        os.unlink(path)
        (logs / f"filler-{attempt}").write_text("x")
    if not reused:
        path.write_text(new)
    with Engine(data) as engine:
        assert wait_rows(engine, "app", 2_300) == 2_300
    assert_exactly_once(stored_ids(data), 2_300)
    if not reused:
        pytest.skip("the file system did not reuse the inode; exactly-once was still checked")


def test_polling_fallback_forced_is_exactly_once(tmp_path, monkeypatch):
    monkeypatch.setenv("RIVULET_TAIL_POLLING", "1")
    logs, data = folders(tmp_path)
    with Engine(data) as engine:
        name = tail(engine, logs / "app.csv")
        writer(logs, 20_000, "--rotate", "rename", every=2_000, rate=20_000, seed=40)
        assert wait_rows(engine, name, 20_000) == 20_000
        assert engine.snapshot(name).source["observer"] == "polling"
    assert_exactly_once(stored_ids(data), 20_000)


def test_kill_9_of_the_tail_command_while_a_writer_rotates(tmp_path):
    import random
    import signal

    from tests.conftest import run_cli
    logs, data = folders(tmp_path)
    n = 100_000
    rnd = random.Random(7)
    kills = 0
    # a glob, so the first tail runs before the writer creates the file: a file created and rotated
    # away before any engine ran cannot be found (README), and starting Python on a loaded machine is slow
    pattern = str(logs / "app.cs[v]")
    cmd = [sys.executable, "-m", "engine", "tail", pattern, "--data-dir", data, "--json",
           "--retention-rows", "0", "--idle-exit", "60"]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_engine_running(first, data)
    w = writer(logs, n, "--rotate", "rename", every=7_000, rate=12_000, seed=50, wait=False)
    while w.poll() is None and kills < 8:
        proc = first if kills == 0 else subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                                          stderr=subprocess.PIPE)
        time.sleep(rnd.uniform(0.8, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert w.wait(timeout=DEADLINE) == 0
    assert kills >= 3
    out = run_cli("tail", pattern, "--data-dir", data, "--json", "--idle-exit", "3", timeout=DEADLINE)
    assert out.returncode == 0, out.stderr
    snap = json.loads(out.stdout)
    ids = stored_ids(data)
    assert_exactly_once(ids, n)
    assert snap["rows"]["ingested"] == n
    assert snap["cumulative"]["id"]["count"] == n                 # across every restart
    assert snap["cumulative"]["id"]["mean"] == pytest.approx((n - 1) / 2, rel=1e-12)
    assert snap["cumulative"]["x"]["var"] == pytest.approx(np.var(np.arange(n) % 97 * 0.5, ddof=1), rel=1e-9)


@pytest.mark.parametrize("rotate", ["rename", "copytruncate"])
def test_several_rotations_a_second_at_full_writer_speed(tmp_path, rotate):
    logs, data = folders(tmp_path)
    with Engine(data) as engine:
        name = tail(engine, logs / "app.csv")
        writer(logs, 100_000, "--rotate", rotate, every=4_000, batch=200, seed=60)     # --rate 0: full speed
        assert wait_rows(engine, name, 100_000) == 100_000
    assert_exactly_once(stored_ids(data), 100_000)
    assert len(manifest(logs)["generations"]) == 25


def test_a_thousand_files_in_a_folder(tmp_path):
    logs, data = folders(tmp_path)
    make = ("import sys, os\nfolder, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
            "for f in range(lo, hi):\n"
            "    rows = ''.join(f'{f * 10 + i},{i}\\n' for i in range(10))\n"
            "    with open(os.path.join(folder, f'f{f:04d}.csv'), 'w') as out:\n"
            "        out.write('id,x\\n' + rows)\n")
    subprocess.run([sys.executable, "-c", make, str(logs), "0", "500"], check=True)
    with Engine(data) as engine:
        name = tail(engine, logs)
        subprocess.run([sys.executable, "-c", make, str(logs), "500", "1000"], check=True)   # while running
        assert wait_rows(engine, name, 10_000) == 10_000
        src = engine.snapshot(name).source
        assert src["file_count"] == 1000 and len(src["files"]) == 100
    assert_exactly_once(stored_ids(data), 10_000)
