"""The producer of a stream the dashboard (or `tail --cluster`) started: a long Dask task that reads
the stream's source with the embedded reader (a replay, a tail, the demo), parses at the edge and
sends each batch to the partitions' logs (redis_log.Producer).

It cuts batches by the clock, so when Dask runs it again (its worker died) it resumes after the log's
newest entry, which holds the source's position (every file's, for a tail; for a replay the byte spans
already stored, so rows a seek back or a loop plays again go to the partitions as replayed ones, never
stored twice). Pause, resume, speed, loop and seek come from a Redis hash the dashboard writes
(`control_key`); the source's status goes the other way (`source_key`). A seek is a request with an
increasing id; the id of the last one applied travels in every entry, so a producer run again after a
crash does not seek twice. It stops when the source ends or when someone else claims the producer
(engine.py).
"""
from __future__ import annotations

import dataclasses
import json
import time

from ..errors import UserError
from ..ingest.logs import open_log
from ..ingest.replay import Speed
from ..schema import Schema
from .config import connect
from .pipelines import Stamper, control_key
from .redis_log import Producer, newest_entry
from .worker import _leave_worker_pool, claim, owns

LOOK_EVERY = 0.2         # seconds between looks at the claim and the controls (a new version or model
                         # runs from the first batch sent after the look)
__all__ = ["control_key", "run_producer", "seeks_key", "source_key"]


def seeks_key(stream: str) -> str:
    """A counter giving each seek request its id."""
    return f"rivulet:{stream}:seeks"


def source_key(stream: str) -> str:
    """The source's status as of the producer's last look (JSON)."""
    return f"rivulet:{stream}:source"


def resume_offsets(kind: str, offset: dict | None) -> dict:
    """The newest entry's position in the form `open_log` takes (the store's offsets)."""
    if offset is None:
        return {}
    position = offset["source"]["source"]
    return dict(position) if kind == "tail" else {kind: position}


def run_producer(cluster: dict, stream: str, config: dict, stop_when_done: bool = True,
                 task: str | None = None) -> dict:
    _leave_worker_pool()
    r = connect(cluster["log"])
    epoch = claim(r, stream, "producer", task)
    if epoch is None:                   # an old task Dask computed again (worker.claim)
        return {"fenced": False, "stale": True, "seq": 0}
    seq, offset = newest_entry(r, stream)
    kind = config["source"]
    offsets = resume_offsets(kind, offset)
    source = open_log(config, offsets, Schema.from_json(config["schema"]) if config.get("schema") else None)
    producer = Producer(r, stream, int(config.get("partitions", 1)), source.time_column, config.get("partition_key"))
    if offset is not None:
        producer.resume_at(seq, offset["source"]["rows"], offset.get("newest"))
    if offset is not None:          # resumed: go on with the stamps the log's newest entry carries
        producer.pipeline, producer.model = offset["pipeline"], offset["model"]
        producer.seek = int(offset["source"].get("seek", 0))
    stamper = Stamper(r, stream, source.schema)
    files = offsets if kind == "tail" else None      # a tail's batch carries only the files it moved
    looked, applied = 0.0, None
    try:
        while True:
            if time.monotonic() - looked >= LOOK_EVERY:
                looked = time.monotonic()
                if not owns(r, stream, "producer", epoch):
                    return {"fenced": True, "seq": producer.seq}
                applied = _apply_control(r, stream, source, applied, stamper, producer)
                r.set(source_key(stream), json.dumps(_status(source, stamper)))
            if source.paused:
                time.sleep(0.05)
                continue
            batch = source.next_batch()
            if batch is None:
                if source.done and stop_when_done:
                    producer.finish()
                    r.set(source_key(stream), json.dumps(_status(source, stamper)))
                    return {"fenced": False, "seq": producer.seq, "sent": producer.sent, "refused": producer.refused,
                            "seek": producer.seek}
                time.sleep(0.01)
                continue
            if files is not None and batch.offsets is not None:
                files.update(batch.offsets)
                batch = dataclasses.replace(batch, offsets={k: v for k, v in files.items() if v is not None})
            if stamper.schema is None:          # a tail learns its columns from its first rows
                stamper.schema = source.schema
            stamper.stamp(producer, batch.table)
            producer.send(batch)
    finally:
        source.close()


def _status(source, stamper: Stamper) -> dict:
    out = {**source.status(), "kind": source.kind}
    if stamper.error:
        out["pipeline_error"] = stamper.error
    return out


def _apply_control(r, stream: str, source, applied: dict | None, stamper: Stamper, producer) -> dict | None:
    """Pause, resume, speed, loop, a new seek, pipeline version and model as the dashboard last set them; the
    settings applied."""
    raw = r.hgetall(control_key(stream))
    control = {k.decode(): v.decode() for k, v in raw.items()}
    if control == applied:
        return applied
    stamper.look(control)
    paused = control.get("paused") == "1"
    if paused != bool(source.paused):
        source.pause() if paused else source.resume()
    if "speed" in control and hasattr(source, "set_speed"):
        sp = json.loads(control["speed"])
        source.set_speed(Speed(sp["mode"], sp["value"]))
    if source.kind == "replay":
        loop = control.get("loop") == "1"
        if loop != source.loop:
            source.set_loop(loop)
        seek = json.loads(control["seek"]) if "seek" in control else None
        if seek is not None and seek["id"] > producer.seek:
            producer.seek = seek["id"]
            try:
                source.seek(row=seek.get("row"), at=seek.get("at"))
            except UserError as e:          # checked by the engine first; the file may have changed since
                source.error = str(e)
    return control
