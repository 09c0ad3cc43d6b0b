"""A stream with thousands of numeric columns: memory grows with the columns, not with their square.

Covariance and correlation cover the first PAIR_LIMIT numeric columns; count, mean, var, std, min
and max cover all of them. Before, 2,000 columns x 50 rows took 2.1 GB and 5,000 ended in DuckDB's
"Out of Memory" (the k x k moments, stored with every batch).
"""
import json
import os
import sys

import numpy as np
import pandas as pd

from engine.stats.moments import PAIR_LIMIT
from tests.conftest import ROOT
from tests.reference import check_matrix, check_stats

RSS_BOUND_MB = 1500       # measured 870 MB (DuckDB keeps buffers per column: linear in the columns)

# runs the command and reports its peak RSS: the wrapper's only child is the engine
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "sys.stderr.write(f'\\npeak_rss_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n'); "
        "sys.exit(r.returncode)")


def test_5000_numeric_columns_replay_within_a_memory_bound(tmp_path):
    import subprocess
    rng = np.random.default_rng(11)
    k, n = 5000, 50
    frame = pd.DataFrame(np.round(rng.normal(size=(n, k)), 4), columns=[f"c{i}" for i in range(k)])
    path = tmp_path / "wide.csv"
    frame.to_csv(path, index=False)
    out = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "engine", "replay", str(path),
                          "--data-dir", str(tmp_path / "data"), "--json"],
                         cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr[-2000:]
    peak_mb = int(out.stderr.rsplit("peak_rss_kb=", 1)[1]) / 1024
    assert peak_mb < RSS_BOUND_MB, f"peak RSS {peak_mb:.0f} MB"
    snap = json.loads(out.stdout)
    assert snap["rows"]["ingested"] == n and len(snap["stats"]) == k
    assert snap["cov_columns"] == PAIR_LIMIT and len(snap["corr"]) == PAIR_LIMIT
    some = [f"c{i}" for i in (0, 1, PAIR_LIMIT - 1, PAIR_LIMIT, k - 1)]
    check_stats({c: snap["stats"][c] for c in some}, frame[some])
    check_stats({c: snap["cumulative"][c] for c in some}, frame[some])
    first = some[:3]
    check_matrix(snap["cov"], frame[first].cov(), what="cov")
    check_matrix(snap["corr"], frame[first].corr(), what="corr")
