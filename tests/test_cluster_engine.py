"""The dashboard's engine on a cluster (RIVULET_CLUSTER): streams run as Dask tasks, the engine reads
merged snapshots from Redis and history from Delta, and gives what the embedded engine gives.

On the session's real servers (conftest.cluster_servers); the browser test (test_cluster_browser.py)
starts its own with RIVULET_CLUSTER=local.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from engine.cluster.engine import ClusterEngine
from engine.errors import UserError
from engine.models.spec import ModelSpec
from engine.read.views import view
from engine.runtime import Engine
from engine.stats.operators import WindowSpec
from tests.conftest import ROOT, wait_for
from tests.test_cluster_replay import make_csv, same_buckets, same_numbers

WINDOW = WindowSpec("time", 120, "event")


def cluster_engine(servers, tmp_path, monkeypatch):
    """A ClusterEngine of 2 partitions on `servers` (a `cluster` fixture's), closed at the end."""
    monkeypatch.setenv("RIVULET_DASK", servers.scheduler)
    monkeypatch.setenv("RIVULET_HISTORY", servers.history)
    e = ClusterEngine(servers.log, str(tmp_path / "c"), partitions=2)
    yield e
    e.close()


@pytest.fixture
def engine(cluster, tmp_path, monkeypatch):
    yield from cluster_engine(cluster, tmp_path, monkeypatch)


def test_a_replay_runs_on_the_cluster_and_reads_like_the_embedded_one(engine, tmp_path):
    path = make_csv(tmp_path / "events.csv", n=30_000)
    with Engine(str(tmp_path / "e")) as e:
        ref = e.wait(e.add_replay(path, window=WINDOW), timeout=120)
        ref_rows = e.store.rows(e._get("events").id)
    name = engine.add_replay(path, window=WINDOW)
    snap = engine.wait(name, timeout=240)
    assert engine.streams[name].config["partitions"] == 2
    out, want = snap.to_json(), ref.to_json()
    assert out["rows"] == want["rows"] and out["window"] == want["window"]
    for key in ("stats", "cov", "corr", "cumulative"):
        same_numbers(out[key], want[key], key)
    same_buckets(snap, ref, snap.columns)
    # other windows than the configured one come from the history (Delta, read with DuckDB), in stream order
    for rows in (1_000, 25_000):
        a, b = view(snap, rows=rows), view(ref, rows=rows)
        assert a.rows == b.rows == rows
        assert a.table().column("id").to_pylist() == b.table().column("id").to_pylist()
        same_numbers(a.stats(), b.stats(), f"last {rows} rows")
    stored = engine.store.rows(engine._get(name).id)
    assert stored.column("id").to_pylist() == ref_rows.column("id").to_pylist()
    assert stored.column("_rid").to_pylist() == list(range(30_000))
    last = engine.store.rows(engine._get(name).id, last=7)
    assert last.column("id").to_pylist() == list(range(30_000 - 7, 30_000))
    assert engine.health()["errors"] == [] and engine.health()["ingest_alive"] == 1


def test_integers_beyond_2_53_stay_exact_in_the_delta_history(engine, tmp_path):
    """Snowflake-like ids (about 1.6e18, odd: float64 cannot hold them) over 2 partitions are stored as
    int64 in Delta and read back whole, as the embedded store keeps them; `n`, small integers, stays
    float64 there (a partition may turn it to floats at its first fraction) and loses nothing."""
    from deltalake import DeltaTable
    from engine.cluster.delta_store import rows_uri
    big = 1_600_000_000_000_000_001 + 2 * np.arange(3_000, dtype=np.int64)
    path = tmp_path / "snow.csv"
    path.write_text("snow,n,x\n" + "".join(f"{b},{i},{i * 0.5}\n" for i, b in enumerate(big.tolist())))
    name = engine.add_replay(str(path))
    snap = engine.wait(name, timeout=240)
    # the pages' window rows are read from that history too, computed in float64 as the embedded ones
    assert snap.window_table(rows=100).column("n").to_pylist() == [float(i) for i in range(2_900, 3_000)]
    table = DeltaTable(rows_uri(os.environ["RIVULET_HISTORY"], name)).to_pyarrow_dataset().to_table()
    assert table.schema.field("snow").type == "int64" and table.schema.field("n").type == "double"
    stored = engine.store.rows(engine._get(name).id, columns=["snow", "n"])
    assert stored.column("snow").to_pylist() == big.tolist()
    assert stored.column("n").to_pylist() == list(range(3_000))


def test_a_model_trains_on_the_delta_history_with_folds_on_dask(engine, cluster, tmp_path):
    import pandas as pd
    rng = np.random.default_rng(3)
    n = 2_000
    df = pd.DataFrame({"a": rng.normal(size=n).round(4), "b": rng.normal(size=n).round(4),
                       "site": rng.choice(["x", "y"], n)})
    df["label"] = ((df.a + df.b + rng.normal(0, 0.5, n)) > 0).astype(int)
    path = str(tmp_path / "labelled.csv")
    df.to_csv(path, index=False)
    spec = ModelSpec("classification", "label", ("a", "b"), ("site",), "logreg", cv=3)
    name = engine.add_replay(path)
    engine.wait(name, timeout=240)
    job = engine.models.jobs.wait(engine.models.train(name, spec, slice={"last": 1500}), timeout=240)
    assert job.state == "done", job.error
    card = engine.models.registry.card(job.result)
    assert card["metrics"]["cv"]["scheduler"] == cluster.scheduler
    assert card["training"]["rows"] == 1500
    with Engine(str(tmp_path / "e")) as e:          # the same rows in the embedded engine: the same scores
        e.wait(e.add_replay(path), timeout=120)
        local = e.models.jobs.wait(e.models.train("labelled", spec, slice={"last": 1500}), timeout=240)
        want = e.models.registry.card(local.result)["metrics"]
    assert card["metrics"]["cv"]["scores"] == pytest.approx(want["cv"]["scores"], rel=1e-12)
    assert card["metrics"]["holdout"]["f1"] == pytest.approx(want["holdout"]["f1"], rel=1e-12)


def test_quarantine_pause_and_remove(engine, cluster, tmp_path):
    lines = ["ts,x"] + [f"2024-01-01 00:00:{i % 60:02d},{i}" for i in range(3_000)]
    lines[100:100] = ["2024-01-01 00:00:00,1,EXTRA", "2024-01-01 00:00:00,2,EXTRA"]
    path = tmp_path / "paced.csv"
    path.write_text("\n".join(lines) + "\n")
    from engine.ingest.replay import Speed
    name = engine.add_replay(str(path), speed=Speed("rows", 500))
    assert wait_for(lambda: engine.quarantine(name).num_rows == 2, 120)
    assert set(engine.quarantine(name).column("reason").to_pylist()) != set()
    engine.pause(name)
    assert wait_for(lambda: engine.snapshot(name) is not None and engine.snapshot(name).state == "paused", 30)
    held = engine.snapshot(name).counts["ingested"]
    import time
    time.sleep(2)
    assert engine.snapshot(name).counts["ingested"] <= held + 500       # at most a batch in flight
    assert engine.snapshot(name).counts["ingested"] < 3_000
    engine.resume(name)
    engine.wait(name, timeout=120)
    assert engine.snapshot(name).counts["ingested"] == 3_000
    with pytest.raises(UserError, match="row must be 0 or more"):
        engine.seek(name, row=-1)
    engine.remove(name)
    r = cluster.redis()
    assert not r.keys(f"rivulet:{name}:*") and name not in engine.names()
    assert not os.path.exists(os.path.join(cluster.history, name))


def test_the_embedded_dashboard_engine_imports_no_cluster_library(tmp_path):
    code = ("import sys; from engine import open_engine; e = open_engine(%r, demo=True); e.close(); "
            "print(type(e).__name__, sorted(m for m in ('redis', 'dask', 'distributed', 'deltalake') "
            "if m in sys.modules))" % str(tmp_path / "d"))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items() if k != "RIVULET_CLUSTER"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "Engine []"
