"""Preprocessing on the cluster: a spec given at start runs in every partition as the embedded stream runs it,
and a version applied while data flows runs from the same batch on every partition."""
import json

import pandas as pd
import pytest

from engine.cluster.redis_snapshots import snapshot_key, unpack
from engine.ingest.replay import Speed
from engine.runtime import Engine
from engine.stats.operators import WindowSpec
from tests.conftest import wait_for
from tests.reference import close
from tests.test_cluster_engine import engine  # noqa: F401  (the fixture: a ClusterEngine of 2 partitions)
from tests.test_cluster_replay import cluster_replay, make_csv, same_numbers

RUNNING = {"steps": [  # running statistics and forward fill carry state from batch to batch
    {"kind": "fill_missing", "params": {"columns": ["x"], "method": "ffill"}},
    {"kind": "normalise", "params": {"columns": ["y"], "method": "zscore", "stats": "running"}},
    {"kind": "derive", "params": {"name": "xy", "expr": "x * 2 + y"}},
    {"kind": "clip", "params": {"columns": ["x"], "lower": -1.5, "upper": 1.5}},
    {"kind": "filter", "params": {"where": {"column": "site", "op": "!=", "value": "west"}}}]}
FROZEN = {"steps": [   # statistics frozen from the first batch, the same for every partition
    {"kind": "fill_missing", "params": {"columns": ["x"], "method": "value", "value": 0}},
    {"kind": "normalise", "params": {"columns": ["y"], "method": "zscore", "stats": "frozen"}},
    {"kind": "derive", "params": {"name": "xy", "expr": "x * 2 + y"}},
    {"kind": "filter", "params": {"where": {"column": "x", "op": ">", "value": -1}}}]}


def embedded(path, data_dir, spec, window):
    with Engine(data_dir) as e:
        return e.wait(e.add_replay(path, window=window, pipeline=spec), timeout=120).to_json()


@pytest.mark.parametrize("partitions, spec, batch", [(1, RUNNING, "100000"), (3, FROZEN, None)])
def test_a_spec_given_at_start_runs_as_embedded(cluster, tmp_path, partitions, spec, batch):
    path = make_csv(tmp_path / "prep.csv", n=40_000)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    ref = embedded(path, str(tmp_path / "e"), spec, WindowSpec("time", 120, "event"))
    args = ["--window-seconds", "120", "--partitions", str(partitions), "--pipeline", str(spec_file)]
    out = cluster_replay(cluster, path, str(tmp_path / "c"), *args, *(["--batch-bytes", batch] if batch else []))
    if batch:
        assert min(out["cluster"]["seq"]) > 10          # many batches: running state carried across them
    assert out["rows"] == ref["rows"] and out["window"] == ref["window"]
    assert (out["pipeline"], out["pipeline_from"]) == (ref["pipeline"], ref["pipeline_from"]) == (1, 1)
    assert "xy" in out["stats"]
    for key in ("stats", "cov", "corr", "cumulative"):
        same_numbers(out[key], ref[key], key)


def test_a_version_applied_while_data_flows_runs_from_the_same_batch_on_every_partition(engine, cluster, tmp_path):
    n = 12_000
    path = make_csv(tmp_path / "flow.csv", n=n)
    name = engine.add_replay(path, speed=Speed("rows", 3_000), window=WindowSpec("time", 120, "event"))
    assert wait_for(lambda: (engine.snapshot(name) or None) is not None
                    and engine.snapshot(name).counts["ingested"] > 1_000, 120)
    preview = engine.preview(name, {"steps": [{"kind": "derive", "params": {"name": "z", "expr": "x + 1"}}]}, n=5)
    assert "z" in preview.added
    out = engine.apply(name, {"steps": [{"kind": "derive", "params": {"name": "z", "expr": "x * 3 + 1"}}]})
    assert out["version"] == 1 and out["rebuilt"]
    assert engine.pipeline(name)["version"] == 1
    snap = engine.wait(name, timeout=240)

    versions = engine.pipelines(name)
    assert [v["version"] for v in versions] == [1]
    start = versions[0]["from_row"]
    assert 1_000 <= start < n
    # every partition switched at the producer's batch that starts at row `start`: the statistics, which
    # restarted with the new columns, cover exactly rows start.. of the file
    df = pd.read_csv(path).iloc[start:]
    z = df["x"] * 3 + 1
    assert snap.pipeline == snap.pipeline_from == 1
    cum = snap.to_json()["cumulative"]
    assert cum["z"]["count"] == z.count() and cum["y"]["count"] == len(df)
    close(cum["z"]["mean"], z.mean(), 1e-9, 1e-12, "z mean")
    close(cum["z"]["var"], z.var(), 1e-9, 1e-12, "z var")
    parts = cluster.redis().hgetall(snapshot_key(name))
    heads = [unpack(v)[0] for f, v in parts.items() if b":" not in f]
    assert len(heads) == 2 and {h["pipeline"] for h in heads} == {1} and all("z" in h["columns"] for h in heads)

    # going back to no steps with the history re-run (the replay's tasks run again for it): every row
    assert engine.use_pipeline(name, 0, backfill=True)["version"] == 0 and engine.pipeline(name)["steps"] == []
    assert engine.wait_backfill(name, timeout=240)["state"] == "done"
    cum = engine.wait(name, timeout=240).to_json()["cumulative"]
    assert "z" not in cum and cum["y"]["count"] == n


def test_a_spec_the_first_rows_refuse_leaves_the_stream_without_steps(cluster, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n" + "".join(f"{i},5\n" for i in range(500)))
    spec = tmp_path / "spec.json"           # a constant column cannot be scaled: known only from the rows
    spec.write_text(json.dumps({"steps": [{"kind": "normalise", "params": {"columns": ["b"], "stats": "frozen"}}]}))
    from tests.conftest import cluster_env, run_cli
    r = run_cli("replay", str(path), "--cluster", cluster.log, "--data-dir", str(tmp_path / "c"),
                "--pipeline", str(spec), env=cluster_env(cluster), timeout=300)
    e = run_cli("replay", str(path), "--data-dir", str(tmp_path / "e"), "--pipeline", str(spec))
    assert e.returncode == 2 and r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "without the pipeline" in r.stderr
    assert r.stderr.split(":", 1)[1] == e.stderr.split(":", 1)[1]
