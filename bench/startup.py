"""Start-up of the command line: `engine replay --help` and a 1,000-row replay, whole processes.

    python bench/startup.py [--repeat 5] [--before PATH]

For each case: import seconds (the sum of `-X importtime`'s top-level imports, from its own runs), and
wall and CPU seconds of the whole process without `-X importtime`. Every case runs in turn `--repeat`
times (so a load spike hits all alike) and the median is shown. `--before` adds another checkout's
engine (e.g. `git worktree add /tmp/before main`). The heavy modules a replay left loaded are listed.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, compiled, load, machine, make_file, print_table  # noqa: E402

HEAVY = ["pandas", "duckdb", "pyarrow.parquet", "sklearn", "scipy", "plotly", "streamlit", "skops", "watchdog"]
_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")


def import_seconds(stderr: str) -> float:
    """Seconds of the top-level imports in `-X importtime` output (nested ones are inside them)."""
    return sum(int(m[1]) for m in map(_LINE.match, stderr.splitlines()) if m) / 1e6


def once(tree: str, args: list[str], importtime: bool) -> tuple[float, float, float]:
    """(wall, CPU, import) seconds of one `python -m engine ...` in `tree`; import is 0 without importtime."""
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "engine", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args[:2])} in {tree} failed: {proc.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, import_seconds(proc.stderr) if importtime else 0.0


def loaded(tree: str, args: list[str]) -> list[str]:
    """The HEAVY modules left in sys.modules after a run of the command line."""
    # at exit: `python -m engine` leaves through os._exit after running the exit handlers
    code = ("import atexit, runpy, sys\nsys.argv = ['engine', *sys.argv[1:]]\n"
            f"atexit.register(lambda: print('heavy:', *(m for m in {HEAVY!r} if m in sys.modules), "
            "file=sys.stderr))\nrunpy.run_module('engine', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=tree, capture_output=True, text=True, check=False)
    return next(line.split()[1:] for line in out.stderr.splitlines()[::-1] if line.startswith("heavy:"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--before", metavar="PATH", help="another checkout to time the same way")
    a = ap.parse_args()
    trees = {"this tree": ROOT, **({"before": os.path.abspath(a.before)} if a.before else {})}
    for tree in trees.values():
        compiled(tree)
    scratch = tempfile.mkdtemp(prefix="rivulet-startup-")
    try:
        small = os.path.join(scratch, "small.csv")
        make_file(small, 1_000)
        cases = {"replay --help": lambda d: ["replay", "--help"],
                 "replay 1,000 rows": lambda d: ["replay", small, "--data-dir", d, "--json"]}
        runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        load_before = load()
        for r in range(a.repeat):
            for case, args in cases.items():
                for label, tree in trees.items():
                    for importtime in (False, True):
                        data = os.path.join(scratch, f"data-{r}-{importtime}")
                        runs.setdefault((case, label, importtime), []).append(once(tree, args(data), importtime))
                        shutil.rmtree(data, ignore_errors=True)
        rows = []
        for case in cases:
            for label, tree in trees.items():
                plain, timed = runs[(case, label, False)], runs[(case, label, True)]
                med = [statistics.median(x[i] for x in plain) for i in (0, 1)]
                imp = statistics.median(x[2] for x in timed)
                heavy = loaded(tree, cases[case](os.path.join(scratch, "data-loaded")))
                shutil.rmtree(os.path.join(scratch, "data-loaded"), ignore_errors=True)
                rows.append([case, label, f"{imp:.3f}", f"{med[0]:.3f}", f"{med[1]:.3f}", " ".join(heavy) or "-"])
        print(f"\nStart-up, median of {a.repeat} alternated runs; {machine()}; "
              f"load {load_before} before, {load()} after\n")
        print_table(["case", "engine", "imports s", "wall s", "CPU s", "heavy modules loaded"], rows)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
