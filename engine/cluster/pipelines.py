"""Pipeline versions and the deployed model of a stream on the cluster, and how every partition switches
to a new one at the same batch.

Versions live in Redis beside the log (`rivulet:{stream}:pipelines`, a JSON field per version); which
version runs and which model is deployed are fields of the stream's control hash, which the dashboard
writes. The producer stamps every log entry with both (`pv`, `mv`), so all partitions switch at the same
batch: a worker that reads an entry stamped otherwise than it runs loads that version (or model) and
uses it from that entry on (worker.py). The stamp travels with the entry, so a worker that Dask reruns
after a crash switches at the same batch again. Running statistics (forward fill, running normalise)
are per partition: each worker carries its own.

A deployed model's file travels through Redis too (`rivulet:{stream}:model:{id}`), so workers on other
machines need no access to the dashboard's data folder.
"""
from __future__ import annotations

import json
import time

from ..errors import UserError
from ..prep.pipeline import Pipeline


def versions_key(stream: str) -> str:
    return f"rivulet:{stream}:pipelines"


def model_key(stream: str, model_id: str) -> str:
    return f"rivulet:{stream}:model:{model_id}"


def control_key(stream: str) -> str:
    """Pause, speed, the running pipeline version and the deployed model, as the dashboard set them."""
    return f"rivulet:{stream}:control"


class Versions:
    """A stream's recorded pipeline versions: {"version", "spec", "created", "checked", "from_row"}."""

    def __init__(self, redis, stream: str):
        self.redis, self.stream, self.key = redis, stream, versions_key(stream)

    def all(self) -> list[dict]:
        rows = [json.loads(v) for f, v in self.redis.hgetall(self.key).items() if f.startswith(b"v")]
        return sorted(rows, key=lambda r: r["version"])

    def get(self, version: int) -> dict | None:
        raw = self.redis.hget(self.key, f"v{int(version)}")
        return json.loads(raw) if raw else None

    def pipeline(self, version: int) -> Pipeline:
        if not version:
            return Pipeline()
        row = self.get(version)
        if row is None:
            raise UserError(f"pipeline version {version} of {self.stream} is not in the cluster's catalogue")
        return Pipeline.from_dict(row["spec"]).with_version(int(version))

    def add(self, spec: dict, checked: bool = True) -> int:
        """Record the next version. `checked` False: a spec given at start, still to be checked against (and
        to take frozen statistics from) the stream's first rows, which the producer does."""
        version = int(self.redis.hincrby(self.key, "next", 1))
        self._put({"version": version, "spec": {**spec, "version": version}, "created": time.time(),
                   "checked": checked, "from_row": None})
        return version

    def update(self, version: int, **changes) -> None:
        row = self.get(version)
        if row is not None:
            self._put({**row, **changes})

    def drop(self, version: int) -> None:
        self.redis.hdel(self.key, f"v{int(version)}")

    def _put(self, row: dict) -> None:
        self.redis.hset(self.key, f"v{row['version']}", json.dumps(row))

    # --- what runs ---------------------------------------------------------------------------
    def current(self) -> int:
        return int(self.redis.hget(control_key(self.stream), "pipeline") or 0)

    def use(self, version: int) -> None:
        self.redis.hset(control_key(self.stream), "pipeline", int(version))


def start_with(versions: Versions, pipeline: Pipeline | None, schema, sample=None) -> int | None:
    """A spec given when a stream starts (`--pipeline`): recorded as the version it runs, to be checked against
    the first rows. On a stream that has stored rows (`sample` given: it returns the newest, as `apply` takes
    them) a spec other than the one it runs becomes a new version frozen from them, and its number is returned:
    the caller re-runs the stored history through it (backfill.py), as the embedded engine does."""
    if pipeline is None or not pipeline.steps:
        return None
    current = versions.current()
    if current and pipeline.matches(versions.pipeline(current)):
        return None
    if sample is not None:
        frozen, _ = pipeline.fit(schema, sample())
        version = versions.add(frozen.to_dict())
        versions.use(version)
        return version
    if current:
        raise UserError(f"stream {versions.stream} runs pipeline version {current} already and has stored no row "
                        f"yet; apply the new spec on the Preprocessing page, or replay under another name")
    pipeline.check(schema)
    versions.use(versions.add(pipeline.to_dict(), checked=False))
    return None


class Stamper:
    """The producer's side: what to stamp on the next entry. A version recorded before any row (a spec given
    at start) is checked against the first batch and its statistics frozen from it, as the embedded stream
    does (stream.Stream._start_pipeline); a spec those rows refuse is dropped, the stream runs without steps
    and `error` says why."""

    def __init__(self, redis, stream: str, schema):
        self.versions = Versions(redis, stream)
        self.redis, self.stream, self.schema = redis, stream, schema
        self.version = self.versions.current()
        self.model = (self.redis.hget(control_key(stream), "deployed") or b"").decode()
        self.error: str | None = None
        self.checked = 0                # the version last found checked (one look at Redis per version)

    def look(self, control: dict) -> None:
        """The control hash as the producer last read it (decoded)."""
        self.version = int(control.get("pipeline") or 0)
        self.model = control.get("deployed") or ""

    def stamp(self, producer, table) -> None:
        """Set the producer's stamps for the batch `table` it is about to send."""
        if self.version and self.version != self.checked and table.num_rows:
            row = self.versions.get(self.version)
            if row is not None and not row["checked"]:
                self._first_rows(row, table)
            self.checked = self.version
        if self.version != producer.pipeline:
            row = self.versions.get(self.version) if self.version else None
            if row is not None and row["from_row"] is None:
                self.versions.update(self.version, from_row=producer.rows)
            producer.pipeline = self.version
        producer.model = self.model

    def _first_rows(self, row: dict, table) -> None:
        pipeline = Pipeline.from_dict(row["spec"])
        try:
            frozen = pipeline.freeze(table) if pipeline.needs_freeze else pipeline
            frozen.check(self.schema, table)
        except UserError as e:
            self.error = str(e)
            self.versions.drop(self.version)
            self.versions.use(0)
            self.redis.hset(control_key(self.stream), "pipeline_error", self.error)
            self.version = 0
            return
        self.versions.update(self.version, spec={**frozen.to_dict(), "version": self.version}, checked=True)
