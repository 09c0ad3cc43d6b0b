"""`tail --cluster`: the files are followed by a producer task, processed by partition tasks and stored in
Delta; the snapshot equals the embedded tail's, and a second run resumes where the first stopped."""
import json

from deltalake import DeltaTable

from engine.cluster.delta_store import rows_uri
from tests.conftest import cluster_env, run_cli, tail_once
from tests.test_cluster_replay import make_csv, same_numbers

WINDOW = ("--window-seconds", "120")


def cluster_tail(cluster, path, data_dir, *args):
    r = run_cli("tail", str(path), "--cluster", cluster.log, "--data-dir", str(data_dir), "--idle-exit", "2",
                "--json", *WINDOW, *args, env=cluster_env(cluster), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def same_snapshot(out, ref):
    assert out["rows"] == ref["rows"] and out["window"] == ref["window"]
    for key in ("stats", "cov", "corr", "cumulative"):
        same_numbers(out[key], ref[key], key)


def test_tail_on_the_cluster_equals_the_embedded_tail_and_resumes(cluster, tmp_path):
    full = open(make_csv(tmp_path / "full.csv", n=25_000)).read().splitlines(keepends=True)
    folder = tmp_path / "logs"
    folder.mkdir()
    path = folder / "app.csv"
    path.write_text("".join(full[:20_001]))
    first = cluster_tail(cluster, path, tmp_path / "c", "--partitions", "2")
    ref, _, _ = tail_once(path, tmp_path / "e", *WINDOW)
    same_snapshot(first, ref)
    assert first["cluster"]["partitions"] == 2 and first["cluster"]["history"] == cluster.history

    with open(path, "a") as f:                      # the file grows while nothing follows it
        f.write("".join(full[20_001:]))
    again = cluster_tail(cluster, path, tmp_path / "c", "--partitions", "2")
    ref, _, _ = tail_once(path, tmp_path / "e", *WINDOW)
    assert again["rows"]["ingested"] == 25_000
    same_snapshot(again, ref)
    ids = DeltaTable(rows_uri(cluster.history, "app")).to_pyarrow_dataset().to_table(columns=["id"])
    assert sorted(ids.column("id").to_pylist()) == list(range(25_000))     # each row stored once


def test_tail_cluster_without_a_header_yet_is_one_line(cluster, tmp_path):
    r = run_cli("tail", str(tmp_path / "*.csv"), "--cluster", cluster.log, "--data-dir", str(tmp_path / "c"),
                "--idle-exit", "1", env=cluster_env(cluster), timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "header" in r.stderr, r.stderr


def test_tail_on_the_cluster_runs_a_pipeline_as_the_embedded_tail(cluster, tmp_path):
    import json as json_lib
    folder = tmp_path / "logs"
    folder.mkdir()
    path = folder / "prep.csv"
    path.write_text(open(make_csv(tmp_path / "src.csv", n=15_000)).read())
    spec = tmp_path / "spec.json"
    spec.write_text(json_lib.dumps({"steps": [
        {"kind": "fill_missing", "params": {"columns": ["x"], "method": "ffill"}},
        {"kind": "derive", "params": {"name": "xy", "expr": "x - y / 1000"}},
        {"kind": "filter", "params": {"where": {"column": "site", "op": "in", "value": ["north", "east"]}}}]}))
    out = cluster_tail(cluster, path, tmp_path / "c", "--pipeline", str(spec))
    ref, _, _ = tail_once(path, tmp_path / "e", *WINDOW, "--pipeline", str(spec))
    same_snapshot(out, ref)
    assert "xy" in out["stats"] and out["pipeline"] == ref["pipeline"] == 1
