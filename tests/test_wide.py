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


def test_a_wide_file_is_read_in_batches_of_many_rows(tmp_path):
    """Each batch costs something per column (parse, segment file, matrix, commit), so a full-speed replay
    of a wide file reads blocks of BLOCK_ROWS rows (up to MAX_BLOCK bytes) instead of 8 MiB: 1,000 columns
    x 1,500 rows (12 MB) is one batch, not two of about 1,000 rows (issue 15); a narrow file keeps 8 MiB.
    The statistics over the batches still equal pandas'."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from engine.ingest.replay import FAST_BLOCK, ReplaySource
    from engine.runtime import Engine
    from engine.stats.operators import WindowSpec
    rng = np.random.default_rng(3)
    k, n = 1000, 1500
    X = np.round(rng.normal(size=(n, k)) * 10 + 100, 3)
    path = tmp_path / "wide.csv"
    pcsv.write_csv(pa.table({f"c{i}": X[:, i] for i in range(k)}), path, pcsv.WriteOptions(quoting_style="none"))
    assert path.stat().st_size > FAST_BLOCK
    source = ReplaySource(str(path))
    try:
        assert source.next_batch().table.num_rows == n
    finally:
        source.close()
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("a,b\n" + "".join(f"{i},{i * 0.5}\n" for i in range(100)))
    source = ReplaySource(str(narrow))
    source.close()
    assert source.block == FAST_BLOCK
    with Engine(str(tmp_path / "data")) as engine:
        snap = engine.wait(engine.add_replay(str(path), window=WindowSpec("count", 1000)), timeout=120).to_json()
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(k)])
    some = ["c0", "c1", "c500", "c999"]
    assert snap["rows"]["ingested"] == n
    check_stats({c: snap["stats"][c] for c in some}, frame[some].tail(1000))
    check_stats({c: snap["cumulative"][c] for c in some}, frame[some])
