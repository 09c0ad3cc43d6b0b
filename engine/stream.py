"""One stream: its source, pipeline and operators, and the thread that feeds them.

The ingest thread reads a batch, runs the pipeline and the vectorised operator
work, and queues it for the engine's writer. The writer commits it (rows,
quarantine, offset, counters in one transaction), merges it into the operators
and publishes a new snapshot. After a restart, `restore` rebuilds windows and
buckets from stored history and the cumulative moments from the stored state.

A `replayed` batch (rows a seek back or a loop plays again) goes through the
pipeline into the windows, buckets and groups, but is not stored, quarantined,
predicted or counted in `cumulative` again; only its position and the `replayed`
counter are committed. It runs through a copy of the pipeline's running state, so
the state new rows see is the one a backfill of the stored rows gives.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from .errors import UserError
from .stats.moments import Moments
from .stats.operators import Operators, Prepared, WindowSpec
from .prep.pipeline import Pipeline, Runner
from .schema import Schema, as_floats, kind_of
from .read.snapshot import Snapshot
from .ingest.source import Batch
from .seams import Log, Snapshots, Store
from .stats.windows import last_rows, last_seconds, merged

log = logging.getLogger("rivulet")


def event_column(kinds: dict[str, str], named: str | None) -> str | None:
    """The column that gives rows their event time after the pipeline: the source's time column while it
    is still a time (or epoch number), else the first time column the pipeline gives (a cast to time)."""
    if kinds.get(named) in ("time", "number"):
        return named
    return next((c for c, k in kinds.items() if k == "time"), None)


def _concat(tables: list[pa.Table]) -> pa.Table:
    """Tables of the same columns one after another (a type that widened between batches is unified)."""
    return pa.concat_tables(tables, promote_options="permissive")


@dataclass
class Work:
    """A batch on its way to the writer."""
    stream: "Stream"
    batch: Batch
    rows: pa.Table              # after the pipeline
    prepared: Prepared | None
    ingest_us: int
    predicted: object = None    # a deployed model's output for `rows` (models.deploy.Predicted)
    deployment: object = None
    kept: np.ndarray | None = None   # positions in the batch of `rows`, when the pipeline dropped some


@dataclass
class Counters:
    next_rid: int = 0
    ingested: int = 0
    quarantined: int = 0
    flagged: int = 0
    late: int = 0
    window_from: int = 0
    replayed: int = 0          # rows played again through the live views, not stored again


@dataclass
class Stream:
    id: int
    name: str
    config: dict
    source: Log
    store: Store
    snapshots: Snapshots           # where publish() puts each new snapshot
    pipeline: Pipeline = field(default_factory=Pipeline)   # the current version
    runner: Runner | None = None   # None until statistics to freeze have come from the first batch
    replay_runner: Runner | None = None   # the runner's state carried on by replayed rows only
    pipeline_from: int = 0         # oldest version any row in the operators' state went through
    operators: Operators | None = None
    counters: Counters = field(default_factory=Counters)
    error: str | None = None
    queued: int = 0            # written by the ingest thread only
    done_count: int = 0        # written by the writer thread only
    busy: bool = False
    restored: bool = False
    seq: int = 0
    throughput: deque = field(default_factory=lambda: deque(maxlen=300))
    lag_s: float = 0.0
    deployment: object = None  # models.deploy.Deployment; replaced whole, so a swap is atomic
    deploy_error: str | None = None
    backfill: object = None    # backfill.Backfill, the latest one
    pipeline_error: str | None = None   # a spec given at start that did not fit the first rows
    # held by the ingest thread while it reads and prepares a batch: whoever holds it and sees
    # `inflight == 0` may swap the pipeline and operators at a batch boundary
    lock: threading.RLock = field(default_factory=threading.RLock)
    # notified when a batch is committed, the source stops giving batches or the stream fails: waiting
    # on it instead of polling every few ms leaves the GIL to the threads doing the work
    progress: threading.Condition = field(default_factory=threading.Condition)

    # --- set-up ----------------------------------------------------------------------
    @property
    def schema(self) -> Schema | None:
        return self.source.schema

    def operators_for(self, pipeline: Pipeline) -> Operators:
        """Fresh operators for the columns `pipeline` gives (it may add, drop or rename some)."""
        arrow = pipeline.check(self.schema)
        kinds = {f.name: kind_of(f.type) for f in arrow}
        tcol = event_column(kinds, self.source.time_column)
        numeric = [c for c, k in kinds.items() if k in ("number", "bool") and c != tcol]
        group = self.config.get("group_by")
        if group is None or kinds.get(group) != "text":
            if group is not None and group not in self.schema:
                raise UserError(f"group-by column {group!r} is not in the stream")
            texts = [c for c, k in kinds.items() if k == "text"]
            group = texts[0] if texts else None      # the pipeline dropped or recoded it: the first text column
        return Operators(arrow, numeric, WindowSpec.from_json(self.config.get("window")), tcol, group)

    def configured_pipeline(self) -> Pipeline:
        """The version the config names, as stored (version 0: no steps). The ingest thread loads it
        on restore; until then `self.pipeline` is still empty."""
        version = self.config.get("pipeline", 0)
        if not version:
            return Pipeline()
        spec = next((p["spec"] for p in self.store.pipelines(self.id) if p["version"] == version), None)
        if spec is None:
            raise UserError(f"pipeline version {version} is not in the store")
        return Pipeline.from_dict(spec)

    def load_pipeline(self) -> None:
        """The version named in the config, from the store."""
        if self.config.get("pipeline", 0):
            self.pipeline = self.configured_pipeline()
        self.pipeline_from = self.config.get("pipeline_from", self.pipeline.version)
        # a spec given before any row arrived (or before the columns were known: a tail waiting for
        # its files) is checked against the first batch, which also gives statistics to freeze
        first = self.pipeline.needs_freeze or (self.pipeline.steps and (self.schema is None
                                                                        or self.counters.next_rid == 0))
        self.runner = None if first else self.pipeline.runner()

    def restore(self) -> None:
        """Counters and cumulative moments from the state table; windows and buckets from stored rows."""
        st = self.store.state(self.id)
        self.counters = Counters(st["next_rid"] or 0, st["ingested"] or 0, st["quarantined"] or 0,
                                 st["flagged"] or 0, st["late"] or 0, st["window_from"] or 0, st["replayed"] or 0)
        self.load_pipeline()
        if self.schema is not None and self.runner is not None:
            self.store.set_schema(self.id, self.schema)
            self.operators = ops = self.operators_for(self.pipeline)
            self._rebuild(ops, self.runner)
            if st["cumulative"] is not None:
                saved = Moments.from_bytes(st["cumulative"])
                if (saved.k, saved.pairs) == (ops.k, ops.cumulative.pairs):
                    ops.cumulative = saved
        self.restored = True
        self.publish()

    def _rebuild(self, ops: Operators, runner: Runner) -> None:
        """Windows, buckets and groups of `ops` from the stored rows, through `runner`."""
        from .prep.backfill import rerun
        c = self.counters
        # rows before the window only move running pipeline state on (forward fill, running
        # statistics), so a restart continues as a backfill would; without steps they are skipped
        start = 0 if self.pipeline.steps else max(c.window_from, c.next_rid - self.store.count(self.id))
        rerun(self.store, self.id, runner, ops, start, c.next_rid, c.window_from, cumulative=False)

    def set_window(self, window: dict) -> None:
        """Take another window from the next batch on. The operators are rebuilt from the stored rows
        as a restart would rebuild them (a running stream kept its old window before: a resumed
        replay given a new window showed the old one until its next restart)."""
        with self.lock:
            self.drain()
            self._save_config(window=window)
            if self.operators is None or self.runner is None:
                return                  # restore or the first batch builds them from the config
            ops = self.operators_for(self.pipeline)
            self._rebuild(ops, self.pipeline.runner())     # a fresh runner: the live one's state stays
            ops.cumulative = self.operators.cumulative
            self.operators = ops
            self.publish()

    # --- switching versions (any thread but the ingest and writer threads) ----------------
    def switch(self, pipeline: Pipeline) -> dict:
        """Run `pipeline` from the next batch: {"from_row": the first row id it runs on, "rebuilt": True
        when the operators were rebuilt (empty) because the columns they see changed; otherwise windows
        keep their rows}."""
        with self.lock:
            self.drain()
            rebuilt = False
            if self.schema is not None:
                ops = self.operators_for(pipeline)
                if self.operators is None or not ops.schema.equals(self.operators.schema) \
                        or ops.columns != self.operators.columns:
                    self.operators, rebuilt = ops, True
                    self.store.set_cumulative(self.id, ops.cumulative.to_bytes())
            self.pipeline, self.runner, self.pipeline_error = pipeline, pipeline.runner(), None
            self.replay_runner = None
            if rebuilt or self.operators is None:
                self.pipeline_from = pipeline.version
            self._save_config(pipeline=pipeline.version, pipeline_from=self.pipeline_from)
            self.publish()
            return {"from_row": self.counters.next_rid, "rebuilt": rebuilt}

    def install(self, backfill, runner: Runner, ops: Operators, rid: int) -> bool:
        """Swap in state a backfill rebuilt up to `rid`, after feeding it the rows committed since."""
        from .prep.backfill import rerun
        with self.lock:
            self.drain()
            if self.pipeline.version != backfill.version:
                return False
            c = self.counters
            rerun(self.store, self.id, runner, ops, rid, c.next_rid, c.window_from,
                  progress=backfill._progress, cancelled=backfill.cancelled)
            self.runner, self.operators, self.pipeline_from = runner, ops, self.pipeline.version
            self.replay_runner = None
            self.store.set_cumulative(self.id, ops.cumulative.to_bytes())
            self._save_config(pipeline_from=self.pipeline_from)
            self.publish()
            return True

    def drain(self) -> None:
        """Block until every queued batch of this stream is committed."""
        while not self.wait_until(lambda: self.inflight == 0, 0.05):
            pass

    def wait_until(self, ready, timeout: float) -> bool:
        """Block until ready() holds or `timeout` s pass (what `moved` does not announce is seen then)."""
        with self.progress:
            return self.progress.wait_for(ready, timeout)

    def moved(self) -> None:
        """Wake whoever waits in `wait_until`."""
        with self.progress:
            self.progress.notify_all()

    def _save_config(self, **changes) -> None:
        self.config.update(changes)
        self.store.update_config(self.id, self.config)

    def _start_pipeline(self, table: pa.Table) -> None:
        """A spec given before any row arrived is checked against, and takes its statistics from,
        the first batch. One that does not fit is refused as `apply` would refuse it: the stream goes
        on without steps (version 0) and `pipeline_error` names the step and the problem."""
        try:
            frozen = self.pipeline.freeze(table) if self.pipeline.needs_freeze else self.pipeline
            frozen.check(self.schema, table)
        except UserError as e:
            self.pipeline_error = str(e)
            if self.pipeline.version:
                self.store.drop_pipeline(self.id, self.pipeline.version)
            frozen = Pipeline()
            self._save_config(pipeline=0, pipeline_from=0)
            self.pipeline_from = 0
        if frozen.version and frozen is not self.pipeline:
            self.store.update_pipeline(self.id, frozen.version, frozen.to_dict())
        self.pipeline, self.runner = frozen, frozen.runner()

    # --- ingest thread -------------------------------------------------------------
    def prepare(self, batch: Batch) -> Work:
        now_us = int(batch.read_at * 1e6)
        table = as_floats(batch.table)      # integer columns are stored exactly; computed in float64
        if self.runner is None and table.num_rows:
            self._start_pipeline(table)
        runner = self._runner_for(batch)
        rows, kept = runner.run_indexed(table) if runner is not None and table.num_rows else (table, None)
        if self.operators is None and self.schema is not None and self.runner is not None:
            self.store.set_schema(self.id, self.schema)
            self.operators = self.operators_for(self.pipeline)
        prepared = None
        if self.operators is not None and rows.num_rows:
            ingest = np.full(rows.num_rows, now_us / 1e6)
            prepared = self.operators.prepare(rows, ingest)
        deployment, predicted = self.deployment, None
        if deployment is not None and rows.num_rows and not batch.replayed:     # scored once, when stored
            predicted = self._predict(deployment, rows)
        return Work(self, batch, rows, prepared, now_us, predicted, deployment, kept)

    def _runner_for(self, batch: Batch) -> Runner | None:
        """Replayed rows carry a copy of the running state on, so stored rows never see them."""
        if not batch.replayed or self.runner is None:
            self.replay_runner = None
            return self.runner
        if self.replay_runner is None:
            self.replay_runner = Runner(self.runner.pipeline, self.runner.state)
        return self.replay_runner

    def _predict(self, deployment, rows: pa.Table):
        """The deployed model's predictions; a model that fails stops predicting, never the stream."""
        try:
            return deployment.apply(rows)
        except Exception as e:
            log.warning("model %s on %s failed: %s", deployment.model_id, self.name, e)
            self.deploy_error = f"{type(e).__name__}: {e}" if not isinstance(e, UserError) else str(e)
            if self.deployment is deployment:
                self.deployment = None
            return None

    # --- writer thread -------------------------------------------------------------
    def commit(self, *works: Work) -> None:
        """Commit batches (in their order) in one transaction, then merge them into the operators.

        The writer passes every batch of this stream that queued up while it was busy: one commit of
        several batches costs about what one costs (DuckDB writes a big insert straight to the file
        instead of through its log), so a writer that falls behind catches up."""
        c, ops = self.counters, self.operators
        cumulative = ops.cumulative if ops else None
        newest = ops.recent.newest if ops else -np.inf
        tables, bad, offsets, extra, clear_trial = [], [], {}, {}, False
        for work in works:
            batch = work.batch
            n = 0 if batch.replayed else batch.table.num_rows       # rows to store
            if n:
                stored = batch.table
                stored = stored.add_column(0, "_ingest", pa.array(np.full(n, work.ingest_us), pa.timestamp("us")))
                tables.append(stored.add_column(0, "_rid", pa.array(np.arange(c.next_rid, c.next_rid + n),
                                                                    pa.int64())))
            if batch.reset:
                newest = -np.inf
            late = 0
            if ops and work.prepared:
                if n:
                    cumulative = cumulative + work.prepared.chunk.moments
                    late = ops.late_rows(work.prepared, newest) if not batch.reset else 0
                newest = max(newest, work.prepared.chunk.newest(ops.recent.clock))
            kept = [] if batch.replayed else batch.bad
            bad += kept
            c = Counters(c.next_rid + n, c.ingested + n,
                         c.quarantined + sum(not b.kept for b in kept),
                         c.flagged + sum(b.kept for b in kept), c.late + late,
                         c.next_rid if batch.reset else c.window_from,
                         c.replayed + batch.table.num_rows - n)
            offsets.update(batch.offsets if batch.offsets is not None else {self.source.kind: batch.position})
            if work.predicted is not None:
                from .models.deploy import predictions_table
                rids = np.arange(c.next_rid - n, c.next_rid)
                part = work.deployment.rows(rids if work.kept is None else rids[work.kept], work.predicted)
                if part is not None:             # an online learner keeps its predictions in memory only
                    extra.setdefault(predictions_table(self.id), []).append(part)
                clear_trial |= self.config.get("deploy_trial") == work.deployment.model_id
        rows = _concat(tables) if tables else None
        settled = self.schema.settled(rows) if rows is not None and self.schema is not None else None
        if settled is not None:
            # before the rows: a column is never stored as integers while it holds a fraction
            self.store.set_schema(self.id, settled)
            self.source.schema = settled
        self.store.commit(self.id, rows, bad, self.source.kind, offsets,
                          {**c.__dict__, "cumulative": cumulative.to_bytes() if cumulative is not None else None},
                          {table: _concat(parts) for table, parts in extra.items()} or None)
        self.counters = c
        if clear_trial:
            self.config["deploy_trial"] = None        # its first predictions did not kill the process
            self.store.update_config(self.id, self.config)
        for work in works:
            batch = work.batch
            if ops is not None:
                if batch.reset:
                    ops.reset_window()
                if work.prepared is not None:
                    ops.add(work.prepared, cumulative=False)
            self.lag_s = time.time() - batch.read_at
            second, flowed = int(time.time()), batch.table.num_rows      # replayed rows flow too
            if self.throughput and self.throughput[-1][0] == second:
                self.throughput[-1] = (second, self.throughput[-1][1] + flowed)
            else:
                self.throughput.append((second, flowed))
        if ops is not None:
            ops.cumulative = cumulative

    def publish(self) -> None:
        ops = self.operators
        self.seq += 1
        now = int(time.time())
        recent = sum(n for t, n in self.throughput if t >= now - 5)
        source = {**self.source.status(), "kind": self.source.kind, "lag_s": round(self.lag_s, 3),
                  "rows_per_s": round(recent / 5, 1)}
        state = "error" if self.error else source.get("state", "running")
        if not self.restored:
            state = "restoring"
        c = self.counters
        counts = {"ingested": c.ingested, "quarantined": c.quarantined, "flagged": c.flagged, "late": c.late,
                  "replayed": c.replayed}
        if ops is None:
            self.snapshots.publish(self.name, Snapshot(self.name, self.seq, [], pa.schema([]), WindowSpec.from_json(
                self.config.get("window")), Moments(0), 0, Moments(0), counts, source, self.pipeline.version,
                pipeline_from=self.pipeline_from, pipeline_error=self.pipeline_error, state=state, error=self.error,
                throughput=tuple(self.throughput), model=self.model_status()))
            return
        w = ops.window
        if w.kind == "count":
            chunks = last_rows(ops.recent.chunks, int(w.size))
        else:
            now = time.time() if w.clock == "ingest" else ops.recent.newest
            chunks = last_seconds(ops.recent.chunks, w.size, w.clock, now) if np.isfinite(now) else []
        self.snapshots.publish(self.name, Snapshot(
            self.name, self.seq, list(ops.columns), ops.schema, w, merged(chunks, ops.k),
            sum(len(ch) for ch in chunks), ops.cumulative.copy(), counts, source, self.pipeline.version,
            pipeline_from=self.pipeline_from, pipeline_error=self.pipeline_error, chunks=ops.recent.chunks, series=dict(ops.buckets.series), groups=dict(ops.buckets.groups),
            codes=ops.codes, group_column=ops.group_column, time_column=ops.time_column,
            bucket_shift=ops.shift if ops.shift is not None else 0.0,
            throughput=tuple(self.throughput), state=state, error=self.error, model=self.model_status()))

    def model_status(self) -> dict | None:
        d = self.deployment
        if d is None:
            return {"deployed": False, "error": self.deploy_error} if self.deploy_error else None
        return {"deployed": True, **d.status(), "error": self.deploy_error}

    @property
    def snapshot(self) -> Snapshot | None:
        return self.snapshots.latest(self.name)

    @property
    def inflight(self) -> int:
        return self.queued - self.done_count
