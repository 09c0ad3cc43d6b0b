"""Follow a file, a glob or a folder that another process appends to (CSV with a header, or JSON Lines).

A file is known by its identity (device, inode, fingerprint of its first
bytes; identity.py), never by its path, and its offset is committed per
identity with the rows read from it, so a restart resumes every file.

- A scan (at start, on an event naming an unknown path, and every `rescan`
  seconds) globs the pattern: a new identity is opened; a known one under a
  new name was renamed (rotation) and is the same file, so a rotated file the
  pattern also matches is never read twice.
- A file the pattern no longer matches (renamed away, deleted) stays open and
  is read to its end; once it has not grown for `rotate_wait` seconds it is
  closed and forgotten. Older files are read first, so after a rename
  rotation the old file is drained before the new one.
- A file that shrank below our offset, or whose first bytes changed, was
  truncated (copytruncate) and is read again from 0. Bytes appended after our
  last read and before the truncation are lost unless the pattern also
  matches the copy: a new file whose first bytes match the truncated file's
  old fingerprint is its copy, and is read from where we had stopped.
- After a restart, a stored file the pattern no longer finds is looked for by
  inode in the folder where it was last seen (rotation while stopped).
"""
from __future__ import annotations

import glob
import heapq
import os
import resource
import stat
import threading
import time
from collections import OrderedDict, deque
from dataclasses import replace

import pyarrow as pa

from ..errors import UserError
from .jsonl import JsonParser, infer_schema as infer_json, json_text, lines
from .parse import (MAX_LINE, RAW_KEEP, SAMPLE, Bad, Integers, Parser, infer_schema as infer_csv, sample_records,
                    sample_text)
from . import find
from .paths import Outside, fixed_part, open_inside
from .times import name_time_column
from ..schema import Schema
from .source import LIVE_INFLIGHT, Batch, Rate, Source
from .copies import CopyIndex
from .identity import FINGERPRINT, Fingerprint, key_of
from .tailfile import Previous, TailFile, stamp
from .watch import Watch

BLOCK = 8 << 20            # bytes read per batch at most
RESCAN_SECONDS = 1.0       # full rescan, whatever the events said
ROTATE_WAIT = 5.0          # seconds a file no longer matched must stay quiet before it is closed
SCAN_GAP = 0.05            # at most one event-triggered scan per this many seconds
SCAN_SHARE = 4             # the next scan waits at least this many times as long as the last one took
OPEN_FILES = 256           # descriptors kept open at most (or a quarter of the process's limit)
FILES_PER_BATCH = 1_000    # files read by one batch at most, so the first rows of a big folder come soon
CTIME_SLACK = 1.0          # seconds; less than ROTATE_WAIT, so a file we closed is never taken as new
SCAN_KEY = "tail-scan"     # offsets entry: when the last committed scan started
ROTATED_SEPARATORS = ".-_"
STATUS_FILES = 100         # files listed in the status (the most behind first)
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def guess_format(pattern: str) -> str:
    name = os.path.basename(pattern.rstrip(os.sep)).lower()
    if any(s in name for s in JSONL_SUFFIXES):
        return "jsonl"
    if os.path.isdir(pattern):
        names = sorted(os.listdir(pattern)) if os.access(pattern, os.R_OK) else []
        if any(any(s in n.lower() for s in JSONL_SUFFIXES) for n in names) and \
                not any(".csv" in n.lower() for n in names):
            return "jsonl"
    return "csv"


class Stopped(Exception):
    """close() asked a scan to end."""


