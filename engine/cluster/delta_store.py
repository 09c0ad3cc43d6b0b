"""The cluster Store: a stream's history as a Delta Lake table (delta-rs), one writer per partition.

Each commit carries a partition's rows (`_part` = the partition, `_rid` counts its rows), the log
position as an app transaction (`{stream}:p{n}`, version = the last log seq in it) and the
partition's cumulative state in the commit's metadata, so the position and the rows never disagree.
Before committing, a writer checks that the app transaction is still the one it last saw; Delta
refuses a concurrent commit with the same app id. Either way a stale worker learns it no longer owns
the partition (`Fenced`) and stops, so no log seq is committed twice.

A commit's rows are one Parquet file written with pyarrow, uncompressed, and committed with
`create_write_transaction`; compaction rewrites the files with zstd.

Commits are grouped: `commit` buffers batches and writes about once a second (`flush`), the
provisional snapshot being published every batch meanwhile. Quarantined rows go to a second table
`quarantine` with its own app transaction, written first, each row tagged with its log seq so a
rerun after a crash between the two commits does not store them twice.
"""
from __future__ import annotations

import base64
import datetime
import json
import math
import os
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from ..errors import UserError
from ..ingest.parse import Bad
from ..schema import Schema, as_floats

COMMIT_EVERY = 1.0          # seconds between Delta commits of a partition
COMMIT_ROWS = 500_000       # rows buffered at most before a commit
STATE_KEYS = ("next_rid", "ingested", "quarantined", "flagged", "late", "window_from", "replayed")
QUARANTINE_SCHEMA = pa.schema([("_part", pa.int32()), ("_seq", pa.int64()), ("source", pa.string()),
                               ("position", pa.int64()), ("raw", pa.string()), ("reason", pa.string()),
                               ("kept", pa.bool_()), ("seen", pa.timestamp("us"))])


def writer_properties(schema: pa.Schema):
    """How compaction writes Parquet (a commit's file: `_write_file`): no dictionary for float columns
    (measured values rarely repeat, so the dictionary is built and dropped), statistics per file rather than
    per page (Delta skips files, not pages) and zstd level 1 (about 40 MB a million rows of the benchmark's
    file, against 100 uncompressed)."""
    from deltalake import ColumnProperties, WriterProperties
    floats = {f.name: ColumnProperties(dictionary_enabled=False, statistics_enabled="CHUNK")
              for f in schema if pa.types.is_floating(f.type)}
    return WriterProperties(compression="ZSTD", compression_level=1, column_properties=floats,
                            default_column_properties=ColumnProperties(statistics_enabled="CHUNK"))


def _predictions_schema() -> pa.Schema:
    from ..models.stored import PREDICTION_SCHEMA
    return pa.schema([("_part", pa.int32()), ("_seq", pa.int64()), *PREDICTION_SCHEMA])


class Fenced(UserError):
    """Another worker committed this partition since we last did: we no longer own it."""


def rows_uri(history: str, stream: str) -> str:
    return os.path.join(history, stream, "rows") if "://" not in history else f"{history.rstrip('/')}/{stream}/rows"


def quarantine_uri(history: str, stream: str) -> str:
    return os.path.join(history, stream, "quarantine") if "://" not in history else \
        f"{history.rstrip('/')}/{stream}/quarantine"


def stored_schema(schema: Schema) -> pa.Schema:
    """The rows table's columns: what the embedded store keeps, plus the partition. Integer columns that
    held a value beyond 2**53 when the stream was made (ids, nanosecond stamps) stay int64: they never
    turn to floats, so every partition writes them alike, and float64 would round them. Other numbers
    are float64 (an integer column turns to floats at its first fraction, in each partition on its own,
    and a Delta table's column has one type); their integers up to 2**53 are exact as floats."""
    columns = as_floats(schema.arrow().empty_table(), keep=[c.name for c in schema.columns if c.wide]).schema
    return pa.schema([("_rid", pa.int64()), ("_ingest", pa.timestamp("us")), *columns,
                      ("_part", pa.int32())])


