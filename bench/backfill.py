"""Backfill throughput: stored history re-run through a 5-step pipeline, beside pandas, in one run.

    python bench/backfill.py [--rows 1000000] [--cluster PARTITIONS]

Replays a generated file into a fresh data folder (not timed), applies a 5-step
spec (forward fill, running z-score, clip, derive, filter) and times
`Engine.backfill`: read every stored row from DuckDB, run the pipeline, rebuild
the window, buckets, group-by and cumulative statistics. Beside it: the pipeline
alone on the same rows in memory, and pandas doing the same transformations on
an in-memory DataFrame (with and without a rolling mean/var/corr afterwards).
Prints a table (case, rows/s, ratio to the backfill). With `--cluster P`, also the same file replayed
on a `local` cluster (redis-server, a 2-worker Dask LocalCluster) over P partitions and the same spec
applied with a re-run of the history (cluster/backfill.py: each partition's rows re-run as a Dask task and
swapped in), timed from the request until every partition swapped (its tasks started again first, the
replay having ended).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from common import make_file, print_rates, timed  # noqa: E402  (same file as the replay benchmark)

SPEC = [
    {"kind": "fill_missing", "params": {"columns": ["x0"], "method": "ffill"}},
    {"kind": "normalise", "params": {"columns": ["x1"], "method": "zscore", "stats": "running"}},
    {"kind": "clip", "params": {"columns": ["x2"], "lower": 1000, "upper": 1030}},
    {"kind": "derive", "params": {"name": "y", "expr": "x3 * x4 + sqrt(abs(x5))"}},
    {"kind": "filter", "params": {"where": {"column": "site", "op": "!=", "value": "west"}}},
]
COLS = [f"x{i}" for i in range(10)]


def pandas_steps(df):
    df = df.copy()
    df["x0"] = df["x0"].ffill()
    e = df["x1"].expanding()
    df["x1"] = (df["x1"] - e.mean()) / e.std()
    df["x2"] = df["x2"].clip(1000, 1030)
    df["y"] = df["x3"] * df["x4"] + np.sqrt(df["x5"].abs())
    return df[df["site"] != "west"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cluster", type=int, default=0, help="partitions of a cluster run beside (0: none)")
    args = ap.parse_args()
    n = args.rows
    tmp = tempfile.mkdtemp(prefix="rivulet-bench-")
    path = os.path.join(tmp, "bench.csv")
    make_file(path, n)

    from engine.stats.operators import WindowSpec
    from engine.prep.pipeline import Pipeline
    from engine.runtime import Engine

    results = []
    with Engine(os.path.join(tmp, "data")) as engine:
        name = engine.add_replay(path, time_column="ts", window=WindowSpec("count", 10_000), retention_rows=n)
        engine.wait(name)
        engine.apply(name, SPEC)
        status = engine.backfill(name).wait()
        assert status["state"] == "done" and status["rows"] == n, status
        results.append(("Rivulet backfill: DuckDB read + 5 steps + window/buckets/groups/cumulative",
                        n / status["seconds"]))
        stored = engine.store.rows(engine.streams[name].id).drop_columns(["_rid", "_ingest"])
        frozen = Pipeline.from_dict(engine.pipeline(name))

    if args.cluster:
        results.append((f"Rivulet on a local cluster, {args.cluster} partitions: Delta read + 5 steps + state, "
                        f"one Dask task a partition", cluster_backfill(path, os.path.join(tmp, "cluster"), n,
                                                                       args.cluster)))
    results.append(("Rivulet pipeline alone (5 steps, rows in memory, 200,000-row batches)",
                    n / timed(lambda: [frozen.runner().run(stored.slice(i, 200_000)) for i in range(0, n, 200_000)])))
    df = stored.to_pandas()
    results.append(("pandas: the same 5 transformations on a DataFrame in memory", n / timed(lambda: pandas_steps(df))))

    def pandas_with_stats():
        out = pandas_steps(df)
        cols = [c for c in out.columns if c not in ("ts", "site")]
        r = out[cols].rolling(10_000)
        r.mean(), r.var(), r.corr()
        out[cols].agg(["count", "mean", "var", "std", "min", "max"])
        out.groupby("site")[cols].agg(["count", "mean", "var"])
    results.append(("pandas: 5 transformations + rolling(10000) mean/var/corr + describe + groupby",
                    n / timed(pandas_with_stats)))

    print_rates(f"{n:,} stored rows, 12 columns", results, "backfill / case")
    shutil.rmtree(tmp, ignore_errors=True)


def cluster_backfill(path: str, data_dir: str, n: int, partitions: int) -> float:
    """Rows a second of a backfill on a `local` cluster (the replay before it not timed)."""
    from engine.cluster.engine import ClusterEngine
    from engine.stats.operators import WindowSpec
    e = ClusterEngine("local", data_dir, partitions=partitions)
    try:
        name = e.add_replay(path, time_column="ts", window=WindowSpec("count", 10_000), retention_rows=n)
        e.wait(name)
        e.apply(name, SPEC, backfill=True)
        status = e.wait_backfill(name)
        assert status["state"] == "done" and status["rows"] == n, status
        return n / status["seconds"]
    finally:
        e.close()


if __name__ == "__main__":
    main()
