"""One followed file: its open descriptor, identity, offset and counters.

The descriptor stays open while the file is followed, so a file renamed or
deleted under us can still be read to its end; only beyond the source's limit
of open files is the least recently used one closed (fd -1) and opened again
by its path, as the same identity, when it changes. `take` hands out whole lines
only: a last line without its newline waits for it. A line longer than
`max_line` is skipped to its newline (which may arrive later) and reported.
`check` notices a truncation or a rewrite (copytruncate) and restarts at 0,
remembering where the old content ended so that a copy of it can be read on
from there.
"""
from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass

from .parse import RAW_KEEP, Bad, CsvFormat, cut, read_format
from .source import Rate
from .identity import FINGERPRINT, Fingerprint, key_of

PREVIOUS_KEPT = 32      # truncations remembered per file, for copies found late (several rotations a second)


def stamp(st: os.stat_result) -> tuple[int, int, int]:
    """Size and change times: equal in two stats of a file means nothing was written in between."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


@dataclass(frozen=True)
class Previous:
    """The content a file had before it was truncated: its fingerprint and how far we had read it."""
    fp: Fingerprint
    offset: int


class TailFile:
    def __init__(self, path: str, fd: int, st: os.stat_result, offset: int, fp: Fingerprint, order: int,
                 skipping: bool = False):
        self.path = path
        self.fd = fd
        self.key = key_of(st)
        self.offset = offset
        self.fp = fp
        self.order = order                  # discovery order: an older file is drained first
        self.skipping = skipping            # inside an over-long line, dropping bytes to its newline
        self.size = st.st_size
        self.mtime = st.st_mtime
        self.stamp = stamp(st)              # what a listing's stat of an unchanged file shows
        self.fmt: CsvFormat | None = None   # CSV: header, delimiter, encoding of this file
        self.parser = None
        self.matched = True                 # the pattern matched its path at the last scan
        self.unmatched_since: float | None = None
        self.copy_of: str | None = None     # held, not read: a copy (or the start of one) of this followed file
        self.copy_full = False              # the held file's first bytes match the whole fingerprint
        self.copy_since = 0.0
        self.previous: deque[Previous] = deque(maxlen=PREVIOUS_KEPT)   # contents before truncations
        self.resets = 0
        self.rows = 0
        self.bytes = 0
        self.skipped = 0                    # over-long lines
        self.rate = Rate()
        self.error: str | None = None
        self.refused: str | None = None     # why the file is not read (not CSV text); cleared when it is rewritten
        self.caught_up = time.monotonic()

    # --- identity ---------------------------------------------------------------------
    def head(self, n: int = FINGERPRINT) -> bytes:
        return os.pread(self.fd, n, 0)

    def check(self) -> bool:
        """Restart at 0 when the file shrank below our offset or its first bytes changed; True if it did."""
        self._stat()
        if self.size >= self.offset and self.fp.matches(self.head(self.fp.size)):
            return False
        self.previous.append(Previous(self.fp, self.offset))
        self.offset, self.skipping, self.fmt, self.parser, self.refused = 0, False, None, None, None
        self.fp = Fingerprint.of(self.head())
        self.resets += 1
        return True

    def _stat(self) -> None:
        st = os.fstat(self.fd)
        self.size, self.mtime, self.stamp = st.st_size, st.st_mtime, stamp(st)

    def holds(self, head: bytes, data: bytes) -> bool:
        """True when `data`, read at the offset before `head` was read, is this file's content.

        A copytruncate can land between check() and a read, and the file grow again past our
        offset: the read then returns the next generation's bytes. Read after the data, the head
        still starting with our fingerprint, and agreeing with the data where they overlap,
        proves no truncation came before the head was read: the fingerprint covers the first
        min(offset, FINGERPRINT) bytes, so it differs from any later generation's first bytes
        unless we have read no row yet.
        """
        overlap = max(len(head) - self.offset, 0)
        return self.fp.matches(head) and head[self.offset:self.offset + len(data)] == data[:overlap]

    def position(self) -> dict:
        held = {"copy_of": self.copy_of} if self.copy_of else {}
        return {"path": self.path, "offset": self.offset, "skipping": self.skipping, **self.fp.to_json(), **held}

    # --- reading ------------------------------------------------------------------------
    def header(self, csv: bool) -> bool:
        """Know where data starts (CSV: after the header line); False while the header is incomplete."""
        if not csv or self.fmt is not None:
            return True
        fmt = read_format(self.head, final=False)
        if fmt is None:
            return False
        self.fmt = fmt
        self.offset = max(self.offset, fmt.data_start)
        return True

    def take(self, budget: int, max_line: int, csv: bool, final: bool = False) -> tuple[bytes, int, list[Bad]]:
        """(whole lines from the offset, their file offset, skipped lines); moves the offset past them.

        `final`: the file will not grow (rotated away and quiet), so a last line without newline counts.
        """
        self._stat()
        bad: list[Bad] = []
        if self.size <= self.offset:
            self.caught_up = time.monotonic()
            return b"", self.offset, bad
        data = os.pread(self.fd, min(self.size - self.offset, max(budget, max_line + 1)), self.offset)
        head = self.head()        # read after the data: a truncation since check() shows here
        if not self.holds(head, data):
            return b"", self.offset, bad   # the next check() resets; a visible copy gives these bytes
        if self.skipping:
            i = data.find(b"\n")
            self.offset += len(data) if i < 0 else i + 1
            if i < 0:
                return b"", self.offset, bad
            self.skipping, data = False, data[i + 1:]
        start = self.offset
        n = cut(data) if csv else data.rfind(b"\n") + 1
        if final and start + len(data) == self.size:
            n = len(data)
        if n == 0 and len(data) > max_line:
            raw = data[:RAW_KEEP].decode("utf-8", errors="replace")
            bad.append(Bad(start, f"{raw}...", f"line longer than {max_line} bytes; skipped", source=self.path))
            self.skipped += 1
            self.skipping = True
            self.offset = start + len(data)
            return b"", start, bad
        self.offset = start + n
        if self.fp.size < FINGERPRINT and len(head) > self.fp.size:
            self.fp = Fingerprint.of(head)     # the head that vouched for the data, not a later one
        if self.offset >= self.size:
            self.caught_up = time.monotonic()
        return data[:n], start, bad

    def counted(self, rows: int, nbytes: int) -> None:
        self.rows += rows
        self.bytes += nbytes
        self.rate.add(rows)

    def status(self, now: float) -> dict:
        """`now` on the monotonic clock."""
        behind = max(self.size - self.offset, 0)
        return {"path": self.path, "id": self.key, "offset": self.offset, "rows": self.rows, "bytes": self.bytes,
                "rows_per_s": round(self.rate.per_second(now), 1), "bytes_behind": behind,
                "seconds_behind": round(now - self.caught_up, 3) if behind else 0.0,
                "resets": self.resets, "skipped_lines": self.skipped, "followed": self.matched,
                "last_error": self.error}

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