def predictions_uri(history: str, stream: str) -> str:
    return os.path.join(history, stream, "predictions") if "://" not in history else \
        f"{history.rstrip('/')}/{stream}/predictions"


def create_tables(history: str, stream: str, schema: Schema) -> None:
    """The tables of a stream, before any worker starts (so workers never race to create them)."""
    from deltalake import DeltaTable
    if "://" not in history:
        os.makedirs(os.path.join(history, stream), exist_ok=True)
    for uri, arrow in ((rows_uri(history, stream), stored_schema(schema)),
                       (quarantine_uri(history, stream), QUARANTINE_SCHEMA),
                       (predictions_uri(history, stream), _predictions_schema())):
        DeltaTable.create(uri, arrow, mode="ignore", partition_by=["_part"])


def app_id(stream: str, partition: int) -> str:
    return f"{stream}:p{partition}"


def committed(history: str, stream: str, partitions: int) -> list[dict | None]:
    """Each partition's committed state (None before its first commit): what a producer resumes from."""
    from deltalake import DeltaTable
    try:
        table = DeltaTable(rows_uri(history, stream))
    except Exception:        # no table yet: nothing committed
        return [None] * partitions
    return [_state_of(table, stream, p) for p in range(partitions)]


def _state_of(table, stream: str, partition: int) -> dict | None:
    """The metadata of the partition's newest commit, found by its app transaction's version."""
    seq = table.transaction_version(app_id(stream, partition))
    if seq is None:
        return None
    limit = 16
    while True:
        history = table.history(limit)
        for commit in history:
            meta = commit.get("rivulet")
            if meta and meta["part"] == partition and meta["seq"] == seq:
                return meta
        if len(history) < limit:
            raise UserError(f"the history of {stream} has no commit for partition {partition} at seq {seq}")
        limit *= 4


