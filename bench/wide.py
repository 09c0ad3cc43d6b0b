"""Wide streams: rows/s and peak memory by column count, Rivulet beside pandas and the parse floor.

    python bench/wide.py [--rows 200000] [--columns 10,50,200,500,1000] [--repeat 3] [--before PATH]

For each column count one file of float columns (3 decimals) is written; then, as whole
processes alternated `--repeat` times (median reported): `python -m engine replay` (store on,
window 10,000 rows, cov/corr), pandas `read_csv` + `cov()` of the last 10,000 rows, and pyarrow
`read_csv` (the parse floor). Peak RSS is the process's high-water mark (ru_maxrss).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, alternated, compiled, load, machine, print_table  # noqa: E402

PANDAS = """
import sys, pandas as pd
df = pd.read_csv(sys.argv[1])
df.tail(10000).cov()
"""
PYARROW = """
import sys, pyarrow.csv as pcsv
pcsv.read_csv(sys.argv[1])
"""


def make_wide(path: str, rows: int, columns: int) -> None:
    rng = np.random.default_rng(columns)
    chunk = max(1, 2_000_000 // columns)           # bounded memory while writing
    with pa.OSFile(path, "wb") as out:
        writer = None
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            X = np.round(rng.normal(size=(n, columns)) * 10 + 100, 3)
            t = pa.table({f"c{i}": X[:, i] for i in range(columns)})
            if writer is None:
                writer = pcsv.CSVWriter(out, t.schema, write_options=pcsv.WriteOptions(quoting_style="none"))
            writer.write_table(t)
        writer.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--columns", default="10,50,200,500,1000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", metavar="PATH", help="another checkout whose engine is timed too (before/after)")
    args = ap.parse_args()
    for tree in [ROOT] + ([args.before] if args.before else []):
        compiled(tree)
    tmp = tempfile.mkdtemp(prefix="rivulet-wide-")
    rows_out = []
    try:
        for k in (int(c) for c in args.columns.split(",")):
            path = os.path.join(tmp, f"w{k}.csv")
            make_wide(path, args.rows, k)
            def replay(tree):
                return lambda d: ([sys.executable, "-m", "engine", "replay", path, "--window-rows", "10000",
                                   "--data-dir", d, "--json"], tree)
            cases = {
                "rivulet": replay(ROOT),
                "pandas": lambda d: [sys.executable, "-c", PANDAS, path],
                "pyarrow": lambda d: [sys.executable, "-c", PYARROW, path],
            }
            if args.before:
                cases["before"] = replay(os.path.abspath(args.before))
            medians, peaks = alternated(cases, args.repeat, tmp)
            rate = {c: args.rows / t for c, t in medians.items()}
            rows_out.append([f"{k:,}", f"{rate['rivulet']:,.0f}", f"{peaks['rivulet']:,.0f}",
                             f"{rate['pandas']:,.0f}", f"{rate['pyarrow']:,.0f}",
                             f"{rate['rivulet'] / rate['pandas']:.2f}", f"{rate['rivulet'] / rate['pyarrow']:.2f}"]
                            + ([f"{rate['before']:,.0f}", f"{peaks['before']:,.0f}"] if args.before else []))
            os.remove(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nWide streams, {args.rows:,} rows, whole processes, median of {args.repeat}; {machine()}; "
          f"load average {load()}\n")
    print_table(["numeric columns", "Rivulet rows/s", "Rivulet peak MB", "pandas read_csv + cov rows/s",
                 "pyarrow parse rows/s", "Rivulet / pandas", "Rivulet / pyarrow"]
                + (["before rows/s", "before peak MB"] if args.before else []), rows_out)


if __name__ == "__main__":
    main()
