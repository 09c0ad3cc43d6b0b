"""A trained model deployed onto a stream that runs on the cluster: every partition worker loads it (from
Redis) and predicts its batches; the predictions land in Delta and read back as in embedded mode."""
import time

import numpy as np
import pytest
import sklearn.metrics as skm

from engine.errors import UserError
from engine.ingest.replay import Speed
from tests.models_data import mixed_frame
from tests.test_cluster_engine import engine  # noqa: F401  (the fixture: a ClusterEngine of 2 partitions)
from tests.test_models_engine import deployable, saved_logreg, wait_predictions


def test_a_deployed_model_predicts_every_row_on_every_partition_and_swaps_at_one_batch(engine, tmp_path):
    _, _, model, first = deployable(engine, tmp_path)
    df = mixed_frame(6000, seed=2)
    second_model, second = saved_logreg(engine, mixed_frame(2000))
    path = tmp_path / "live.csv"
    df.to_csv(path, index=False)
    name = engine.add_replay(str(path), name="live", speed=Speed("rows", 400), paused=True)
    with pytest.raises(UserError, match="online learner"):
        engine.deploy_online(name, "label", ["a", "b"])
    assert engine.deploy(name, first)["model_id"] == first
    engine.resume(name)
    sid = engine.streams[name].id
    # the producer is held once 1,200 rows are out, so rows are left to swap in however far the workers lag
    deadline = time.time() + 120
    while engine.streams[name].source.status().get("rows", 0) < 1200 and time.time() < deadline:
        time.sleep(0.05)
    engine.pause(name)
    wait_predictions(engine, sid, 600, 120)
    engine.deploy(name, second)                     # takes effect from the producer's next batch
    engine.resume(name)
    snap = engine.wait(name, timeout=240)

    pred = engine.store.predictions(sid, last=None)
    assert pred.column("_rid").to_pylist() == list(range(6000))       # every row once, none twice
    models = pred.column("model").to_pylist()
    switch = models.index(second)                   # both partitions switched at the same batch
    assert set(models[:switch]) == {first} and set(models[switch:]) == {second} and 600 <= switch < 6000
    X = df[["a", "b", "site"]].astype({"site": object})
    want = np.concatenate([model.predict(X[:switch]), second_model.predict(X[["a", "b"]][switch:])])
    assert pred.column("prediction").to_pylist() == want.tolist()
    proba = np.array(pred.column("proba").to_pylist()[:switch])
    np.testing.assert_allclose(proba, model.predict_proba(X[:switch]), atol=1e-12)

    # the live status adds up the partitions; each scored its own last 1,000 labelled rows
    live = engine.models.live(name)
    assert live["model_id"] == second and live["predicted"] == snap.model["predicted"] == 6000 - switch
    assert live["labelled"] == 6000 - switch
    scored = min(2000, 6000 - switch)
    newest = df["label"].to_numpy()[-scored:], want[-scored:]
    assert live["accuracy"] == pytest.approx(skm.accuracy_score(*newest), abs=1e-12)
    shown = engine.models.predictions(name, last=20, target="label")
    assert shown.num_rows == 20 and shown.column("correct").null_count == 0

    engine.undeploy(name)
    assert engine.models.live(name) is None
