"""The embedded store, a DuckDB file in the data folder: raw rows, quarantine, offsets, stream state.

A batch's rows, its quarantined rows, its source offset and the stream's
counters commit in one transaction, so after a crash the stored offset always
matches the stored rows. One engine holds a folder at a time (an exclusive
lock on `engine.lock`); a second one gets `EngineBusy`, never a shared file.
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
import time

import duckdb
import pyarrow as pa

from ..errors import EngineBusy, UserError
from ..ingest.parse import Bad
from ..schema import Schema

DB_FILE = "rivulet.duckdb"
LOCK_FILE = "engine.lock"
QUARANTINE_KEEP = 10_000      # newest quarantined rows kept per stream (counters keep the total)
SQL_TYPES = {"number": "DOUBLE", "bool": "BOOLEAN", "text": "VARCHAR", "time": "TIMESTAMP"}

_SCHEMA_SQL = """
CREATE SEQUENCE IF NOT EXISTS stream_ids START 1;
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY, name VARCHAR UNIQUE NOT NULL, config JSON NOT NULL,
    schema JSON, created TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS offsets (
    stream INTEGER, source VARCHAR, position JSON NOT NULL, updated TIMESTAMP,
    PRIMARY KEY (stream, source));
CREATE TABLE IF NOT EXISTS state (
    stream INTEGER PRIMARY KEY, next_rid BIGINT, ingested BIGINT, quarantined BIGINT,
    flagged BIGINT, late BIGINT, window_from BIGINT, cumulative BLOB);
CREATE TABLE IF NOT EXISTS quarantine (
    stream INTEGER, source VARCHAR, position BIGINT, raw VARCHAR, reason VARCHAR,
    kept BOOLEAN, seen TIMESTAMP);
CREATE TABLE IF NOT EXISTS pipelines (
    stream INTEGER, version INTEGER, spec JSON NOT NULL, created TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (stream, version));
