"""Where a cluster's parts are: the Redis log, the Dask scheduler and the Delta history.

`RIVULET_CLUSTER=local` (or `--cluster local`) starts the first two as children of this process
(local.py) and keeps history under the data folder; `RIVULET_CLUSTER=redis://host:6379/0` with
`RIVULET_DASK=tcp://host:8786` and `RIVULET_HISTORY=<folder or URI>` joins running ones.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from ..errors import UserError


@dataclass(frozen=True)
class Cluster:
    log: str            # redis://host:port/db
    scheduler: str      # tcp://host:port
    history: str        # a folder or an object-store URI holding one Delta table per stream

    def redis(self):
        return connect(self.log)

    def to_json(self) -> dict:
        return {"log": self.log, "scheduler": self.scheduler, "history": self.history}


def connect(url: str):
    """A Redis client whose commands carry large values (log entries, snapshot parts) without copying them:
    redis-py's Python packer sends a large argument as it is, where hiredis' packer copies every command into
    one string (16 ms for an 8 MB log entry, more than the rest of its sending)."""
    import redis
    from redis.connection import Encoder, PythonRespSerializer
    packer = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)
    return redis.Redis.from_url(url, command_packer=packer)


def cluster_setting(flag: str | None = None) -> str | None:
    """The --cluster flag, else RIVULET_CLUSTER; None (or empty) is the embedded engine."""
    value = flag if flag is not None else os.environ.get("RIVULET_CLUSTER")
    return value or None


@contextlib.contextmanager
def open_cluster(setting: str, data_dir: str, workers: int = 2, own_process: bool = False):
    """The Cluster a setting names, started for the duration of the block when it is `local` (in a
    process of their own with `own_process`: see local.ServersProcess)."""
    data_dir = os.path.abspath(data_dir)
    history = os.environ.get("RIVULET_HISTORY") or os.path.join(data_dir, "history")
    if setting == "local":
        from .local import LocalServers, ServersProcess
        servers_of = ServersProcess if own_process else LocalServers
        with servers_of(os.path.join(data_dir, "cluster"), workers) as servers:
            yield Cluster(servers.redis_url, servers.scheduler, history)
        return
    if not setting.startswith(("redis://", "rediss://", "unix://")):
        raise UserError(f"cluster {setting!r}: use local, or redis://host:port/db with RIVULET_DASK set")
    scheduler = os.environ.get("RIVULET_DASK")
    if not scheduler:
        raise UserError("a cluster at " + setting + " needs RIVULET_DASK=tcp://host:8786 (the Dask scheduler)")
    yield Cluster(setting, scheduler, history)
