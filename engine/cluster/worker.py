"""One partition worker: a long-running Dask task that reads its partition of the log, runs the
stream's pipeline and operators (the embedded `Stream`, unchanged) and commits to Delta.

It claims the partition (a new epoch in Redis), resumes from the position its last Delta commit
recorded (the app transaction), rebuilds its windows from the stored rows, then reads on. When
Dask reruns it after its worker process died, the same steps make it resume exactly where the
history ends: entries after the committed seq are read again, nothing before it is.

Between batches it also looks for a request to re-run the stored history through a version (backfill.py):
the re-run is a Dask task of its own, and the worker swaps the rebuilt state in at a batch boundary.
"""
from __future__ import annotations

import atexit
import json
import logging
import threading
import time

from ..errors import UserError
from ..schema import Schema
from ..stream import Stream
from .backfill import PartitionBackfill
from .config import connect
from .delta_store import DeltaStore, Fenced
from .pipelines import Versions, model_key
from .redis_log import PartitionLog, log_key
from .redis_snapshots import RedisSnapshots, owners_key, tasks_key

log = logging.getLogger("rivulet")
PUBLISH_EVERY = 0.05        # seconds between provisional parts at most (each is a write Redis fsyncs)
READ_ENTRIES = 32           # log entries read at once; those waiting together are processed as one batch
IDLE_LOOK = 1.0             # seconds between looks at the claim while the log is idle
COMPACT_EVERY = 300.0       # seconds between compactions of the partition's Delta files (config: compact_every)
VACUUM_HOURS = 1            # compacted-away files older than this are deleted (config: vacuum_hours)
EXIT_WAIT = 10.0            # seconds an exiting process waits for its partition loops to stop


class _Running:
    """The partition and producer loops running in this process. A Dask worker process that exits (its
    cluster closes while streams run, as a dashboard on `local` does) first stops them, so none is inside
    delta-rs or Redis while the interpreter finalises: a thread still in delta-rs then can crash the
    process (a segfault in deltalake's library, seen in dmesg)."""

    def __init__(self):
        self.stopping = threading.Event()
        self.loops = 0
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.hooked = False

    def __enter__(self) -> "_Running":
        with self.lock:
            if not self.hooked:
                atexit.register(self.stop_all)
                self.hooked = True
            self.loops += 1
        return self

    def __exit__(self, *exc) -> None:
        with self.lock:
            self.loops -= 1
            self.idle.notify_all()

    def stop_all(self, timeout: float = EXIT_WAIT) -> None:
        self.stopping.set()
        with self.lock:
            self.idle.wait_for(lambda: self.loops == 0, timeout)


RUNNING = _Running()


def claim(redis, stream: str, part: str, task: str | None = None) -> int | None:
    """A new epoch for a part of the stream (`p0`, `producer`): from now on only its claimer may
    publish or commit it. Claiming every part is also how a stream is stopped (engine.py).

    None for a task that is not the one the engine runs for the part now (`task`, its Dask key): Dask
    computes a finished task again when the worker holding its result dies, and such an old task would
    otherwise claim the part from its successor and fence it."""
    if task is not None and redis.hget(tasks_key(stream), part) != task.encode():
        return None
    return int(redis.hincrby(owners_key(stream), part, 1))


def owns(redis, stream: str, part: str, epoch: int) -> bool:
    return int(redis.hget(owners_key(stream), part) or 0) == epoch


