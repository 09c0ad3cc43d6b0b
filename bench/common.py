"""What the benchmarks share: the sensor-like test file, a process's memory, and the printed table."""
from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_file(path: str, n: int, start: float | None = None, rate: float | None = None) -> None:
    """n rows: `ts`, 10 float columns (3 decimals) and a categorical `site`.

    Without `start`, ts is a timestamp every 100 ms from 2024-01-01. With `start` and
    `rate`, ts is epoch seconds (a number) spaced 1/rate apart from `start`, so a real-time
    replay releases exactly `rate` rows a second.
    """
    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(n, 10)) * np.arange(1, 11) + np.array([20, 50, 1013, 0.5, 230, 60, 5, 100, 15, 1]), 3)
    if start is None:
        ts = pa.array(np.datetime64("2024-01-01T00:00:00", "ms") + np.arange(n).astype("timedelta64[ms]") * 100)
    else:
        ts = pa.array(np.round(start + np.arange(n) / rate, 6))
    t = pa.table({"ts": ts, **{f"x{i}": X[:, i] for i in range(10)},
                  "site": np.array(["north", "south", "east", "west"])[rng.integers(0, 4, n)]})
    pcsv.write_csv(t, path, pcsv.WriteOptions(quoting_style="none"))


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}"


def load() -> str:
    """The load average (1, 5, 15 min): on a shared machine, read the ratios with it."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def run(cmd: list[str], cwd: str = ROOT) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process (its own rusage, from wait4)."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd[:4])} failed: {err.read().decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024


def compiled(tree: str) -> None:
    """Byte-compile a checkout's engine first: installed packages (pandas, pyarrow) come compiled, and
    with PYTHONDONTWRITEBYTECODE set every run would otherwise compile the engine again."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(tree, "engine")], check=True)


def alternated(cases: dict, repeat: int, scratch: str) -> tuple[dict[str, float], dict[str, float]]:
    """Run each case's command (a function of a fresh data folder giving the command, or the command
    and the folder to run it in) as a whole process, the cases in turn `repeat` times, so a load
    spike hits every case alike: median wall seconds and peak MB."""
    times: dict[str, list[float]] = {c: [] for c in cases}
    peaks = dict.fromkeys(cases, 0.0)
    for r in range(repeat):
        for case, cmd in cases.items():
            data = os.path.join(scratch, f"data-{r}")
            made = cmd(data)
            wall, peak = run(*made) if isinstance(made, tuple) else run(made)
            shutil.rmtree(data, ignore_errors=True)
            times[case].append(wall)
            peaks[case] = max(peaks[case], peak)
    return {c: statistics.median(t) for c, t in times.items()}, peaks


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def print_rates(title: str, results: list[tuple[str, float]], ratio: str) -> None:
    """A titled table of (case, rows/s) with the first case's rate over each case's."""
    ours = results[0][1]
    print(f"\n{title}; {machine()}\n")
    print_table(["case", "rows/s", ratio], [[case, f"{rate:,.0f}", f"{ours / rate:.2f}"] for case, rate in results])


def print_table(headers: list[str], rows: list[list], first_width: int = 0) -> None:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    widths[0] = max(widths[0], first_width)
    print("| " + " | ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))) + " |")
    print("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|")
    for r in cells:
        print("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |")
