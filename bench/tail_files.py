"""Tailing a folder of many small files: time to the first row, to all rows, peak descriptors.

    python bench/tail_files.py [--files 300,3000,30000,100000]

Each case is a fresh folder of N files (a header and two rows each) followed by an Engine in a
child process (store on): seconds from add_tail to the first row in a published snapshot, to all
2N rows, the highest count of /proc/self/fd meanwhile, and the seconds per 1,000 files (flat when
the time grows linearly with the file count).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, machine, print_table  # noqa: E402

CHILD = r"""
import json, os, sys, threading, time
sys.path.insert(0, sys.argv[3])
from engine.runtime import Engine
folder, data = sys.argv[1], sys.argv[2]
n = sum(1 for _ in os.scandir(folder))
peak, done = [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], len(os.listdir("/proc/self/fd")))
        time.sleep(0.01)
threading.Thread(target=sample, daemon=True).start()
with Engine(data) as engine:
    t0 = time.perf_counter()
    name = engine.add_tail(folder, trusted=True, retention_rows=None)
    first = None
    while True:
        snap = engine.snapshot(name)
        rows = snap.counts["ingested"] if snap is not None else 0
        if rows and first is None:
            first = time.perf_counter() - t0
        if rows >= 2 * n:
            break
        time.sleep(0.01)
    every = time.perf_counter() - t0
done.set()
print(json.dumps({"first": first, "all": every, "fds": peak[0]}))
"""


def make_folder(folder: str, n: int) -> None:
    os.makedirs(folder)
    for k in range(n):
        with open(os.path.join(folder, f"f{k:06d}.csv"), "w") as f:
            f.write(f"id,x\n{2 * k},0.5\n{2 * k + 1},1.5\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", default="300,3000,30000,100000")
    args = p.parse_args()
    rows = []
    for n in [int(x) for x in args.files.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "logs")
            make_folder(folder, n)
            out = subprocess.run([sys.executable, "-c", CHILD, folder, os.path.join(tmp, "data"), ROOT],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append([f"{n:,} files", f"{r['first']:.2f}", f"{r['all']:.1f}", f"{1000 * r['all'] / n:.2f}",
                         r["fds"]])
            print(rows[-1], file=sys.stderr)
    print(f"\nTail of a folder of many files; {machine()}\n")
    print_table(["case", "first row s", "all rows s", "s per 1,000 files", "peak fds"], rows)


if __name__ == "__main__":
    main()
