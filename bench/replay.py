"""Replay throughput: Rivulet's whole process beside pyarrow, pandas and River, on one file, in one run.

    python bench/replay.py [--rows 1000000]

Prints a table (case, rows/s, ratio to Rivulet). The file: a timestamp, 10 float
columns (3 decimals, sensor-like) and one categorical column.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import pyarrow.csv as pcsv

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, make_file, print_rates, timed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--river-rows", type=int, default=100_000)
    args = ap.parse_args()
    n = args.rows
    tmp = tempfile.mkdtemp(prefix="rivulet-bench-")
    path = os.path.join(tmp, "bench.csv")
    make_file(path, n)
    cols = [f"x{i}" for i in range(10)]
    results = []

    data = os.path.join(tmp, "data")
    secs = timed(lambda: subprocess.run([sys.executable, "-m", "engine", "replay", path, "--window-rows", "10000",
                                         "--data-dir", data, "--json"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL))
    results.append(("Rivulet: python -m engine replay (whole process, store on)", n / secs))

    results.append(("pyarrow read_csv alone (parse floor, threads)", n / timed(lambda: pcsv.read_csv(path))))

    def pandas_rolling():
        import pandas as pd
        df = pd.read_csv(path)
        r = df[cols].rolling(10_000)
        r.mean(), r.var(), r.corr()
    results.append(("pandas read_csv + rolling(10000) mean/var/corr", n / timed(pandas_rolling)))

    def river():
        from river import stats
        import pandas as pd
        df = pd.read_csv(path, nrows=args.river_rows)
        means = [stats.Mean() for _ in cols]
        vars_ = [stats.Var() for _ in cols]
        covs = [[stats.Cov() for _ in cols] for _ in cols]
        for row in df[cols].itertuples(index=False):
            for i, x in enumerate(row):
                means[i].update(x)
                vars_[i].update(x)
                for j in range(i + 1, len(cols)):
                    covs[i][j].update(x, row[j])
    results.append((f"River Mean/Var/Cov per row ({args.river_rows:,}-row sample)", args.river_rows / timed(river)))

    print_rates(f"{n:,} rows, 12 columns, {os.path.getsize(path) / 1e6:.0f} MB", results, "Rivulet / case")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
