"""Embedded replay vs cluster replay (1 and 2 partitions) of the same file, and the snapshot merge.

    python bench/cluster.py [--rows 1000000]

Rows/s is the `python -m engine replay` command's wall time (process start to the printed snapshot;
for the cluster that includes connecting to the running servers, not starting them). CPU seconds per
million rows add every process that worked: the command, the Dask worker processes and
redis-server (the figure that carries to a bigger cluster). The merge times `RedisSnapshots.latest`'s
work (unpack + merge) over 8, 64 and 256 copies of a real partition's part.
"""
from __future__ import annotations

import argparse
import os
import resource
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
    args = ap.parse_args()
    from distributed import Client

    from engine.cluster.local import LocalServers
    from engine.cluster.redis_snapshots import merge_parts, snapshot_key, unpack
    n = args.rows
    work = tempfile.mkdtemp(prefix="rivulet-bench-cluster-")
    path = os.path.join(work, "bench.csv")
    make_file(path, n)
    rows = []
    wall, cpu = run([sys.executable, "-m", "engine", "replay", path, "--data-dir", os.path.join(work, "e"), "--json"])
    rows.append(["embedded `replay`", n / wall, cpu])
    with LocalServers(os.path.join(work, "servers")) as servers, Client(servers.scheduler) as client:
        import redis
        r = redis.Redis.from_url(servers.redis_url)
        workers = list(client.run(os.getpid).values())
        for parts in (1, 2):
            r.flushdb()
            env = {**os.environ, "RIVULET_DASK": servers.scheduler,
                   "RIVULET_HISTORY": os.path.join(work, f"history{parts}")}
            before = proc_cpu(workers + [servers.redis.pid])
            wall, cpu = run([sys.executable, "-m", "engine", "replay", path, "--cluster", servers.redis_url,
                             "--partitions", str(parts), "--data-dir", os.path.join(work, f"c{parts}"), "--json"],
                            env)
            cpu += proc_cpu(workers + [servers.redis.pid]) - before
            rows.append([f"cluster, {parts} partition{'s' if parts > 1 else ''}", n / wall, cpu])
        fields = r.hgetall(snapshot_key("bench"))
    base = rows[0][2] / n * 1e6
    print(f"\n{machine()}, {n:,} rows\n")
    print_table(["case", "rows/s", "CPU s / M rows", "CPU vs embedded"],
                [[c, f"{rate:,.0f}", f"{cpu / n * 1e6:.2f}", f"{cpu / n * 1e6 / base:.2f}"] for c, rate, cpu in rows])
    part, buckets = fields[b"p0"], fields[b"p0:buckets"]
    merge_rows = []
    for count in (8, 64, 256):
        row = [str(count)]
        for with_buckets in (False, True):
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                heads = [unpack(part) for _ in range(count)]
                for i, (h, _) in enumerate(heads):
                    h["partition"] = i
                merge_parts("bench", heads, [unpack(buckets) for _ in range(count)] if with_buckets else [])
                times.append(time.perf_counter() - t0)
            row.append(f"{statistics.median(times) * 1e3:.1f}")
        merge_rows.append(row)
    print(f"\npart: {len(part):,} bytes; buckets: {len(buckets):,} bytes a partition\n")
    print_table(["partitions merged", "merge p50 ms: window, cumulative, groups",
                 "+ buckets (series and bucket x group)"], merge_rows)


if __name__ == "__main__":
    main()
