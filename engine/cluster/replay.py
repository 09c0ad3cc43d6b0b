"""`python -m engine replay FILE --cluster ...`: parse at the edge, process in the partitions, merge.

This process parses FILE with the embedded replay source and sends each batch to the Redis log,
spread over the partitions; one long Dask task per partition (worker.py) processes and commits it;
once every partition has committed the last entry, the parts published in Redis are merged into the
snapshot printed.

Run it again after a crash and it resumes. At full speed a file is cut into the same batches from any
batch's end, so the producer starts after the oldest batch every partition has committed to the
history: entries the log still holds are refused by id (counted), any it lost are sent again. A paced
replay cuts by the clock, so it resumes after the log's newest entry instead (a batch is in every
partition or in none: one MULTI/EXEC). Run again with another `--pipeline`, the spec becomes a new version and
the partitions re-run their stored history through it before they end (backfill.py), as embedded.
"""
from __future__ import annotations

import os
import time

from ..errors import UserError
from ..ingest.replay import FAST_BLOCK, ReplaySource, Speed
from ..prep.pipeline import FREEZE_ROWS, Pipeline
from .backfill import ClusterBackfill, ask
from .config import Cluster, open_cluster
from .delta_store import committed, create_tables
from .pipelines import Stamper, Versions, start_with
from .redis_log import Producer, newest_entry
from .redis_snapshots import RedisSnapshots
from .worker import run_partition

WAIT_FAILURES = 20           # partition tasks resubmitted at most (after Dask gave up or a fence)
NO_WORKERS = 120.0           # seconds with no Dask worker at all before a command gives up


def stream_config(name: str, path: str, source: ReplaySource, window, retention_rows: int | None,
                  partitions: int, partition_key: str | None = None) -> dict:
    return {"source": "replay", "path": path, "window": window.to_json(), "time_column": source.time_column,
            "schema": source.schema.to_json(), "partitions": partitions, "retention_rows": retention_rows,
            "retention_seconds": None, "group_by": None, "partition_key": partition_key}


def replay(setting: str, path: str, data_dir: str, window, partitions: int = 1, time_column: str | None = None,
           retention_rows: int | None = None, workers: int = 2, speed: Speed = Speed(),
           block: int | None = None, pipeline: Pipeline | None = None, partition_key: str | None = None) -> dict:
    """Replay `path` on the cluster `setting` names; the merged snapshot JSON with `cluster`."""
    path = os.path.abspath(path)
    name = os.path.splitext(os.path.basename(path))[0]
    with open_cluster(setting, data_dir, workers) as cluster:
        return run(cluster, name, path, window, partitions, time_column, retention_rows, speed, block, pipeline,
                   partition_key)


def run(cluster: Cluster, name: str, path: str, window, partitions: int, time_column: str | None,
        retention_rows: int | None, speed: Speed = Speed(), block: int | None = None,
        pipeline: Pipeline | None = None, partition_key: str | None = None) -> dict:
    from distributed import Client
    r = cluster.redis()
    probe = ReplaySource(path, time_column=time_column)
    probe.close()
    if probe.schema is None:
        raise UserError(f"{path} has no header; there is nothing to replay")
    check_key(probe.schema, partition_key)
    config = stream_config(name, path, probe, window, retention_rows, partitions, partition_key)
    _check_partitions(r, name, partitions, partition_key)
    stored = any(committed(cluster.history, name, partitions))
    rerun = start_with(Versions(r, name), pipeline, probe.schema,
                       (lambda: _sample(cluster, name, partitions)) if stored else None)
    request = ask(r, name, rerun) if rerun else None     # the partitions re-run their history, then end
    create_tables(cluster.history, name, probe.schema)
    source, producer = _resume(r, cluster, name, path, partitions, probe, speed, block or FAST_BLOCK)
    producer.key = partition_key
    stamper = Stamper(r, name, probe.schema)
    with Client(cluster.scheduler, timeout=30) as client:
        futures = {p: _submit(client, cluster, name, p, config) for p in range(partitions)}
        started = time.time()
        try:
            while not source.done:
                batch = source.next_batch()
                if batch is not None:
                    stamper.stamp(producer, batch.table)
                    producer.send(batch)
                elif speed.mode != "max":
                    time.sleep(0.005)
            producer.finish()
        finally:
            source.close()
        sent_s = time.time() - started
        results = _wait(client, cluster, name, config, futures)
    if stamper.error:
        raise UserError(f"{stamper.error}; the rows were stored and counted without the pipeline")
    if request is not None:
        status = ClusterBackfill(r, name, partitions, request).status()
        if status["state"] != "done":
            raise UserError(f"the backfill did not finish: {status['error'] or status['state']}")
    snap = RedisSnapshots(r).latest(name)
    if snap is None:
        raise UserError(f"no partition of {name} published a snapshot")
    out = snap.to_json()
    out["cluster"] = {**cluster.to_json(), "partitions": partitions,
                      "seq": [results[p]["seq"] for p in range(partitions)],
                      "log_entries": {"sent": producer.sent, "refused": producer.refused},
                      "producer_s": round(sent_s, 3)}
    return out


