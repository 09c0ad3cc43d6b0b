"""`--partition-key COLUMN`: rows with the same key go to the same partition (a stable hash), and the
statistics that merge exactly still equal the embedded replay's."""
import numpy as np
import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable

from engine.cluster.delta_store import rows_uri
from engine.cluster.redis_log import by_key
from engine.cluster.redis_snapshots import RedisSnapshots
from engine.read.snapshot import group_stats_of
from engine.stats.operators import WindowSpec
from tests.conftest import cluster_env, run_cli
from tests.test_cluster_replay import cluster_replay, embedded, make_csv, same_buckets, same_numbers


def test_rows_of_a_key_land_in_one_partition_and_stats_equal_embedded(cluster, tmp_path):
    rng = np.random.default_rng(7)
    path = make_csv(tmp_path / "keyed.csv", n=40_000)
    df = pd.read_csv(path)
    df["device"] = rng.choice([f"d{i}" for i in range(40)], len(df))      # many keys, so every partition gets some
    df.to_csv(path, index=False)
    want = embedded(path, str(tmp_path / "e"), WindowSpec("time", 120))
    out = cluster_replay(cluster, path, str(tmp_path / "c"), "--window-seconds", "120", "--partitions", "3",
                         "--partition-key", "device", "--batch-bytes", "200000")
    ref = want.to_json()
    assert out["rows"] == ref["rows"] and out["window"] == ref["window"]
    for key in ("stats", "cov", "corr", "cumulative"):
        same_numbers(out[key], ref[key], key)
    merged = RedisSnapshots(cluster.redis()).latest("keyed")
    same_buckets(merged, want, want.columns)
    same_numbers(merged.group_stats("site"), group_stats_of(want.window(seconds=120)[1], "site", want.columns),
                 "group-by")

    stored = DeltaTable(rows_uri(cluster.history, "keyed")).to_pyarrow_dataset().to_table(
        columns=["id", "device", "_part"]).to_pandas()
    assert sorted(stored["id"]) == list(range(40_000))
    parts = stored.groupby("device")["_part"].nunique()
    assert (parts == 1).all() and stored["_part"].nunique() == 3
    # the hash is stable: the same key goes to the same partition from any process, in any batch
    keys = sorted(set(df["device"]))
    spread = by_key(pa.chunked_array([pa.array(keys)]), 3)
    expected = {keys[i]: p for p, idx in enumerate(spread) for i in idx}
    assert stored.groupby("device")["_part"].first().to_dict() == expected

    r = run_cli("replay", path, "--cluster", cluster.log, "--data-dir", str(tmp_path / "c"), "--partitions", "3",
                env=cluster_env(cluster))
    assert r.returncode == 2 and "--partition-key device" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("replay", path, "--cluster", cluster.log, "--data-dir", str(tmp_path / "d"), "--partitions", "3",
                "--partition-key", "nope", env=cluster_env(cluster))
    assert r.returncode == 2 and "nope" in r.stderr and r.stderr.count("\n") == 1
