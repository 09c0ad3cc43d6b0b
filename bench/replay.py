"""Replay throughput: Rivulet's whole process beside pyarrow, pandas and River, on one file, in one run.

    python bench/replay.py [--rows 1000000]

Prints a table (case, rows/s, ratio to Rivulet). The file: a timestamp, 10 float
columns (3 decimals, sensor-like) and one categorical column.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_file(path: str, n: int) -> None:
    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(n, 10)) * np.arange(1, 11) + np.array([20, 50, 1013, 0.5, 230, 60, 5, 100, 15, 1]), 3)
    ts = np.datetime64("2024-01-01T00:00:00", "ms") + np.arange(n).astype("timedelta64[ms]") * 100
    t = pa.table({"ts": pa.array(ts), **{f"x{i}": X[:, i] for i in range(10)},
                  "site": np.array(["north", "south", "east", "west"])[rng.integers(0, 4, n)]})
    pcsv.write_csv(t, path, pcsv.WriteOptions(quoting_style="none"))


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def print_table(title: str, results: list[tuple[str, float]], ratio: str) -> None:
    """One markdown table: case, rows/s, the first case's rate over each case's."""
    ours, width = results[0][1], max(len(case) for case, _ in results)
    print(f"\n{title}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}\n")
    print(f"| {'case':<{width}} | {'rows/s':>12} | {ratio:>{len(ratio)}} |")
    print(f"|{'-' * (width + 2)}|{'-' * 14}|{'-' * (len(ratio) + 2)}|")
    for case, rate in results:
        print(f"| {case:<{width}} | {rate:>12,.0f} | {ours / rate:>{len(ratio)}.2f} |")


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

    print_table(f"{n:,} rows, 12 columns, {os.path.getsize(path) / 1e6:.0f} MB", results, "Rivulet / case")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
