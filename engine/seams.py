"""The four places where an implementation can be swapped without the engine above noticing.

    Log        where parsed batches come from, with a resumable position
    Store      rows + quarantine + position + state committed together; history read back
    Compute    work off the ingest path: jobs with progress and cancel, fan-outs whose results merge
    Snapshots  where a stream's snapshot is published and read

Embedded (the default, one process): the sources in `ingest/`, `store/duck.py`, `compute.py`
(spawned processes and threads) and `InProcessSnapshots` below. Cluster mode plugs Redis Streams,
Delta Lake, Dask and a Redis hash in here. What crosses a seam is Arrow tables, plain dicts and
mergeable `stats.moments.Moments`, never an object of one implementation.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Protocol, TypeVar

if TYPE_CHECKING:
    import pyarrow as pa

    from .ingest.parse import Bad
    from .ingest.source import Batch
    from .read.snapshot import Snapshot
    from .schema import Schema

T = TypeVar("T")
R = TypeVar("R")


class Log(Protocol):
    """One partition of input. `next_batch` never blocks (None when nothing is ready); each batch carries
    the position to resume after it, which the store commits with its rows."""

    kind: str                        # "replay", "tail", "demo": the key its position is stored under
    schema: Schema | None            # None until the first rows fix the columns
    time_column: str | None
    max_inflight: int | None         # batches waiting for the store at most (None: the engine's queue)
    paused: bool

    def next_batch(self) -> Batch | None: ...
    def position(self) -> dict: ...
    @property
    def done(self) -> bool: ...      # a finite log read to its end
    def status(self) -> dict: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self) -> None: ...      # a next_batch under way returns soon (close follows)
    def close(self) -> None: ...


class Store(Protocol):
    """Streams' rows, quarantine, positions and state. `commit` is all or nothing, so after a crash
    the stored position always matches the stored rows."""

    data_dir: str

    # streams and their configuration
    def streams(self) -> list[dict]: ...
    def create_stream(self, name: str, config: dict) -> int: ...
    def update_config(self, stream_id: int, config: dict) -> None: ...
    def delete_stream(self, stream_id: int) -> None: ...
    def set_schema(self, stream_id: int, schema: Schema) -> None: ...

    # pipeline versions
    def add_pipeline(self, stream_id: int, spec: dict) -> int: ...
    def pipelines(self, stream_id: int) -> list[dict]: ...
    def update_pipeline(self, stream_id: int, version: int, spec: dict) -> None: ...
    def drop_pipeline(self, stream_id: int, version: int) -> None: ...

    # the one transaction per batch, and what it leaves
    def commit(self, stream_id: int, rows: pa.Table | None, bad: list[Bad], source: str,
               offsets: dict[str, dict | None], state: dict, extra: dict[str, pa.Table] | None = None) -> None: ...
    def state(self, stream_id: int) -> dict: ...
    def set_cumulative(self, stream_id: int, cumulative: bytes | None) -> None: ...
    def offsets(self, stream_id: int) -> dict[str, dict]: ...

    # history
    def rows(self, stream_id: int, last: int | None = None, since_rid: int = 0,
             columns: list[str] | None = None, limit: int | None = None) -> pa.Table: ...
    def count(self, stream_id: int) -> int: ...
    def predictions(self, stream_id: int, last: int | None = 1000) -> pa.Table: ...
    def quarantine(self, stream_id: int, limit: int = 1000) -> pa.Table: ...
    def prune(self, stream_id: int, next_rid: int, keep_rows: int | None, keep_seconds: float | None) -> None: ...

    def close(self) -> None: ...


class Job(Protocol):
    """What a page shows of a job; `to_dict()` for JSON."""
    id: str
    kind: str
    state: str                       # running | saving | done | failed | cancelled
    done: int
    total: int
    message: str
    error: str | None
    result: object

    @property
    def active(self) -> bool: ...
    def to_dict(self) -> dict: ...


class Task(Protocol):
    """Work on a thread of the engine's process (a backfill): wait for it with `join`."""
    def join(self, timeout: float | None = None) -> None: ...
    def is_alive(self) -> bool: ...


class Compute(Protocol):
    """Runs work off the ingest path.

    `submit` runs a named task (see `models/tasks.py`) on data the caller hands over, away from the
    engine's process, with progress and cancel; `on_done(result)` runs back in the engine (it stores
    the result, so a cancel never leaves anything half-written). `background` runs a function that
    needs the live engine (a backfill swaps state in). `map` fans a function out over items (the folds
    of a cross-validation) and returns the results in order; `merge` of what comes back (Moments add
    with `+`) is the caller's.
    """

    def submit(self, kind: str, payload, label: str = "",
               on_done: Callable[[object], object] | None = None) -> str: ...
    def get(self, job_id: str) -> Job: ...
    def list(self) -> list[Job]: ...
    def cancel(self, job_id: str) -> None: ...
    def wait(self, job_id: str, timeout: float | None = None) -> Job: ...
    def background(self, name: str, fn: Callable[[], None]) -> Task: ...
    def close(self) -> None: ...


class Mapper(Protocol):
    """A fan-out: fn over each item, results in the items' order; `started(i)` before item i runs."""
    def __call__(self, fn: Callable[[T], R], items: Iterable[T],
                 started: Callable[[int], None] | None = None) -> list[R]: ...


class Snapshots(Protocol):
    """The latest snapshot of each stream. Writers publish, readers never wait for them; in cluster
    mode each partition publishes its part and `latest` merges them."""

    def publish(self, stream: str, snapshot: Snapshot) -> None: ...
    def latest(self, stream: str) -> Snapshot | None: ...
    def forget(self, stream: str) -> None: ...


def serial_map(fn: Callable[[T], R], items: Iterable[T], started: Callable[[int], None] | None = None) -> list[R]:
    """The embedded Mapper: one item after another in this process (a training job's worker)."""
    out = []
    for i, item in enumerate(items):
        if started is not None:
            started(i)
        out.append(fn(item))
    return out


class InProcessSnapshots:
    """The embedded Snapshots: a dict whose values are replaced whole, so readers take no lock."""

    def __init__(self):
        self._latest: dict[str, Snapshot] = {}

    def publish(self, stream: str, snapshot: Snapshot) -> None:
        self._latest[stream] = snapshot

    def latest(self, stream: str) -> Snapshot | None:
        return self._latest.get(stream)

    def forget(self, stream: str) -> None:
        self._latest.pop(stream, None)
