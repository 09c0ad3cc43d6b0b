"""The cluster Compute, on Dask distributed: fan-outs (`Mapper`) as one task per item.

A training job's folds become one task each; the data they share (the arguments of a
`functools.partial`) is scattered to the workers once, not shipped with every task. This is faster
than `joblib.parallel_backend("dask")`, which sends the data with each of many small tasks and
overloads the scheduler (joblib#1154, #1021). Partition workers are Dask tasks too (replay.py).
"""
from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from typing import Callable, Iterable

from ..compute import LocalCompute
from ..errors import UserError

FOLDED = ("train",)          # job kinds whose folds fan out (models/tasks.py, fold_mapper)


class DaskMapper:
    """The Mapper seam on a Dask client: one task per item, results in the items' order."""

    def __init__(self, client):
        self.client = client

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def __call__(self, fn: Callable, items: Iterable, started: Callable[[int], None] | None = None) -> list:
        items = list(items)
        args, kwargs = (), {}
        if isinstance(fn, functools.partial):
            fn, args, kwargs = fn.func, tuple(self.client.scatter(list(fn.args), broadcast=True)), fn.keywords
        futures = []
        for i, item in enumerate(items):
            if started is not None:
                started(i)
            futures.append(self.client.submit(fn, *args, item, pure=False, **kwargs))
        return self.client.gather(futures)


class DaskCompute(LocalCompute):
    """The Compute of an engine on the cluster: a job's driver runs as in the embedded engine (a spawned
    process, so progress and cancel work the same), and its cross-validation folds run on Dask."""

    def __init__(self, scheduler: str, **kw):
        super().__init__(**kw)
        self.scheduler = scheduler

    def submit(self, kind: str, payload, label: str = "", on_done: Callable[[object], object] | None = None) -> str:
        if kind in FOLDED and isinstance(payload, dict):
            payload = {**payload, "scheduler": self.scheduler}
        return super().submit(kind, payload, label, on_done)


@contextlib.contextmanager
def dask_client(setting: str):
    """A Dask client for a cluster setting: `local` starts a LocalCluster for the block (no Redis:
    jobs need none); redis://... joins the scheduler RIVULET_DASK names."""
    from distributed import Client
    if setting == "local":
        from .local import LocalServers
        with tempfile.TemporaryDirectory(prefix="rivulet-dask-") as folder, \
                LocalServers(folder, log=False) as servers, Client(servers.scheduler, timeout=30) as client:
            yield client
        return
    scheduler = os.environ.get("RIVULET_DASK")
    if not scheduler:
        raise UserError(f"a cluster at {setting} needs RIVULET_DASK=tcp://host:8786 (the Dask scheduler)")
    with Client(scheduler, timeout=30) as client:
        yield client
