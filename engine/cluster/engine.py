"""The Engine of a dashboard (or a command) whose streams run on the cluster: `RIVULET_CLUSTER`.

It is the embedded `Engine` with the cluster's seams plugged in: the catalogue and history
(`catalog.ClusterStore`: Redis and Delta), snapshots merged from Redis (`ClusterSnapshots`) and jobs
whose folds run on Dask (`dask_compute.DaskCompute`). What it does not do is run a stream: each
stream is a producer task (producer.py: reads the source, parses, sends to the log) and one task per
partition (worker.py) on Dask. This process keeps only a thin `Stream` per name whose Log is a
handle (`RemoteLog`) on those tasks, so it holds no stream state and several dashboards can serve the
same cluster.

Preprocessing versions and deployed models reach the partition workers through Redis, stamped on the
log's entries by the producer (pipelines.py), so every partition switches at the same batch.

Seek and loop reach the producer the same way (a request in the control hash); the replay source's
stored byte spans travel in the log, so rows played again are flagged as replayed and never stored twice.
A replay whose tasks had ended is run again when a seek or loop asks for more (`_watch`).

Re-running stored history through a version (backfill) is a request in the control hash too: each partition
worker maps a task over its stored rows on Dask and swaps the rebuilt state in at a batch boundary
(backfill.py); a replay whose tasks had ended runs them again for it.

Not built on the cluster yet, refused in one line: an online learner.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from contextlib import contextmanager

from ..errors import UserError
from ..ingest.logs import open_log
from ..runtime import Engine, default_data_dir
from ..schema import Schema
from ..stream import Stream
from .backfill import ClusterBackfill, ask, pending
from .catalog import ClusterStore
from .config import open_cluster
from .dask_compute import DaskCompute
from .delta_store import create_tables
from .history import RecentChunks
from .pipelines import Versions, control_key, model_key
from .producer import run_producer, source_key, seeks_key
from .redis_log import end_key
from .redis_snapshots import RedisSnapshots, owners_key, tasks_key
from .worker import run_partition

log = logging.getLogger("rivulet")
WATCH_EVERY = 1.0           # seconds between looks at the streams' tasks
RESULT_WAIT = 10.0          # seconds to fetch a finished task's small result
PROBE_SECONDS = 3.0         # a new tail's first read, for its columns (the producer reads it again)
STOP_TIMEOUT = 30.0         # seconds a removed stream's tasks get to notice they no longer own it
NOT_ON_CLUSTER = "{what} is not available for a stream that runs on the cluster yet"


class RemoteLog:
    """The Log seam as this process sees a stream on the cluster: the producer task reads the source;
    this handle passes pause, resume and speed to it through Redis and reads back its status."""

    max_inflight = None

    def __init__(self, redis, stream: str, config: dict, schema: Schema):
        self.redis = redis
        self.stream = stream
        self.kind = config["source"]
        self.schema = schema
        self.time_column = config.get("time_column")
        self.paused = bool(config.get("paused"))
        self.ended = False               # set by the engine once every task of a finite stream finished

    def next_batch(self):
        return None                      # batches go to the partitions, never through here

    def position(self) -> dict:
        return {}

    @property
    def done(self) -> bool:
        return self.ended

    def status(self) -> dict:
        raw = self.redis.get(source_key(self.stream))
        return {**(json.loads(raw) if raw else {"state": "starting"}), "kind": self.kind}

    def pause(self) -> None:
        self.redis.hset(control_key(self.stream), "paused", "1")
        self.paused = True

    def resume(self) -> None:
        self.redis.hset(control_key(self.stream), "paused", "0")
        self.paused = False

    def set_speed(self, speed) -> None:
        if speed.mode == "realtime" and self.time_column is None:
            from ..ingest.replay import NEEDS_TIME
            raise UserError(NEEDS_TIME)
        self.redis.hset(control_key(self.stream), "speed", json.dumps({"mode": speed.mode, "value": speed.value}))

    def set_loop(self, loop: bool) -> None:
        self.redis.hset(control_key(self.stream), "loop", "1" if loop else "0")

    def seek(self, row: int | None = None, at: float | None = None) -> None:
        """A seek request for the producer, with an id above every earlier one (it applies each once)."""
        if row is not None and row < 0:
            raise UserError("row must be 0 or more")
        if at is not None and self.time_column is None:
            raise UserError("seeking to a time needs a time column; this stream has none")
        request = {"id": int(self.redis.incr(seeks_key(self.stream))), "row": row, "at": at}
        self.redis.hset(control_key(self.stream), "seek", json.dumps(request))

    def close(self) -> None:
        pass


class ClusterSnapshots(RedisSnapshots):
    """The partitions' parts merged (RedisSnapshots), with the producer's status as the source and the
    newest stored rows (read from Delta on first use) for the views of other windows."""

    def __init__(self, redis, store: ClusterStore, errors: dict[str, str]):
        super().__init__(redis)
        self.store = store
        self.errors = errors             # stream -> why its tasks stopped (the engine's watcher)

    def latest(self, stream: str):
        snap = super().latest(stream)
        if snap is None:
            return None
        history = self.store.history_of(stream)
        chunks = RecentChunks(lambda: history.recent(snap.schema, snap.columns, snap.time_column)) \
            if history is not None and snap.columns else ()
        raw = self.redis.get(source_key(stream))
        producer = json.loads(raw) if raw else {}
        merged = snap.source
        state = producer.get("state") if producer.get("state") in ("paused", "error") else snap.state
        error = self.errors.get(stream) or snap.error or producer.get("last_error")
        return dataclasses.replace(
            snap, chunks=chunks, state="error" if error else state, error=error,
            pipeline_error=snap.pipeline_error or producer.get("pipeline_error"),
            source={**producer, "state": state, "rows_per_s": merged["rows_per_s"], "lag_s": merged["lag_s"],
                    "partitions": merged["partitions"], "read_rows_per_s": producer.get("rows_per_s", 0.0)})


class RemoteDeployment:
    """A model the partition workers run, as the dashboard sees it: its live status is the merged snapshot's
    (redis_snapshots.merged_model), its model and card the ones deployed."""

    learner = None

    def __init__(self, engine: "ClusterEngine", stream: str, deployment):
        self.engine, self.stream, self.local = engine, stream, deployment
        self.model_id, self.card, self.model = deployment.model_id, deployment.card, deployment.model

    def _merged(self) -> dict:
        snap = self.engine.published.latest(self.stream)
        model = snap.model if snap is not None else None
        return model if model and model.get("model_id") == self.model_id else {}

    def status(self) -> dict:
        merged = self._merged()
        base = self.local.status()
        return {**base, **{k: v for k, v in merged.items() if k in base}} if merged else base

    @property
    def metrics(self):
        import types
        merged = self._merged()
        return types.SimpleNamespace(curve=tuple(tuple(c) for c in merged.get("curve", ())),
                                     drifts=list(merged.get("drift_rows", [])),
                                     window=merged.get("window_size", self.local.metrics.window))


def release(futures) -> None:
    """Let Dask forget tasks we no longer watch: a finished task whose result is still wanted is computed
    again when its worker dies (an old task computed again is refused its part: worker.claim)."""
    for f in futures:
        f.release()


class ClusterEngine(Engine):
    on_cluster = True            # add_replay and add_tail take `partitions` and `partition_key`
    refused = {
        "online": "The online learner is not available on the cluster yet; deploy a trained model instead.",
    }

    def __init__(self, setting: str, data_dir: str | None = None, demo: bool = False, partitions: int = 1,
                 workers: int = 2):
        from distributed import Client
        data_dir = os.path.abspath(data_dir or default_data_dir())
        self.partitions = partitions
        self.tasks: dict[str, dict] = {}          # stream -> {"producer": future, 0: future, ...}
        self.errors: dict[str, str] = {}
        self.watcher = None
        self._spread: dict = {}                  # partitions and key for the stream being added (add_replay)
        self._servers = open_cluster(setting, data_dir, workers, own_process=True)
        self.cluster = self._servers.__enter__()
        try:
            self.client = Client(self.cluster.scheduler, timeout=30)
            redis = self.cluster.redis()
            store = ClusterStore(redis, self.cluster.history, data_dir)
            super().__init__(data_dir, demo, store=store, compute=DaskCompute(self.cluster.scheduler),
                             snapshots=ClusterSnapshots(redis, store, self.errors))
        except BaseException:
            self._stop_servers()
            raise
        self.watcher = threading.Thread(target=self._watch, name="rivulet-cluster-watch", daemon=True)
        self.watcher.start()

    # --- running a stream: tasks on the cluster, a handle here --------------------------------
    def add_replay(self, path: str, *args, partitions: int | None = None, partition_key: str | None = None,
                   **kw) -> str:
        """As the embedded engine's, spread over `partitions` (default: the engine's) round-robin or, with
        `partition_key`, by the hash of that column's value."""
        if partition_key:
            from ..ingest.replay import ReplaySource
            probe = ReplaySource(path)
            probe.close()
            if probe.schema is not None and partition_key not in probe.schema:
                raise UserError(f"partition key {partition_key!r} is not a column of the file; columns: "
                                f"{', '.join(probe.schema.names)}")
        with self._spreading(partitions, partition_key):
            return super().add_replay(path, *args, **kw)

    def add_tail(self, pattern: str, *args, partitions: int | None = None, partition_key: str | None = None,
                 **kw) -> str:
        with self._spreading(partitions, partition_key):
            return super().add_tail(pattern, *args, **kw)

    @contextmanager
    def _spreading(self, partitions: int | None, partition_key: str | None):
        """Hold the engine lock with the spread that `_start` gives the stream being added."""
        with self.lock:
            self._spread = {"partitions": partitions, "partition_key": partition_key or None}
            try:
                yield
            finally:
                self._spread = {}

    def _start(self, sid: int, name: str, config: dict, schema, source=None) -> None:
        probe = source or open_log(config, {}, schema)
        try:
            deadline = time.monotonic() + PROBE_SECONDS
            while probe.schema is None and probe.kind == "tail" and time.monotonic() < deadline:
                probe.next_batch()           # a tail learns its columns from the first rows it reads
                time.sleep(0.02)
            if probe.schema is None:
                raise UserError(f"{config.get('path') or name} has no columns yet; on the cluster a stream starts "
                                f"once its first line (the header) is there")
            if "partitions" not in config:          # a new stream (a resumed one keeps how it was spread)
                key = self._spread.get("partition_key")
                if key is not None and key not in probe.schema:
                    raise UserError(f"partition key {key!r} is not a column of {name}; columns: "
                                    f"{', '.join(probe.schema.names)}")
                config.update(partitions=int(self._spread.get("partitions") or self.partitions), partition_key=key)
            config.update(schema=probe.schema.to_json(), time_column=probe.time_column)
            schema = probe.schema
        finally:
            probe.close()
        self.store.update_config(sid, config)
        self.store.set_schema(sid, schema)
        create_tables(self.cluster.history, name, schema)
        handle = RemoteLog(self.cluster.redis(), name, config, schema)
        if config.get("paused"):
            handle.pause()
        if config["source"] == "replay":
            handle.set_loop(bool(config.get("loop")))
        stream = Stream(sid, name, config, handle, self.store, self.published)
        stream.restored = True
        self.streams[name] = stream
        self.tasks[name] = {part: self._submit(name, config, part)
                            for part in ["producer", *range(config["partitions"])]}

    def _submit(self, name: str, config: dict, part):
        finite = config["source"] == "replay"
        key = f"rivulet-{name}-{part}-{time.time_ns()}"
        self.cluster.redis().hset(tasks_key(name), "producer" if part == "producer" else f"p{part}", key)
        if part == "producer":
            return self.client.submit(run_producer, self.cluster.to_json(), name, config, finite, task=key,
                                      pure=False, key=key)
        return self.client.submit(run_partition, self.cluster.to_json(), name, part, config, finite, task=key,
                                  pure=False, key=key)

    def _watch(self) -> None:
        """Look at every stream's tasks each WATCH_EVERY seconds, until the engine closes."""
        while not self.stopping.wait(WATCH_EVERY):
            for name, parts in list(self.tasks.items()):
                s = self.streams.get(name)
                if s is None:
                    continue
                try:
                    self._look(name, s, parts)
                except OSError as e:
                    # a finished task's result went with its worker (kill -9) as we fetched it: Dask computes
                    # it again, so look again next time; the watcher itself must not die of it
                    log.info("cluster: %s: a task's result was lost (%s); looking again", name, e)
                except Exception:
                    log.exception("cluster: watching %s failed; looking again", name)

    def _look(self, name: str, s: Stream, parts: dict) -> None:
        """Run a task again when Dask gave up on it; a task that failed otherwise is the stream's error."""
        from distributed.scheduler import KilledWorker
        for part, f in list(parts.items()):
            if f.status == "error":
                e = f.exception()
                if isinstance(e, KilledWorker):
                    self._resubmit(name, s, parts, part)
                else:
                    self.errors[name] = f"{type(e).__name__}: {e}" if not isinstance(e, UserError) else str(e)
            elif f.status == "finished":
                result = f.result(timeout=RESULT_WAIT)
                if result.get("exited"):             # its worker process shut down: run it on another
                    self._resubmit(name, s, parts, part)
                elif result.get("fenced"):
                    self.errors[name] = ("another dashboard or command took this stream over"
                                         f" ({result.get('reason', part)})")
        ended = s.config["source"] == "replay" and all(f.status == "finished" for f in parts.values())
        with self.lock:             # a seek or loop asked meanwhile (seek, set_loop) is seen here
            if ended and name not in self.errors and \
                    self._asks_more(name, parts["producer"].result(timeout=RESULT_WAIT)):
                self._run_again(name, s)
            else:
                s.source.ended = ended

    def _asks_more(self, name: str, producer: dict) -> bool:
        """A finished replay was asked to loop, or to seek after its producer's last seek."""
        control = self.store.redis.hgetall(control_key(name))
        seek = json.loads(control[b"seek"]) if b"seek" in control else None
        return control.get(b"loop") == b"1" or (seek is not None and seek["id"] > producer.get("seek", 0)) \
            or pending(self.store.redis, name, int(self.streams[name].config["partitions"]))

    def _run_again(self, name: str, s: Stream) -> None:
        """The tasks of an ended replay, started again: the producer resumes after the log's newest entry and
        applies the seek or loop; the partitions resume from their Delta commits."""
        if self.streams.get(name) is not s:
            return
        self.store.redis.delete(end_key(name))
        old = self.tasks.get(name, {})
        self.tasks[name] = {part: self._submit(name, s.config, part)
                            for part in ["producer", *range(int(s.config["partitions"]))]}
        release(old.values())
        s.source.ended = False

    def _resubmit(self, name: str, s: Stream, parts: dict, part) -> None:
        old, parts[part] = parts[part], self._submit(name, s.config, part)
        release([old])

    def _claim_all(self, name: str, partitions: int) -> None:
        """Stop a stream's tasks: every part claimed anew, so each finds it no longer owns its part."""
        redis = self.cluster.redis()
        for part in ["producer", *(f"p{p}" for p in range(partitions))]:
            redis.hincrby(owners_key(name), part, 1)

    def _stop_tasks(self, name: str) -> Stream:
        from distributed import wait
        with self.lock:
            s = self._get(name)
            s.config["removed"] = True
            self.streams.pop(name)
            parts = self.tasks.pop(name, {})
        self._claim_all(name, int(s.config.get("partitions") or 1))
        wait(list(parts.values()), timeout=STOP_TIMEOUT)
        self.errors.pop(name, None)
        return s

    def stop(self, name: str) -> dict:
        """Stop a stream's tasks and keep what they stored (a rerun resumes): its last snapshot's JSON
        with `cluster` (where it ran, each partition's committed seq)."""
        s = self._stop_tasks(name)
        snap = self.published.latest(name)
        if snap is None:
            raise UserError(f"no partition of {name} published a snapshot")
        out = snap.to_json()
        out["cluster"] = {**self.cluster.to_json(), "partitions": int(s.config["partitions"]),
                          "seq": [p["seq"] for p in snap.source["partitions"]]}
        return out

    def seek(self, name: str, row: int | None = None, at: float | None = None) -> None:
        with self.lock:
            super().seek(name, row=row, at=at)
            self._get(name).source.ended = False        # until its tasks have run again (_watch)

    def set_loop(self, name: str, loop: bool) -> None:
        with self.lock:
            super().set_loop(name, loop)
            if loop:
                self._get(name).source.ended = False

    def remove(self, name: str) -> None:
        s = self._stop_tasks(name)
        self.published.forget(name)
        self.store.delete_stream(s.id)

    def progress(self, name: str) -> dict:
        """What moved in a stream: the source's rows and bytes, each partition's read and committed seq;
        `settled` when every partition committed what it read."""
        if name in self.errors:
            raise UserError(f"stream {name!r} stopped: {self.errors[name]}")
        s = self._get(name)
        src, snap = s.source.status(), self.published.latest(name)
        parts = [(p["read"], p["seq"]) for p in snap.source["partitions"]] if snap is not None else []
        return {"rows": src.get("rows"), "bytes": src.get("bytes"), "parts": parts,
                "settled": len(parts) == int(s.config["partitions"]) and all(r == c for r, c in parts)}

    def wait(self, name: str, timeout: float | None = None):
        """Block until a replay's tasks have all finished (every row committed); its merged snapshot."""
        s = self._get(name)
        if s.config["source"] != "replay":
            raise UserError(f"stream {name!r} is not a replay; it never ends")
        deadline = None if timeout is None else time.monotonic() + timeout
        while not s.source.ended:
            if name in self.errors:
                raise UserError(f"stream {name!r} stopped: {self.errors[name]}")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"stream {name!r} still running after {timeout}s")
            time.sleep(0.05)
        return self.snapshot(name)

    def health(self) -> dict:
        """As the embedded engine's, with the tasks on the cluster in place of threads."""
        running = sum(1 for name, parts in list(self.tasks.items())
                      if name not in self.errors and all(f.status in ("pending", "finished") for f in parts.values()))
        return {**super().health(), "writer_alive": self.client.status == "running", "ingest_alive": running,
                "queue_depth": 0, "cluster": self.cluster.to_json()}

    # --- preprocessing: versions in Redis, stamped on the log by the producer -------------------
    def pipeline(self, name: str) -> dict:
        """The version the producer stamps on new batches (the first rows may have refused a spec given at start)."""
        versions = Versions(self.cluster.redis(), self._get(name).name)
        return versions.pipeline(versions.current()).to_dict()

    def _first_pipeline(self, sid: int, config: dict, pipeline) -> None:
        """A spec given when the stream starts: the producer checks it against, and freezes it from, the first batch."""
        if pipeline is not None and pipeline.steps:
            versions = self.store.versions(sid)
            version = versions.add(pipeline.to_dict(), checked=False)
            versions.use(version)
            config.update(pipeline=version, pipeline_from=version)
            self.store.update_config(sid, config)

    def _switch(self, s: Stream, pipeline, rerun: bool) -> dict:
        """Run `pipeline` from the next batch the producer sends, on every partition (pipelines.py); with
        `rerun`, also re-run the stored history through it (backfill.py)."""
        versions = self.store.versions(s.id)
        before = s.operators_for(versions.pipeline(versions.current()))
        after = s.operators_for(pipeline)          # refuses a spec that does not fit the columns
        if pipeline.version:
            versions.update(pipeline.version, from_row=None)      # set again when the producer stamps it
        versions.use(pipeline.version)
        self._set_config(s, pipeline=pipeline.version)
        s.pipeline = pipeline
        rows = s.source.status().get("rows") or 0
        out = {"version": pipeline.version, "spec": pipeline.to_dict(), "from_row": int(rows),
               "rebuilt": not after.schema.equals(before.schema) or after.columns != before.columns}
        if rerun:
            out["backfill"] = self._ask_backfill(s).status()
        return out

    # --- deploying: the model's file in Redis, stamped on the log by the producer ---------------
    def _set_deployment(self, name: str, deployment) -> None:
        s = self._get(name)
        redis = self.cluster.redis()
        if deployment is None:
            redis.hset(control_key(name), "deployed", "")
            self._set_config(s, deployed=None)
            s.deployment, s.deploy_error = None, None
            return
        if deployment.learner is not None:
            raise UserError(NOT_ON_CLUSTER.format(what="An online learner") + "; deploy a trained model instead")
        card = self.models.registry.card(deployment.model_id)
        redis.hset(model_key(name, deployment.model_id),
                   mapping={"card": json.dumps(card), "model": self.models.registry.artefact(deployment.model_id)})
        redis.hset(control_key(name), "deployed", deployment.model_id)
        self._set_config(s, deployed=deployment.model_id)
        s.deployment, s.deploy_error = RemoteDeployment(self, name, deployment), None

    # --- re-running history: each partition rebuilds its state on Dask (backfill.py) -----------
    def backfill(self, name: str) -> ClusterBackfill:
        """Re-run the stored history of every partition through the version the stream runs, on Dask, while
        new entries go on; each partition swaps its rebuilt state in at a batch boundary. `.status()`, `.cancel()`."""
        with self.lock:
            s = self._get(name)
            running = s.backfill
            if running is not None and running.state == "running":
                raise UserError(f"a backfill of {name!r} is already running "
                                f"({running.status()['progress']:.0%}); wait for it or cancel it")
            return self._ask_backfill(s)

    def _ask_backfill(self, s: Stream) -> ClusterBackfill:
        """A request for the version in the control hash; a running one for an older version is superseded."""
        snap = self.published.latest(s.name)
        if snap is None or not snap.counts.get("ingested"):
            raise UserError(f"stream {s.name!r} has no rows yet; there is nothing to backfill")
        redis = self.store.redis
        with self.lock:
            s.backfill = ClusterBackfill(redis, s.name, int(s.config["partitions"]),
                                         ask(redis, s.name, Versions(redis, s.name).current()))
            s.source.ended = False          # a replay whose tasks ended runs them again for it (_watch)
            return s.backfill

    # --- not on the cluster yet ---------------------------------------------------------

    def deploy_online(self, name: str, *args, **kw) -> dict:
        raise UserError(NOT_ON_CLUSTER.format(what="An online learner") + "; train, compare and export work")

    # --- closing --------------------------------------------------------------------------
    def close(self) -> None:
        """Let go of the cluster; the streams go on there (with `local`, the servers stop with us)."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.queue.put(None)
        self.writer.join(timeout=30)
        self.compute.close()
        try:
            self.client.close(timeout=10)
        finally:
            self._stop_servers()

    def _stop_servers(self) -> None:
        if self._servers is not None:
            servers, self._servers = self._servers, None
            servers.__exit__(None, None, None)
