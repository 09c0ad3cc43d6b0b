"""The Engine: one per data folder. Streams, threads, commands, snapshots.

Threads: one ingest thread per stream (read, parse, pipeline, vectorised
operator work) and one writer thread for the whole engine (commit to DuckDB,
merge, publish). Readers call `snapshot()` and get the latest published value
without taking any lock the ingest path holds.

The engine sees its four seams (seams.py) only through their protocols: a Log per stream,
one Store, one Compute, one Snapshots. The embedded ones are the defaults; pass others in.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import replace

import pyarrow as pa

from .prep.backfill import Backfill
from .errors import UserError
from .prep.pipeline import FREEZE_ROWS, Pipeline, Preview, as_pipeline
from .stats.operators import WindowSpec
from .compute import LocalCompute
from .ingest.logs import open_log
from .ingest.paths import confine, data_roots, fixed_part, regular_file
from .ingest.replay import Speed
from .ingest.transcode import as_utf8
from .read.snapshot import Snapshot
from .schema import whole_numbers
from .seams import Compute, InProcessSnapshots, Log, Snapshots, Store
from .store.duck import DuckStore
from .stream import Stream, Work

log = logging.getLogger("rivulet")
DEFAULT_RETENTION_ROWS = 1_000_000
DEMO_NAME = "demo"
PREVIEW_MAX = 100_000


def single_thread_blas() -> None:
    """One BLAS thread: ingest and the writer already keep the cores busy, and OpenBLAS's own threads
    spin against them (co-moments of 200 columns took 10x the CPU with two BLAS threads on 2 busy cores)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(1, user_api="blas")


def default_data_dir() -> str:
    return os.environ.get("RIVULET_DATA_DIR") or "data"


