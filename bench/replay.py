"""Replay throughput: Rivulet beside pyarrow, pandas and River, every one a whole process, alternated.

    python bench/replay.py [--rows 1000000] [--repeat 3] [--before PATH]

Each case is a fresh `python` process (interpreter start-up and imports included for all), the cases
run in turn `--repeat` times and the median is reported, with the load average, ratios first. The
file: a timestamp, 10 float columns (3 decimals, sensor-like) and one categorical column.
`--before PATH` times another checkout's engine (e.g. `git worktree add /tmp/before main`) in the
same rotation, for a before/after table from one sitting.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, alternated, compiled, load, machine, make_file, print_table  # noqa: E402

PYARROW = """
import sys, pyarrow.csv as pcsv
pcsv.read_csv(sys.argv[1])
"""
PANDAS = """
import sys, pandas as pd
df = pd.read_csv(sys.argv[1])
r = df[[f"x{i}" for i in range(10)]].rolling(10_000)
r.mean(), r.var(), r.corr()
"""
PANDAS_LAST = """
import sys, pandas as pd
df = pd.read_csv(sys.argv[1])
w = df[[f"x{i}" for i in range(10)]].tail(10_000)
w.agg(["count", "mean", "var", "std", "min", "max"]), w.cov(), w.corr()
"""
RIVER = """
import sys, pandas as pd
from river import stats
cols = [f"x{i}" for i in range(10)]
df = pd.read_csv(sys.argv[1], nrows=int(sys.argv[2]))
means, vars_ = [stats.Mean() for _ in cols], [stats.Var() for _ in cols]
covs = [[stats.Cov() for _ in cols] for _ in cols]
for row in df[cols].itertuples(index=False):
    for i, x in enumerate(row):
        means[i].update(x)
        vars_[i].update(x)
        for j in range(i + 1, len(cols)):
            covs[i][j].update(x, row[j])
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--river-rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", metavar="PATH", help="another checkout whose engine is timed too")
    args = ap.parse_args()
    n = args.rows
    tmp = tempfile.mkdtemp(prefix="rivulet-bench-")
    path = os.path.join(tmp, "bench.csv")
    make_file(path, n)
    py = sys.executable

    def replay(tree):
        return lambda d: ([py, "-m", "engine", "replay", path, "--window-rows", "10000", "--data-dir", d, "--json"],
                          tree)
    cases = {  # name -> (command, rows it covers, what it produces)
        "Rivulet `python -m engine replay`": (replay(ROOT), n, "store on (every row stored with offsets), final "
                                              "snapshot: window 10,000 stats + cov/corr, cumulative, buckets, groups"),
        "pyarrow `read_csv` (parse floor, threads)": (lambda d: [py, "-c", PYARROW, path], n, "an Arrow table"),
        "pandas `read_csv` + `rolling(10000)` mean/var/corr": (lambda d: [py, "-c", PANDAS, path], n,
                                                               "rolling mean/var/corr at every row, not stored"),
        "pandas `read_csv` + stats/cov/corr of the last 10,000 rows": (lambda d: [py, "-c", PANDAS_LAST, path], n,
                                                                       "the final window only, not stored"),
        f"River Mean/Var/Cov per row ({args.river_rows:,}-row sample)": (
            lambda d: [py, "-c", RIVER, path, str(args.river_rows)], args.river_rows, "running stats at every row"),
    }
    compiled(ROOT)
    if args.before:
        compiled(args.before)
        cases["Rivulet before (`--before`)"] = (replay(os.path.abspath(args.before)), n, "as Rivulet, older code")
    try:
        medians, _ = alternated({c: v[0] for c, v in cases.items()}, args.repeat, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rates = {c: cases[c][1] / medians[c] for c in cases}
    ours = rates["Rivulet `python -m engine replay`"]
    print(f"\n{n:,} rows, 12 columns; whole processes, alternated, median of {args.repeat}; {machine()}; "
          f"load average {load()}\n")
    print_table(["case", "Rivulet / case", "rows/s", "median s", "produces"],
                [[c, f"{ours / rates[c]:.2f}", f"{rates[c]:,.0f}", f"{medians[c]:.2f}", cases[c][2]] for c in cases])


if __name__ == "__main__":
    main()
