"""Replay a CSV file: as fast as possible, at N rows/s, or at a multiple of real time.

The position is (byte offset, loop) of the next record, committed with each
batch, so a restart resumes exactly after the last committed row. Paced modes
parse ahead a small block and release rows from it as their time comes; the
offset committed then is the end of the last released record.

The position also holds `stored`, the byte spans of records already handed out to
be stored. A block never crosses the edge of such a span, so after a seek back or
in a loop's next pass a batch is either all new rows or all `replayed` ones: those
go to the live views only and are never stored (nor quarantined) twice.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import UserError
from .parse import MAX_LINE, RAW_KEEP, SAMPLE, Bad, CsvFormat, Parsed, Parser, _raw, cut, infer_schema, read_format, \
    record_end, sample_records, sample_text, spans
from .paths import regular_file
from .times import name_time_column
from ..schema import Schema, time_seconds
from .source import LIVE_INFLIGHT, Batch, Rate, Source

FAST_BLOCK = 8 << 20       # bytes per block at full speed, at least, ...
BLOCK_ROWS = 10_000        # ... or what this many rows take, up to MAX_BLOCK: a batch costs something per column
MAX_BLOCK = 24 << 20       # (parse, segment file, matrix, commit), so a wide file's batches need more rows.
                           # Below glibc's 32 MiB ceiling for its mmap threshold, a freed block's memory is
                           # reused; at 32 MiB every block was fresh pages, faulted in under the GIL (18 ms)
PACED_BLOCK = 256 << 10    # bytes parsed ahead in paced modes, at least
PACED_AHEAD = 0.5          # seconds of rows parsed ahead at N rows/s, so a batch carries all that is due
PACED_TICK = 0.05          # seconds between paced batches at least: each batch has a fixed cost (commit, snapshot)
CATCH_UP = 5.0             # seconds behind a paced replay still catches up; after longer it resumes at pace
# (least, most) a paced mode takes; real time reaches 1e8x so weekly or yearly data (public data sets) still
# moves: at 10,000x a week of data took a minute a row
SPEED_LIMITS = {"rows": (1.0, 1_000_000.0), "realtime": (0.01, 100_000_000.0)}
NEEDS_TIME = ("× real time needs a time column, and no column of this file holds dates or times in a format "
              "the engine detects: choose the time column (and its format) or another speed")


@dataclass(frozen=True)
class Speed:
    mode: str = "max"          # "max" | "rows" (value rows/s) | "realtime" (value x real time)
    value: float = 0.0

    @classmethod
    def parse(cls, mode: str, value: float = 0.0) -> "Speed":
        if mode not in ("max", "rows", "realtime"):
            raise UserError(f"unknown speed {mode!r}: use max, rows or realtime")
        if mode != "max":
            low, high = SPEED_LIMITS[mode]
            if not low <= value <= high:
                unit = "rows/s" if mode == "rows" else "× real time"
                raise UserError(f"a speed of {value:g} {unit} is out of range: use {low:g} to {high:,.0f} {unit}")
        return cls(mode, float(value))



def block_for(sample: bytes) -> int:
    """Bytes a full-speed block reads: FAST_BLOCK, or BLOCK_ROWS rows of the sample's length up to MAX_BLOCK
    (1,000 columns: 3,400 rows a batch instead of 1,100)."""
    row = len(sample) / max(sample.count(b"\n"), 1)
    return int(min(max(FAST_BLOCK, BLOCK_ROWS * row), MAX_BLOCK))


def covering(spans: list[list[int]], offset: int) -> tuple[bool, int | None]:
    """(is `offset` inside a stored span, the offset where that answer changes; None: never)."""
    for a, b in spans:
        if offset < a:
            return False, a
        if offset < b:
            return True, b
    return False, None


def add_span(spans: list[list[int]], a: int, b: int) -> list[list[int]]:
    """`spans` (sorted, disjoint) with [a, b) added, touching spans merged; a new list."""
    out: list[list[int]] = []
    for s in sorted([*spans, [a, b]]):
        if out and s[0] <= out[-1][1]:
            out[-1][1] = max(out[-1][1], s[1])
        else:
            out.append(list(s))
    return out


class ReplaySource(Source):
    kind = "replay"

    def __init__(self, path: str, position: dict | None = None, speed: Speed = Speed(),
                 loop: bool = False, time_column: str | None = None, schema: Schema | None = None,
                 max_line: int = MAX_LINE, block: int | None = None, time_format: str | None = None):
        regular_file(path)
        self.path = path
        self.speed = speed
        self.loop = loop
        self.max_line = max_line
        # bytes a full-speed batch reads (the cluster's entry size); by default sized by the rows (`_open`)
        self.block = block or FAST_BLOCK
        self._sized = block is not None
        self.lock = threading.RLock()
        self.size = os.path.getsize(path)
        self.file = open(path, "rb")
        self.fmt: CsvFormat | None = None
        self.parser: Parser | None = None
        self.schema = schema
        self.time_column = time_column
        self.time_format = time_format
        pos = position or {}
        self.loop_count = int(pos.get("loop", 0))
        self.offset = int(pos.get("offset", 0))
        # byte spans of records already stored; a position from before they were kept covers what was read
        self.stored: list[list[int]] | None = [list(map(int, p)) for p in pos["stored"]] if "stored" in pos else None
        self.finished = False
        self.paused = False
        self.error: str | None = None
        self.pending: Parsed | None = None     # parsed ahead, not yet released (paced modes)
        self.pending_end = 0                   # source offset where the pending block ends
        self.pending_replayed = False          # the pending block's records are stored already
        self.released_at = -np.inf             # monotonic time of the last paced batch
        self.reset_next = False
        # at full speed the next block is read and parsed in a thread while this one is prepared and stored
        # (pyarrow leaves the GIL): ((offset, loop, stored spans it was read with), its future)
        self.ahead: tuple[tuple, Future] | None = None
        self._ahead_pool: ThreadPoolExecutor | None = None
        self.rows = 0
        self.bytes = 0
        self.rate = Rate()
        self._anchor()
        self._open()

    # --- setup -------------------------------------------------------------
    def _open(self) -> None:
        head = self._read_at(0, SAMPLE)
        if not head.strip():
            self.finished = not self.loop
            return
        self.fmt = read_format(lambda n: self._read_at(0, n), final=True)
        if self.fmt is None:
            self.finished = True
            return
        sample = sample_records(self._read_at(self.fmt.data_start, SAMPLE + 1), more=False)
        if self.schema is None:
            self.schema = infer_schema(self.fmt, sample)
        elif tuple(self.schema.names) != self.fmt.names:
            raise UserError(f"{self.path}: the header changed since this stream started "
                            f"({', '.join(self.fmt.names)} instead of {', '.join(self.schema.names)})")
        self.schema, self.time_column = name_time_column(self.schema, self.time_column, self.time_format,
                                                         lambda name: sample_text(self.fmt, sample).column(name))
        self.parser = Parser(self.fmt, self.schema, self.max_line)
        if not self._sized:
            self.block = block_for(sample)
        if self.speed.mode == "realtime" and self.time_column is None:
            raise UserError(NEEDS_TIME)
        self.offset = max(self.offset, self.fmt.data_start)
        if self.stored is None:
            end = self.size if self.loop_count else self.offset
            self.stored = [[self.fmt.data_start, end]] if end > self.fmt.data_start else []

    def _read_at(self, offset: int, size: int) -> bytes:
        """pread: the read-ahead thread and this one never move a shared file position."""
        parts, fd = [], self.file.fileno()
        while size > 0:
            part = os.pread(fd, size, offset)
            if not part:
                break
            parts.append(part)
            offset, size = offset + len(part), size - len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # --- controls (thread-safe) ---------------------------------------------
    def _resumed(self) -> None:
        self._anchor()

    def set_speed(self, speed: Speed) -> None:
        with self.lock:
            if speed.mode == "realtime" and self.time_column is None:
                raise UserError(NEEDS_TIME)
            self.speed = speed
            self._anchor()

    def set_loop(self, loop: bool) -> None:
        with self.lock:
            self.loop = loop
            if loop and self.finished and self.fmt is not None:
                self._restart()

    def seek(self, row: int | None = None, at: float | None = None) -> None:
        """Continue from data record `row` (0-based) or the first row at or after epoch `at`."""
        with self.lock:
            if self.fmt is None:
                raise UserError("nothing to seek in an empty file")
            self.offset = self._offset_of_row(row) if row is not None else self._offset_of_time(at)
            self.pending = None
            self.finished = False
            self.reset_next = True
            self._anchor()

    def _offset_of_row(self, row: int) -> int:
        if row < 0:
            raise UserError("row must be 0 or more")
        offset, seen = self.fmt.data_start, 0
        while True:
            data = self._read_at(offset, FAST_BLOCK)
            n = cut(data) if len(data) == FAST_BLOCK else len(data)
            if n == 0:
                return offset
            starts, ends, blank = spans(data[:n])
            real = np.flatnonzero(~blank)
            if seen + len(real) > row:
                return offset + int(starts[real[row - seen]])
            seen += len(real)
            offset += n

    def _offset_of_time(self, at: float) -> int:
        if self.time_column is None:
            raise UserError("seeking to a time needs a time column; this stream has none")
        offset = self.fmt.data_start
        while True:
            data = self._read_at(offset, FAST_BLOCK)
            n = cut(data) if len(data) == FAST_BLOCK else len(data)
            if n == 0:
                return offset
            parsed = self.parser.parse(data[:n], offset, positions=True)
            t = time_seconds(parsed.table.column(self.time_column))
            hit = np.flatnonzero(t >= at)
            if len(hit):
                i = int(hit[0])
                return int(parsed.ends[i - 1]) if i else offset
            offset += n

    def _anchor(self) -> None:
        # pacing runs on the monotonic clock: a wall clock set back (NTP, by hand) would stall it
        self.anchor_at = time.monotonic()
        self.anchor_rows = 0
        self.anchor_event: float | None = None

    def _restart(self) -> None:
        self.offset = self.fmt.data_start
        self.loop_count += 1
        self.finished = False
        self.pending = None
        self._anchor()

    # --- reading ---------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.finished

    def position(self) -> dict:
        return {"offset": self.offset, "loop": self.loop_count, "stored": [list(p) for p in self.stored or []]}

    def next_batch(self) -> Batch | None:
        with self.lock:
            if self.paused or self.finished or self.parser is None:
                return None
            try:
                batch = self._next_fast() if self.speed.mode == "max" else self._next_paced()
                self.error = None
            except OSError as e:
                self.error = f"cannot read {self.path}: {e.strerror or e}"
                return None
            if batch is not None:
                batch.reset, self.reset_next = self.reset_next, False
                self.rows += batch.table.num_rows
                self.bytes += batch.nbytes
                self.rate.add(batch.table.num_rows)
            return batch

    def _block(self, size: int, offset: int | None = None, stored: list | None = None
               ) -> tuple[bytes, list[Bad], int, bool]:
        """The next whole records from `offset` (by default the source's), skipping an over-long or
        unterminated one, and whether they were stored already (in `stored`, by default the source's
        spans). A block ends where a stored span starts or ends: span edges are record boundaries, so
        the block is still whole records."""
        offset = self.offset if offset is None else offset
        replayed, edge = covering((self.stored if stored is None else stored) or [], offset)
        if edge is not None and edge < self.size:
            size = min(size, edge - offset)
        data, skipped, end = self._records(offset, size)
        return data, skipped, end, replayed

    def _block_at(self, offset: int, size: int) -> bytearray:
        """Up to `size` bytes from `offset`, in a bytearray that `_records` cuts to whole records in place:
        a bytes slice copied the block (8-32 MB) under the GIL every time."""
        data, got = bytearray(size), 0
        with memoryview(data) as view:
            while got < size and (n := os.preadv(self.file.fileno(), [view[got:]], offset + got)):
                got += n
        del data[got:]
        return data

    def _records(self, offset: int, size: int) -> tuple[bytes, list[Bad], int]:
        data = self._block_at(offset, size)
        if not data:
            return b"", [], offset
        if len(data) < size:                  # the rest of the file: the last line needs no newline
            return data, [], offset + len(data)
        n = cut(data)
        if n:
            del data[n:]                      # in place: no copy
            return data, [], offset + n
        # no record boundary in a whole block: a record longer than the block, skipped to its end
        # (quotes paired, so a quoted field's line breaks do not count), or a quote that never closes
        end = record_end(self._read_at, offset)
        why = f"line longer than {self.max_line} bytes"
        if end is None:
            end = self._find_newline(offset)      # the open quote costs its own line only
            if end - offset <= self.max_line:
                why = "unterminated quote: the quote opened in this line never closes"
        size = end - offset
        raw = _raw(data[:size], self.fmt.encoding) if size <= len(data) else \
            f"{_raw(data[:RAW_KEEP], self.fmt.encoding)}... ({size} bytes)"
        return b"", [Bad(offset, raw, why)], end

    def _find_newline(self, offset: int) -> int:
        while True:
            data = self._read_at(offset, FAST_BLOCK)
            if not data:
                return offset
            i = data.find(b"\n")
            if i >= 0:
                return offset + i + 1
            offset += len(data)

    def _at_end(self) -> Batch | None:
        if self.loop:
            self._restart()
        else:
            self.finished = True
        return None

    def _next_fast(self) -> Batch | None:
        if self.pending is not None:
            return self._release(self.pending.table.num_rows)
        start, ahead, self.ahead = self.offset, self.ahead, None
        if ahead is not None and ahead[0][:2] == (start, self.loop_count) and ahead[0][2] is self.stored:
            parsed, skipped, end, replayed = ahead[1].result()
        else:        # none, or read before a seek, a loop's restart or paced batches moved the source
            parsed, skipped, end, replayed = self._read_parse(start, self.stored)
        if end == start:
            return self._at_end()
        batch = self._handed(parsed.table, skipped + parsed.bad, start, end, replayed)
        if end < self.size:
            if self._ahead_pool is None:
                self._ahead_pool = ThreadPoolExecutor(1, thread_name_prefix="rivulet-read-ahead")
            self.ahead = ((end, self.loop_count, self.stored),
                          self._ahead_pool.submit(self._read_parse, end, self.stored))
        return batch

    def _read_parse(self, start: int, stored: list) -> tuple[Parsed | None, list[Bad], int, bool]:
        """The block of records from `start` parsed (None at the end), its skipped records, its end, and
        whether `stored` holds it. Reads only: the read-ahead thread runs it."""
        data, skipped, end, replayed = self._block(self.block, start, stored)
        if skipped and self.block <= self.max_line:      # a line longer than a small block is not too long yet
            data, skipped, end, replayed = self._block(self.max_line + 1, start, stored)
        return (self.parser.parse(data, start) if end > start else None), skipped, end, replayed

    def _handed(self, table: pa.Table, bad: list[Bad], start: int, end: int, replayed: bool) -> Batch:
        """The batch of records [start, end); new ones join the stored spans in the position it carries."""
        self.offset = end
        if not replayed:
            self.stored = add_span(self.stored, start, end)
        return Batch(table, bad, self.position(), nbytes=end - start, replayed=replayed)

    def _next_paced(self) -> Batch | None:
        if self.pending is None or self.pending.table.num_rows == 0:
            size = max(self._ahead_bytes(), self.max_line + 1)
            data, skipped, end, replayed = self._block(size)
            if end == self.offset:
                return self._at_end()
            parsed = self.parser.parse(data, self.offset, positions=True)
            parsed.bad[:0] = skipped
            self.pending, self.pending_end, self.pending_replayed = parsed, end, replayed
            if parsed.table.num_rows == 0:
                return self._release(0)
        if time.monotonic() - self.released_at < PACED_TICK:
            return None
        due = self._due()
        if due <= 0:
            return None
        self.released_at = time.monotonic()
        return self._release(due)

    def _due(self) -> int:
        now = time.monotonic()
        table = self.pending.table
        if self.speed.mode == "rows":
            due = self._rows_due(now)
            if due > CATCH_UP * self.speed.value:   # a long stall: no burst
                self._anchor()
                self.anchor_at = now - 1.0 / self.speed.value
                due = 1
            return min(due, table.num_rows)
        t = time_seconds(table.column(self.time_column))
        if self.anchor_event is None:
            known = t[~np.isnan(t)]
            if not len(known):
                return table.num_rows
            self.anchor_event, self.anchor_at = float(known[0]), now
        clock = self.anchor_event + (now - self.anchor_at) * self.speed.value
        later = np.flatnonzero(t > clock)
        return int(later[0]) if len(later) else table.num_rows

    @property
    def max_inflight(self) -> int | None:
        """Paced, it is a live source; at full speed the engine's queue bounds it."""
        return None if self.speed.mode == "max" else LIVE_INFLIGHT

    def _rows_due(self, now: float) -> int:
        """At N rows/s: rows due by `now` and not yet released."""
        return int((now - self.anchor_at) * self.speed.value) - self.anchor_rows

    def _ahead_bytes(self) -> int:
        """Bytes to parse ahead: at N rows/s, what is due plus half a second, so when ingest falls behind
        (a loaded machine) the next batch carries the whole backlog instead of many small batches."""
        if self.speed.mode != "rows" or self.rows == 0:
            return PACED_BLOCK
        per_row = self.bytes / self.rows
        due = max(0, self._rows_due(time.monotonic()))
        return int(min(FAST_BLOCK, max(PACED_BLOCK, per_row * (due + PACED_AHEAD * self.speed.value))))

    def _release(self, count: int) -> Batch:
        """Hand out the first `count` pending rows with the bad records before them."""
        p = self.pending
        start = self.offset
        if count >= p.table.num_rows:
            end, table, bad = self.pending_end, p.table, p.bad
            self.pending = None
        else:
            end = int(p.ends[count - 1])
            table = p.table.slice(0, count)
            bad = [b for b in p.bad if b.position < end]
            self.pending = Parsed(p.table.slice(count), [b for b in p.bad if b.position >= end], p.ends[count:])
        self.anchor_rows += table.num_rows
        return self._handed(table, bad, start, end, self.pending_replayed)

    def status(self) -> dict:
        with self.lock:
            state = "error" if self.error else "paused" if self.paused else "ended" if self.finished else "running"
            total = max(self.size - (self.fmt.data_start if self.fmt else 0), 1)
            done = self.offset - (self.fmt.data_start if self.fmt else 0)
            return {"state": state, "path": self.path, "speed": self.speed.mode, "speed_value": self.speed.value,
                    "loop": self.loop, "loops": self.loop_count, "rows": self.rows, "bytes": self.bytes,
                    "rows_per_s": round(self.rate.per_second(), 1), "bytes_behind": max(self.size - self.offset, 0),
                    "progress": round(min(max(done / total, 0.0), 1.0), 4), "last_error": self.error,
                    "replaying": covering(self.stored or [], self.offset)[0] and not self.finished,
                    "anchor": self._anchor_point()}

    def _anchor_point(self) -> dict | None:
        """In real-time mode, where event time meets wall time: a row with event time t is
        due at wall + (t - event) / speed. Readers use it to measure how late rows become visible."""
        if self.speed.mode != "realtime" or getattr(self, "anchor_event", None) is None:
            return None
        wall = time.time() - (time.monotonic() - self.anchor_at)     # the anchor on today's wall clock
        return {"event": self.anchor_event, "wall": wall, "speed": self.speed.value}

    def close(self) -> None:
        if self._ahead_pool is not None:        # its read must end before the file's descriptor goes
            self._ahead_pool.shutdown(wait=True, cancel_futures=True)
        self.file.close()