def run_partition(cluster: dict, stream: str, partition: int, config: dict, stop_when_done: bool = True,
                  task: str | None = None) -> dict:
    """Read, process and commit one partition until the producer's last entry is committed (a replay)
    or forever (a tail). Returns what it did, or {"fenced": True} when another worker took over."""
    _leave_worker_pool()
    r = connect(cluster["log"])
    epoch = claim(r, stream, f"p{partition}", task)
    if epoch is None:
        return {"partition": partition, "fenced": False, "stale": True}

    def still_owner() -> bool:
        return owns(r, stream, f"p{partition}", epoch)

    store = DeltaStore(cluster["history"], stream, partition, config, epoch, still_owner)
    versions = Versions(r, stream)
    saved = store.saved or {}
    # the version this partition last committed with (the entries after it say which come next)
    config = {**config, "pipeline": saved.get("pipeline", 0), "pipeline_from": saved.get("pipeline_from", 0),
              "backfilled": saved.get("backfilled", 0), "pipelines": versions.all()}
    store.config = config
    source = PartitionLog(r, stream, partition, Schema.from_json(config["schema"]), config.get("time_column"),
                          store.offsets(partition).get("log"), count=READ_ENTRIES)
    snaps = RedisSnapshots(r, partition, epoch, lambda: {"read": source.seq, "committed": store.seq,
                                                          "newest": _newest(s), **_live(s)})
    s = Stream(partition, stream, config, source, store, snaps)
    models = DeployedModels(r, stream)
    upkeep = Upkeep(r, stream, partition, store, config, lambda: s.counters.next_rid)
    backfill = PartitionBackfill(r, cluster, stream, partition, store, versions)
    with RUNNING:
        return _run(s, source, store, snaps, upkeep, versions, models, backfill, still_owner, stream, partition,
                    epoch, stop_when_done)


def _run(s, source, store, snaps, upkeep, versions, models, backfill, still_owner, stream, partition, epoch,
         stop_when_done) -> dict:
    try:
        s.restore()
        _see(s, source.newest)
        snaps.publish_buckets(stream)
        published, dirty, looked = time.time(), False, time.monotonic()

        def committed() -> None:
            # the buckets of the last part published, then upkeep; the part saying what is committed now goes
            # with the next batch's publication, or at once when idle (a part a commit costs 5-8 ms of CPU)
            nonlocal dirty
            dirty = True
            snaps.publish_buckets(stream)
            upkeep.after_commit()
        while True:
            if RUNNING.stopping.is_set():       # the process exits: stop between batches; not fenced: the
                # engine runs the partition again, which re-reads what was not committed
                log.warning("partition %s of %s stopped: its process exits", partition, stream)
                return {"partition": partition, "fenced": False, "exited": True, "epoch": epoch, "seq": store.seq}
            batch = source.next_batch()
            if backfill.look(s, batch is None, source.done):     # rebuilt state swapped in (and committed)
                _see(s, source.newest)
                s.publish()
                snaps.publish_buckets(stream)
            if batch is None:
                if dirty:                   # idle: show what the last batches did
                    s.publish()
                    published, dirty = time.time(), False
                # idle: commit when due (about once a second, as when busy: a commit costs a Parquet file and
                # the buckets' publication), or at once when the finite source has been read to its end
                if (store.due() or source.done) and store.flush():
                    committed()
                if time.monotonic() - looked >= IDLE_LOOK:      # a stopped stream claims every part
                    looked = time.monotonic()
                    if not still_owner():
                        raise Fenced(f"partition {partition} of {stream} was claimed by another worker")
                if stop_when_done and source.done and store.seq >= source.seq and not backfill.pending:
                    break
                continue
            _follow(s, versions, models, batch.position)
            s.commit(s.prepare(batch))      # buffered for the history; visible at the next publish
            _see(s, batch.position.get("newest"))
            dirty = True
            if time.time() - published >= PUBLISH_EVERY:
                s.publish()
                published, dirty = time.time(), False
            if store.due() and store.flush():      # after the publish: a Delta commit never delays one
                committed()
        store.flush()
        s.publish()
        snaps.publish_buckets(stream)
    except Fenced as e:
        log.warning("%s", e)
        return {"partition": partition, "fenced": True, "epoch": epoch, "seq": store.seq, "reason": str(e)}
    return {"partition": partition, "fenced": False, "epoch": epoch, "seq": store.seq,
            "rows": s.counters.next_rid, "commits": store.commits, "compactions": upkeep.compactions,
            "pruned": upkeep.pruned}


