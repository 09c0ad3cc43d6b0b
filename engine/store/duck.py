"""The embedded store, a DuckDB file in the data folder: raw rows, quarantine, offsets, stream state.

A batch's rows, its quarantined rows, its source offset and the stream's
counters commit in one transaction, so after a crash the stored offset always
matches the stored rows. A big commit's rows go to a Parquet segment file that the
same transaction records (segments.py); `rows_N` is a view over the stream's table
and its committed segments, and every reader goes through it. Numbers are stored as DOUBLE, a
column the source wrote as integers (Column.integer) as BIGINT, exactly; `rows` hands them back
as stored. One engine holds a folder at a time (an exclusive
lock on `engine.lock`); a second one gets `EngineBusy`, never a shared file.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import replace

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from . import segments
from ..errors import EngineBusy, UserError
from ..ingest.parse import Bad
from ..schema import Column, Schema, name_clash

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
ALTER TABLE state ADD COLUMN IF NOT EXISTS replayed BIGINT DEFAULT 0;
ALTER TABLE state ADD COLUMN IF NOT EXISTS keep_rid BIGINT DEFAULT 0;
ALTER TABLE state ADD COLUMN IF NOT EXISTS keep_ingest TIMESTAMP;
CREATE TABLE IF NOT EXISTS segments (
    stream INTEGER, name VARCHAR, first_rid BIGINT, last_rid BIGINT, rows BIGINT, ingest_max TIMESTAMP);
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
    """The view every reader reads a stream's rows through."""
    return f"rows_{int(stream_id)}"


def db_table(stream_id: int) -> str:
    """The rows stored inside the DuckDB file (commits too small for a segment)."""
    return f"rows_{int(stream_id)}_table"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_type(c: Column) -> str:
    return "TIMESTAMPTZ" if c.utc else "BIGINT" if c.integer else SQL_TYPES[c.kind]


def disk_full(data_dir: str) -> UserError:
    return UserError(f"cannot write to the data folder {data_dir}: no space left on the device; "
                     f"free some space, then start again (it resumes after the last stored row)")


def _holder(fd: int) -> str:
    """Which process holds the folder's lock: its pid (written into the lock file) and command line."""
    pid = os.pread(fd, 64, 0).decode(errors="replace").strip()
    if not pid.isdigit():
        return "pid unknown"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return f"pid {pid}"
    return f"pid {pid}: {cmd[:120]}" if cmd else f"pid {pid}"


