"""Cluster replay (Redis Streams + Dask + Delta Lake) gives the embedded replay's numbers.

The servers are real: the session's redis-server and Dask LocalCluster (conftest.cluster_servers),
or, for `--cluster local`, the ones the command starts and stops itself.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from engine.read.snapshot import group_stats_of
from engine.runtime import Engine
from engine.stats.operators import WindowSpec
from tests.conftest import ROOT, cluster_env, run_cli
from tests.reference import close

RTOL = 1e-9


def make_csv(path, n=60_000, seed=5):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) * 37, unit="ms"),
                       "id": np.arange(n), "x": rng.normal(size=n).round(3),
                       "y": (rng.normal(size=n) * 10 + 1e6).round(3),
                       "site": rng.choice(["north", "south", "east", "west"], n)})
    df.loc[rng.random(n) < 0.05, "x"] = np.nan
    df.to_csv(path, index=False)
    return str(path)


def embedded(path, data_dir, window):
    with Engine(data_dir) as e:
        name = e.add_replay(path, window=window)
        return e.wait(name, timeout=120)


def cluster_replay(cluster, path, data_dir, *args):
    r = run_cli("replay", path, "--cluster", cluster.log, "--data-dir", data_dir, "--json", *args,
                env=cluster_env(cluster), timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def same_numbers(ours: dict, want: dict, what: str):
    """Nested dicts of numbers (stats, cov, corr) equal to RTOL (None = undefined on both sides)."""
    assert ours.keys() == want.keys(), what
    for key in want:
        if isinstance(want[key], dict):
            same_numbers(ours[key], want[key], f"{what}.{key}")
        else:
            close(ours[key], want[key], RTOL, 1e-12, f"{what}.{key}")


def same_buckets(ours, want, columns):
    for width in (1, 10, 60):
        a, b = ours.bucket_series(width), want.bucket_series(width)
        np.testing.assert_array_equal(a["start"], b["start"])
        for name in ("count", "mean", "var", "min", "max"):
            np.testing.assert_allclose(a[name], b[name], rtol=RTOL, atol=1e-9, err_msg=f"{width}s {name}")
        ga, gb = ours.bucket_groups(width), want.bucket_groups(width)
        key_a = sorted(zip(ga["start"].tolist(), ga["group"], range(len(ga["group"]))))
        key_b = sorted(zip(gb["start"].tolist(), gb["group"], range(len(gb["group"]))))
        assert [k[:2] for k in key_a] == [k[:2] for k in key_b]
        ia, ib = [k[2] for k in key_a], [k[2] for k in key_b]
        for name in ("count", "mean", "var"):
            np.testing.assert_allclose(ga[name][ia], gb[name][ib], rtol=RTOL, atol=1e-9,
                                       err_msg=f"groups {width}s {name}")


@pytest.mark.parametrize("partitions", [1, 3])
def test_time_window_buckets_groups_and_cumulative_equal_embedded(cluster, tmp_path, partitions):
    path = make_csv(tmp_path / "events.csv")
    want = embedded(path, str(tmp_path / "embedded"), WindowSpec("time", 120))
    out = cluster_replay(cluster, path, str(tmp_path / "c"), "--window-seconds", "120",
                         "--partitions", str(partitions))
    ref = want.to_json()
    assert out["rows"] == ref["rows"]
    assert out["window"] == ref["window"]
    for key in ("stats", "cov", "corr", "cumulative"):
        same_numbers(out[key], ref[key], key)
    c = out["cluster"]
    assert c["partitions"] == partitions and len(c["seq"]) == partitions and min(c["seq"]) >= 1
    assert c["log"] == cluster.log and c["scheduler"] == cluster.scheduler and c["history"] == cluster.history

    # buckets and group-by, from the parts the workers left in Redis
    from engine.cluster.redis_snapshots import RedisSnapshots
    merged = RedisSnapshots(cluster.redis()).latest("events")
    same_buckets(merged, want, want.columns)
    window = want.window(seconds=120)[1]
    same_numbers(merged.group_stats("site"), group_stats_of(window, "site", want.columns), "group-by")


def test_count_window_equals_embedded_with_one_partition(cluster, tmp_path):
    path = make_csv(tmp_path / "rows.csv", n=30_000)
    ref = embedded(path, str(tmp_path / "embedded"), WindowSpec("count", 5000)).to_json()
    out = cluster_replay(cluster, path, str(tmp_path / "c"), "--window-rows", "5000")
    assert out["rows"] == ref["rows"] and out["window"] == ref["window"]
    for key in ("stats", "cov", "corr", "cumulative"):
        same_numbers(out[key], ref[key], key)


def test_history_holds_every_row_once_and_a_rerun_adds_nothing(cluster, tmp_path):
    path = make_csv(tmp_path / "once.csv", n=20_000)
    first = cluster_replay(cluster, path, str(tmp_path / "c"), "--partitions", "3")
    again = cluster_replay(cluster, path, str(tmp_path / "c"), "--partitions", "3")
    assert again["rows"] == first["rows"] and again["cumulative"] == first["cumulative"]
    assert again["cluster"]["seq"] == first["cluster"]["seq"]
    from deltalake import DeltaTable
    from engine.cluster.delta_store import rows_uri
    ids = DeltaTable(rows_uri(cluster.history, "once")).to_pyarrow_dataset().to_table(columns=["id"])
    assert sorted(ids.column("id").to_pylist()) == list(range(20_000))
    r = run_cli("replay", path, "--cluster", cluster.log, "--data-dir", str(tmp_path / "c"), "--partitions", "2",
                env=cluster_env(cluster))
    assert r.returncode == 2 and "started with 3 partitions" in r.stderr


def test_cluster_local_starts_and_stops_its_servers(tmp_path):
    path = make_csv(tmp_path / "local.csv", n=5_000)
    data_dir = str(tmp_path / "data")
    r = run_cli("replay", path, "--cluster", "local", "--data-dir", data_dir, "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rows"]["ingested"] == 5_000 and out["cluster"]["seq"] == [1]
    assert out["cluster"]["history"] == os.path.join(data_dir, "history")
    assert os.path.isfile(os.path.join(data_dir, "cluster", "redis", "appendonlydir",
                                       "appendonly.aof.1.incr.aof"))
    left = subprocess.run(["pgrep", "-f", data_dir], capture_output=True, text=True).stdout.split()
    assert left == [], f"servers left running: {left}"


def test_embedded_replay_imports_no_cluster_library(tmp_path):
    path = make_csv(tmp_path / "plain.csv", n=1_000)
    code = ("import sys; from engine.cli import main; rc = main(['replay', %r, '--data-dir', %r]); "
            "print(sorted(m for m in ('redis', 'dask', 'distributed', 'deltalake') if m in sys.modules))"
            % (path, str(tmp_path / "d")))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items() if k != "RIVULET_CLUSTER"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_partitions_without_a_cluster_is_one_clear_line(tmp_path):
    path = make_csv(tmp_path / "p.csv", n=100)
    r = run_cli("replay", path, "--partitions", "2", "--data-dir", str(tmp_path / "d"),
                env={k: v for k, v in os.environ.items() if k != "RIVULET_CLUSTER"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--cluster" in r.stderr