class DeltaStore:
    """The Store seam for one partition worker. Stream configuration lives with the cluster (the task's
    arguments), so the methods that manage streams and pipeline versions keep them in memory."""

    def __init__(self, history: str, stream: str, partition: int, config: dict, epoch: int = 0,
                 still_owner=None):
        from deltalake import DeltaTable
        self.data_dir = history
        self.stream = stream
        self.partition = partition
        self.config = config
        self.epoch = epoch
        self.still_owner = still_owner or (lambda: True)     # the claim in Redis (worker.claim)
        self.app = app_id(stream, partition)
        self.uri = rows_uri(history, stream)
        self.table = DeltaTable(self.uri)
        self.arrow = pa.schema(self.table.schema().to_arrow())
        self.file_schema = pa.schema([f for f in self.arrow if f.name != "_part"])
        self.writer = writer_properties(self.arrow)
        self.quarantine_table = DeltaTable(quarantine_uri(history, stream))
        self.history_uri = history
        self.predictions_table = None           # opened at the first prediction
        self.predicted: list[tuple[int, pa.Table]] = []
        self.saved = _state_of(self.table, stream, partition)
        self.seq = self.saved["seq"] if self.saved else 0      # what we last committed (or found)
        self.buffer: list[pa.Table] = []
        self.bad: list[tuple[int, Bad]] = []
        self.state_now: dict | None = None
        self.offset_now: dict | None = None
        self.buffered_rows = 0
        self.last_flush = time.time()
        self.commits = 0
        self._history: pa.Table | None = None
        self.pruned_below = 0                  # rows below this _rid are deleted already (retain)

    # --- what Stream asks for at start ----------------------------------------------
    def state(self, stream_id: int) -> dict:
        s = self.saved
        if s is None:
            return dict.fromkeys(STATE_KEYS, 0) | {"cumulative": None}
        return {k: s.get(k, 0) for k in STATE_KEYS} | {
            "cumulative": base64.b64decode(s["cumulative"]) if s.get("cumulative") else None}

    def offsets(self, stream_id: int) -> dict[str, dict]:
        return {"log": self.saved["offset"]} if self.saved else {}

    def pipelines(self, stream_id: int) -> list[dict]:
        return self.config.get("pipelines", [])

    def set_schema(self, stream_id: int, schema: Schema) -> None:
        pass                                   # the table was created with it (create_tables)

    def update_config(self, stream_id: int, config: dict) -> None:
        self.config = config

    def update_pipeline(self, stream_id: int, version: int, spec: dict) -> None:
        pass

    def drop_pipeline(self, stream_id: int, version: int) -> None:
        pass

    def set_cumulative(self, stream_id: int, cumulative: bytes | None) -> None:
        if self.state_now is not None:
            self.state_now["cumulative"] = cumulative

    # --- commits ------------------------------------------------------------------------
    def commit(self, stream_id: int, rows: pa.Table | None, bad: list[Bad], source: str,
               offsets: dict[str, dict | None], state: dict, extra: dict[str, pa.Table] | None = None) -> None:
        """Buffer one batch; `flush` commits what is buffered as one Delta version (when `due`)."""
        offset = offsets["log"]
        if rows is not None and rows.num_rows:
            self.buffer.append(rows)           # `_part` is the file's folder, not a column in it
            self.buffered_rows += rows.num_rows
        self.bad.extend((offset["seq"], b) for b in bad)
        for table in (extra or {}).values():        # a deployed model's predictions (Stream.commit)
            self.predicted.append((offset["seq"], table))
        self.state_now, self.offset_now = dict(state), offset

    def due(self) -> bool:
        """Time (or rows enough) to commit what is buffered: the worker then calls `flush`."""
        return self.buffered_rows >= COMMIT_ROWS or time.time() - self.last_flush >= COMMIT_EVERY

    def flush(self) -> bool:
        """Commit the buffered batches (rows, position, state) as one version; False if nothing was new."""
        self.last_flush = time.time()
        if self.offset_now is None or self.offset_now["seq"] <= self.seq:
            return False
        self._commit(self.offset_now["seq"])
        return True

    def save(self, state: dict) -> None:
        """Commit `state` (counters and cumulative) now, with what is buffered, even when the log did not move
        on: the state a backfill rebuilt (cluster/backfill.py). A partition that never committed has no rows."""
        if self.offset_now is None and self.saved is None:
            return
        self.state_now = dict(state)
        self.offset_now = self.offset_now or self.saved["offset"]
        self._commit(self.offset_now["seq"])

    def _commit(self, seq: int) -> None:
        from deltalake import CommitProperties, Transaction
        from deltalake.exceptions import CommitFailedError
        self._check_owner()
        if self.bad:
            self._flush_quarantine(seq)
        if self.predicted:
            self._flush_predictions(seq)
        meta = {"part": self.partition, "seq": seq, "epoch": self.epoch, "offset": self.offset_now,
                "pipeline": int(self.config.get("pipeline") or 0),
                "pipeline_from": int(self.config.get("pipeline_from") or 0),
                "backfilled": int(self.config.get("backfilled") or 0),
                **{k: int(self.state_now[k]) for k in STATE_KEYS},
                "cumulative": base64.b64encode(self.state_now["cumulative"]).decode()
                if self.state_now.get("cumulative") else None}
        actions = [self._write_file(pa.concat_tables(self.buffer))] if self.buffer else []
        props = CommitProperties(custom_metadata={"rivulet": meta}, app_transactions=[Transaction(self.app, seq)])
        try:
            self.table.create_write_transaction(actions, "append", self.arrow, ["_part"], commit_properties=props)
        except CommitFailedError as e:
            raise Fenced(f"partition {self.partition} of {self.stream} was committed by another worker ({e})") from None
        self.seq, self.saved = seq, meta
        self.buffer, self.buffered_rows, self.bad, self.predicted = [], 0, [], []
        self.commits += 1
        self._history = None

    def _write_file(self, rows: pa.Table):
        """The commit's rows as one Parquet file in the partition's folder, written as the embedded store
        writes its segments: uncompressed, no dictionary, statistics for `_rid` and `_ingest` only (the
        columns reads skip files by). delta-rs's own writer costs 0.7 CPU s a million rows of the benchmark's
        file with zstd, this 0.15; compaction (`compact`) rewrites the files with zstd. A file whose commit
        never happens (a crash, a fence) is one no version lists; vacuum deletes it."""
        import uuid

        import pyarrow.parquet as pq
        from deltalake.transaction import AddAction
        if not rows.schema.equals(self.file_schema):
            ints = [f.name for f in self.file_schema if pa.types.is_integer(f.type)]
            rows = as_floats(rows, keep=ints).select(self.file_schema.names).cast(self.file_schema)
        name = f"_part={self.partition}/part-{uuid.uuid4()}-c000.parquet"
        fs, root = pafs.FileSystem.from_uri(self.uri if "://" in self.uri else os.path.abspath(self.uri))
        path = f"{root.rstrip('/')}/{name}"
        fs.create_dir(path.rsplit("/", 1)[0])
        with fs.open_output_stream(path) as out:
            pq.write_table(rows, out, compression="none", use_dictionary=False, write_statistics=["_rid", "_ingest"])
        size = fs.get_file_info(path).size
        return AddAction(name, size, {"_part": str(self.partition)}, int(time.time() * 1000), True,
                         json.dumps(_file_stats(rows)))

    def compact(self, vacuum_hours: float | None) -> dict:
        """Rewrite this partition's small files (one per commit) as few large ones: a Delta commit that
        changes no rows, position or state. With `vacuum_hours`, also delete the files no version newer
        than that needs (partition 0's worker does it for the table). Only the partition's owner compacts."""
        self._check_owner()
        out = self.table.optimize.compact(partition_filters=[("_part", "=", str(self.partition))],
                                          writer_properties=self.writer)
        if vacuum_hours is not None:
            out["vacuumed"] = len(self.table.vacuum(retention_hours=int(vacuum_hours), dry_run=False,
                                                    enforce_retention_duration=False))
        self._history = None
        return out

    def retain(self, next_rid: int, keep_rows: int | None, partitions: int, keep_seconds: float | None = None) -> int:
        """Retention: delete this partition's rows older than its share of the stream's newest `keep_rows`
        (round-robin gives each partition about keep_rows / partitions of them), and with `keep_seconds` the
        rows that arrived longer ago than that (`_ingest`, as the embedded store prunes). Each a Delta commit
        that moves no position and no state, so the app transaction and the committed state a rerun resumes
        from stay (a delete that matches nothing commits nothing); the deleted files go at the next vacuum.
        Only the partition's owner prunes. Rows deleted."""
        deleted = 0
        keep = math.ceil(keep_rows / max(partitions, 1)) if keep_rows else 0
        cut = next_rid - keep
        if keep and cut > 0 and cut > self.pruned_below:
            deleted += self._delete(f"_rid < {int(cut)}")
            self.pruned_below = cut
        if keep_seconds:
            since = datetime.datetime.fromtimestamp(time.time() - float(keep_seconds), datetime.timezone.utc)
            deleted += self._delete(f"_ingest < '{since:%Y-%m-%d %H:%M:%S.%f}'")
        return deleted

    def _delete(self, where: str) -> int:
        self._check_owner()
        out = self.table.delete(f"_part = {int(self.partition)} AND {where}")
        self._history = None
        return int(out.get("num_deleted_rows", 0) or 0)

    def _check_owner(self) -> None:
        if not self.still_owner():
            raise Fenced(f"partition {self.partition} of {self.stream} was claimed by another worker")
        self.table.update_incremental()
        seen = self.table.transaction_version(self.app)
        if (seen or 0) != self.seq:
            raise Fenced(f"partition {self.partition} of {self.stream} is at seq {seen} in the history, "
                         f"not {self.seq}: another worker owns it")

    def _flush_quarantine(self, seq: int) -> None:
        from deltalake import CommitProperties, Transaction, write_deltalake
        q = self.quarantine_table
        q.update_incremental()
        done = q.transaction_version(self.app) or 0
        bad = [(s, b) for s, b in self.bad if s > done]
        if not bad:
            return
        now = int(time.time() * 1e6)
        table = pa.table({"_part": pa.array([self.partition] * len(bad), pa.int32()),
                          "_seq": pa.array([s for s, _ in bad], pa.int64()),
                          "source": [b.source or "replay" for _, b in bad],
                          "position": pa.array([b.position for _, b in bad], pa.int64()),
                          "raw": [b.raw for _, b in bad], "reason": [b.reason for _, b in bad],
                          "kept": [b.kept for _, b in bad],
                          "seen": pa.array([now] * len(bad), pa.timestamp("us"))}, schema=QUARANTINE_SCHEMA)
        write_deltalake(q, table, mode="append",
                        commit_properties=CommitProperties(app_transactions=[Transaction(self.app, seq)]))

    def _flush_predictions(self, seq: int) -> None:
        """Predictions go first, like quarantined rows: a rerun after a crash before the rows commit skips
        the seqs this table's app transaction already holds, so no row is predicted twice."""
        from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
        if self.predictions_table is None:
            self.predictions_table = DeltaTable(predictions_uri(self.history_uri, self.stream))
        t = self.predictions_table
        t.update_incremental()
        done = t.transaction_version(self.app) or 0
        parts = [p.append_column("_seq", pa.array([s] * p.num_rows, pa.int64()))
                 for s, p in self.predicted if s > done and p.num_rows]
        if not parts:
            return
        table = pa.concat_tables(parts)
        table = table.append_column("_part", pa.array([self.partition] * table.num_rows, pa.int32()))
        write_deltalake(t, table.select(_predictions_schema().names).cast(_predictions_schema()), mode="append",
                        commit_properties=CommitProperties(app_transactions=[Transaction(self.app, seq)]))

    # --- history ----------------------------------------------------------------------------
    def _partition_rows(self) -> pa.Table:
        if self._history is None:
            self.table.update_incremental()
            t = self.table.to_pyarrow_dataset().to_table(filter=ds.field("_part") == self.partition)
            self._history = t.drop_columns(["_part"]).sort_by("_rid")
        return self._history

    def _rows_since(self, rid: int) -> pa.Table:
        """The partition's rows from `rid` on: Delta prunes the other partitions' folders, Parquet's `_rid`
        statistics the older row groups."""
        self.table.update_incremental()
        where = (ds.field("_part") == self.partition) & (ds.field("_rid") >= rid)
        return self.table.to_pyarrow_dataset().to_table(filter=where).drop_columns(["_part"]).sort_by("_rid")

    def rows(self, stream_id: int, last: int | None = None, since_rid: int = 0,
             columns: list[str] | None = None, limit: int | None = None) -> pa.Table:
        if since_rid and last is None and self._history is None:
            t = self._rows_since(since_rid)     # the newest rows only (a backfill's catch-up), not the whole partition
        else:
            t = self._partition_rows()
        rids = t.column("_rid")
        start = int(pc.sum(pc.less(rids, since_rid)).as_py() or 0)
        t = t.slice(start)
        if last is not None:
            t = t.slice(max(t.num_rows - last, 0))
        elif limit:
            t = t.slice(0, limit)
        return t.select(columns) if columns else t

    def count(self, stream_id: int) -> int:
        """Stored rows of this partition, bounded by the retention a restart rebuilds windows from."""
        keep = self.config.get("retention_rows")
        n = self._partition_rows().num_rows
        return min(n, keep) if keep else n

    def prune(self, stream_id: int, next_rid: int, keep_rows: int | None, keep_seconds: float | None) -> None:
        pass               # the worker's upkeep prunes on its schedule (worker.Upkeep, retain)

    def close(self) -> None:
        pass


def _file_stats(rows: pa.Table) -> dict:
    """Delta's statistics of a file (row count; bounds and nulls of `_rid` and `_ingest`, the columns reads
    filter on), as delta-rs writes them."""
    out = {"numRecords": rows.num_rows, "minValues": {}, "maxValues": {}, "nullCount": {}}
    for name in ("_rid", "_ingest"):
        col = rows.column(name)
        bounds = pc.min_max(col)
        out["nullCount"][name] = col.null_count
        if bounds["min"].is_valid:
            lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
            if name == "_ingest":
                lo, hi = (t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] for t in (lo, hi))
            out["minValues"][name], out["maxValues"][name] = lo, hi
    return out