"""


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rows_table(stream_id: int) -> str:
    return f"rows_{int(stream_id)}"


class DuckStore:
    """The embedded Store (seams.py): one DuckDB file per data folder, held by one engine at a time."""

    def __init__(self, data_dir: str):
        self.data_dir = os.path.abspath(data_dir)
        try:
            os.makedirs(self.data_dir, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the data folder {self.data_dir}: {e.strerror}") from None
        self._lock_fd = self._take_lock()
        try:
            self.con = duckdb.connect(os.path.join(self.data_dir, DB_FILE))
        except duckdb.IOException as e:
            self._release_lock()
            raise EngineBusy(f"cannot open {DB_FILE} in {self.data_dir}: {e}") from None
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(_SCHEMA_SQL)
        self.write = self.con.cursor()          # used by the writer thread only
        self.write_lock = threading.Lock()

    def _take_lock(self) -> int:
        path = os.path.join(self.data_dir, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EngineBusy(f"the data folder {self.data_dir} is in use by another Rivulet engine "
                             f"(pid {holder}); stop it or use another --data-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        try:
            self.write.close()
            self.con.close()
        finally:
            self._release_lock()

    def read(self) -> duckdb.DuckDBPyConnection:
        """A cursor for one reader; DuckDB gives each its own consistent view."""
        return self.con.cursor()

    # --- streams -----------------------------------------------------------------
    def streams(self) -> list[dict]:
        with self.read() as cur:
            rows = cur.execute("SELECT id, name, config, schema FROM streams ORDER BY id").fetchall()
        return [{"id": r[0], "name": r[1], "config": json.loads(r[2]),
                 "schema": Schema.from_json(r[3]) if r[3] else None} for r in rows]

    def create_stream(self, name: str, config: dict) -> int:
        with self.write_lock:
            sid = self.write.execute("SELECT nextval('stream_ids')").fetchone()[0]
            self.write.execute("INSERT INTO streams (id, name, config) VALUES (?, ?, ?)",
                               [sid, name, json.dumps(config)])
            self.write.execute("INSERT INTO state VALUES (?, 0, 0, 0, 0, 0, 0, NULL)", [sid])
        return sid

    def update_config(self, stream_id: int, config: dict) -> None:
        with self.write_lock:
            self.write.execute("UPDATE streams SET config = ? WHERE id = ?", [json.dumps(config), stream_id])

    def delete_stream(self, stream_id: int) -> None:
        with self.write_lock:
            w = self.write
            w.execute("BEGIN")
            for table in ("offsets", "quarantine", "pipelines"):
                w.execute(f"DELETE FROM {table} WHERE stream = ?", [stream_id])
            w.execute("DELETE FROM state WHERE stream = ?", [stream_id])
            w.execute("DELETE FROM streams WHERE id = ?", [stream_id])
            w.execute(f"DROP TABLE IF EXISTS {rows_table(stream_id)}")
            w.execute(f"DROP TABLE IF EXISTS predictions_{int(stream_id)}")
            w.execute("COMMIT")

    def set_schema(self, stream_id: int, schema: Schema) -> None:
        cols = ", ".join(f"{quote(c.name)} {'TIMESTAMPTZ' if c.utc else SQL_TYPES[c.kind]}"
                         for c in schema.columns)
        with self.write_lock:
            self.write.execute(f"CREATE TABLE IF NOT EXISTS {rows_table(stream_id)} "
                               f"(_rid BIGINT, _ingest TIMESTAMP{', ' + cols if cols else ''})")
            self.write.execute("UPDATE streams SET schema = ? WHERE id = ?", [schema.to_json(), stream_id])

    # --- pipeline versions ------------------------------------------------------------
    def add_pipeline(self, stream_id: int, spec: dict) -> int:
        """Record a spec as the stream's next version; returns that version (1, 2, ...)."""
        with self.write_lock:
            version = self.write.execute("SELECT coalesce(max(version), 0) + 1 FROM pipelines WHERE stream = ?",
                                         [stream_id]).fetchone()[0]
            self.write.execute("INSERT INTO pipelines (stream, version, spec) VALUES (?, ?, ?)",
                               [stream_id, version, json.dumps({**spec, "version": version})])
        return version

    def pipelines(self, stream_id: int) -> list[dict]:
        """Every recorded version, oldest first: {"version", "spec", "created"}."""
        with self.read() as cur:
            rows = cur.execute("SELECT version, spec, epoch(created) FROM pipelines WHERE stream = ? ORDER BY version",
                               [stream_id]).fetchall()
        return [{"version": v, "spec": json.loads(s), "created": c} for v, s, c in rows]

    def update_pipeline(self, stream_id: int, version: int, spec: dict) -> None:
        """Write statistics frozen from the first batch into a version recorded before any row arrived."""
        with self.write_lock:
            self.write.execute("UPDATE pipelines SET spec = ? WHERE stream = ? AND version = ?",
                               [json.dumps({**spec, "version": version}), stream_id, version])

    def drop_pipeline(self, stream_id: int, version: int) -> None:
        """Forget a version that was recorded before any row arrived and then refused by the first rows."""
        with self.write_lock:
            self.write.execute("DELETE FROM pipelines WHERE stream = ? AND version = ?", [stream_id, version])

    def set_cumulative(self, stream_id: int, cumulative: bytes | None) -> None:
        with self.write_lock:
            self.write.execute("UPDATE state SET cumulative = ? WHERE stream = ?", [cumulative, stream_id])

    def state(self, stream_id: int) -> dict:
        with self.read() as cur:
            r = cur.execute("SELECT next_rid, ingested, quarantined, flagged, late, window_from, cumulative "
                            "FROM state WHERE stream = ?", [stream_id]).fetchone()
        keys = ("next_rid", "ingested", "quarantined", "flagged", "late", "window_from", "cumulative")
        return dict(zip(keys, r)) if r else dict.fromkeys(keys, 0) | {"cumulative": None}

    def offsets(self, stream_id: int) -> dict[str, dict]:
        with self.read() as cur:
            rows = cur.execute("SELECT source, position FROM offsets WHERE stream = ?", [stream_id]).fetchall()
        return {s: json.loads(p) for s, p in rows}

    # --- the one transaction per batch -------------------------------------------
    def commit(self, stream_id: int, rows: pa.Table | None, bad: list[Bad], source: str,
               offsets: dict[str, dict | None], state: dict, extra: dict[str, pa.Table] | None = None) -> None:
        """Rows, quarantine, offsets and counters of one batch, all or nothing.

        `offsets` maps a source key (the source kind, or one key per tailed file) to
        its resume position; None deletes the key (a file no longer followed).
        `extra` maps table names to rows stored in the same transaction (a deployed
        model's predictions); each table is created from its first batch's columns.
        """
        with self.write_lock:
            w = self.write
            w.execute("BEGIN")
            try:
                if rows is not None and rows.num_rows:
                    w.register("_batch", rows)
                    w.execute(f"INSERT INTO {rows_table(stream_id)} SELECT * FROM _batch")
                    w.unregister("_batch")
                for table, part in (extra or {}).items():
                    if part is not None and part.num_rows:
                        w.register("_extra", part)
                        w.execute(f"CREATE TABLE IF NOT EXISTS {quote(table)} AS SELECT * FROM _extra LIMIT 0")
                        w.execute(f"INSERT INTO {quote(table)} BY NAME SELECT * FROM _extra")
                        w.unregister("_extra")
                if bad:
                    now = time.time()
                    q = pa.table({
                        "stream": pa.array([stream_id] * len(bad), pa.int32()),
                        "source": pa.array([b.source or source for b in bad]),
                        "position": pa.array([b.position for b in bad], pa.int64()),
                        "raw": pa.array([b.raw for b in bad]), "reason": pa.array([b.reason for b in bad]),
                        "kept": pa.array([b.kept for b in bad]),
                        "seen": pa.array([int(now * 1e6)] * len(bad), pa.timestamp("us"))})
                    w.register("_bad", q)
                    w.execute("INSERT INTO quarantine SELECT * FROM _bad")
                    w.unregister("_bad")
                for key, position in offsets.items():
                    if position is None:
                        w.execute("DELETE FROM offsets WHERE stream = ? AND source = ?", [stream_id, key])
                    else:
                        w.execute("INSERT OR REPLACE INTO offsets VALUES (?, ?, ?, current_timestamp)",
                                  [stream_id, key, json.dumps(position)])
                w.execute("UPDATE state SET next_rid = ?, ingested = ?, quarantined = ?, flagged = ?, late = ?, "
                          "window_from = ?, cumulative = ? WHERE stream = ?",
                          [state["next_rid"], state["ingested"], state["quarantined"], state["flagged"],
                           state["late"], state["window_from"], state["cumulative"], stream_id])
                w.execute("COMMIT")
            except BaseException:
                w.execute("ROLLBACK")
                raise

    def prune(self, stream_id: int, next_rid: int, keep_rows: int | None, keep_seconds: float | None) -> None:
        """Retention: drop the oldest rows beyond the limits, and old quarantine entries."""
        with self.write_lock:
            w = self.write
            if keep_rows:
                w.execute(f"DELETE FROM {rows_table(stream_id)} WHERE _rid < ?", [next_rid - keep_rows])
            if keep_seconds:
                w.execute(f"DELETE FROM {rows_table(stream_id)} WHERE _ingest < current_timestamp - "
                          f"to_microseconds(CAST(? AS BIGINT))", [int(keep_seconds * 1e6)])
            w.execute("DELETE FROM quarantine WHERE stream = ? AND rowid IN (SELECT rowid FROM quarantine "
                      "WHERE stream = ? ORDER BY seen DESC, position DESC OFFSET ?)",
                      [stream_id, stream_id, QUARANTINE_KEEP])

    # --- reading history ------------------------------------------------------------
    def rows(self, stream_id: int, last: int | None = None, since_rid: int = 0,
             columns: list[str] | None = None, limit: int | None = None) -> pa.Table:
        """Stored raw rows in arrival order: all, or the newest `last`, from `since_rid` on."""
        cols = ", ".join(quote(c) for c in columns) if columns else "*"
        sql = f"SELECT {cols} FROM {rows_table(stream_id)} WHERE _rid >= ?"
        if last is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY _rid DESC LIMIT {int(last)}) ORDER BY _rid"
        else:
            sql += " ORDER BY _rid" + (f" LIMIT {int(limit)}" if limit else "")
        with self.read() as cur:
            try:
                return cur.sql(sql, params=[since_rid]).to_arrow_table()
            except duckdb.CatalogException:
                return pa.table({})

    def predictions(self, stream_id: int, last: int | None = 1000) -> pa.Table:
        """The newest stored predictions (all when `last` is None) of deployed models, keyed by _rid."""
        sql = (f"SELECT * FROM (SELECT * FROM predictions_{int(stream_id)} ORDER BY _rid DESC"
               f"{' LIMIT ?' if last is not None else ''}) ORDER BY _rid")
        with self.read() as cur:
            try:
                return cur.sql(sql, params=[int(last)] if last is not None else []).to_arrow_table()
            except duckdb.CatalogException:
                return pa.table({})

    def count(self, stream_id: int) -> int:
        with self.read() as cur:
            try:
                return cur.execute(f"SELECT count(*) FROM {rows_table(stream_id)}").fetchone()[0]
            except duckdb.CatalogException:
                return 0

    def quarantine(self, stream_id: int, limit: int = 1000) -> pa.Table:
        with self.read() as cur:
            return cur.sql("SELECT source, position, reason, kept, raw, seen FROM quarantine WHERE stream = ? "
                           "ORDER BY seen DESC, position DESC LIMIT ?", params=[stream_id, limit]).to_arrow_table()