class DuckStore:
    """The embedded Store (seams.py): one DuckDB file per data folder, held by one engine at a time.

    `read_only=True` (the CLI's status and quarantine) opens an existing store without taking the
    folder; DuckDB lets no other process open the file while an engine has it open for writing,
    so then it says which process holds the folder."""

    def __init__(self, data_dir: str, read_only: bool = False):
        self.data_dir = os.path.abspath(data_dir)
        self._lock_fd = None
        path = os.path.join(self.data_dir, DB_FILE)
        if read_only:
            if not os.path.isfile(path):
                raise UserError(f"there is no Rivulet store in {self.data_dir} (no {DB_FILE})")
            self._check_free()
        else:
            try:
                os.makedirs(self.data_dir, exist_ok=True)
            except OSError as e:
                raise UserError(f"cannot create the data folder {self.data_dir}: {e.strerror}") from None
            self._lock_fd = self._take_lock()
        self.con = None
        try:
            self.con = duckdb.connect(path, read_only=read_only)
            self.con.execute("SET TimeZone = 'UTC'")
            if not read_only:
                self.con.execute(_SCHEMA_SQL)
            for table in ("streams", "state", "offsets", "pipelines"):     # small; a damaged file shows here
                self.con.execute(f"SELECT * FROM {table}").fetchall()
        except duckdb.Error as e:
            self.close()
            raise self._open_error(e) from None
        self.write = self.con.cursor()          # used by the writer thread only
        self.write_lock = threading.Lock()
        self._columns: dict[int, pa.Schema] = {}     # each stream's stored columns, as a segment is written
        self._dropped: dict[int, list[str]] = {}     # segments pruned, deleted at the next prune
        if not read_only:
            self._open_segments()

    def _open_segments(self) -> None:
        """Each stream's view (the folder may have moved, or hold a store from before segments or from
        before integer columns were BIGINT), and no segment file that a crash left uncommitted."""
        with self._writing() as w:
            ids = [r[0] for r in w.execute("SELECT id FROM streams").fetchall()]
            for sid in ids:
                kinds = dict(w.execute("SELECT table_name, table_type FROM information_schema.tables "
                                       "WHERE table_name IN (?, ?)", [rows_table(sid), db_table(sid)]).fetchall())
                if kinds.get(rows_table(sid)) == "BASE TABLE" and db_table(sid) not in kinds:
                    w.execute(f"ALTER TABLE {rows_table(sid)} RENAME TO {db_table(sid)}")
                    kinds[db_table(sid)] = "BASE TABLE"
                if db_table(sid) in kinds:
                    stored = w.execute("SELECT schema FROM streams WHERE id = ?", [sid]).fetchone()
                    if stored and stored[0]:
                        self._retype(w, sid, Schema.from_json(stored[0]))
                    self._define_view(w, sid)
                known = {r[0] for r in w.execute("SELECT name FROM segments WHERE stream = ?", [sid]).fetchall()}
                segments.remove(self.data_dir, sid, segments.orphans(self.data_dir, sid, known))

    def _define_view(self, w, stream_id: int) -> None:
        """`rows_N`: the stream's table and its committed segments above the retention limits."""
        columns = self._columns.get(stream_id)
        if columns is None:
            with self.con.cursor() as cur:         # not `w`, whose last statement may hold an unread result
                columns = self._columns[stream_id] = cur.sql(f"SELECT * FROM {db_table(stream_id)} LIMIT 0"
                                                             ).to_arrow_table().schema
        glob = segments.anchor(self.data_dir, stream_id, columns)
        keep_rid, keep_ingest = w.execute("SELECT coalesce(keep_rid, 0), epoch_us(keep_ingest) FROM state "
                                          "WHERE stream = ?", [stream_id]).fetchone() or (0, None)
        since = f" AND _ingest >= make_timestamp({int(keep_ingest)})" if keep_ingest is not None else ""
        rows = (f"SELECT * FROM {db_table(stream_id)} "
                f"UNION ALL BY NAME SELECT * EXCLUDE (_segment) FROM read_parquet({_literal(glob)}, "
                f"filename = '_segment') WHERE parse_filename(_segment) IN "
                f"(SELECT name FROM segments WHERE stream = {int(stream_id)}) AND _rid >= {int(keep_rid)}{since}")
        w.execute(f"CREATE OR REPLACE VIEW {rows_table(stream_id)} AS {rows}")

    def _open_error(self, e: Exception) -> UserError:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "could not set lock" in text.lower():
            return EngineBusy(f"cannot open {DB_FILE} in {self.data_dir}: another process has it open ({text})")
        if "no space left" in text.lower():
            return UserError(f"cannot open {DB_FILE} in {self.data_dir}: no space left on the device; free some space")
        if "read-only" in text.lower() or "permission denied" in text.lower():
            return UserError(f"cannot write {DB_FILE} in {self.data_dir} ({text}); make the folder writable "
                             f"or use another data folder")
        return UserError(f"{DB_FILE} in {self.data_dir} cannot be read: it is damaged or not a Rivulet store "
                         f"({text}); move it away to start with an empty store")

    def _take_lock(self) -> int:
        path = os.path.join(self.data_dir, LOCK_FILE)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"cannot write to the data folder {self.data_dir}: {e.strerror} ({LOCK_FILE}); "
                            f"make it writable or use another data folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise EngineBusy(f"the data folder {self.data_dir} is in use by another Rivulet engine "
                             f"({holder}); stop it or use another data folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd

    def _check_free(self) -> None:
        """A read-only open cannot share the file with an engine: name the engine instead of failing in DuckDB."""
        try:
            fd = os.open(os.path.join(self.data_dir, LOCK_FILE), os.O_RDONLY)
        except OSError:
            return                     # never held by an engine
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            raise EngineBusy(f"the data folder {self.data_dir} is held by a running Rivulet engine "
                             f"({_holder(fd)}) and DuckDB lets no other process open its store meanwhile: "
                             f"stop that engine (Ctrl-C or SIGTERM; a tail then prints its snapshot) and run this "
                             f"again, or, if it is a dashboard, see the same on its Overview and Sources pages") from None
        finally:
            os.close(fd)

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        try:
            if getattr(self, "write", None) is not None:
                self.write.close()
            if self.con is not None:
                self.con.close()
        finally:
            self._release_lock()

    @contextmanager
    def _writing(self):
        """The write lock; a full disk is one line for the user, not DuckDB's error."""
        with self.write_lock:
            try:
                yield self.write
            except duckdb.Error as e:
                if "no space left" not in str(e).lower():
                    raise
                raise disk_full(self.data_dir) from None

    @staticmethod
    @contextmanager
    def _transaction(w, undo=None):
        """BEGIN ... COMMIT on the write cursor; anything raised rolls it back, calls `undo` (what was
        done outside the database for it) and goes on up."""
        w.execute("BEGIN")
        try:
            yield
            w.execute("COMMIT")
        except BaseException:
            try:
                w.execute("ROLLBACK")
            except duckdb.TransactionException:
                pass           # a failed COMMIT has already ended the transaction; its error is the one to tell
            if undo is not None:
                undo()
            raise

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
        with self._writing() as w:
            sid = w.execute("SELECT nextval('stream_ids')").fetchone()[0]
            w.execute("INSERT INTO streams (id, name, config) VALUES (?, ?, ?)",
                      [sid, name, json.dumps(config)])
            w.execute("INSERT INTO state (stream, next_rid, ingested, quarantined, flagged, late, window_from, "
                      "cumulative, replayed) VALUES (?, 0, 0, 0, 0, 0, 0, NULL, 0)", [sid])
        return sid

    def update_config(self, stream_id: int, config: dict) -> None:
        with self._writing() as w:
            w.execute("UPDATE streams SET config = ? WHERE id = ?", [json.dumps(config), stream_id])

    def delete_stream(self, stream_id: int) -> None:
        with self._writing() as w:
            with self._transaction(w):
                for table in ("offsets", "quarantine", "pipelines"):
                    w.execute(f"DELETE FROM {table} WHERE stream = ?", [stream_id])
                w.execute("DELETE FROM state WHERE stream = ?", [stream_id])
                w.execute("DELETE FROM streams WHERE id = ?", [stream_id])
                w.execute("DELETE FROM segments WHERE stream = ?", [stream_id])
                w.execute(f"DROP VIEW IF EXISTS {rows_table(stream_id)}")
                w.execute(f"DROP TABLE IF EXISTS {db_table(stream_id)}")
                w.execute(f"DROP TABLE IF EXISTS predictions_{int(stream_id)}")
        shutil.rmtree(segments.folder(self.data_dir, stream_id), ignore_errors=True)
        self._columns.pop(stream_id, None)

    def set_schema(self, stream_id: int, schema: Schema) -> None:
        """Create the stream's rows table, or record a change of its schema: a column stops being an
        integer one (Schema.settled), never starts again, so it goes from BIGINT to DOUBLE (losing
        nothing: it only does while its integers fit a float)."""
        why = name_clash(schema.names)
        if why:           # sources make names safe (schema.safe_names); this is the last guard
            raise UserError(f"the stream's columns cannot be stored: {why}")
        with self._writing() as w:
            stored = w.execute("SELECT schema FROM streams WHERE id = ?", [stream_id]).fetchone()
            if stored and stored[0]:
                was = set(Schema.from_json(stored[0]).integers)
                schema = Schema(tuple(c if c.integer <= (c.name in was) else replace(c, integer=False, wide=False)
                                      for c in schema.columns))
            cols = ", ".join(f"{quote(c.name)} {sql_type(c)}" for c in schema.columns)
            w.execute(f"CREATE TABLE IF NOT EXISTS {db_table(stream_id)} "
                      f"(_rid BIGINT, _ingest TIMESTAMP{', ' + cols if cols else ''})")
            with self._transaction(w, undo=lambda: self._columns.pop(stream_id, None)):    # read again
                w.execute("UPDATE streams SET schema = ? WHERE id = ?", [schema.to_json(), stream_id])
                if self._retype(w, stream_id, schema) or stream_id not in self._columns:
                    # read here: another cursor would not see the altered types before the commit
                    self._columns[stream_id] = w.sql(f"SELECT * FROM {db_table(stream_id)} LIMIT 0"
                                                     ).to_arrow_table().schema
                    self._define_view(w, stream_id)

    def _retype(self, w, stream_id: int, schema: Schema) -> bool:
        """Give the table's number columns their schema's type: DOUBLE once an integer column took a
        fraction; BIGINT for an integer column a store from before kept as DOUBLE (its values are whole
        and within 2**53, so exact), so a bigger integer is never cast to a float on insert."""
        have = dict(w.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
                              [db_table(stream_id)]).fetchall())
        changed = False
        for c in schema.columns:
            if c.kind == "number" and have.get(c.name) not in (None, sql_type(c)):
                w.execute(f"ALTER TABLE {db_table(stream_id)} ALTER COLUMN {quote(c.name)} TYPE {sql_type(c)}")
                changed = True
        return changed

    # --- pipeline versions ------------------------------------------------------------
    def add_pipeline(self, stream_id: int, spec: dict) -> int:
        """Record a spec as the stream's next version; returns that version (1, 2, ...)."""
        with self._writing() as w:
            version = w.execute("SELECT coalesce(max(version), 0) + 1 FROM pipelines WHERE stream = ?",
                                [stream_id]).fetchone()[0]
            w.execute("INSERT INTO pipelines (stream, version, spec) VALUES (?, ?, ?)",
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
        with self._writing() as w:
            w.execute("UPDATE pipelines SET spec = ? WHERE stream = ? AND version = ?",
                      [json.dumps({**spec, "version": version}), stream_id, version])

    def drop_pipeline(self, stream_id: int, version: int) -> None:
        """Forget a version that was recorded before any row arrived and then refused by the first rows."""
        with self._writing() as w:
            w.execute("DELETE FROM pipelines WHERE stream = ? AND version = ?", [stream_id, version])

    def set_cumulative(self, stream_id: int, cumulative: bytes | None) -> None:
        with self._writing() as w:
            w.execute("UPDATE state SET cumulative = ? WHERE stream = ?", [cumulative, stream_id])

    def state(self, stream_id: int) -> dict:
        with self.read() as cur:
            r = cur.execute("SELECT next_rid, ingested, quarantined, flagged, late, window_from, cumulative, replayed "
                            "FROM state WHERE stream = ?", [stream_id]).fetchone()
        keys = ("next_rid", "ingested", "quarantined", "flagged", "late", "window_from", "cumulative", "replayed")
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
        with self._writing() as w:
            segment = self._segment(stream_id, rows)
            undo = (lambda: segments.remove(self.data_dir, stream_id, [segment])) if segment is not None else None
            with self._transaction(w, undo):
                if segment is not None:
                    rids, ingest = rows.column("_rid"), rows.column("_ingest")
                    w.execute("INSERT INTO segments VALUES (?, ?, ?, ?, ?, make_timestamp(?))",
                              [stream_id, segment, pc.min(rids).as_py(), pc.max(rids).as_py(), rows.num_rows,
                               pc.max(ingest.cast(pa.int64())).as_py()])
                elif rows is not None and rows.num_rows:
                    w.register("_batch", rows)
                    w.execute(f"INSERT INTO {db_table(stream_id)} SELECT * FROM _batch")
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
                # one statement each, not one per key: a tail of 100,000 files commits them all at once
                gone = [k for k, p in offsets.items() if p is None]
                kept = {k: json.dumps(p) for k, p in offsets.items() if p is not None}
                if gone:
                    w.execute("DELETE FROM offsets WHERE stream = ? AND list_contains(?, source)", [stream_id, gone])
                if kept:
                    w.register("_offsets", pa.table({"source": list(kept), "position": list(kept.values())}))
                    w.execute("INSERT OR REPLACE INTO offsets SELECT ?, source, position, current_timestamp "
                              "FROM _offsets", [stream_id])
                    w.unregister("_offsets")
                w.execute("UPDATE state SET next_rid = ?, ingested = ?, quarantined = ?, flagged = ?, late = ?, "
                          "window_from = ?, cumulative = ?, replayed = ? WHERE stream = ?",
                          [state["next_rid"], state["ingested"], state["quarantined"], state["flagged"],
                           state["late"], state["window_from"], state["cumulative"], state.get("replayed", 0),
                           stream_id])

    def _segment(self, stream_id: int, rows: pa.Table | None) -> str | None:
        """Write a big commit's rows as a segment file (the table's own column types); None: insert them."""
        columns = self._columns.get(stream_id)
        if rows is None or columns is None or rows.num_rows * rows.num_columns < segments.SEGMENT_CELLS:
            return None
        try:
            rows = rows.cast(columns)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, TypeError):
            return None            # columns that only DuckDB's insert converts: let it
        try:
            return segments.write(self.data_dir, stream_id, rows, rows.column("_rid")[0].as_py())
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise disk_full(self.data_dir) from None
            raise

    def prune(self, stream_id: int, next_rid: int, keep_rows: int | None, keep_seconds: float | None) -> None:
        """Retention: drop the oldest rows beyond the limits, and old quarantine entries.

        Segments wholly beyond a limit leave the catalog (their files are deleted at the next prune, so a
        reader that listed them a moment ago still finds them); the view hides the rest of the rows
        beyond it in a segment that straddles it."""
        segments.remove(self.data_dir, stream_id, self._dropped.pop(stream_id, []))
        with self._writing() as w:
            has_rows = w.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                                 [db_table(stream_id)]).fetchone()[0]
            if not has_rows:
                keep_rows = keep_seconds = None       # no rows yet: an empty or header-only file
            dropped = []
            with self._transaction(w):
                if keep_rows:
                    cut = next_rid - keep_rows
                    w.execute(f"DELETE FROM {db_table(stream_id)} WHERE _rid < ?", [cut])
                    dropped += w.execute("DELETE FROM segments WHERE stream = ? AND last_rid < ? RETURNING name",
                                         [stream_id, cut]).fetchall()
                    w.execute("UPDATE state SET keep_rid = greatest(coalesce(keep_rid, 0), ?) WHERE stream = ?",
                              [cut, stream_id])
                if keep_seconds:
                    cut = w.execute("SELECT current_timestamp::TIMESTAMP - to_microseconds(CAST(? AS BIGINT))",
                                    [int(keep_seconds * 1e6)]).fetchone()[0]
                    w.execute(f"DELETE FROM {db_table(stream_id)} WHERE _ingest < ?", [cut])
                    dropped += w.execute("DELETE FROM segments WHERE stream = ? AND ingest_max < ? RETURNING name",
                                         [stream_id, cut]).fetchall()
                    w.execute("UPDATE state SET keep_ingest = ? WHERE stream = ?", [cut, stream_id])
                w.execute("DELETE FROM quarantine WHERE stream = ? AND rowid IN (SELECT rowid FROM quarantine "
                          "WHERE stream = ? ORDER BY seen DESC, position DESC OFFSET ?)",
                          [stream_id, stream_id, QUARANTINE_KEEP])
                if (keep_rows or keep_seconds) and w.execute("SELECT count(*) FROM segments WHERE stream = ?",
                                                             [stream_id]).fetchone()[0]:
                    self._define_view(w, stream_id)      # the new limits, as constants the scan can use
            self._dropped[stream_id] = [name for (name,) in dropped]

    # --- reading history ------------------------------------------------------------
    def rows(self, stream_id: int, last: int | None = None, since_rid: int = 0,
             columns: list[str] | None = None, limit: int | None = None) -> pa.Table:
        """Stored raw rows in arrival order: all, or the newest `last`, from `since_rid` on."""
        cols = ", ".join(quote(c) for c in columns) if columns else "*"
        table = rows_table(stream_id)
        with self.read() as cur:
            try:
                # the bounds first, from the row ids alone: a top-N over every column would read them all
                lo, hi = since_rid, None
                if last is not None:
                    edge = cur.execute(f"SELECT _rid FROM {table} WHERE _rid >= ? ORDER BY _rid DESC LIMIT 1 "
                                       f"OFFSET ?", [since_rid, max(int(last) - 1, 0)]).fetchall()
                    lo = max(since_rid, edge[0][0]) if edge else since_rid
                    if int(last) <= 0:
                        hi = -1
                elif limit:
                    edge = cur.execute(f"SELECT _rid FROM {table} WHERE _rid >= ? ORDER BY _rid LIMIT 1 OFFSET ?",
                                       [since_rid, int(limit)]).fetchall()
                    hi = edge[0][0] if edge else None
                sql = f"SELECT {cols} FROM {table} WHERE _rid >= ?" + (" AND _rid < ?" if hi is not None else "")
                return cur.sql(sql + " ORDER BY _rid", params=[lo] + ([hi] if hi is not None else [])).to_arrow_table()
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
