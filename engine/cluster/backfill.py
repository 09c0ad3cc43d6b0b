"""Re-running a cluster stream's stored history through a pipeline version (the embedded prep/backfill.py,
over Delta and Dask).

The dashboard asks (`ask`): a request {id, version} in the stream's control hash, beside the version it
runs. Each partition worker owns its state, so each does its own hand-over (`PartitionBackfill`, looked at
between batches): it commits what it buffered, notes its cut (`upto`: the rows it stored so far) and maps a
`rebuild` task over its stored history on Dask while it goes on with new entries. The task re-runs the
partition's rows below the cut, oldest first and in chunks, through the version into fresh operators: the
cumulative `Moments`, windows, buckets and group-by, and the running preprocessing state. When every
partition's task is done (all or none), the worker (at a batch boundary) commits again, feeds the rebuilt state the rows stored since the cut and
swaps it in (`Stream.install`, as embedded), then commits the rebuilt cumulative state with the id of the
request it applied. So every stored row is counted once: those below the cut by the task, the rest at the
swap, none by the old state. The merged snapshot combines the partitions' rebuilt parts as it combines
any (redis_snapshots).

A worker that dies mid-way is rerun by Dask and starts the request again (its last commit says which it
applied). Progress, cancel and errors go through a Redis hash (`status_key`); `ClusterBackfill` is what
the dashboard's `backfill_status` reads.
"""
from __future__ import annotations

import json
import logging
import threading
import time

from ..errors import UserError
from ..prep.backfill import Cancelled, rerun
from .config import connect
from .delta_store import DeltaStore, Fenced
from .pipelines import Versions, control_key

log = logging.getLogger("rivulet")
LOOK_EVERY = 0.2        # seconds between a worker's looks at the request (between batches)
GRACE = 2.0             # seconds after a worker first saw a request before an idle one runs its version
                        # itself: entries the producer stamped before the request (it looks every 0.2 s) are in


def counter_key(stream: str) -> str:
    return f"rivulet:{stream}:backfills"


def status_key(stream: str) -> str:
    """Per partition `p{n}`: the request it works on and its state; `p{n}:rows`: the task's progress;
    `cancel`: the id of the newest request cancelled."""
    return f"rivulet:{stream}:backfill"


def ask(redis, stream: str, version: int) -> dict:
    """Run `version` and re-run the stored history through it: a request with an id above every earlier one."""
    request = {"id": int(redis.incr(counter_key(stream))), "version": int(version)}
    redis.hset(control_key(stream), mapping={"pipeline": int(version), "backfill": json.dumps(request)})
    return request


def requested(redis, stream: str) -> dict | None:
    raw = redis.hget(control_key(stream), "backfill")
    return json.loads(raw) if raw else None


def pending(redis, stream: str, partitions: int) -> bool:
    """A request some partition has not finished (a replay whose tasks ended runs them again for it)."""
    request = requested(redis, stream)
    if request is None:
        return False
    parts = _parts(redis, stream, partitions)
    return any(p is None or p["id"] < request["id"] or p["state"] in ("running", "ready") for p in parts)


def _parts(redis, stream: str, partitions: int) -> list[dict | None]:
    raw = redis.hmget(status_key(stream), [f"p{p}" for p in range(partitions)])
    return [json.loads(v) if v else None for v in raw]


