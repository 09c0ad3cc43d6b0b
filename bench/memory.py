"""Memory over a long stream: RSS while 20,000,000 rows pass through a 100,000-row window.

    python bench/memory.py [--rows 20000000] [--file-rows 1000000]

A 1,000,000-row file (100 MB) is replayed in a loop at full speed by an Engine in
a child process (window: last 100,000 rows; store on, retention 1,000,000 rows,
as configured by default), so 20 M rows stream without a 2 GB file. The first pass
stores the file; the later passes are replayed through the window without being
stored again (a source row is stored once). Each child
prints its row count every half second; the parent samples the child's RSS from
/proc at each line. Beside it, what one would write with pandas: read the same
file in 100,000-row chunks, looped, keeping the last 100,000 rows and computing
their mean, var and corr after each chunk.

Prints the start (engine up, no rows), peak and end RSS of each, the growth from
10% of the rows (the store has reached its retention by then) to the end, and
RSS by rows streamed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, machine, make_file, print_table, rss_mb  # noqa: E402

WINDOW = 100_000
TICK = 0.5


def child_engine(path: str, data_dir: str, rows: int) -> None:
    sys.path.insert(0, ROOT)
    from engine.stats.operators import WindowSpec
    from engine.runtime import Engine
    from engine.ingest.replay import Speed
    with Engine(data_dir) as engine:
        print(json.dumps({"rows": 0}), flush=True)
        name = engine.add_replay(path, speed=Speed("max"), loop=True, window=WindowSpec("count", WINDOW))
        count = 0
        while count < rows:
            time.sleep(TICK)
            snap = engine.snapshot(name)
            count = snap.counts["ingested"] + snap.counts["replayed"] if snap else 0
            print(json.dumps({"rows": count}), flush=True)
        engine.pause(name)


def child_pandas(path: str, rows: int) -> None:
    import pandas as pd
    cols = [f"x{i}" for i in range(10)]
    print(json.dumps({"rows": 0}), flush=True)
    count, window, last = 0, None, time.time()
    while count < rows:
        for chunk in pd.read_csv(path, chunksize=WINDOW):
            window = chunk if window is None else pd.concat([window, chunk]).tail(WINDOW)
            w = window[cols]
            w.mean(), w.var(), w.corr()
            count += len(chunk)
            if time.time() - last >= TICK:
                last = time.time()
                print(json.dumps({"rows": count}), flush=True)
            if count >= rows:
                break
    print(json.dumps({"rows": count}), flush=True)


def run(args: list[str]) -> dict:
    """Start a child, sample its RSS at each progress line; (rows, seconds, RSS samples)."""
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    samples, t0, rows = [], None, 0
    for line in proc.stdout:
        rows = json.loads(line)["rows"]
        if t0 is None:
            t0 = time.time()
        try:
            samples.append((rows, time.time() - t0, rss_mb(proc.pid)))
        except FileNotFoundError:
            break
    proc.wait()
    if proc.returncode:
        raise SystemExit(f"child {args[1]} failed with exit code {proc.returncode}")
    return {"rows": rows, "seconds": samples[-1][1], "samples": samples}


def at_rows(samples, target: int) -> float | None:
    """RSS at the first sample with at least `target` rows."""
    return next((rss for rows, _, rss in samples if rows >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--file-rows", type=int, default=1_000_000)
    ap.add_argument("--child", choices=["engine", "pandas"], help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "engine":
        return child_engine(args.file, args.data_dir, args.rows)
    if args.child == "pandas":
        return child_pandas(args.file, args.rows)

    tmp = tempfile.mkdtemp(prefix="rivulet-memory-")
    try:
        path = os.path.join(tmp, "loop.csv")
        make_file(path, args.file_rows)
        results = {
            "Rivulet Engine, looped replay, window 100,000 rows, store on":
                run(["--child", "engine", "--file", path, "--data-dir", os.path.join(tmp, "data"),
                     "--rows", str(args.rows)]),
            "pandas read_csv chunks, last 100,000 rows, mean/var/corr":
                run(["--child", "pandas", "--file", path, "--rows", str(args.rows)]),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n# RSS while {args.rows:,} rows stream through a {WINDOW:,}-row window "
          f"({args.file_rows:,}-row file, looped); {machine()}\n")
    table = []
    for case, r in results.items():
        rss = [s[2] for s in r["samples"]]
        warm = at_rows(r["samples"], args.rows // 10) or rss[0]     # store and buffers filled by then
        table.append([case, f"{r['rows']:,}", f"{r['seconds']:.0f}", f"{r['rows'] / r['seconds']:,.0f}",
                      f"{rss[0]:.0f}", f"{warm:.0f}", f"{max(rss):.0f}", f"{rss[-1]:.0f}", f"{rss[-1] - warm:+.0f}"])
    print_table(["case", "rows", "s", "rows/s", "start MB", "at 10% MB", "peak MB", "end MB", "end - at 10%"],
                table)

    print("\n# RSS (MB) by rows streamed\n")
    steps = [int(args.rows * k / 10) for k in range(1, 11)]
    names = list(results)
    print_table(["rows streamed", *names],
                [[f"{s:,}", *(f"{at_rows(results[n]['samples'], s) or float('nan'):.0f}" for n in names)]
                 for s in steps])


if __name__ == "__main__":
    main()
