"""The cluster Log: one Redis stream per stream partition (`rivulet:{stream}:p{n}`).

An entry is one parsed batch's share of a partition as Arrow IPC, its quarantined rows, the source
position after the batch and the newest event time of the whole stream so far (so time windows of
every partition end at the same instant). Entry ids are `{seq}-0` with seq the batch number, the same
in every partition: a batch re-sent after a producer crash has an id Redis already holds, and Redis
refuses it. Every partition gets an entry for every batch (possibly with no rows), so a partition's
position is one number.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..ingest.parse import Bad
from ..ingest.source import Batch
from ..schema import Schema, time_seconds

MERGE_ROWS = 50_000         # waiting entries are read as one batch until it holds this many rows
BAD_SCHEMA = pa.schema([("position", pa.int64()), ("raw", pa.string()), ("reason", pa.string()),
                        ("kept", pa.bool_()), ("source", pa.string())])


def log_key(stream: str, partition: int) -> str:
    return f"rivulet:{stream}:p{partition}"


def end_key(stream: str) -> str:
    """The seq of a finite source's last batch, once the producer has sent it."""
    return f"rivulet:{stream}:end"


# LZ4-frame buffers: the benchmark's 8.1 MB entry (83,000 rows) becomes 4.7 MB for 14 ms more CPU in the
# producer and 3 ms in the worker, and Redis, the one server every partition shares, spends about 15 ms less
# on its XADD (the AOF write, appendfsync always) and 5 ms less handing it out; summed over every process,
# about even (README, Benchmarks)
IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def ipc_bytes(table: pa.Table) -> memoryview:
    """The table as Arrow IPC, its buffers LZ4-compressed (a reader needs no option), as a view of Arrow's
    buffer: the Redis client sends a memoryview as it is (a copy to bytes cost 8 ms an 8 MB entry, 0.09 CPU s
    a million rows of the benchmark's file)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=IPC_OPTIONS) as w:
        w.write_table(table)
    return memoryview(sink.getvalue())


def ipc_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def encode_entry(rows: pa.Table, bad: list[Bad], position: dict, newest: float | None,
                 pipeline: int = 0, model: str = "", replayed: bool = False, reset: bool = False) -> dict:
    fields = {"rows": ipc_bytes(rows), "pos": json.dumps(position), "n": rows.num_rows, "pv": pipeline, "mv": model}
    if replayed:             # rows stored already (a seek back, a loop): live views only
        fields["rp"] = 1
    if reset:                # windows restart at this entry (a seek)
        fields["rs"] = 1
    if bad:
        fields["bad"] = ipc_bytes(pa.table({"position": [b.position for b in bad], "raw": [b.raw for b in bad],
                                            "reason": [b.reason for b in bad], "kept": [b.kept for b in bad],
                                            "source": [b.source for b in bad]}, schema=BAD_SCHEMA))
    if newest is not None:
        fields["newest"] = repr(newest)
    return fields


def decode_entry(fields: dict) -> tuple[pa.Table, list[Bad], dict, float | None]:
    rows = ipc_table(fields[b"rows"])
    bad = [Bad(r["position"], r["raw"], r["reason"], r["kept"], r["source"])
           for r in ipc_table(fields[b"bad"]).to_pylist()] if b"bad" in fields else []
    newest = float(fields[b"newest"]) if b"newest" in fields else None
    return rows, bad, json.loads(fields[b"pos"]), newest


def stamps(fields: dict) -> tuple[int, str, bool]:
    """The pipeline version and deployed model the producer stamped on an entry (pipelines.py), and
    whether its rows are replayed ones."""
    return int(fields.get(b"pv", 0)), fields.get(b"mv", b"").decode(), b"rp" in fields


def seq_of(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def round_robin(n_rows: int, first_row: int, partitions: int) -> list[np.ndarray]:
    """Row indices of a batch per partition: row r of the stream (0-based) goes to r mod partitions."""
    part = (np.arange(n_rows) + first_row) % partitions
    return [np.flatnonzero(part == p) for p in range(partitions)]


def by_key(column: pa.ChunkedArray, partitions: int) -> list[np.ndarray]:
    """Row indices of a batch per partition: rows whose key has the same text go to the same partition,
    whichever process sends them (pandas' hash_array is keyed with a fixed seed; missing keys hash as '')."""
    import pandas as pd
    text = pc.fill_null(pc.cast(column, pa.string()), "").to_numpy(zero_copy_only=False)
    part = (pd.util.hash_array(text.astype(object), categorize=True) % np.uint64(partitions)).astype(np.int64)
    return [np.flatnonzero(part == p) for p in range(partitions)]


def newest_time(column: pa.ChunkedArray) -> float | None:
    """The newest event time of a batch in epoch seconds (None: no time). A timestamp column's maximum is
    found on the column and only it converted; numbers go through the seconds-or-milliseconds rule row by row."""
    if pa.types.is_timestamp(column.type):
        top = pc.max(column)
        return None if not top.is_valid else float(time_seconds(pa.array([top.value], column.type))[0])
    t = time_seconds(column)
    return float(np.nanmax(t)) if np.isfinite(t).any() else None


def newest_entry(redis, stream: str) -> tuple[int, dict | None]:
    """(seq, {"source": the entry's position, "newest": event time, "pipeline", "model": its stamps}) of the
    log's newest entry, or (0, None): where a producer that cuts batches by the clock (paced replay, tail,
    demo) resumes."""
    top = redis.xrevrange(log_key(stream, 0), count=1)
    if not top:
        return 0, None
    _, _, position, newest = decode_entry(top[0][1])
    pipeline, model, _ = stamps(top[0][1])
    return seq_of(top[0][0]), {"source": position, "newest": newest, "pipeline": pipeline, "model": model}


class Producer:
    """Parses at the edge: sends each batch of a Log (a ReplaySource, a TailSource) to the partitions,
    round-robin by stream row or, with a `key` column, by the key's hash.

    All partitions' entries of one batch go in one MULTI/EXEC, so a batch is in every partition or in
    none. Entries the log already holds (a restart from an older position) are refused by id and
    counted in `refused`.

    A replayed batch (rows a seek back or a loop plays again, stored already) goes to the partitions
    flagged as such, and is not counted in `rows`: round-robin spreads the stored rows by their own
    count, so partition p's k-th stored row stays the stream's row k x partitions + p (history.py)."""

    def __init__(self, redis, stream: str, partitions: int, time_column: str | None, key: str | None = None):
        self.redis = redis
        self.stream = stream
        self.partitions = partitions
        self.key = key           # the partition key column (None: round-robin)
        self.time_column = time_column
        self.keys = [log_key(stream, p) for p in range(partitions)]
        self.seq = 0
        self.rows = 0            # stream rows sent before the next batch (round-robin is by stream row)
        self.newest: float | None = None
        self.refused = 0
        self.sent = 0
        self.pipeline = 0        # stamped on every entry: the version and model partitions run it with
        self.model = ""
        self.seek = 0            # the id of the last seek applied to the source (producer.py), in every entry

    def resume_at(self, seq: int, rows: int, newest: float | None) -> None:
        self.seq, self.rows, self.newest = seq, rows, newest

    def send(self, batch: Batch) -> None:
        table = batch.table
        if batch.reset:              # a seek: time windows end at the newest time seen since
            self.newest = None
        if self.time_column is not None and table.num_rows:
            top = newest_time(table.column(self.time_column))
            if top is not None:
                self.newest = top if self.newest is None else max(self.newest, top)
        self.seq += 1
        new = 0 if batch.replayed else table.num_rows
        position = {"source": batch.offsets if batch.offsets is not None else batch.position,
                    "rows": self.rows + new, "seek": self.seek}
        pipe = self.redis.pipeline(transaction=True)
        spread = by_key(table.column(self.key), self.partitions) if self.key and self.partitions > 1 \
            else round_robin(table.num_rows, self.rows, self.partitions)
        for p, idx in enumerate(spread):
            part = table if self.partitions == 1 else table.take(pa.array(idx, pa.int64()))
            bad = batch.bad if p == self.seq % self.partitions and not batch.replayed else []
            pipe.xadd(self.keys[p], encode_entry(part, bad, position, self.newest, self.pipeline, self.model,
                                                 batch.replayed, batch.reset), id=f"{self.seq}-0")
        for result in pipe.execute(raise_on_error=False):
            if isinstance(result, Exception):
                if "equal or smaller" not in str(result):
                    raise result
                self.refused += 1
            else:
                self.sent += 1
        self.rows += new

    def finish(self) -> None:
        self.redis.set(end_key(self.stream), self.seq)


class PartitionLog:
    """The Log seam over one partition's Redis stream, read from after `seq` (the store's position)."""

    kind = "log"
    max_inflight = None
    paused = False

    def __init__(self, redis, stream: str, partition: int, schema: Schema, time_column: str | None,
                 position: dict | None = None, block_ms: int = 100, count: int = 1):
        self.redis = redis
        self.key = log_key(stream, partition)
        self.stream = stream
        self.schema = schema
        self.time_column = time_column
        pos = position or {}
        self.seq = int(pos.get("seq", 0))
        self.newest = pos.get("newest")
        self.block_ms = block_ms
        self.count = count
        self.end: int | None = None
        self.rows = 0
        self.pending: list = []

    def next_batch(self) -> Batch | None:
        if not self.pending:
            got = self.redis.xread({self.key: f"{self.seq}-0"}, count=self.count, block=self.block_ms or None)
            self.pending = list(got[0][1]) if got else []
            if not self.pending:
                return None
        # entries waiting together become one batch (a worker behind catches up with fewer, bigger
        # batches); it ends at the first entry with bad rows, so they keep their own entry's seq, and
        # before an entry stamped with another pipeline version or model, which runs from that entry on (or
        # whose rows are replayed when these are new, or the other way), before one where windows restart, and
        # once it holds MERGE_ROWS rows: the operators cost twice as much a row on batches much bigger than
        # that (their arrays no longer fit the cache: 0.64 CPU s a million rows in batches of 80,000, 1.25 in
        # batches of 160,000), so a worker catching up on big entries takes them one or two at a time
        tables, nbytes, rows = [], 0, 0
        stamp = stamps(self.pending[0][1])
        reset = b"rs" in self.pending[0][1]
        while self.pending and stamps(self.pending[0][1]) == stamp and rows < MERGE_ROWS \
                and not (tables and b"rs" in self.pending[0][1]):
            entry_id, fields = self.pending.pop(0)
            table, bad, position, newest = decode_entry(fields)
            self.seq = seq_of(entry_id)
            if newest is not None:
                self.newest = newest
            tables.append(table)
            rows += table.num_rows
            nbytes += len(fields[b"rows"])
            if bad:
                break
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        self.rows += table.num_rows
        return Batch(table, bad, {"seq": self.seq, "newest": self.newest, "source": position,
                                 "pipeline": stamp[0], "model": stamp[1]},
                     nbytes=nbytes, read_at=time.time(), reset=reset, replayed=stamp[2])

    def position(self) -> dict:
        return {"seq": self.seq, "newest": self.newest}

    @property
    def done(self) -> bool:
        """The producer finished and every entry up to its last has been read."""
        if self.end is None:
            end = self.redis.get(end_key(self.stream))
            if end is None:
                return False
            self.end = int(end)
        return self.seq >= self.end and not self.pending

    def status(self) -> dict:
        return {"state": "ended" if self.end is not None and self.seq >= self.end else "running",
                "log": self.key, "seq": self.seq, "rows": self.rows}

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def stop(self) -> None:
        pass              # next_batch blocks block_ms at most

    def close(self) -> None:
        pass