class Upkeep:
    """What keeps a partition's storage bounded: its Redis log trimmed below the committed seq after each
    commit (a rerun re-reads from there; a re-sent entry below is still refused by id), and on a schedule
    its rows beyond the stream's retention (rows, and age when set) deleted and its Delta files compacted."""

    def __init__(self, redis, stream: str, partition: int, store: DeltaStore, config: dict, next_rid=None):
        self.redis, self.key, self.store = redis, log_key(stream, partition), store
        self.next_rid = next_rid or (lambda: 0)
        self.keep_rows = config.get("retention_rows")
        self.keep_seconds = config.get("retention_seconds")
        self.partitions = int(config.get("partitions") or 1)
        self.pruned = 0
        self.every = float(config.get("compact_every", COMPACT_EVERY))
        self.vacuum = config.get("vacuum_hours", VACUUM_HOURS) if partition == 0 else None
        self.compacted = time.monotonic()
        self.compactions = 0

    def after_commit(self) -> None:
        self.redis.xtrim(self.key, minid=f"{self.store.seq}-0")
        if time.monotonic() - self.compacted >= self.every:
            self.compacted = time.monotonic()
            try:
                self.pruned += self.store.retain(self.next_rid(), self.keep_rows, self.partitions, self.keep_seconds)
                self.store.compact(self.vacuum)
                self.compactions += 1
            except Fenced:
                raise
            except Exception as e:     # a compaction that lost a race is retried next time; rows are safe
                log.warning("compacting %s failed: %s", self.key, e)


def _follow(s: Stream, versions: Versions, models: "DeployedModels", position: dict) -> None:
    """Switch to the pipeline version and the model the batch's entry was stamped with (pipelines.py)."""
    version = int(position.get("pipeline") or 0)
    if version != s.pipeline.version:
        first = s.counters.next_rid == 0 and s.counters.replayed == 0
        s.switch(versions.pipeline(version))
        if first:                   # a spec given at start: every row went through it, as embedded
            s.pipeline_from = version
            s._save_config(pipeline_from=version)
    model = position.get("model") or ""
    if model != models.current:      # (a model that failed stays off until another is deployed)
        models.current = model
        s.deployment, s.deploy_error = models.load(model, s)


class DeployedModels:
    """The models deployed on the stream, loaded from Redis once each (pipelines.model_key)."""

    def __init__(self, redis, stream: str):
        self.redis, self.stream = redis, stream
        self.current = ""           # the model id last stamped on this partition's entries

    def load(self, model_id: str, s: Stream):
        """(Deployment or None, error or None) for `model_id` ('' = none) on the stream's current columns."""
        if not model_id:
            return None, None
        from ..models.data import column_kinds
        from ..models.deploy import Deployment
        from ..models.safe import loads
        raw = self.redis.hgetall(model_key(self.stream, model_id))
        try:
            if not raw:
                raise UserError(f"model {model_id} is not in the cluster's catalogue")
            d = Deployment(model_id, json.loads(raw[b"card"]), loads(raw[b"model"], f"model {model_id}"))
            if s.operators is not None:
                d.check(column_kinds(s.operators.schema.empty_table()))
            return d, None
        except UserError as e:
            log.warning("model %s not deployed on %s: %s", model_id, self.stream, e)
            return None, str(e)


def _live(s: Stream) -> dict:
    """The deployed model's score curve and drift rows for the part (the merged status shows partition 0's)."""
    d = s.deployment
    if d is None:
        return {}
    m = d.metrics
    return {"curve": [list(c) for c in m.curve], "drift_rows": list(m.drifts[-100:]), "window_size": m.window}


def _see(s: Stream, newest: float | None) -> None:
    """Time windows of every partition end at the stream's newest event time, not their own."""
    ops = s.operators
    if ops is not None and newest is not None and ops.recent.clock == "event":
        ops.recent.newest = max(ops.recent.newest, float(newest))


def _newest(s: Stream) -> float | None:
    ops = s.operators
    return float(ops.recent.newest) if ops is not None and ops.recent.newest > float("-inf") else None


def _leave_worker_pool() -> None:
    """A partition task runs for the stream's life: it leaves Dask's thread pool so the worker can run
    other partitions and jobs beside it."""
    try:
        from distributed import secede
        secede()
    except (ImportError, ValueError):        # not inside a Dask worker (a test calls it directly)
        pass