class Engine:
    # controls this engine does not offer, each with the one line a page shows in its place
    refused: dict[str, str] = {}
    on_cluster = False

    def __init__(self, data_dir: str | None = None, demo: bool = False, store: Store | None = None,
                 compute: Compute | None = None, snapshots: Snapshots | None = None):
        self.data_dir = os.path.abspath(data_dir or default_data_dir())
        self.roots = data_roots(self.data_dir)      # where add_tail may follow files (RIVULET_DATA_ROOTS)
        self.store: Store = store or DuckStore(self.data_dir)
        self.compute: Compute = compute or LocalCompute()
        self.published: Snapshots = snapshots or InProcessSnapshots()
        self.streams: dict[str, Stream] = {}
        self.lock = threading.RLock()
        self.queue: queue.Queue[Work | None] = queue.Queue(maxsize=4)
        self.stopping = threading.Event()
        self.threads: dict[str, threading.Thread] = {}
        single_thread_blas()
        self.writer = threading.Thread(target=self._write_loop, name="rivulet-writer", daemon=True)
        self.writer.start()
        self.started = time.time()
        try:
            self._resume_streams(demo)
        except BaseException:
            self.close()          # threads stopped and the store closed: one line for the user, nothing leaked
            raise

    def _resume_streams(self, demo: bool) -> None:
        for row in self.store.streams():
            try:
                self._start(row["id"], row["name"], row["config"], row["schema"])
            except UserError as e:
                log.warning("stream %s not resumed: %s", row["name"], e)
                continue
            self._redeploy(self.streams[row["name"]])
        if demo and DEMO_NAME not in self.streams:
            self.add_demo()

    # --- adding and removing streams ---------------------------------------------------
    def add_replay(self, path: str, name: str | None = None, speed: Speed = Speed(), loop: bool = False,
                   time_column: str | None = None, window: WindowSpec | None = None,
                   retention_rows: int | None = DEFAULT_RETENTION_ROWS, retention_seconds: float | None = None,
                   group_by: str | None = None, pipeline: Pipeline | dict | None = None, paused: bool = False,
                   time_format: str | None = None) -> str:
        """Start replaying `path`; a stream already replaying the same file is resumed instead.

        `time_column` gives rows their event time (default: the first column of dates or times);
        `time_format` is its strptime pattern when it is not detected (engine/ingest/times.py).
        `pipeline` runs from the first row (statistics to freeze come from the first batch); on a
        resumed stream a different spec is applied as a new version and history is backfilled.
        `paused` holds the first row back until `resume` (to deploy a model first, say)."""
        pipeline = as_pipeline(pipeline) if pipeline is not None else None
        path = os.path.abspath(regular_file(path))
        with self.lock:
            for s in self.streams.values():
                if s.config.get("original", s.config.get("path")) == path and s.config.get("source") == "replay":
                    return self._resume(s, window, pipeline)
            name = self._free_name(name or os.path.splitext(os.path.basename(path))[0])
            original, path = path, as_utf8(path, os.path.join(self.data_dir, "converted"))
            config = {"source": "replay", "path": path, "original": original, "speed": {"mode": speed.mode, "value": speed.value},
                      "loop": loop, "time_column": time_column, "time_format": time_format,
                      "window": (window or WindowSpec()).to_json(),
                      "retention_rows": retention_rows, "retention_seconds": retention_seconds,
                      "group_by": group_by, "paused": paused}
            # open the file first, so a bad path or column never leaves a stream behind
            source = open_log(config, {})
            return self._create(name, config, source, pipeline)

    def _resume(self, s: Stream, window: WindowSpec | None, pipeline: Pipeline | None) -> str:
        """Add a source that a stream already reads: take the new window, and a new spec with a backfill."""
        if window is not None and WindowSpec.from_json(s.config.get("window")) != window:
            s.set_window(window.to_json())
        self._resume_pipeline(s, pipeline)
        return s.name

    def _create(self, name: str, config: dict, source: Log, pipeline: Pipeline | None) -> str:
        if pipeline is not None and source.schema is not None:     # a tail may have no rows yet
            pipeline.check(source.schema)
        sid = self.store.create_stream(name, config)
        self._first_pipeline(sid, config, pipeline)
        self._start(sid, name, config, None, source)
        return name

    def add_tail(self, pattern: str, name: str | None = None, fmt: str | None = None,
                 window: WindowSpec | None = None, retention_rows: int | None = DEFAULT_RETENTION_ROWS,
                 retention_seconds: float | None = None, group_by: str | None = None,
                 polling: bool | None = None, pipeline: Pipeline | dict | None = None,
                 roots: list[str] | None = None, trusted: bool = False, time_column: str | None = None,
                 time_format: str | None = None) -> str:
        """Follow a file, glob or folder; a stream already following the same pattern is resumed instead.

        `time_column` and `time_format` as for add_replay, checked when the first rows arrive.
        The pattern must lie under `roots` (default: the engine's data roots) unless `trusted`
        (the command line, run by the machine's own user). `pipeline` as for add_replay.
        """
        pipeline = as_pipeline(pipeline) if pipeline is not None else None
        roots = None if trusted else [os.path.realpath(r) for r in (roots or self.roots)]
        pattern = confine(pattern, roots)
        with self.lock:
            for s in self.streams.values():
                if s.config.get("source") == "tail" and s.config.get("pattern") == pattern:
                    return self._resume(s, window, pipeline)
            base = os.path.splitext(os.path.basename(pattern.rstrip(os.sep)))[0].replace("*", "").strip(".-_")
            folder = os.path.basename(fixed_part(pattern).rstrip(os.sep))      # logs/*.csv -> logs
            name = self._free_name(name or base or folder or "tail")
            config = {"source": "tail", "pattern": pattern, "path": pattern, "format": fmt,
                      "roots": roots, "polling": polling, "window": (window or WindowSpec()).to_json(),
                      "time_column": time_column, "time_format": time_format,
                      "retention_rows": retention_rows, "retention_seconds": retention_seconds,
                      "group_by": group_by}
            source = open_log(config, {})
            config["format"] = source.format       # from the file names when not given
            return self._create(name, config, source, pipeline)

    def add_demo(self, rate: float = 20.0) -> str:
        with self.lock:
            config = {"source": "demo", "rate": rate, "window": WindowSpec(size=1000).to_json(),
                      "retention_rows": 200_000, "retention_seconds": None, "group_by": "site"}
            sid = self.store.create_stream(DEMO_NAME, config)
            self._start(sid, DEMO_NAME, config, None)
            return DEMO_NAME

    def remove(self, name: str) -> None:
        with self.lock:
            s = self._get(name)
            s.config["removed"] = True
            thread = self.threads.pop(name, None)
            self.streams.pop(name)
        s.source.stop()
        if s.backfill is not None:
            s.backfill.cancel()
            s.backfill.wait(timeout=10)
        if thread:
            thread.join(timeout=5)
        s.drain()
        s.source.close()
        self.published.forget(name)
        self.store.delete_stream(s.id)

    def _free_name(self, base: str) -> str:
        name, n = base, 1
        while name in self.streams or name == DEMO_NAME:
            n += 1
            name = f"{base}-{n}"
        return name

    def _start(self, sid: int, name: str, config: dict, schema, source: Log | None = None) -> None:
        if source is None:
            source = open_log(config, self.store.offsets(sid), schema)
        stream = Stream(sid, name, config, source, self.store, self.published)
        stream.deploy_error = config.get("deploy_note")
        if config.get("paused"):
            source.pause()
        self.streams[name] = stream
        t = threading.Thread(target=self._ingest_loop, args=(stream,), name=f"rivulet-{name}", daemon=True)
        self.threads[name] = t
        t.start()

    # --- commands ----------------------------------------------------------------------
    def _get(self, name: str) -> Stream:
        try:
            return self.streams[name]
        except KeyError:
            raise UserError(f"no stream named {name!r}; streams: {', '.join(self.streams) or 'none'}") from None

    def _set_config(self, s: Stream, **changes) -> None:
        s.config.update(changes)
        self.store.update_config(s.id, s.config)

    def pause(self, name: str) -> None:
        s = self._get(name)
        s.source.pause()
        self._set_config(s, paused=True)

    def resume(self, name: str) -> None:
        s = self._get(name)
        s.source.resume()
        self._set_config(s, paused=False)

    def set_speed(self, name: str, mode: str, value: float = 0.0) -> None:
        s = self._get(name)
        speed = Speed.parse(mode, value)
        if s.source.kind != "replay":
            raise UserError(f"stream {name!r} is not a replay; only replays have a speed")
        s.source.set_speed(speed)
        self._set_config(s, speed={"mode": speed.mode, "value": speed.value})

    def set_loop(self, name: str, loop: bool) -> None:
        s = self._replay(name)
        s.source.set_loop(loop)
        self._set_config(s, loop=loop)

    def seek(self, name: str, row: int | None = None, at: float | None = None) -> None:
        """Continue from a data row (0-based) or from the first row at or after epoch seconds `at`."""
        if (row is None) == (at is None):
            raise UserError("seek needs exactly one of a row or a time")
        self._replay(name).source.seek(row=row, at=at)

    def _replay(self, name: str) -> Stream:
        s = self._get(name)
        if s.source.kind != "replay":
            raise UserError(f"stream {name!r} is not a replay")
        return s

    # --- preprocessing ---------------------------------------------------------------
    def pipeline(self, name: str) -> dict:
        """The stream's current spec (statistics frozen in) as JSON-ready data."""
        return self._get(name).pipeline.to_dict()

    def pipelines(self, name: str) -> list[dict]:
        """Every version recorded for the stream, oldest first: {"version", "spec", "created"}."""
        return self.store.pipelines(self._get(name).id)

    def preview(self, name: str, spec, n: int = 20) -> Preview:
        """Before/after of `spec` on the stream's `n` newest stored rows. Changes nothing."""
        s = self._with_columns(name)
        if not 1 <= int(n) <= PREVIEW_MAX:
            raise UserError(f"a preview shows 1 to {PREVIEW_MAX:,} rows, not {n}")
        p = as_pipeline(spec).preview(s.schema, self._sample(s, max(int(n), FREEZE_ROWS)), n)
        # shown as the file wrote them: integers where the source wrote integers (schema.whole_numbers)
        return replace(p, before=whole_numbers(p.before, s.schema.integers),
                       after=whole_numbers(p.after, p.pipeline.integers(s.schema)))

    def apply(self, name: str, spec, backfill: bool = False) -> dict:
        """Check `spec`, freeze its statistics from recent rows, record it as the next version and run
        it from the next batch. A spec that does not fit raises UserError naming the step; the running
        pipeline then stays as it was. Returns {"version", "spec", "from_row", "rebuilt"} (+ "backfill")."""
        s = self._with_columns(name)
        frozen, _ = as_pipeline(spec).fit(s.schema, self._sample(s))
        version = self.store.add_pipeline(s.id, frozen.to_dict())
        return self._switch(s, frozen.with_version(version), backfill)

    def use_pipeline(self, name: str, version: int, backfill: bool = False) -> dict:
        """Go back (or forward) to a recorded version, with the statistics it was recorded with."""
        s = self._with_columns(name)
        if version == 0:
            return self._switch(s, Pipeline(), backfill)
        spec = next((p["spec"] for p in self.store.pipelines(s.id) if p["version"] == version), None)
        if spec is None:
            raise UserError(f"stream {name!r} has no pipeline version {version}; "
                            f"versions: {', '.join(str(p['version']) for p in self.store.pipelines(s.id))}")
        pipeline = Pipeline.from_dict(spec)
        pipeline.check(s.schema, self._sample(s))
        return self._switch(s, pipeline, backfill)

    def backfill(self, name: str) -> Backfill:
        """Re-run stored raw history through the current version in the background and rebuild every
        window, bucket, group and the cumulative statistics; ingest goes on. `.status()`, `.cancel()`."""
        s = self._get(name)
        with self.lock:
            running = s.backfill
            if running is not None and running.state == "running":
                raise UserError(f"a backfill of {name!r} is already running "
                                f"({running.status()['progress']:.0%}); wait for it or cancel it")
            if s.runner is None or s.schema is None:
                raise UserError(f"stream {name!r} has no rows yet; there is nothing to backfill")
            s.backfill = Backfill(s, self.compute).start()
            return s.backfill

    def backfill_status(self, name: str) -> dict | None:
        b = self._get(name).backfill
        return b.status() if b is not None else None

    def wait_backfill(self, name: str, timeout: float | None = None) -> dict | None:
        """Block until the stream's backfill (if any) has finished; its final status."""
        b = self._get(name).backfill
        return b.wait(timeout) if b is not None else None

    def cancel_backfill(self, name: str) -> None:
        b = self._get(name).backfill
        if b is not None:
            b.cancel()

    def _switch(self, s: Stream, pipeline: Pipeline, backfill: bool) -> dict:
        self.cancel_backfill(s.name)         # it would rebuild with the old version
        out = {"version": pipeline.version, "spec": pipeline.to_dict(), **s.switch(pipeline)}
        if backfill:
            if s.backfill is not None:
                s.backfill.wait(timeout=30)
            out["backfill"] = self.backfill(s.name).status()
        return out

    def _first_pipeline(self, sid: int, config: dict, pipeline: Pipeline | None) -> None:
        """Record the spec a new stream starts with as version 1, before its thread starts. Check it
        against the source's schema first when that is known; the first batch checks it again and
        gives the statistics it freezes."""
        if pipeline is not None and pipeline.steps:
            version = self.store.add_pipeline(sid, pipeline.to_dict())
            config.update(pipeline=version, pipeline_from=version)
            self.store.update_config(sid, config)

    def _resume_pipeline(self, s: Stream, pipeline: Pipeline | None) -> None:
        """A source started again with a spec: a different one becomes a new version, history backfilled."""
        # the stored version, not s.pipeline: the ingest thread may not have restored it yet
        if pipeline is not None and not pipeline.matches(s.configured_pipeline()):
            self.apply(s.name, pipeline, backfill=True)

    def _with_columns(self, name: str) -> Stream:
        s = self._get(name)
        if s.schema is None:
            raise UserError(f"stream {name!r} has no columns yet; wait for its first rows")
        return s

    def _sample(self, s: Stream, rows: int = FREEZE_ROWS) -> pa.Table:
        """The newest stored raw rows, which frozen statistics and data checks come from."""
        t = self.store.rows(s.id, last=rows)
        if t.num_rows == 0:
            return s.schema.arrow().empty_table()
        return t.drop_columns(["_rid", "_ingest"])

    # --- models --------------------------------------------------------------------
    @property
    def models(self):
        """Training jobs, the model registry and deployments (engine/models/service.py)."""
        with self.lock:
            if getattr(self, "_models", None) is None:
                from .models.service import Models     # scikit-learn loads only when models are used
                self._models = Models(self)
            return self._models

    def deploy(self, name: str, model_id: str) -> dict:
        """Predict every new row of stream `name` with a stored model, replacing any deployed one."""
        self._set_deployment(name, self.models.deployment(name, model_id))
        return self._get(name).deployment.status()

    def deploy_online(self, name: str, target: str, features: list[str], classes=None,
                      task: str = "classification", **options) -> dict:
        """Deploy an online SGD learner that learns from the stream's labelled rows."""
        self._set_deployment(name, self.models.online(name, target, features, classes, task, **options))
        return self._get(name).deployment.status()

    def undeploy(self, name: str) -> None:
        self._set_deployment(name, None)

    def _set_deployment(self, name: str, deployment, trial: bool = True) -> None:
        s = self._get(name)
        stored = deployment.model_id if deployment is not None and deployment.model is not None else None
        # the attempt is on record before the model predicts a row: the writer clears it once the first
        # batch's predictions are committed, so a model that kills the process is not deployed at restart
        self._set_config(s, deployed=stored, deploy_trial=stored if trial else None,   # online learners: memory only
                         deploy_note=None)
        s.deployment, s.deploy_error = deployment, None     # one assignment: the ingest thread sees old or new

    def _redeploy(self, s: Stream) -> None:
        """Deploy again at start what was deployed, unless the engine stopped during its first predictions."""
        model_id = s.config.get("deployed")
        if not model_id:
            return
        if s.config.get("deploy_trial") == model_id:
            note = (f"model {model_id} was not deployed again: the engine stopped while it predicted its first "
                    f"rows, and it may have crashed it. Deploy it again on the Models page to retry")
            log.warning("%s on %s", note, s.name)
            self._set_config(s, deployed=None, deploy_trial=None, deploy_note=note)
            s.deploy_error = note
            return
        try:
            # it predicted a batch in an earlier run (its trial was cleared): on trial again, a stream with no
            # new rows before the next stop left it on trial, and the start after that refused it as a crash
            self._set_deployment(s.name, self.models.deployment(s.name, model_id), trial=False)
        except UserError as e:
            log.warning("model %s not redeployed on %s: %s", model_id, s.name, e)

    # --- reading ---------------------------------------------------------------------
    def snapshot(self, name: str) -> Snapshot | None:
        return self._get(name).snapshot

    def snapshots(self) -> dict[str, Snapshot]:
        latest = {n: s.snapshot for n, s in list(self.streams.items())}
        return {n: snap for n, snap in latest.items() if snap is not None}

    def names(self) -> list[str]:
        return list(self.streams)

    def health(self) -> dict:
        """How the engine itself is doing: threads alive, writer queue, streams in error."""
        snaps = self.snapshots()
        return {"uptime_s": time.time() - self.started, "writer_alive": self.writer.is_alive(),
                "queue_depth": self.queue.qsize(), "queue_capacity": self.queue.maxsize,
                "streams": len(self.streams),
                "ingest_alive": sum(t.is_alive() for t in list(self.threads.values())),
                "errors": sorted(n for n, s in snaps.items() if s.error),
                "data_dir": self.data_dir}

    def source_status(self, name: str) -> dict:
        """The source's status as of now, with its kind; unlike a snapshot's, there from the moment
        the stream is added (a snapshot appears once the stream's thread has restored it)."""
        s = self._get(name)
        return {**s.source.status(), "kind": s.source.kind}

    def quarantine(self, name: str, limit: int = 1000):
        return self.store.quarantine(self._get(name).id, limit)

    def wait(self, name: str, timeout: float | None = None) -> Snapshot:
        """Block until a finite source has been read to its end and every batch is committed."""
        s = self._get(name)
        deadline = None if timeout is None else time.monotonic() + timeout
        finished = lambda: s.restored and s.source.done and not s.busy and s.inflight == 0   # noqa: E731
        while True:
            if s.error:
                raise UserError(f"stream {name!r} stopped: {s.error}")
            if finished():
                return s.snapshot
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"stream {name!r} still running after {timeout}s")
            s.wait_until(lambda: s.error or finished(), 0.05)

    # --- threads ---------------------------------------------------------------------
    def _ingest_loop(self, s: Stream) -> None:
        try:
            with s.lock:
                s.restore()
        except Exception as e:       # a broken store must not take the engine down
            log.exception("restoring %s failed", s.name)
            s.error = f"could not restore from the store: {e}"
            s.publish()
            return
        with self._failing(s, "ingest of"):     # a bug outside a batch's own guard stops the stream, visibly
            self._read_batches(s)

    def _read_batches(self, s: Stream) -> None:
        while not self.stopping.is_set() and not s.config.get("removed"):
            if s.error:
                time.sleep(0.2)
                continue
            if s.source.max_inflight and s.inflight >= s.source.max_inflight:
                # until the writer takes one: what arrives meanwhile joins the next batch (the limit is read
                # again each time: a change of speed can lift it, to None, while we wait)
                s.wait_until(lambda: not (s.source.max_inflight and s.inflight >= s.source.max_inflight)
                             or self.stopping.is_set(), 0.05)
                continue
            s.busy, batch = True, None
            try:
                with self._failing(s), s.lock:       # a pipeline switch or backfill waits for the batch boundary
                    batch = s.source.next_batch()
                    if batch is not None:
                        work = s.prepare(batch)
                        s.queued += 1
                        self.queue.put(work)
                if batch is None:
                    s.busy = False
                    if s.source.done or getattr(s.source, "paused", False):
                        s.moved()
                        if s.inflight == 0 and s.snapshot and s.snapshot.state != s.source.status().get("state"):
                            with s.lock:     # not over a pipeline switch publishing at the same time
                                s.publish()  # show "ended" / "paused" without waiting for data
                        time.sleep(0.05)
                    else:
                        time.sleep(0.01)
                    continue
            finally:
                s.busy = False

    @contextmanager
    def _failing(self, s: Stream, stage: str = "stream", prefix: str = ""):
        """What goes wrong with a stream's batch becomes its error, in one line (a UserError, e.g. a spec
        that does not fit the first rows or a full disk, as it is; a bug logged with its traceback)."""
        try:
            yield
        except UserError as e:
            s.error = f"{prefix}{e}"
            s.publish()
            s.moved()
        except Exception as e:
            log.exception("%s %s failed", stage, s.name)
            s.error = f"{prefix}{e}" if prefix else f"{type(e).__name__}: {e}"
            s.publish()
            s.moved()

    def _write_loop(self) -> None:
        last_prune: dict[int, float] = {}
        while True:
            works, stop = self._queued()
            for group in works.values():
                self._write(group[0].stream, group, last_prune)
            if stop:
                return

    def _queued(self) -> tuple[dict[int, list[Work]], bool]:
        """The next batch and every one queued behind it, by stream (id) in their order; True when
        the engine is closing after them."""
        works: dict[int, list[Work]] = {}
        work = self.queue.get()
        while work is not None:
            works.setdefault(work.stream.id, []).append(work)
            try:
                work = self.queue.get_nowait()
            except queue.Empty:
                return works, False
        return works, True

    def _write(self, s: Stream, works: list[Work], last_prune: dict[int, float]) -> None:
        """Commit a stream's queued batches in one transaction and publish once."""
        try:
            with self._failing(s, "commit for", "could not store a batch: "):
                s.commit(*works)
                s.publish()
                if time.monotonic() - last_prune.get(s.id, -float("inf")) > 5:
                    last_prune[s.id] = time.monotonic()
                    self.store.prune(s.id, s.counters.next_rid, s.config.get("retention_rows"),
                                     s.config.get("retention_seconds"))
        finally:
            s.done_count += len(works)
            s.moved()

    def close(self) -> None:
        """Stop the threads after the queued batches are committed, then release the folder."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        for s in self.streams.values():
            s.source.stop()           # a long scan ends now, not after the joins below gave up
        for s in self.streams.values():
            if s.backfill is not None:
                s.backfill.cancel()
                s.backfill.wait(timeout=10)
        for t in list(self.threads.values()):
            t.join(timeout=10)
        self.queue.put(None)
        self.writer.join(timeout=30)
        self.compute.close()
        for s in self.streams.values():
            s.source.close()
        self.store.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

