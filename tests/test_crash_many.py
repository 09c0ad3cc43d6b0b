"""kill -9 twenty times over one run while a writer appends and rotates; nothing lost, nothing doubled.

The kills alternate between `python -m engine tail` (random moments: parse, commit, restore)
and tests/crash_driver.py, an engine process that applies a pipeline with a backfill and
trains models in a loop and says when each starts and ends; a driver kill lands between a
"start" and its end, so during that work. At the end the stored row ids are compared with
those written, the final snapshot's window with pandas over the stored rows, and every model
the registry lists must load (a kill during a save leaves none half-written in the listing).
"""
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time

import duckdb
import numpy as np
import pandas as pd

from engine.models.registry import Registry
from tests.conftest import ROOT, run_cli
from tests.reference import check_matrix, check_stats
from tests.test_tail import DEADLINE, assert_exactly_once, manifest, wait_engine_running, writer

DRIVER = os.path.join(ROOT, "tests", "crash_driver.py")
KILLS = 20
ROWS = 150_000
WINDOW = 1000


class Proc:
    """A child in its own process group (a training worker dies with it), its stdout lines on a queue."""

    def __init__(self, cmd):
        self.p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def until(self, prefix, nth=1, deadline=DEADLINE):
        """Wait for the `nth` line starting with `prefix`."""
        end, count = time.time() + deadline, 0
        while time.time() < end:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            assert line is not None, f"the driver stopped: {self.p.wait()} {self.p.stderr.read()[-2000:]}"
            self.seen.append(line)
            if line.startswith(prefix):
                count += 1
                if count == nth:
                    return
        raise AssertionError(f"no {prefix!r} within {deadline}s; saw {self.seen}")

    def kill(self):
        """SIGKILL the group; True if the process was still running."""
        alive = self.p.poll() is None
        os.killpg(self.p.pid, signal.SIGKILL)
        self.p.wait(timeout=DEADLINE)
        time.sleep(0.2)                      # let the reader thread take what was printed before the kill
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return alive


def stored(data):
    con = duckdb.connect(os.path.join(data, "rivulet.duckdb"), read_only=True)
    try:
        return con.sql("SELECT id, x FROM rows_1 ORDER BY _rid").df()
    finally:
        con.close()


def test_twenty_kills_during_parse_commit_backfill_and_training(tmp_path):
    logs, data = tmp_path / "logs", str(tmp_path / "data")
    logs.mkdir()
    pattern = str(logs / "app.cs[v]")      # a glob: the first tail starts before the writer creates the file
    rng = random.Random(7)
    tail_cmd = [sys.executable, "-m", "engine", "tail", pattern, "--data-dir", data, "--window-rows", str(WINDOW),
                "--idle-exit", "60", "--json"]
    # The writer starts once the first tail runs: a file created and rotated away before the engine
    # ever ran cannot be found (README), and on a loaded CI machine starting Python can take 4 s
    first = Proc(tail_cmd)
    wait_engine_running(first.p, data)
    w = writer(logs, ROWS, "--rotate", "rename", every=10_000, rate=2_500, seed=7, wait=False)
    during = {"tail": 0, "backfill": 0, "train": 0, "save": 0}
    for k in range(KILLS):
        if k % 2 == 0:                                   # the tail: a random moment while it reads and commits
            proc = first if k == 0 else Proc(tail_cmd)
            time.sleep(rng.uniform(0.8, 2.5))
            during["tail"] += proc.kill()
            continue
        proc = Proc([sys.executable, DRIVER, data, pattern])
        if k % 4 == 1:                                   # during a backfill (the first after a whole training)
            proc.until("backfill start", nth=2 if k == 1 else 1)
            proc.kill()
            during["backfill"] += proc.seen[-1] == "backfill start"
        elif k == 7:                                     # while the registry writes the trained model
            proc.until("save start")
            time.sleep(rng.uniform(0.0, 0.05))
            proc.kill()
            during["save"] += proc.seen[-1] == "save start"
        else:                                            # during a training job
            proc.until("train start")
            time.sleep(rng.uniform(0.2, 4.0))
            proc.kill()
            during["train"] += proc.seen[-1] == "train start"
    assert w.wait(timeout=DEADLINE) == 0
    # every kind of kill landed (a backfill can finish before the kill reaches it; most do not)
    assert during["tail"] == KILLS // 2 and during["backfill"] >= 1 and during["train"] >= 1, during

    out = run_cli("tail", pattern, "--data-dir", data, "--window-rows", str(WINDOW), "--idle-exit", "3", "--json",
                  timeout=DEADLINE)
    assert out.returncode == 0, out.stderr
    snap = json.loads(out.stdout)
    rows = stored(data)
    assert_exactly_once(rows["id"].to_numpy(np.int64), ROWS)
    assert manifest(logs)["generations"][-1]["last"] == ROWS - 1
    assert snap["rows"]["ingested"] == ROWS and snap["pipeline"] >= 1
    window = rows.tail(WINDOW).assign(x=lambda d: d["x"].clip(5, 40)).astype(float)
    assert snap["window"]["count"] == WINDOW
    check_stats(snap["stats"], window)
    check_matrix(snap["cov"], window.cov(), what="cov")
    check_matrix(snap["corr"], window.corr(), what="corr")

    reg = Registry(data)
    listed = reg.list()
    assert listed, "the first driver run trained a whole model"
    assert not any(c["id"].startswith(".") for c in listed)      # a half-written .tmp-* folder is not listed
    for card in listed:
        model, _ = reg.load(card["id"])
        assert model.predict(pd.DataFrame({"id": [1.0, 2.0]})).shape == (2,)
