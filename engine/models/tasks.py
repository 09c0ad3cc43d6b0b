"""What a job worker can run. Each task takes (payload, progress) and returns a picklable result."""
from __future__ import annotations

import contextlib

from .spec import ModelSpec


@contextlib.contextmanager
def fold_mapper(payload: dict):
    """Where a job's folds run: one after another here, or one Dask task each when the job was
    submitted by the cluster's Compute (the payload names the scheduler)."""
    from ..seams import serial_map
    address = payload.get("scheduler")
    if not address:
        yield serial_map
        return
    from distributed import Client

    from ..cluster.dask_compute import DaskMapper
    with Client(address, timeout=30) as client:
        yield DaskMapper(client)


def train_task(payload: dict, progress):
    from .train import train
    with fold_mapper(payload) as mapper:
        trained = train(payload["rows"], ModelSpec.from_dict(payload["spec"]), progress, map_folds=mapper)
    if payload.get("scheduler"):
        trained.report["cv"]["scheduler"] = payload["scheduler"]
    return trained


def search_task(payload: dict, progress):
    from .selection import search
    return search(payload["rows"], ModelSpec.from_dict(payload["spec"]), payload.get("method", "halving"),
                  payload.get("n_iter", 8), progress)


def compare_task(payload: dict, progress):
    from .selection import compare
    return compare(payload["rows"], [ModelSpec.from_dict(s) for s in payload["specs"]], progress)


def importance_task(payload: dict, progress):
    from .selection import permutation_ranking
    return permutation_ranking(payload["model"], payload["rows"], payload["task"], payload.get("holdout", 0.2),
                               progress=progress, kind=payload.get("kind", "time"))


def trial_task(payload: dict, progress):
    """Load a model file and predict a few rows: run in its own process, so a crash kills only that."""
    from .safe import loads
    model = loads(payload["data"], check_trees=False)     # the caller checked them: what runs is the test
    model.predict(payload["frame"])
    if hasattr(model, "predict_proba"):
        model.predict_proba(payload["frame"])
    return True


def sleep_task(payload: dict, progress):
    """For tests of the job machinery: report progress while sleeping."""
    import time
    for i in range(payload["steps"]):
        progress(i, payload["steps"], f"step {i + 1} of {payload['steps']}")
        time.sleep(payload["seconds"])
    return payload.get("result")


TASKS = {"train": train_task, "search": search_task, "compare": compare_task, "importance": importance_task,
         "trial": trial_task, "sleep": sleep_task}
