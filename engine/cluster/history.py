"""A stream's history as the dashboard reads it: DuckDB over the Delta tables' pyarrow datasets.

(DuckDB's own delta extension downloads at run time, which fails offline; `DeltaTable(...)
.to_pyarrow_dataset()` needs nothing.) Rows are spread round-robin, so partition p's k-th row is the
stream's row k * P + p: `_rid` as read here is that stream row number, and ordering by it gives the
stream's order. The newest rows also back the views of other windows than the configured one
(`RecentChunks`), read again only when a partition committed since.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from ..schema import as_floats
from ..stats.operators import BUFFER_ROWS, chunk_of
from ..stats.windows import Chunk
from ..store.duck import quote
from .delta_store import predictions_uri, quarantine_uri, rows_uri

REFRESH = 0.5          # seconds between looks at the Delta log for new commits
CHUNK_ROWS = 8192      # rows per chunk of the recent rows (a window edge recomputes one chunk at most)


class History:
    """One stream's Delta tables, read-only; safe to share between threads (sessions)."""

    def __init__(self, history: str, stream: str, partitions: int):
        self.uris = {"rows": rows_uri(history, stream), "quarantine": quarantine_uri(history, stream),
                     "predictions": predictions_uri(history, stream)}
        self.partitions = max(int(partitions or 1), 1)
        self.lock = threading.Lock()
        self.tables: dict[str, object] = {}
        self.checked: dict[str, float] = {}
        self._recent: tuple[tuple, tuple[Chunk, ...]] | None = None

    def _dataset(self, name: str):
        """The table's current dataset (None before it exists), looked up again at most every REFRESH s."""
        from deltalake import DeltaTable
        with self.lock:
            table = self.tables.get(name)
            now = time.monotonic()
            if table is None:
                try:
                    table = self.tables[name] = DeltaTable(self.uris[name])
                except Exception:       # not created yet: no rows
                    return None, -1
                self.checked[name] = now
            elif now - self.checked.get(name, 0) >= REFRESH:
                table.update_incremental()
                self.checked[name] = now
            return table.to_pyarrow_dataset(), table.version()

    def version(self) -> int:
        return self._dataset("rows")[1]

    def rows(self, last: int | None = None, since_rid: int = 0, columns: list[str] | None = None,
             limit: int | None = None) -> pa.Table:
        """Stored rows in stream order (`_rid` = the stream's row number): all, the newest `last`, from `since_rid`."""
        data, _ = self._dataset("rows")
        if data is None:
            return pa.table({})
        P = self.partitions
        con = duckdb.connect()
        con.register("h", data)
        floor = since_rid // P           # a partition's own _rid: lets the scan skip older files
        if last is not None:
            tops = [r[0] for r in con.execute("SELECT max(_rid) FROM h GROUP BY _part").fetchall()]
            if tops:
                floor = max(floor, min(tops) - math.ceil(last / P) - 1)
        cols = ", ".join(quote(c) for c in columns) if columns else "*"
        inner = f"SELECT _rid * {P} + _part AS _rid, * EXCLUDE (_rid, _part) FROM h WHERE _rid >= ?"
        sql = f"SELECT {cols} FROM ({inner}) WHERE _rid >= ?"
        if last is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY _rid DESC LIMIT {int(last)}) ORDER BY _rid"
        else:
            sql += " ORDER BY _rid" + (f" LIMIT {int(limit)}" if limit else "")
        return con.sql(sql, params=[floor, since_rid]).to_arrow_table()

    def predictions(self, last: int | None = 1000) -> pa.Table:
        """A deployed model's stored predictions (the newest `last`, all when None) by stream row (`_rid`)."""
        data, _ = self._dataset("predictions")
        if data is None:
            return pa.table({})
        con = duckdb.connect()
        con.register("p", data)
        P = self.partitions
        sql = (f"SELECT * FROM (SELECT _rid * {P} + _part AS _rid, model, prediction, value, proba FROM p "
               f"ORDER BY _rid DESC{' LIMIT ?' if last is not None else ''}) ORDER BY _rid")
        return con.sql(sql, params=[int(last)] if last is not None else []).to_arrow_table()

    def count(self) -> int:
        data, _ = self._dataset("rows")
        return data.count_rows() if data is not None else 0

    def quarantine(self, limit: int = 1000) -> pa.Table:
        data, _ = self._dataset("quarantine")
        if data is None:
            return pa.table({"source": pa.array([], pa.string()), "position": pa.array([], pa.int64()),
                             "reason": pa.array([], pa.string()), "kept": pa.array([], pa.bool_()),
                             "raw": pa.array([], pa.string()), "seen": pa.array([], pa.timestamp("us"))})
        con = duckdb.connect()
        con.register("q", data)
        return con.sql("SELECT source, position, reason, kept, raw, seen FROM q "
                           "ORDER BY seen DESC, position DESC LIMIT ?", params=[int(limit)]).to_arrow_table()

    def recent(self, schema: pa.Schema, columns: list[str], time_column: str | None) -> tuple[Chunk, ...]:
        """The newest BUFFER_ROWS stored rows as chunks, read again only after a new commit."""
        key = (self.version(), schema, tuple(columns), time_column)
        cached = self._recent
        if cached is not None and cached[0] == key:
            return cached[1]
        t = self.rows(last=BUFFER_ROWS)
        if t.num_rows == 0:
            chunks: tuple[Chunk, ...] = ()
        else:
            ingest = t.column("_ingest").cast(pa.int64()).to_numpy(zero_copy_only=False) / 1e6
            # the operators compute in float64; an int64 column (ids beyond 2**53) rounds here as in theirs
            rows = as_floats(t.select(schema.names)).cast(schema)
            chunks = tuple(chunk_of(rows.slice(i, CHUNK_ROWS), columns, time_column, ingest[i:i + CHUNK_ROWS])
                           for i in range(0, t.num_rows, CHUNK_ROWS))
        self._recent = (key, chunks)
        return chunks


class RecentChunks(Sequence):
    """A snapshot's `chunks` read from the history on first use: pages that only show the merged
    statistics (the Overview) never pay for reading rows."""

    def __init__(self, load):
        self._load = load
        self._chunks: tuple[Chunk, ...] | None = None

    def _all(self) -> tuple[Chunk, ...]:
        if self._chunks is None:
            self._chunks = tuple(self._load())
        return self._chunks

    def __len__(self) -> int:
        return len(self._all())

    def __getitem__(self, i):
        return self._all()[i]
