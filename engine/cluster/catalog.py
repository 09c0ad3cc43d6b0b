"""The Store of an engine whose streams run on the cluster (engine.py): the streams' catalogue in Redis
(`rivulet:streams`, one JSON field per stream) and their history read back from Delta (history.py).

Rows, positions and state are committed by the partition workers (delta_store.py), never here, so
this Store has no `commit`. Pipeline versions are kept in Redis beside the stream's log (pipelines.py),
where the partition workers read them.
"""
from __future__ import annotations

import json
import os
import shutil

import pyarrow as pa

from ..errors import UserError
from ..schema import Schema
from .history import History
from .pipelines import Versions, model_key

STREAMS = "rivulet:streams"
IDS = "rivulet:stream-ids"


def stream_keys(stream: str, partitions: int) -> list[str]:
    """Every Redis key of a stream: its partitions' logs, snapshot parts, claims, controls."""
    from .backfill import counter_key, status_key
    from .pipelines import control_key, versions_key
    from .producer import seeks_key, source_key
    from .redis_log import end_key, log_key
    from .redis_snapshots import owners_key, snapshot_key, tasks_key
    return [*(log_key(stream, p) for p in range(partitions)), snapshot_key(stream), owners_key(stream),
            tasks_key(stream),
            end_key(stream), control_key(stream), source_key(stream), f"rivulet:{stream}:partitions",
            f"rivulet:{stream}:partition-key", seeks_key(stream),
            versions_key(stream), counter_key(stream), status_key(stream)]


class ClusterStore:
    def __init__(self, redis, history: str, data_dir: str):
        self.redis = redis
        self.history = history
        self.data_dir = data_dir
        self._histories: dict[str, History] = {}

    # --- the catalogue ---------------------------------------------------------------
    def streams(self) -> list[dict]:
        rows = [json.loads(v) for v in self.redis.hvals(STREAMS)]
        return [{**r, "schema": Schema.from_json(r["schema"]) if r["schema"] else None}
                for r in sorted(rows, key=lambda r: r["id"])]

    def _row(self, stream_id: int) -> dict:
        for v in self.redis.hvals(STREAMS):
            row = json.loads(v)
            if row["id"] == stream_id:
                return row
        raise UserError(f"no stream with id {stream_id}")

    def _put(self, row: dict) -> None:
        self.redis.hset(STREAMS, row["name"], json.dumps(row))

    def name_of(self, stream_id: int) -> str:
        return self._row(stream_id)["name"]

    def create_stream(self, name: str, config: dict) -> int:
        sid = int(self.redis.incr(IDS))
        if not self.redis.hsetnx(STREAMS, name, json.dumps({"id": sid, "name": name, "config": config,
                                                            "schema": None})):
            raise UserError(f"a stream named {name!r} runs on the cluster already")
        return sid

    def update_config(self, stream_id: int, config: dict) -> None:
        self._put({**self._row(stream_id), "config": config})

    def set_schema(self, stream_id: int, schema: Schema) -> None:
        self._put({**self._row(stream_id), "schema": schema.to_json()})

    def delete_stream(self, stream_id: int) -> None:
        """Forget the stream: its catalogue entry, its keys in Redis and (in a folder) its history."""
        row = self._row(stream_id)
        name = row["name"]
        self.redis.delete(*stream_keys(name, int(row["config"].get("partitions") or 1)),
                          *self.redis.keys(model_key(name, "*")))
        self.redis.hdel(STREAMS, name)
        self._histories.pop(name, None)
        folder = os.path.join(self.history, name)
        if "://" not in self.history and os.path.isdir(folder):
            shutil.rmtree(folder)

    # --- pipeline versions (Redis, beside the log: pipelines.py) ------------------------------
    def versions(self, stream_id: int) -> Versions:
        return Versions(self.redis, self.name_of(stream_id))

    def pipelines(self, stream_id: int) -> list[dict]:
        return [{k: v[k] for k in ("version", "spec", "created", "from_row")} for v in self.versions(stream_id).all()]

    def add_pipeline(self, stream_id: int, spec: dict) -> int:
        return self.versions(stream_id).add(spec)

    def update_pipeline(self, stream_id: int, version: int, spec: dict) -> None:
        self.versions(stream_id).update(version, spec=spec)

    def drop_pipeline(self, stream_id: int, version: int) -> None:
        self.versions(stream_id).drop(version)

    def set_cumulative(self, stream_id: int, cumulative: bytes | None) -> None:
        pass                        # each partition worker commits its own

    def offsets(self, stream_id: int) -> dict[str, dict]:
        return {}                   # the producer resumes from the log (producer.py)

    # --- history ---------------------------------------------------------------------
    def history_of(self, name: str) -> History | None:
        """The stream's History (shared by every reader), or None for a stream not in the catalogue."""
        h = self._histories.get(name)
        if h is None:
            raw = self.redis.hget(STREAMS, name)
            if raw is None:
                return None
            partitions = json.loads(raw)["config"].get("partitions") or 1
            h = self._histories[name] = History(self.history, name, partitions)
        return h

    def _history(self, stream_id: int) -> History:
        return self.history_of(self.name_of(stream_id))

    def rows(self, stream_id: int, last: int | None = None, since_rid: int = 0,
             columns: list[str] | None = None, limit: int | None = None) -> pa.Table:
        return self._history(stream_id).rows(last, since_rid, columns, limit)

    def count(self, stream_id: int) -> int:
        return self._history(stream_id).count()

    def quarantine(self, stream_id: int, limit: int = 1000) -> pa.Table:
        return self._history(stream_id).quarantine(limit)

    def predictions(self, stream_id: int, last: int | None = 1000) -> pa.Table:
        return self._history(stream_id).predictions(last)

    def prune(self, stream_id: int, next_rid: int, keep_rows: int | None, keep_seconds: float | None) -> None:
        pass

    def close(self) -> None:
        pass
