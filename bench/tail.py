"""Tail throughput and append-to-visible latency, beside replay and pyarrow of the same data, in one run.

    python bench/tail.py [--rows 1000000] [--latency-seconds 10] [--latency-rate 10000]

1. Throughput: a writer process appends the rows of bench/common.py's file as fast as it can
   (random chunk sizes that split lines) to app.csv and renames it away every 100,000 rows; the
   engine follows app.csv with the store on. Rows/s = rows / (writer start .. last row in a published snapshot). Beside it: the
   engine replaying the same rows from one file (stream added .. last row published), and
   pyarrow's read_csv of that file (the parse floor).
2. Latency: tests/tail_writer.py writes 10,000 rows/s, each row carrying its write time; the time of
   every published snapshot and its row count give each row's append-to-visible latency: p50, p99.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow.csv as pcsv

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, make_file, print_rates, print_table, timed  # noqa: E402

sys.path.insert(0, ROOT)
from engine.stats.operators import WindowSpec  # noqa: E402
from engine.runtime import Engine  # noqa: E402

FAST_WRITER = r"""
import os, random, sys
src, folder, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
nl = data.index(b"\n") + 1
header, body = data[:nl], data[nl:]
rng = random.Random(0)
path = os.path.join(folder, "app.csv")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.write(fd, header)
pos, rows, gen = 0, 0, 0
while pos < len(body):
    n = rng.randint(1 << 14, 1 << 20)
    chunk = body[pos:pos + n]
    pos += len(chunk)
    os.write(fd, chunk)
    rows += chunk.count(b"\n")
    if rows >= every and pos < len(body):
        if body[pos - 1] != 10:                      # finish the line, then rotate
            j = body.index(b"\n", pos) + 1
            os.write(fd, body[pos:j])
            pos = j
        gen += 1
        os.rename(path, f"{path}.{gen}")
        os.close(fd)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        os.write(fd, header)
        rows = 0
os.close(fd)
"""


def watch_publish(engine: Engine, name: str) -> list[tuple[float, int]]:
    """Record (time, rows ingested) at every snapshot the stream publishes."""
    stream = engine.streams[name]
    marks: list[tuple[float, int]] = []
    publish = stream.publish

    def recorded() -> None:
        publish()
        marks.append((time.time(), stream.counters.ingested))
    stream.publish = recorded
    return marks


def wait_count(engine: Engine, name: str, n: int, timeout: float = 600) -> None:
    end = time.time() + timeout
    while time.time() < end:
        snap = engine.snapshot(name)
        if snap is not None and snap.counts["ingested"] >= n:
            return
        time.sleep(0.002)
    raise TimeoutError(f"{name}: {engine.snapshot(name).counts['ingested']} of {n} rows")


def tail_throughput(tmp: str, src: str, n: int) -> float:
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    with Engine(os.path.join(tmp, "data-tail")) as engine:
        name = engine.add_tail(os.path.join(logs, "app.csv"), trusted=True, window=WindowSpec("count", 10_000))
        start = time.time()
        writer = subprocess.Popen([sys.executable, "-c", FAST_WRITER, src, logs, "100000"])
        wait_count(engine, name, n)
        writer.wait()
        return n / (time.time() - start)


def replay_throughput(tmp: str, src: str, n: int) -> float:
    with Engine(os.path.join(tmp, "data-replay")) as engine:
        start = time.time()
        name = engine.add_replay(src, window=WindowSpec("count", 10_000))
        wait_count(engine, name, n)
        return n / (time.time() - start)


def latency(tmp: str, seconds: float, rate: float) -> tuple[float, float, float, int]:
    """p50 and p99 of append-to-visible ms over every row, p99 over the rows written after the first second
    (the first rows also wait for the tail to find the file, infer its columns and create the stream), and n."""
    logs = os.path.join(tmp, "lat")
    os.makedirs(logs)
    n = int(seconds * rate)
    data = os.path.join(tmp, "data-lat")
    with Engine(data) as engine:
        name = engine.add_tail(os.path.join(logs, "app.csv"), trusted=True, window=WindowSpec("count", 10_000),
                               retention_rows=n)      # retention on, keeping every row the latencies are read from
        marks = watch_publish(engine, name)
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "tail_writer.py"), logs, "--rows", str(n),
                        "--rate", str(rate), "--ts", "--batch", "10"], check=True)
        wait_count(engine, name, n)
        rows = engine.store.rows(engine.streams[name].id, columns=["id", "ts"])
    ids = rows.column("id").to_numpy().astype(np.int64)
    written = rows.column("ts").to_numpy()
    times = np.array([t for t, _ in marks])
    counts = np.array([k for _, k in marks])
    # rows arrive in id order (one file, no rotation): row i is visible at the first publish counting > i
    visible = times[np.searchsorted(counts, np.arange(len(ids)), side="right")]
    written = written[np.argsort(ids)]
    lat = (visible - written) * 1000
    steady = lat[written >= written.min() + 1]
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), float(np.percentile(steady, 99)), n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--latency-rate", type=float, default=10_000.0)
    args = ap.parse_args()
    n = args.rows
    tmp = tempfile.mkdtemp(prefix="rivulet-bench-tail-")
    src = os.path.join(tmp, "rows.csv")
    make_file(src, n)
    tail_rate = tail_throughput(tmp, src, n)
    replay_rate = replay_throughput(tmp, src, n)
    arrow_rate = n / timed(lambda: pcsv.read_csv(src))
    p50, p99, steady99, lat_rows = latency(tmp, args.latency_seconds, args.latency_rate)
    print_rates(f"Tail throughput, {n:,} rows (bench/common.py's file)", [
        ("Rivulet tail: writer at full speed, rename rotation every 100,000 rows, store on", tail_rate),
        ("Rivulet replay of the same rows (one file, store on)", replay_rate),
        ("pyarrow read_csv of the same rows (parse floor, threads)", arrow_rate)], "tail / case")
    print(f"\nAppend-to-visible latency, writer at {args.latency_rate:,.0f} rows/s ({lat_rows:,} rows)\n")
    print_table(["percentile", "ms"], [["p50", f"{p50:.1f}"], ["p99 (goal < 250)", f"{p99:.1f}"],
                                       ["p99 of the rows written after the first second", f"{steady99:.1f}"]])


if __name__ == "__main__":
    main()