def open_limit() -> int:
    """Descriptors a source keeps open: OPEN_FILES, or a quarter of the soft RLIMIT_NOFILE if lower."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(8, OPEN_FILES if soft == resource.RLIM_INFINITY else min(OPEN_FILES, soft // 4))


def _rotated_name(name: str, followed: set[str]) -> bool:
    """True when `name` is a followed name plus a suffix (app.csv.1, app.csv-20261124)."""
    for i in range(len(name) - 1, 0, -1):
        if name[i] in ROTATED_SEPARATORS and name[:i] in followed:
            return True
    return False


class TailSource(Source):
    kind = "tail"
    max_inflight = LIVE_INFLIGHT

    def __init__(self, pattern: str, fmt: str | None = None, position: dict | None = None,
                 schema: Schema | None = None, roots: list[str] | None = None, polling: bool | None = None,
                 rescan: float = RESCAN_SECONDS, rotate_wait: float = ROTATE_WAIT, max_line: int = MAX_LINE,
                 time_column: str | None = None, time_format: str | None = None,
                 max_open: int | None = None):
        self.pattern = pattern
        self.folder_mode = os.path.isdir(pattern)
        self.format = fmt or guess_format(pattern)
        if self.format not in ("csv", "jsonl"):
            raise UserError(f"unknown format {self.format!r}: use csv or jsonl")
        self.csv = self.format == "csv"
        self.roots = roots
        self.rescan = rescan
        self.rotate_wait = rotate_wait
        self.max_line = max_line
        self.max_open = max(4, max_open or open_limit())
        self.schema = schema
        self.time_column, self.time_format = time_column, time_format
        if schema is not None:        # resumed: the stored schema already reads the time column
            self.schema, self.time_column = name_time_column(schema, time_column, time_format, self._no_sample)
        self.ints = Integers(self.schema)        # shared by every file's parser
        self.json_parser = JsonParser(self.schema, max_line, self.ints) if schema is not None and not self.csv else None
        self.stored = {k: v for k, v in (position or {}).items() if k.startswith("tail:") and v}
        # files renamed next to a followed one after this time are its rotated generations
        self.since = float((position or {}).get(SCAN_KEY, {}).get("at", time.time() - CTIME_SLACK))
        self.files: dict[str, TailFile] = {}
        self.by_path: dict[str, str] = {}
        self.backlog: set[str] = set()      # files with more to read than the last batch took
        self.changed: set[str] = set()      # files whose position the next batch commits
        self.forgotten: set[str] = set()    # files whose stored position the next batch deletes
        self.refused: set[str] = set()
        self.open: OrderedDict[str, None] = OrderedDict()   # files with a descriptor, least recently used first
        self.pinned: set[str] = set()       # in use by the call under way: not closed to make room
        self.queue: deque[str] = deque()    # a big backlog in reading order, read FILES_PER_BATCH at a time
        self.copies = CopyIndex(self.files, self.csv)   # what _classify looks up, kept in step by index()
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.order = 0
        self.last_scan = -float("inf")     # monotonic: a wall clock set back must not delay scans
        self.scan_cost = 0.0               # seconds the last scan took
        self.scan_soon = False             # a file was not where we left it: look again
        self.paused = False
        self.error: str | None = None
        self.rows = 0
        self.bytes = 0
        self.rate = Rate()
        self.last_status: tuple[float, dict] | None = None
        if self.folder_mode:
            folder, recursive = pattern, False
        elif glob.has_magic(pattern):
            folder = fixed_part(pattern)
            recursive = "**" in pattern or glob.has_magic(os.path.dirname(pattern))
        else:
            folder, recursive = os.path.dirname(pattern) or os.sep, False
        self.watch = Watch(folder, recursive, polling)

    # --- discovery -----------------------------------------------------------------------
    def _halt(self) -> None:
        if self.stopping.is_set():
            raise Stopped

    def scan(self) -> None:
        started = time.monotonic()
        now = time.time()                   # wall time: compared with the files' own times
        self.last_scan = started
        self.scan_soon = False
        first = self.order
        self.watch.ensure()
        for key in list(self.open):
            self._look(self.files[key])
            self._halt()
        found: dict[str, tuple[str, os.stat_result]] = {}
        for path, st in sorted(find.files(self.pattern, self.roots, self._halt)):
            found.setdefault(key_of(st), (path, st))
        gone = []
        for key, f in self.files.items():
            if key in found:
                path, st = found[key]
                self._moved(f, path)
                f.matched, f.unmatched_since = True, None
                if f.fd < 0 and stamp(st) != f.stamp and self._use(f):    # closed to make room, written since
                    self._look(f)
            else:
                if f.matched:
                    f.matched, f.unmatched_since = False, now
                gone.append(f)
        # stored identities first, so a file truncated while we were stopped is known before its copy
        new = sorted((k for k in found if k not in self.files),
                     key=lambda k: (k not in self.stored, found[k][1].st_mtime))
        for key in new:
            self._halt()
            self._open(found[key][0], key, now)
        if self.stored:
            self._find_moved(now)
        self._find_rotated(now)
        self.since = now - CTIME_SLACK
        # files found by one scan are read oldest first (an older generation before a newer one);
        # mtimes within one clock tick tie, and then a file renamed away is the older one
        fresh = sorted((f for f in self.files.values() if f.order > first), key=lambda f: f.order)
        oldest_first = sorted(fresh, key=lambda f: (f.mtime, f.matched, f.order))
        for order, f in zip([f.order for f in fresh], oldest_first):
            f.order = order
        self._settle_copies(now)
        self._forget_drained(gone, now)      # files adopted by this scan are looked at by the next
        self.scan_cost = time.monotonic() - started
        self.watch.pace(SCAN_SHARE * self.scan_cost)

    def _moved(self, f: TailFile, path: str) -> None:
        if f.path != path:
            if self.by_path.get(f.path) == f.key:
                del self.by_path[f.path]
            f.path = path
            self.changed.add(f.key)
        self.by_path[path] = f.key

    def _open(self, path: str, key: str, now: float) -> TailFile | None:
        """Follow the file at `path` if it still is identity `key`; identity comes from the descriptor read."""
        opened = self._descriptor(path, key)
        if opened is None:
            return None
        fd, st = opened
        head = os.pread(fd, FINGERPRINT, 0)
        stored = self.stored.pop(key, None)
        if stored is not None and Fingerprint.from_json(stored).matches(head):
            f = TailFile(path, fd, st, int(stored["offset"]), Fingerprint.from_json(stored).known(head),
                         self._next(), bool(stored.get("skipping")))
            f.copy_of, f.copy_since = stored.get("copy_of"), now
        else:
            f = TailFile(path, fd, st, 0, Fingerprint.of(head), self._next())
            if stored is not None:     # truncated or replaced while we were stopped (or the inode reused)
                f.previous.append(Previous(Fingerprint.from_json(stored), int(stored["offset"])))
                f.resets = 1
        self.files[key] = f
        self.by_path[path] = key
        self.changed.add(key)
        self.backlog.add(key)
        self._opened(f)
        if stored is None:
            self._classify(f, head, now)
        else:
            self.copies.index(f)
        return f

    def _descriptor(self, path: str, key: str) -> tuple[int, os.stat_result] | None:
        """A descriptor (and its stat) of the regular file at `path` if it is identity `key`; else None."""
        try:
            fd = open_inside(path, self.roots)
        except Outside as e:
            if path not in self.refused:
                self.refused.add(path)
                self.error = e.strerror
            return None
        except OSError as e:
            self.error = f"cannot open {path}: {e.strerror or e}"
            return None
        st = os.fstat(fd)
        if key_of(st) != key or not stat.S_ISREG(st.st_mode):   # replaced since the listing: the next scan sees it
            os.close(fd)
            return None
        return fd, st

    def _next(self) -> int:
        self.order += 1
        return self.order

    # --- descriptors: at most max_open; the least recently used is closed first ----------------
    def _use(self, f: TailFile) -> bool:
        """Make sure `f` has a descriptor: one closed to make room is opened again by its path, and
        only if the path still holds the same identity (else the file was rotated: the scan finds it)."""
        if f.fd >= 0:
            self.open.move_to_end(f.key)
            return True
        opened = self._descriptor(f.path, f.key)
        if opened is None:
            if f.matched:
                self.scan_soon = True
            return False
        f.fd = opened[0]
        self._opened(f)
        self.copies.index(f)
        return True

    def _opened(self, f: TailFile) -> None:
        self.open[f.key] = None
        if len(self.open) <= self.max_open:
            return
        for key in list(self.open):
            if len(self.open) <= self.max_open:
                return
            if key not in self.pinned and key != f.key:
                del self.open[key]
                other = self.files[key]
                other.close()
                self.copies.index(other)

    # --- copies ------------------------------------------------------------------------------
    def _classify(self, f: TailFile, head: bytes, now: float) -> bool:
        """Decide where a new file starts; False while it stays held.

        - a copy of a followed file that was truncated: after the part of it we had read;
        - a copy of a followed file not truncated (yet): held; after `rotate_wait` it is a
          plain copy and starts at its end (its original gives us all of it);
        - the start of such a copy (a copy still being written, or an empty file): held;
        - anything else: a new file, read from 0.
        """
        self.pinned.add(f.key)
        try:
            hit = self.copies.truncated(f, head)
            if hit is not None:
                other, p = hit
                f.offset = p.offset         # the bytes the truncation took from us
                other.previous.remove(p)
                self.copies.index(other)
                return self._release(f)
            other, full = self.copies.original(head, self._use)
            if other is None:
                return self._release(f)
            if full:
                if f.copy_of != other.key or not f.copy_full:
                    f.copy_of, f.copy_full, f.copy_since = other.key, True, now
                elif now - f.copy_since > self.rotate_wait and self._use(f):
                    f.offset = os.fstat(f.fd).st_size
                    return self._release(f)
                return False
            if f.copy_of != other.key or f.copy_full:
                f.copy_of, f.copy_full, f.copy_since = other.key, False, now
            return False
        finally:
            self.pinned.discard(f.key)
            self.copies.index(f)

    def _release(self, f: TailFile) -> bool:
        f.copy_of, f.copy_full = None, False
        self.changed.add(f.key)
        self.backlog.add(f.key)
        return True

    def _settle_copies(self, now: float) -> None:
        for key in list(self.copies.held):
            f = self.files[key]
            try:
                if self._use(f):
                    self._classify(f, f.head(), now)
            except OSError as e:
                f.error = f"cannot read {f.path}: {e.strerror or e}"

    def _find_moved(self, now: float) -> None:
        """Stored files the pattern did not find: look for their inode where they were last seen."""
        by_folder: dict[str, dict[int, str]] = {}
        for key, pos in self.stored.items():
            by_folder.setdefault(os.path.dirname(pos.get("path", "")), {})[int(key.rsplit(":", 1)[1])] = key
        for folder, inodes in by_folder.items():
            for e in find.entries(folder or os.sep, self._halt):
                key = inodes.get(e.inode())
                if key is None or not e.is_file(follow_symlinks=False):
                    continue
                if key_of(e.stat(follow_symlinks=False)) == key:
                    self._adopt(e.path, key, now)
        for key in self.stored:       # gone while we were stopped
            self.forgotten.add(key)
        self.stored.clear()

    def _find_rotated(self, now: float) -> None:
        """Files renamed next to a followed one since the last scan (app.csv -> app.csv.1) that the
        pattern does not match: a generation that lived at the followed name between two scans."""
        if self.folder_mode:
            return
        names: dict[str, set[str]] = {}
        for f in self.files.values():
            if f.matched:
                names.setdefault(os.path.dirname(f.path), set()).add(os.path.basename(f.path))
        if not glob.has_magic(self.pattern):
            names.setdefault(os.path.dirname(self.pattern), set()).add(os.path.basename(self.pattern))
        for folder, followed in names.items():
            for e in find.entries(folder, self._halt):
                if e.name in followed or e.name.startswith(".") or not _rotated_name(e.name, followed):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                key = key_of(st)
                f = self.files.get(key)
                if f is not None:
                    if not f.matched:                # where to open it again if it was closed to make room
                        self._moved(f, e.path)
                        if f.fd < 0 and stamp(st) != f.stamp and self._use(f):
                            self._look(f)
                elif st.st_ctime >= self.since and stat.S_ISREG(st.st_mode):
                    self._adopt(e.path, key, now)

    def _adopt(self, path: str, key: str, now: float) -> None:
        """Follow a file the pattern does not match (rotated away) until it is drained."""
        f = self._open(path, key, now)
        if f is not None:
            f.matched, f.unmatched_since = False, now

    def _forget_drained(self, unmatched: list[TailFile], now: float) -> None:
        for f in unmatched:
            key = f.key
            if key not in self.files or f.matched or f.copy_of is not None or now - (f.unmatched_since or now) < self.rotate_wait:
                continue
            lost = f.fd < 0 and not self._use(f)      # closed to make room, and no longer where it was
            if lost or f.offset >= f.size and now - f.mtime >= self.rotate_wait:
                f.close()
                self.open.pop(key, None)
                self.copies.unindex(key)
                del self.files[key]
                if self.by_path.get(f.path) == key:
                    del self.by_path[f.path]
                self.changed.discard(key)
                self.backlog.discard(key)
                self.forgotten.add(key)

    def _look(self, f: TailFile) -> None:
        """A scan's look at an open file: truncated, or grown past our offset (read it then)."""
        self._check(f)
        if f.size > f.offset:
            self.backlog.add(f.key)

    def _check(self, f: TailFile) -> None:
        """Notice a truncation of an open file (its size and first bytes)."""
        try:
            if f.check():
                self.changed.add(f.key)
                self.backlog.add(f.key)
            f.error = None if f.error and f.error.startswith("cannot read") else f.error
        except OSError as e:
            f.error = f"cannot read {f.path}: {e.strerror or e}"
        self.copies.index(f)

    # --- reading -----------------------------------------------------------------------------
    def next_batch(self) -> Batch | None:
        with self.lock:
            if self.paused or self.stopping.is_set():
                return None
            try:
                return self._next_batch()
            except Stopped:          # closing: what this call read is not committed, so nothing is lost
                return None

    def _next_batch(self) -> Batch | None:
        now = time.time()
        since_scan = time.monotonic() - self.last_scan
        # a scan that took long (a big folder) waits SCAN_SHARE times as long before the next
        slow = SCAN_SHARE * self.scan_cost if self.scan_cost >= SCAN_GAP else 0.0
        dirty, appeared = self.watch.take()
        dirty.discard(self.watch.folder)
        unknown = bool(appeared) or self.scan_soon or any(p not in self.by_path for p in dirty)
        targets = {self.by_path[p] for p in dirty if p in self.by_path}
        if since_scan >= max(self.rescan, slow) or (unknown and since_scan >= max(SCAN_GAP, slow)) \
                or not self.watch.alive and since_scan >= max(SCAN_GAP * 10, slow):
            self.scan()
        targets |= self.copies.held
        if self.queue or len(self.backlog) > FILES_PER_BATCH:     # sorted once, not on every batch
            if not self.queue:
                self.queue.extend(sorted(self.backlog, key=lambda k: self.files[k].order if k in self.files else 0))
            taken = 0
            while self.queue and taken < FILES_PER_BATCH:
                key = self.queue.popleft()
                if key in self.backlog:
                    targets.add(key)
                    taken += 1
        else:
            targets |= self.backlog
        todo = [self.files[k] for k in targets if k in self.files]
        tables, bad, nbytes = [], [], 0
        for f in sorted(todo, key=lambda f: f.order):
            if nbytes >= BLOCK:
                self.backlog.add(f.key)
                continue
            self._halt()
            table, skipped, used = self._read(f, BLOCK - nbytes, now)
            nbytes += used
            bad += skipped
            if table is not None and table.num_rows:
                tables.append(table)
        if not tables and not bad and not self.changed and not self.forgotten:
            return None
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0] if tables else self._empty()
        offsets = {k: self.files[k].position() for k in self.changed if k in self.files}
        offsets.update(dict.fromkeys(self.forgotten))
        offsets[SCAN_KEY] = {"at": self.since}
        self.changed.clear()
        self.forgotten.clear()
        self.rows += table.num_rows
        self.bytes += nbytes
        self.rate.add(table.num_rows)
        return Batch(table, bad, offsets, nbytes=nbytes, offsets=offsets)

    def _empty(self) -> pa.Table:
        return self.schema.arrow().empty_table() if self.schema is not None else pa.table({})

    def _read(self, f: TailFile, budget: int, now: float) -> tuple[pa.Table | None, list[Bad], int]:
        """Rows of the whole lines `f` has from its offset; its skipped lines; bytes consumed."""
        self.backlog.discard(f.key)
        if not self._use(f):
            return None, [], 0
        self.pinned.add(f.key)
        try:
            return self._take(f, budget, now)
        finally:
            self.pinned.discard(f.key)
            self.copies.index(f)

    def _take(self, f: TailFile, budget: int, now: float) -> tuple[pa.Table | None, list[Bad], int]:
        try:
            if f.copy_of is not None and not self._classify(f, f.head(), now):
                return None, [], 0
            self._check(f)
            if f.refused or not f.header(self.csv):
                return None, [], 0
            if self.csv and self.schema is not None and f.fmt.names != tuple(self.schema.names):
                f.error = (f"{f.path}: its header ({', '.join(f.fmt.names)}) differs from the stream's columns "
                           f"({', '.join(self.schema.names)}); the file is not read")
                return None, [], 0
            final = not f.matched and now - f.mtime >= self.rotate_wait     # no newline will come
            start_offset = f.offset
            data, start, skipped = f.take(budget, self.max_line, self.csv, final)
        except OSError as e:
            f.error = f"cannot read {f.path}: {e.strerror or e}"
            return None, [], 0
        except UserError as e:       # not CSV text (compressed, no header end): this file only, not the stream
            f.error = f.refused = f"{f.path}: {e}; the file is not read"
            return None, [], 0
        used = f.offset - start_offset
        if used:
            self.changed.add(f.key)
        if f.offset < f.size and used:
            self.backlog.add(f.key)
        if not data:
            f.counted(0, used)
            return None, skipped, used
        if self.schema is None:
            self._infer(f, data)
        if self.schema is None:
            f.counted(0, used)
            return None, skipped + self._unreadable(f, data, start), used
        if f.parser is None:
            f.parser = Parser(f.fmt, self.schema, self.max_line, self.ints) if self.csv else self.json_parser
        out = f.parser.parse(data, start)
        f.counted(out.table.num_rows, used)
        return out.table, skipped + [replace(b, source=f.path) for b in out.bad], used

    def _infer(self, f: TailFile, data: bytes) -> None:
        if self.csv:
            sample = sample_records(data, more=False)
            schema = infer_csv(f.fmt, sample)
            texts = lambda name: sample_text(f.fmt, sample).column(name)    # noqa: E731
        else:
            sample = data[:SAMPLE]
            sample = sample[:sample.rfind(b"\n") + 1]
            schema = infer_json(sample)
            texts = lambda name: json_text(sample, name)                      # noqa: E731
        if schema is None:
            return
        self.schema, self.time_column = name_time_column(schema, self.time_column, self.time_format, texts)
        self.ints = Integers(self.schema)
        if not self.csv:
            self.json_parser = JsonParser(self.schema, self.max_line, self.ints)

    def _no_sample(self, name: str):
        raise UserError(f"the stored columns of this stream do not read {name!r} as a time; "
                        "add the source again to choose its time column")

    @staticmethod
    def _unreadable(f: TailFile, data: bytes, start: int) -> list[Bad]:
        """Lines read before any column could be inferred (no JSON object among them)."""
        starts, ends = lines(data)
        return [Bad(start + int(s), data[s:min(e, s + RAW_KEEP)].decode("utf-8", errors="replace").rstrip("\r\n"),
                    "not a JSON object with at least one column", source=f.path) for s, e in zip(starts, ends)]

    def position(self) -> dict:
        return {k: f.position() for k, f in self.files.items()}

    # --- controls and status ---------------------------------------------------------------
    def status(self) -> dict:
        """The source's state; during a long scan (or for a big folder, within a second of the last
        one) the last status, so a page or the writer thread never waits for the scan."""
        now = time.monotonic()
        last = self.last_status
        if last is not None and len(self.files) > STATUS_FILES * 10 and now - last[0] < 1.0:
            return last[1]
        if not self.lock.acquire(blocking=False):
            return last[1] if last is not None else self._status(now, [])
        try:
            out = self._status(now, list(self.files.values()))
        finally:
            self.lock.release()
        self.last_status = (now, out)
        return out

    def _status(self, now: float, files: list[TailFile]) -> dict:
        behind = [max(f.size - f.offset, 0) for f in files]
        last_error = next((f.error for f in files if f.error), None) or self.error
        state = "paused" if self.paused else "waiting" if not files else "running"
        shown = heapq.nsmallest(STATUS_FILES, zip(behind, files), key=lambda bf: (-bf[0], bf[1].path))
        return {"state": state, "path": self.pattern, "format": self.format, "file_count": len(files),
                "rows": self.rows, "bytes": self.bytes, "rows_per_s": round(self.rate.per_second(now), 1),
                "bytes_behind": sum(behind),
                "seconds_behind": max((round(now - f.caught_up, 3) for b, f in zip(behind, files) if b),
                                      default=0.0),
                "last_error": last_error, **self.watch.status(), "files": [f.status(now) for _, f in shown]}

    def stop(self) -> None:
        self.stopping.set()         # a scan or batch under way ends at its next file

    def close(self) -> None:
        self.stop()
        with self.lock:
            self.watch.stop()
            for f in self.files.values():
                f.close()
            self.open.clear()
