"""kill -9 a running `python -m engine replay` at random moments; nothing lost, nothing doubled."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import duckdb
import numpy as np
import pandas as pd

from tests.conftest import ROOT, run_cli


def test_kill_9_at_random_moments(tmp_path):
    n = 2_000_000
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"id": np.arange(n), "x": rng.normal(size=n).round(3), "y": rng.normal(size=n).round(3)})
    path = tmp_path / "big.csv"
    import pyarrow as pa
    import pyarrow.csv as pcsv
    pcsv.write_csv(pa.Table.from_pandas(df, preserve_index=False), path)
    data = str(tmp_path / "data")
    kills = 0
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "engine", "replay", str(path), "--data-dir", data, "--json",
                                 "--retention-rows", "0"],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(random.Random(attempt).uniform(0.3, 0.9))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 3
    out = run_cli("replay", str(path), "--data-dir", data, "--json", "--window-rows", "5000")
    assert out.returncode == 0, out.stderr
    snap = json.loads(out.stdout)
    assert snap["rows"]["ingested"] == n
    con = duckdb.connect(os.path.join(data, "rivulet.duckdb"), read_only=True)
    ids = con.execute("SELECT id FROM rows_1 ORDER BY _rid").fetchnumpy()["id"]
    con.close()
    assert len(ids) == n and np.array_equal(np.sort(ids), np.arange(n))     # none lost, none doubled
    assert np.array_equal(ids, np.arange(n))                                 # and in file order
    tail = df.tail(5000)
    assert abs(snap["stats"]["x"]["mean"] - tail["x"].mean()) < 1e-9 * max(1, abs(tail["x"].mean()))
    assert abs(snap["cumulative"]["y"]["var"] - df["y"].var()) < 1e-9 * df["y"].var()