def _sample(cluster: Cluster, name: str, partitions: int):
    """The newest stored raw rows, which a new version's frozen statistics come from (as `Engine.apply`)."""
    from .history import History
    rows = History(cluster.history, name, partitions).rows(last=FREEZE_ROWS)
    return rows.drop_columns([c for c in ("_rid", "_ingest") if c in rows.column_names])


def check_key(schema, partition_key: str | None) -> None:
    if partition_key is not None and partition_key not in schema:
        raise UserError(f"partition key {partition_key!r} is not a column of the stream; columns: "
                        f"{', '.join(schema.names)}")


def _check_partitions(r, name: str, partitions: int, partition_key: str | None = None) -> None:
    """A stream keeps the number of partitions and the key it started with (rows were spread by them)."""
    key = f"rivulet:{name}:partitions"
    if not r.set(key, partitions, nx=True):
        was = int(r.get(key))
        if was != partitions:
            raise UserError(f"stream {name} was started with {was} partitions; run it with --partitions {was}")
    key = f"rivulet:{name}:partition-key"
    if not r.set(key, partition_key or "", nx=True):
        was = r.get(key).decode()
        if was != (partition_key or ""):
            raise UserError(f"stream {name} was started " + (f"with --partition-key {was}" if was else
                            "without a partition key") + "; run it the same way")


def _resume(r, cluster: Cluster, name: str, path: str, partitions: int, probe: ReplaySource,
            speed: Speed, block: int):
    """The source and producer positioned where the module's docstring says."""
    producer = Producer(r, name, partitions, probe.time_column)
    offset, seq = None, 0
    if speed.mode != "max":
        seq, offset = newest_entry(r, name)
    if offset is None:
        states = committed(cluster.history, name, partitions)
        if all(states):
            oldest = min(states, key=lambda s: s["seq"])
            seq, offset = oldest["seq"], oldest["offset"]
    position = None
    if offset is not None:
        position = offset["source"]["source"]
        producer.resume_at(seq, offset["source"]["rows"], offset.get("newest"))
    source = ReplaySource(path, position=position, speed=speed, time_column=probe.time_column,
                          schema=probe.schema, block=block)
    return source, producer


def _submit(client, cluster: Cluster, name: str, p: int, config: dict):
    return client.submit(run_partition, cluster.to_json(), name, p, config, pure=False,
                         key=f"rivulet-{name}-p{p}-{time.time_ns()}")


def _wait(client, cluster: Cluster, name: str, config: dict, futures: dict) -> dict[int, dict]:
    """Every partition's result; a partition whose task failed for good or was fenced is run again."""
    from distributed import wait
    from distributed.scheduler import KilledWorker
    results: dict[int, dict] = {}
    retries, alone = 0, None
    while futures:
        try:
            wait(list(futures.values()), timeout=5, return_when="FIRST_COMPLETED")
        except TimeoutError:        # still running, or no worker left to run them: say so, never hang
            if client.scheduler_info().get("workers"):
                alone = None
            elif alone is None:
                alone = time.monotonic()
            elif time.monotonic() - alone > NO_WORKERS:
                raise UserError(f"no Dask worker has run on {cluster.scheduler} for {NO_WORKERS:.0f} s; start "
                                f"workers (dask worker {cluster.scheduler}) and run the command again") from None
            continue
        for p, f in list(futures.items()):
            if not f.done():
                continue
            del futures[p]
            result = f.result() if f.status == "finished" else None
            if result is not None and not (result["fenced"] or result.get("exited")):
                results[p] = result
                continue
            if f.status == "error" and not isinstance(f.exception(), KilledWorker):
                raise UserError(f"partition {p} of {name} stopped: {_reason(f)}")
            retries += 1
            if retries > WAIT_FAILURES:
                raise UserError(f"partition {p} of {name} failed {retries} times: {_reason(f)}")
            futures[p] = _submit(client, cluster, name, p, config)
    return results


def _reason(future) -> str:
    if future.status == "finished":
        result = future.result()
        return result.get("reason", "its worker process exited" if result.get("exited") else "fenced")
    e = future.exception()
    return f"{type(e).__name__}: {e}"
