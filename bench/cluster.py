"""Embedded replay vs cluster replay (1 and 2 partitions) of the same file, and the snapshot merge.

    python bench/cluster.py [--rows 1000000]

Rows/s is the `python -m engine replay` command's wall time (process start to the printed snapshot;
for the cluster that includes connecting to the running servers, not starting them). CPU seconds per
million rows add every process that worked: the command, the Dask worker processes and
redis-server (the figure that carries to a bigger cluster). The merge times `RedisSnapshots.latest`'s
work (unpack + merge) over 8, 64 and 256 copies of a real partition's part, then of one bucket width
(the 10 s series, then bucket x group) that a chart asks for; wall p50 and, in brackets, CPU p50 (on a
shared machine the CPU is the steadier figure). Load averages are printed: read the ratios.
Append-to-visible: a paced cluster replay (`--latency-rate` rows/s), polled every 2 ms: from a log
entry's first sight in Redis to the merged snapshot counting its rows (p50/p99 over rows).
"""
from __future__ import annotations

import argparse
import atexit
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import ROOT, machine, make_file, print_table  # noqa: E402


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(pids) -> float:
    import psutil
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def run(cmd, env=None) -> tuple[float, float]:
    cpu, t0 = child_cpu(), time.time()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr)
    return time.time() - t0, child_cpu() - cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--latency-rate", type=int, default=20_000)
    ap.add_argument("--latency-seconds", type=int, default=10)
    args = ap.parse_args()
    from distributed import Client

    from engine.cluster.local import LocalServers
    from engine.cluster.redis_snapshots import merge_parts, snapshot_key, unpack
    n = args.rows
    load_before = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="rivulet-bench-cluster-")
    atexit.register(shutil.rmtree, work, True)           # about 600 MB of files and history a run
    path = os.path.join(work, "bench.csv")
    make_file(path, n)
    tiny = os.path.join(work, "tiny.csv")
    make_file(tiny, 100)
    rows = []
    wall, cpu = run([sys.executable, "-m", "engine", "replay", path, "--data-dir", os.path.join(work, "e"), "--json"])
    _, fixed = run([sys.executable, "-m", "engine", "replay", tiny, "--data-dir", os.path.join(work, "et"), "--json"])
    rows.append(["embedded `replay`", n / wall, cpu, fixed])
    with LocalServers(os.path.join(work, "servers")) as servers, Client(servers.scheduler) as client:
        import redis
        r = redis.Redis.from_url(servers.redis_url)
        workers = list(client.run(os.getpid).values())
        for parts in (1, 2):
            r.flushdb()
            env = {**os.environ, "RIVULET_DASK": servers.scheduler,
                   "RIVULET_HISTORY": os.path.join(work, f"history{parts}")}
            # the 100-row file first: a worker's first task imports the engine, a start-up cost
            before = proc_cpu(workers + [servers.redis.pid])
            _, fixed = run([sys.executable, "-m", "engine", "replay", tiny, "--cluster", servers.redis_url,
                            "--partitions", str(parts), "--data-dir", os.path.join(work, f"t{parts}"), "--json"], env)
            fixed += proc_cpu(workers + [servers.redis.pid]) - before
            before = proc_cpu(workers + [servers.redis.pid])
            wall, cpu = run([sys.executable, "-m", "engine", "replay", path, "--cluster", servers.redis_url,
                             "--partitions", str(parts), "--data-dir", os.path.join(work, f"c{parts}"), "--json"],
                            env)
            cpu += proc_cpu(workers + [servers.redis.pid]) - before
            rows.append([f"cluster, {parts} partition{'s' if parts > 1 else ''}", n / wall, cpu, fixed])
        fields = r.hgetall(snapshot_key("bench"))
        r.flushdb()
        latency = append_to_visible(r, servers, work, args.latency_rate, args.latency_seconds)
    base, steady = rows[0][2] / n * 1e6, (rows[0][2] - rows[0][3]) / n * 1e6
    print(f"\n{machine()}, {n:,} rows; load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} now\n")
    print_table(["case", "rows/s", "CPU s / M rows", "CPU vs embedded", "start-up CPU s (100 rows)",
                 "CPU s / M rows after start-up", "vs embedded"],
                [[c, f"{rate:,.0f}", f"{cpu / n * 1e6:.2f}", f"{cpu / n * 1e6 / base:.2f}", f"{fixed:.2f}",
                  f"{(cpu - fixed) / n * 1e6:.2f}", f"{(cpu - fixed) / n * 1e6 / steady:.2f}"]
                 for c, rate, cpu, fixed in rows])
    part = fields[b"p0"]
    merge_rows = []
    for count in (8, 64, 256):
        row = [str(count)]
        for width, kind in ((None, None), (10, "s"), (10, "g")):
            times, cpus = [], []
            for _ in range(5):
                t0, c0 = time.perf_counter(), time.process_time()
                heads = [unpack(part) for _ in range(count)]
                for i, (h, _) in enumerate(heads):
                    h["partition"] = i
                snap = merge_parts("bench", heads, lambda name: [fields[f"p0:{name}".encode()]] * count)
                if kind == "s":
                    snap.bucket_series(width)
                elif kind == "g":
                    snap.groups[width]             # bucket x group (the stream's first text column)
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            row.append(f"{statistics.median(times) * 1e3:.1f} ({statistics.median(cpus) * 1e3:.1f})")
        merge_rows.append(row)
    sizes = {k.decode(): len(v) for k, v in fields.items() if k.startswith(b"p0:")}
    print(f"\npart: {len(part):,} bytes; buckets of one partition: {sum(sizes.values()):,} bytes in "
          f"{len(sizes)} fields (10 s series: {sizes['p0:s10']:,})\n")
    print_table(["partitions merged", "snapshot merge p50 ms (CPU ms): window, cumulative, group-by",
                 "+ the 10 s bucket series", "+ the 10 s bucket x group"], merge_rows)
    p50, p99, rows = latency
    print(f"\nappend-to-visible at {args.latency_rate:,} rows/s (1 partition, {rows:,} rows): "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")


def append_to_visible(r, servers, work: str, rate: int, seconds: int) -> tuple[float, float, int]:
    """Per row: first sight of its log entry in Redis to the merged snapshot counting it (ms)."""
    import numpy as np

    from engine.cluster.redis_log import newest_entry
    from engine.cluster.redis_snapshots import RedisSnapshots
    n = rate * seconds
    path = os.path.join(work, "latency.csv")
    make_file(path, n)
    env = {**os.environ, "RIVULET_DASK": servers.scheduler, "RIVULET_HISTORY": os.path.join(work, "history-latency")}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "replay", path, "--cluster", servers.redis_url,
                             "--rows-per-second", str(rate), "--data-dir", os.path.join(work, "latency")],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    snaps = RedisSnapshots(r)
    sent: dict[int, tuple[float, int]] = {}          # seq -> (first seen, stream rows after it)
    seen: list[tuple[float, int]] = []              # (time, rows the merged snapshot counts)
    while proc.poll() is None:
        now = time.perf_counter()
        seq, offset = newest_entry(r, "latency")
        if offset is not None and seq not in sent:
            sent[seq] = (now, offset["source"]["rows"])
        snap = snaps.latest("latency")
        if snap is not None:
            seen.append((time.perf_counter(), snap.counts["ingested"]))
        time.sleep(0.002)
    times, counts = np.array([t for t, _ in seen]), np.array([c for _, c in seen])
    lat, weight, before = [], [], 0
    for seq in sorted(sent):
        at, rows = sent[seq]
        hit = np.flatnonzero(counts >= rows)
        if len(hit):
            lat.append((times[hit[0]] - at) * 1e3)
            weight.append(rows - before)
        before = rows
    lat, weight = np.array(lat), np.array(weight, float)
    order = np.argsort(lat)
    cum = np.cumsum(weight[order]) / weight.sum()
    pick = lambda q: float(lat[order][np.searchsorted(cum, q)])       # noqa: E731
    return pick(0.5), pick(0.99), int(weight.sum())


if __name__ == "__main__":
    main()
