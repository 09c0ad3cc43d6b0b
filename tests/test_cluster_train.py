"""`train --cluster` runs one Dask task per cross-validation fold and gives the local scores."""
import json
import os

import numpy as np
import pytest

from tests.conftest import cluster_env, run_cli
from tests.models_data import breast_cancer_csv, mixed_frame


def train(path, *args, env=None):
    r = run_cli("train", path, *args, "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def same_report(a, b):
    np.testing.assert_allclose(a["cv_scores"], b["cv_scores"], rtol=1e-12)
    for key in ("accuracy", "f1", "roc_auc", "cv_mean", "cv_std"):
        assert a[key] == pytest.approx(b[key], rel=1e-12), key


def test_folds_run_on_the_session_cluster_with_local_scores(cluster, tmp_path):
    from distributed import Client
    path = breast_cancer_csv(tmp_path)
    args = ("--target", "target", "--model", "logreg", "--cv", "4")
    local = train(path, *args, env={k: v for k, v in os.environ.items() if k != "RIVULET_CLUSTER"})
    on_dask = train(path, *args, "--cluster", cluster.log, env=cluster_env(cluster))
    same_report(on_dask, local)
    assert on_dask["cv"]["scheduler"] == cluster.scheduler and "scheduler" not in local["cv"]
    with Client(cluster.scheduler) as client:
        prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert "fit_fold" in prefixes


def test_train_cluster_local_starts_its_own_dask(tmp_path):
    frame = mixed_frame(400)
    path = str(tmp_path / "mixed.csv")
    frame.to_csv(path, index=False)
    args = ("--target", "label", "--features", "a,b,site", "--model", "rf", "--cv", "3", "--cv-kind", "stratified")
    local = train(path, *args)
    on_dask = train(path, *args, "--cluster", "local")
    same_report(on_dask, local)
    assert on_dask["cv"]["scheduler"].startswith("tcp://127.0.0.1:")
