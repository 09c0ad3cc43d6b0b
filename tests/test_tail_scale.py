"""Big and crafted folders: thousands of files, descriptors kept few, a prompt SIGTERM mid-scan,
`**` over symlink loops. Real files in tmp_path, real processes; waits have generous deadlines
and nothing asserts wall-clock time."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from engine.ingest.tail import TailSource
from engine.runtime import Engine
from tests.conftest import ROOT, run_cli
from tests.test_tail import DEADLINE, assert_exactly_once, stored_ids, tail, wait_engine_running, wait_rows


def make_files(folder, first, n, rows=2, name="f{:05d}.csv"):
    """Files `first`..`first+n-1`, file k holding ids k*rows .. k*rows+rows-1."""
    os.makedirs(folder, exist_ok=True)
    for k in range(first, first + n):
        with open(os.path.join(folder, name.format(k)), "w") as f:
            f.write("id,x\n" + "".join(f"{k * rows + i},{i}\n" for i in range(rows)))


def open_fds(pid="self"):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class FdPeak:
    """The most descriptors a process held, sampled every few milliseconds from /proc/<pid>/fd."""

    def __init__(self, pid="self"):
        self.pid, self.peak, self.done = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, open_fds(self.pid))
            time.sleep(0.005)

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.peak


def drain(source, want, deadline=DEADLINE):
    """Batches until `want` rows came and five more calls bring none; the ids read."""
    ids, quiet, end = [], 0, time.time() + deadline
    while time.time() < end:
        b = source.next_batch()
        if b is not None and b.table.num_rows:
            ids.append(b.table.column("id").to_numpy())
            quiet = 0
        elif sum(map(len, ids)) >= want:
            quiet += 1
            if quiet == 5:
                break
        time.sleep(0.01)
    return np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)


def test_three_thousand_files_keep_at_most_256_descriptors_and_every_row_once(tmp_path):
    """Old: a descriptor per file (3,000), 18,380 for a crafted folder. Files closed to make room
    are opened again by identity when they grow, are renamed or replaced."""
    logs, data = tmp_path / "logs", str(tmp_path / "data")
    make_files(logs, 0, 3_000)
    before = open_fds()
    peak = FdPeak()
    with Engine(data) as engine:
        name = tail(engine, logs, retention_rows=None)
        assert wait_rows(engine, name, 6_000) == 6_000
        for k in range(0, 300):                     # append to files long closed
            with open(logs / f"f{k:05d}.csv", "a") as f:
                f.write(f"{10_000 + k},0\n")
        for k in range(300, 400):                   # append, then rename in the folder (same identity)
            with open(logs / f"f{k:05d}.csv", "a") as f:
                f.write(f"{20_000 + k},0\n")
            os.rename(logs / f"f{k:05d}.csv", logs / f"old-{k:05d}.csv")
        for k in range(400, 450):                   # replaced by another file under the same name
            os.unlink(logs / f"f{k:05d}.csv")
            with open(logs / f"f{k:05d}.csv", "w") as f:
                f.write(f"id,x\n{30_000 + k},0\n")
        make_files(logs, 3_000, 500)                # new files: ids 6,000 .. 6,999
        want = 7_000 + 300 + 100 + 50
        assert wait_rows(engine, name, want) == want
    high = peak.stop()
    ids = stored_ids(data)
    expected = np.concatenate([np.arange(7_000), 10_000 + np.arange(300), 20_000 + np.arange(300, 400),
                               30_000 + np.arange(400, 450)])
    assert len(ids) == len(np.unique(ids)) == len(expected)
    assert np.array_equal(np.sort(ids), np.sort(expected))
    assert high - before <= 256 + 64, f"{high - before} descriptors open at the peak"


def test_files_closed_to_make_room_keep_rotation_and_copytruncate_exactly_once(tmp_path):
    logs = tmp_path / "logs"
    make_files(logs, 0, 12, rows=3, name="a{:02d}.csv")
    source = TailSource(str(logs / "*.csv"), max_open=4, rescan=0, rotate_wait=60)
    try:
        got = [drain(source, 36)]
        assert sum(f.fd >= 0 for f in source.files.values()) <= 4
        for k in range(12):
            with open(logs / f"a{k:02d}.csv", "a") as f:
                f.write(f"{100 + k},1\n")
        got.append(drain(source, 12))
        # rename rotation of a closed file: the old generation (one more row) is found by its new name
        with open(logs / "a00.csv", "a") as f:
            f.write("200,1\n")
        os.rename(logs / "a00.csv", logs / "a00.csv.1")
        (logs / "a00.csv").write_text("id,x\n201,1\n202,1\n")
        # copytruncate with the copy beside it
        with open(logs / "a02.csv", "a") as f:
            f.write("210,1\n211,1\n")
        shutil.copyfile(logs / "a02.csv", logs / "a02.csv.1")
        with open(logs / "a02.csv", "r+") as f:
            f.truncate(0)
        (logs / "a02.csv").write_text("id,x\n212,1\n")
        # a file replaced by another under its name
        os.unlink(logs / "a03.csv")
        (logs / "a03.csv").write_text("id,x\n220,1\n221,1\n")
        got.append(drain(source, 8))
        assert sum(f.fd >= 0 for f in source.files.values()) <= 4
    finally:
        source.close()
    ids = np.concatenate(got)
    expected = np.concatenate([np.arange(36), 100 + np.arange(12), [200, 201, 202, 210, 211, 212, 220, 221]])
    assert len(ids) == len(np.unique(ids)), "rows doubled"
    assert np.array_equal(np.sort(ids), np.sort(expected))


def test_sigterm_mid_scan_stops_the_tail_command_promptly_with_offsets_exactly_once(tmp_path):
    """Old: the first scan of 10,000 files took minutes (quadratic) and close waited for it."""
    logs, data = tmp_path / "logs", str(tmp_path / "data")
    make_files(logs, 0, 10_000, rows=1)
    cmd = [sys.executable, "-m", "engine", "tail", str(logs), "--data-dir", data, "--json"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_engine_running(proc, data)
        base = open_fds(proc.pid)
        end = time.time() + DEADLINE
        while open_fds(proc.pid) < base + 30 and time.time() < end and proc.poll() is None:
            time.sleep(0.002)                       # the scan is opening files
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    assert json.loads(out)["rows"]["ingested"] <= 10_000       # the snapshot it reached, printed
    done = run_cli("tail", str(logs), "--data-dir", data, "--json", "--idle-exit", "3", timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    assert_exactly_once(stored_ids(data), 10_000)


def loops(tmp_path):
    """root/logs with files two folders deep, symlink loops (`a/b -> ..`, `a/c -> .`, `d/e -> ../a`)
    and a symlinked folder leading out of the root."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    for folder in (root / "logs" / "a", root / "logs" / "d", outside):
        folder.mkdir(parents=True)
    (root / "logs" / "a" / "x1.csv").write_text("id,x\n1,0\n2,0\n")
    (root / "logs" / "d" / "x2.csv").write_text("id,x\n3,0\n")
    (root / "logs" / "top.csv").write_text("id,x\n4,0\n")
    (outside / "secret.csv").write_text("id,x\n1000,0\n")
    os.symlink("..", root / "logs" / "a" / "b")
    os.symlink(".", root / "logs" / "a" / "c")
    os.symlink("../a", root / "logs" / "d" / "e")
    os.symlink(outside, root / "logs" / "out")
    return root


def test_a_glob_with_symlink_loops_ends_and_reads_each_file_once(tmp_path):
    """Old: glob's `**` followed the loops without end and no file was ever read."""
    root = loops(tmp_path)
    data = str(tmp_path / "data")
    out = run_cli("tail", str(root / "logs" / "**" / "*.csv"), "--data-dir", data, "--json", "--idle-exit", "2",
                  timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(stored_ids(data)) == [1, 2, 3, 4]       # the folder leading out of the pattern's base is not entered


def test_a_glob_under_data_roots_does_not_enter_symlinked_folders_outside_them(tmp_path, monkeypatch):
    root = loops(tmp_path)
    (root / "more").mkdir()
    (root / "more" / "x5.csv").write_text("id,x\n5,0\n")
    os.symlink(root / "more", root / "logs" / "more")    # inside the roots: followed
    source = TailSource(str(root / "logs" / "**" / "*.csv"), roots=[str(root)], rescan=0)
    try:
        ids = drain(source, 5)
    finally:
        source.close()
    assert sorted(ids) == [1, 2, 3, 4, 5]
    assert not any("secret" in f.path for f in source.files.values())