class ClusterBackfill:
    """A request as the dashboard sees it: `status()` (as embedded Backfill's), `cancel()`, `wait()`."""

    def __init__(self, redis, stream: str, partitions: int, request: dict):
        self.redis, self.stream, self.partitions = redis, stream, partitions
        self.id, self.version = request["id"], request["version"]
        self.started = time.monotonic()
        self.finished: float | None = None

    @property
    def state(self) -> str:
        return self.status()["state"]

    def status(self) -> dict:
        parts = _parts(self.redis, self.stream, self.partitions)
        mine = [p if p is not None and p["id"] == self.id else None for p in parts]
        newer = any(p is not None and p["id"] > self.id for p in parts)
        states = [p["state"] if p and p["state"] != "ready" else "running" for p in mine]
        if newer or "superseded" in states:
            state = "superseded"
        else:
            state = next((s for s in ("failed", "cancelled") if s in states), None) or \
                ("done" if all(s == "done" for s in states) else "running")
        progress = self.redis.hmget(status_key(self.stream), [f"p{p}:rows" for p in range(self.partitions)])
        counts = [json.loads(v) if v else None for v in progress]
        rows = total = 0
        for p, c in zip(mine, counts):
            if p is not None and p["state"] != "running":
                rows, total = rows + p["rows"], total + p["total"]
            elif c is not None and c["id"] == self.id:
                rows, total = rows + c["rows"], total + c["total"]
        if state != "running" and self.finished is None:
            self.finished = time.monotonic()
        total = max(total, rows)
        error = next((p["error"] for p in mine if p is not None and p.get("error")), None)
        return {"state": state, "version": self.version, "rows": rows, "total": total,
                "progress": 1.0 if state == "done" else (rows / total if total else 0.0),
                "seconds": round((self.finished or time.monotonic()) - self.started, 3), "error": error,
                "partitions": states, "workers": [p.get("worker", "") if p else "" for p in mine]}

    def cancel(self) -> None:
        self.redis.hset(status_key(self.stream), "cancel", self.id)

    def wait(self, timeout: float | None = None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (status := self.status())["state"] == "running":
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return status


class _Cancel:
    """What `rerun` asks between chunks: whether the request was cancelled (one look at Redis a chunk)."""

    def __init__(self, redis, stream: str, request_id: int):
        self.redis, self.stream, self.id = redis, stream, request_id

    def is_set(self) -> bool:
        return int(self.redis.hget(status_key(self.stream), "cancel") or 0) >= self.id


def rebuild(cluster: dict, stream: str, partition: int, config: dict, pipeline, ops, upto: int, window_from: int,
            request_id: int):
    """The Dask task: the partition's stored rows below `upto` through `pipeline` into `ops` (fresh operators).
    Returns (runner, ops, the rid to go on from)."""
    r = connect(cluster["log"])
    store = DeltaStore(cluster["history"], stream, partition, config)
    runner = pipeline.runner()
    field = f"p{partition}:rows"
    done = {"id": request_id, "rows": 0, "total": store.count(partition)}
    r.hset(status_key(stream), field, json.dumps(done))

    def progress(n: int) -> None:
        done["rows"] += n
        r.hset(status_key(stream), field, json.dumps(done))
    rid = rerun(store, partition, runner, ops, 0, upto, window_from, progress=progress,
                cancelled=_Cancel(r, stream, request_id))
    return runner, ops, rid, {**done, "worker": _where()}


def _where() -> str:
    """The Dask worker running this task ("" outside one)."""
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return ""


class _Handle:
    """What `Stream.install` asks of a backfill: its version, a progress counter and a cancel flag."""

    def __init__(self, version: int, rows: int):
        self.version, self.rows = version, rows
        self.cancelled = threading.Event()

    def _progress(self, n: int) -> None:
        self.rows += n


class PartitionBackfill:
    """A partition worker's side: start the request it has not applied, hand over the rebuilt state."""

    def __init__(self, redis, cluster: dict, stream: str, partition: int, store, versions: Versions):
        self.redis, self.cluster, self.stream, self.partition = redis, cluster, stream, partition
        self.store, self.versions = store, versions
        self.applied = int((store.saved or {}).get("backfilled") or 0)
        self.request: dict | None = None      # the newest request seen and not applied
        self.job = None                       # (request id, future, when first seen, upto)
        self.looked = 0.0
        self.ready = 0                        # the request this partition last said it is ready to swap for

    @property
    def pending(self) -> bool:
        return self.request is not None

    def look(self, s, idle: bool, ended: bool = False) -> bool:
        """Between batches: start, follow or finish the newest request; True when rebuilt state was swapped in.
        `idle`: no entry is waiting; `ended`: the producer sent its last entry (a replay that ended)."""
        if time.monotonic() - self.looked < LOOK_EVERY:
            return False
        self.looked = time.monotonic()
        request = requested(self.redis, self.stream)
        if request is None or request["id"] <= self.applied:
            self.request = None
            return False
        self.request = request
        try:
            return self._step(s, request, idle, ended)
        except Fenced:
            raise
        except Exception as e:              # the live state stays as it was; the stream goes on
            log.warning("backfill of %s p%d failed: %s", self.stream, self.partition, e)
            self._drop()
            return self._finish("failed", str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}")

    def _step(self, s, request: dict, idle: bool, ended: bool) -> bool:
        if self.job is not None and self.job[0] != request["id"]:
            self._drop()                      # a newer request: the older one's work is of no use
        if int(self.redis.hget(status_key(self.stream), "cancel") or 0) >= request["id"]:
            self._drop()
            return self._finish("cancelled")
        if int(self.redis.hget(control_key(self.stream), "pipeline") or 0) != request["version"]:
            self._drop()                      # another version was applied since, without a re-run
            return self._finish("superseded")
        if self.job is None:
            self._start(s, request)
            return False
        future = self.job[1]
        if not future.done():
            return False
        return self._hand_over(s, request, future, idle, ended)

    def _start(self, s, request: dict) -> None:
        pipeline = self.versions.pipeline(request["version"])
        ops = s.operators_for(pipeline)
        self.store.flush()                    # the rows below the cut are in Delta for the task
        upto = s.counters.next_rid
        self._status(request, "running")
        future = _submit(rebuild, self.cluster, self.stream, self.partition, dict(self.store.config), pipeline, ops,
                         upto, s.counters.window_from, request["id"],
                         key=f"rivulet-backfill-{self.stream}-p{self.partition}-{request['id']}-{time.time_ns()}")
        self.job = (request["id"], future, time.monotonic(), upto)
        log.info("backfill %s of %s p%d: %d rows to re-run on the cluster", request["id"], self.stream,
                 self.partition, upto)

    def _hand_over(self, s, request: dict, future, idle: bool, ended: bool) -> bool:
        try:
            runner, ops, rid, done = future.result()
        except Cancelled:
            self.job = None
            return self._finish("cancelled")
        # all or none: a partition swaps once every partition's task is done, so a failed one leaves every
        # partition's state as it was
        if self.ready != request["id"]:
            self._status(request, "ready", rows=done["rows"], total=done["total"], worker=done["worker"])
            self.ready = request["id"]
        parts = _parts(self.redis, self.stream, int(self.store.config.get("partitions") or 1))
        mine = [p if p is not None and p["id"] == request["id"] else None for p in parts]
        failed = next(((k, p) for k, p in enumerate(mine) if p is not None and p["state"] in ("failed", "cancelled")),
                      None)
        if failed is not None:
            self.job = None
            k, p = failed
            return self._finish(p["state"], p["error"] and f"partition {k}: {p['error']}")
        if not all(p is not None and p["state"] in ("ready", "done") for p in mine):
            return False
        if s.pipeline.version != request["version"]:
            # the entries stamped with the version switch this partition; one that gets none (a replay that
            # ended, a paused or idle stream) runs it itself once older-stamped entries cannot still come
            if not idle or not ended and time.monotonic() - self.job[2] < GRACE:
                return False
            s.switch(self.versions.pipeline(request["version"]))
        self.store.flush()                    # the rows since the cut are in Delta for the catch-up
        handle = _Handle(request["version"], done["rows"])
        if not s.install(handle, runner, ops, rid):
            self.job = None
            return self._finish("superseded")
        self.applied = request["id"]
        s._save_config(backfilled=request["id"])
        self.store.save({**s.counters.__dict__, "cumulative": s.operators.cumulative.to_bytes()})
        self.job = None
        self._finish("done", rows=handle.rows, total=handle.rows, worker=done["worker"])
        return True

    def _drop(self) -> None:
        if self.job is not None:
            self.job[1].cancel()
            self.job = None

    def _finish(self, state: str, error: str | None = None, rows: int = 0, total: int = 0, worker: str = "") -> bool:
        """A final state for the request; the partition applies it once (cancelled, failed or superseded too)."""
        request = self.request
        if state != "done":
            self.applied = request["id"]      # not retried in this run (a rerun after a crash tries again)
        self._status(request, state, error, rows, total, worker)
        self.request = None
        return state == "done"

    def _status(self, request: dict, state: str, error: str | None = None, rows: int = 0, total: int = 0,
                worker: str = "") -> None:
        self.redis.hset(status_key(self.stream), f"p{self.partition}", json.dumps(
            {"id": request["id"], "version": request["version"], "state": state, "rows": rows, "total": total,
             "error": error, "worker": worker}))


def _submit(fn, *args, key: str):
    """On the cluster the task runs beside the stream's (Dask reruns it if its worker dies); outside a Dask
    worker (a test calling the partition loop directly) on a thread."""
    try:
        from distributed import get_client
        client = get_client()
    except (ImportError, ValueError):
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(1, thread_name_prefix="rivulet-backfill")
        future = pool.submit(fn, *args)
        pool.shutdown(wait=False)
        return future
    return client.submit(fn, *args, pure=False, key=key)
