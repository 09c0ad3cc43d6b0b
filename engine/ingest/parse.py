"""Bytes -> typed columns, vectorised, with a quarantine for rows that do not fit.

The fast path hands a whole block (cut on a record boundary) to pyarrow's CSV
reader with the stream's fixed types. Only when that reports a problem (a row
with the wrong field count, a value that does not convert, a repeated header,
bad bytes, a non-finite number) does the block go through the slow path, which
finds each record's byte span with numpy, sets the bad records aside with a
reason, reads the rest as text and converts column by column, so one bad value
costs its row (or just its value, flagged), never the block.

Record bounds come from quote parity: a newline after an even number of quotes
ends a record. A quote that never closes costs only its own line; the lines
after it are read again as records.
"""
from __future__ import annotations

import codecs
import csv
import io
import math
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ..errors import UserError
from ..schema import INT_EXACT, INT64_MAX, TIME_YEARS, Column, Schema, beyond_floats, safe_names, time_usable
from . import times

NA_VALUES = ["", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "none", "#N/A", "<NA>"]
NA_SET = frozenset(NA_VALUES)
COMPRESSED = ((b"\x1f\x8b", "gzip-compressed"), (b"PK\x03\x04", "a zip archive"), (b"BZh", "bzip2-compressed"),
              (b"\xfd7zXZ\x00", "xz-compressed"), (b"\x28\xb5\x2f\xfd", "zstd-compressed"))
MAX_LINE = 1 << 20          # bytes; a longer record is quarantined
MAX_HEADER = 8 << 20        # bytes; a wide file's header may be longer than MAX_LINE, up to this
SAMPLE = 1 << 20            # bytes of data used to infer the column kinds
RAW_KEEP = 2000             # characters of a bad record kept in the quarantine
BOM = b"\xef\xbb\xbf"
_WHITESPACE = np.zeros(256, bool)
_WHITESPACE[[9, 10, 13, 32]] = True
_BLANK_LINES = re.compile(rb"(?:[ \t\r]*\n)*")
_SEP_LINE = re.compile(rb"sep=([^\r\n])[ \t]*(?:\r?\n|\Z)", re.IGNORECASE)    # Excel's delimiter line
_INTEGER = r"^[-+]?\d+$"
_SPACE_LINE = re.compile(rb"(?m)^[ \t]+\r?$")
_FLOAT_EXACT = str(INT_EXACT)        # integers above it do not all fit a float64
_INT64 = str(INT64_MAX)
csv.field_size_limit(MAX_HEADER)     # the csv module's 128 KiB default would refuse long names and fields
_NUMBER = r"^[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?|inf|Inf|INF|infinity|Infinity|nan|NaN)$"
_ISO_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$"


@dataclass(frozen=True)
class Bad:
    """A row set aside (kept=False) or accepted with missing values and flagged (kept=True)."""
    position: int
    raw: str
    reason: str
    kept: bool = False
    source: str | None = None      # the file it came from, when a source reads several


@dataclass
class Parsed:
    table: pa.Table
    bad: list[Bad] = field(default_factory=list)
    ends: np.ndarray | None = None     # per row: source offset just after its record

    @property
    def rejected(self) -> int:
        return sum(not b.kept for b in self.bad)


@dataclass(frozen=True)
class CsvFormat:
    delimiter: str
    encoding: str            # "utf-8" or "cp1252"
    header: bytes            # the header line, as in the file, without its line end
    names: tuple[str, ...]
    data_start: int          # offset of the first data record
    trailing: int = 0        # empty fields every row ends with (a trailing delimiter), dropped


def sniff(head: bytes, final: bool) -> CsvFormat | None:
    """Find the header, delimiter and encoding; None until the header line is complete.

    Blank lines before the header are skipped; an Excel `sep=;` first line gives the
    delimiter and the header follows it; a quoted name may hold a line break.
    """
    start = 3 if head.startswith(BOM) else 0
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError("the file is UTF-16; it is converted to UTF-8 on upload or replay, not while tailing")
    for magic, what in COMPRESSED:
        if head.startswith(magic):
            raise UserError(f"the file is {what}; compressed files are not read: extract the CSV and use that")
    pos = _BLANK_LINES.match(head, start).end()
    delimiter = None
    sep = _SEP_LINE.match(head, pos)
    if sep:
        delimiter = sep.group(1).decode("latin-1")
        pos = _BLANK_LINES.match(head, sep.end()).end()
    end = _line_end(head, pos)
    if end < 0:
        if not final:
            return None
        end = len(head)
    header = head[pos:end].rstrip(b"\r")
    if not header.strip():
        return None
    if b"\x00" in header or sum(c < 9 or 13 < c < 32 for c in header[:4096]) > 0:
        raise UserError("the file does not look like CSV text: its first line holds binary data")
    encoding = _encoding(head[start:])
    text = header.decode(encoding, errors="replace")
    if delimiter is None:
        outside = "".join(text.split('"')[::2])       # a quoted name's commas do not count
        delimiter = max([",", ";", "\t", "|"], key=lambda d: (outside.count(d), d == ","))
        if outside.count(delimiter) == 0:
            delimiter = ","
    try:
        names = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as e:
        raise UserError(f"the header line cannot be read as CSV: {e}") from None
    data_start = min(end + 1, len(head))
    return CsvFormat(delimiter, encoding, header, tuple(safe_names(names)), data_start,
                     _trailing(head[data_start:], delimiter, len(names)))


def read_format(read: Callable[[int], bytes], final: bool) -> CsvFormat | None:
    """sniff() over the first bytes (`read(n)` gives the first n), reading more while the header
    line goes on, up to MAX_HEADER. `final`: the file will not grow."""
    size = SAMPLE
    while True:
        head = read(size)
        whole = len(head) < size
        fmt = sniff(head, final and whole)
        if fmt is not None or whole:
            return fmt
        if size >= MAX_HEADER:
            raise UserError(f"the header line does not end within the first {MAX_HEADER >> 20} MiB, so the "
                            f"columns cannot be known: check that the file is CSV text with line breaks")
        size = min(size * 4, MAX_HEADER)


def sample_records(body: bytes, more: bool) -> bytes:
    """The whole records in the first SAMPLE bytes of `body` (the data after the header), which
    column kinds are inferred from; `more`: the data goes on after `body`, so its last record may be
    cut short."""
    sample = body[:SAMPLE]
    if more or len(body) > SAMPLE:
        sample = sample[:cut(sample)] or sample
    return sample


def sample_schema(fmt: CsvFormat, body: bytes, more: bool) -> Schema:
    """Column kinds from the first records of `body` (sample_records)."""
    return infer_schema(fmt, sample_records(body, more))


def _line_end(head: bytes, pos: int) -> int:
    """Index of the newline that ends the record starting at `pos` (quotes paired), or -1."""
    i = head.find(b"\n", pos)
    if i < 0 or head.count(b'"', pos, i) % 2 == 0:
        return i
    arr = np.frombuffer(head, np.uint8)[pos:]
    ok = _unquoted(arr, np.flatnonzero(arr == 10))
    return pos + int(ok[0]) if len(ok) else -1


def _trailing(body: bytes, delimiter: str, fields: int) -> int:
    """1 when the first rows all end with one empty field more than the header has (`a,b,`)."""
    lines = [ln.rstrip(b"\r") for ln in body.split(b"\n")[:50] if ln.strip(b"\r\t ")]
    if len(lines) > 1:
        lines = lines[:-1]                 # the last one may be cut short
    d = delimiter.encode()
    if lines and b'"' not in b"".join(lines) and all(
            ln.endswith(d) and ln.count(d) == fields for ln in lines):
        return 1
    return 0


def _encoding(data: bytes) -> str:
    """UTF-8 unless most non-ASCII lines of the head are not UTF-8 (then Windows-1252/Latin-1).

    A UTF-8 file with a few bad bytes stays UTF-8 and those lines are quarantined.
    """
    end = data.rfind(b"\n")
    sample = data[:end] if end > 0 else data
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    valid = invalid = 0
    for line in sample.split(b"\n"):
        if not line.isascii():
            try:
                line.decode("utf-8")
                valid += 1
            except UnicodeDecodeError:
                invalid += 1
    return "cp1252" if invalid > valid else "utf-8"


# --- record boundaries ---------------------------------------------------------

def _unquoted(arr: np.ndarray, at: np.ndarray, parity: int = 0) -> np.ndarray:
    """The positions of `at` outside quotes: after an even number of quotes (plus `parity` before `arr`)."""
    q = np.flatnonzero(arr == 34)
    return at[(np.searchsorted(q, at) + parity) % 2 == 0]


def cut(data: bytes) -> int:
    """Length of the longest prefix of `data` that ends on a record boundary."""
    if b'"' not in data:
        return data.rfind(b"\n") + 1
    arr = np.frombuffer(data, np.uint8)
    ok = _unquoted(arr, np.flatnonzero(arr == 10))
    return int(ok[-1]) + 1 if len(ok) else 0


def record_end(read: Callable[[int, int], bytes], offset: int, chunk: int = 8 << 20) -> int | None:
    """Offset just after the record that starts at `offset`, pairing quotes over as many
    chunks as it takes (`read(offset, size)`); None when a quote stays open to the end."""
    parity, pos = 0, offset
    while data := read(pos, chunk):
        arr = np.frombuffer(data, np.uint8)
        ok = _unquoted(arr, np.flatnonzero(arr == 10), parity)
        if len(ok):
            return pos + int(ok[0]) + 1
        parity = (parity + data.count(b'"')) % 2
        pos += len(data)
    return None


def blank(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """True for the records arr[starts[i]:ends[i]] (contiguous, none empty) holding only spaces,
    tabs and line ends."""
    if not len(starts):
        return np.zeros(0, bool)
    maybe = _WHITESPACE[arr[starts]]
    length = ends - starts
    empty = maybe & ((length == 1) | (length == 2) & (arr[starts] == 13)) & (arr[ends - 1] == 10)
    if np.array_equal(maybe, empty):      # no record starts with a space or tab: skip the byte scan
        return empty
    return ~np.logical_or.reduceat(~_WHITESPACE[arr], starts)


def spans(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, blank) of every record in `data`; ends include the line end."""
    arr = np.frombuffer(data, np.uint8)
    nl = np.flatnonzero(arr == 10)
    if b'"' in data:
        nl = _unquoted(arr, nl)
    ends = nl + 1
    if len(data) and (len(ends) == 0 or ends[-1] < len(data)):
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1])).astype(np.int64)[:len(ends)]
    return starts, ends, blank(arr, starts, ends)


def _field_counts(data: bytes, ends: np.ndarray, delimiter: str) -> np.ndarray:
    arr = np.frombuffer(data, np.uint8)
    d = np.flatnonzero(arr == ord(delimiter))
    if b'"' in data:
        d = _unquoted(arr, d)
    rec = np.searchsorted(ends, d, side="right")
    return np.bincount(rec, minlength=len(ends))[:len(ends)] + 1


# --- parsing -----------------------------------------------------------------

class Integers:
    """Where a source's integer columns stand, shared by its parsers (a tail reads many files) and moved
    on in the order batches are parsed: `wide` ones hold a value beyond 2**53, which floats would round,
    so they stay int64 and a fraction there is flagged; `floats` ones took a fraction first and are
    float64 from then on (the stream records both in the stored schema: Schema.settled)."""

    def __init__(self, schema: Schema | None):
        cols = schema.columns if schema is not None else ()
        self.wide = {c.name for c in cols if c.integer and c.wide}
        self.floats: set[str] = set()

    def current(self, schema: Schema) -> Schema:
        """`schema` with the columns that turned to floats as floats."""
        if not any(c.integer and c.name in self.floats for c in schema.columns):
            return schema
        return Schema(tuple(replace(c, integer=False, wide=False) if c.integer and c.name in self.floats else c
                            for c in schema.columns))


class Parser:
    """Parses blocks of one CSV stream into tables of its fixed schema."""

    def __init__(self, fmt: CsvFormat, schema: Schema, max_line: int = MAX_LINE, ints: Integers | None = None):
        self.fmt = fmt
        self.ints = ints if ints is not None else Integers(schema)
        self.max_line = max_line
        self._set(schema)
        self._read_names = list(schema.names) + [f"_trailing_{i}" for i in range(fmt.trailing)]

    def _set(self, schema: Schema) -> None:
        self.schema = self.ints.current(schema)
        self._types = times.read_types(self.schema)     # time columns in a non-ISO format: text, parsed after

    def parse(self, data: bytes, base: int, positions: bool = False) -> Parsed:
        """Parse whole records; `base` is the source offset of data[0]."""
        if self.ints.floats and any(c.integer and c.name in self.ints.floats for c in self.schema.columns):
            self._set(self.schema)          # a column turned to floats in another parser of the source
        if not data:
            return Parsed(self.schema.arrow().empty_table(), [], np.zeros(0, np.int64) if positions else None)
        table = self._fast(data)
        if table is not None:
            if not positions:
                return Parsed(table)
            starts, ends, blank = spans(data)
            if int((~blank).sum()) == table.num_rows:
                return Parsed(table, [], base + ends[~blank])
        return self._slow(data, base)

    def _read(self, data: bytes, types: dict, handler=None, threads: bool = True, columns=None) -> pa.Table:
        if self.fmt.encoding != "utf-8":
            data = _transcode(data, self.fmt.encoding)
        return pcsv.read_csv(
            pa.BufferReader(data),      # native, zero-copy: a Python file object copies and takes the GIL
            read_options=pcsv.ReadOptions(column_names=self._read_names, use_threads=threads,
                                          block_size=max(len(data) + 1, 1 << 20)),
            parse_options=pcsv.ParseOptions(delimiter=self.fmt.delimiter, newlines_in_values=b'"' in data,
                                            invalid_row_handler=handler),
            convert_options=pcsv.ConvertOptions(column_types=types, null_values=NA_VALUES,
                                                include_columns=list(columns or self.schema.names),
                                                strings_can_be_null=True, quoted_strings_can_be_null=False))

    def _fast(self, data: bytes) -> pa.Table | None:
        if self._has_header(data) or b"\x00" in data or (b'"' in data and data.count(b'"') % 2):
            return None     # an open quote: pyarrow would read on past the line it opens in (counted only
                            # when there is one: the count holds the GIL 2.5 ms a block, a find 0.1 ms)
        if len(self._read_names) == 1 and _SPACE_LINE.search(data):
            return None     # pyarrow would read a whitespace-only line as a value; it is a blank line
        if not data.isascii():
            if BOM in data:     # maybe a header again, from files joined end to end
                return None
            try:        # pyarrow cannot report a bad row with bad bytes; the slow path can
                if self.fmt.encoding == "utf-8":
                    data.decode("utf-8")
            except UnicodeDecodeError:
                return None
        invalid = []
        try:
            table = self._read(data, self._types, lambda row: invalid.append(1) or "skip")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
            return None
        if invalid:
            return None
        if times.formatted(self.schema):     # text in a time layout -> times, before their range is checked
            table, lost = times.convert_table(table, self.schema)
            if lost:           # the slow path flags those rows
                return None
        # a float at or beyond 2**53 may be an integer literal a float cannot hold, and one that is not
        # finite is flagged: the slow path reads their text
        floats = [c.name for c in self.schema.columns if c.kind == "number" and not c.integer]
        if not _within_floats(table, floats):
            near = [n for n in floats if not _within_floats(table, [n])]
            if not all(_finite(table.column(n)) for n in near) or self._inexact(data, near):
                return None
        for col in self.schema.columns:
            arr = table.column(col.name)
            if col.integer and col.name not in self.ints.wide and beyond_floats(arr):
                self.ints.wide.add(col.name)
            if col.kind == "number":
                continue
            ok = usable(arr, col)
            if ok is not None and arr.null_count < len(arr) and not pc.all(ok).as_py():
                return None
            # a long value may mean a long line: let the slow path measure lines exactly
            if col.kind == "text" and len(arr) and (pc.max(pc.utf8_length(arr)).as_py() or 0) > self.max_line // 2:
                return None
        return table

    def _inexact(self, data: bytes, names: list[str]) -> bool:
        """Whether the float columns `names` hold an integer literal that float64 changes (their text read
        again: cheaper than the slow path for a stream whose floats are often beyond 2**53)."""
        text = self._read(data, {n: pa.string() for n in names}, columns=names)
        for n in names:
            s = pc.utf8_trim_whitespace(text.column(n).combine_chunks())
            long = _np(pc.and_(pc.match_substring_regex(s, _INTEGER), _beyond(s, _FLOAT_EXACT)))
            if any(int(v) != int(float(v)) for v in s.filter(pa.array(long)).to_pylist()):
                return True
        return False

    def _has_header(self, data: bytes) -> bool:
        h = self.fmt.header
        i = data.find(h)
        while i >= 0:
            end = i + len(h)
            if (i == 0 or data[i - 1:i] == b"\n") and data[end:end + 1] in (b"\n", b"\r", b""):
                return True
            i = data.find(h, i + 1)
        return False

    def _slow(self, data: bytes, base: int) -> Parsed:
        starts, ends, blank = spans(data)
        if data.count(b'"') % 2:
            # a quote that never closes: its line is the bad record, the lines after it are records again
            nl = data.find(b"\n", int(starts[-1])) + 1
            if 0 < nl < len(data):
                return _joined(self._slow(data[:nl], base), self.parse(data[nl:], base + nl, positions=True))
        keep = ~blank
        reasons: dict[int, str] = {}
        length = ends - starts

        for i in np.flatnonzero(keep & (length > self.max_line)):
            reasons[int(i)] = f"line longer than {self.max_line} bytes"
        arr = np.frombuffer(data, np.uint8)
        if data.count(b'"') % 2:
            last = int(np.flatnonzero(keep)[-1])
            reasons[last] = "unterminated quote: the quote opened in this line never closes"
        if b"\x00" in data:
            for i in np.unique(np.searchsorted(ends, np.flatnonzero(arr == 0), side="right")):
                reasons.setdefault(int(i), "NUL bytes in the line")
        counts = _field_counts(data, ends, self.fmt.delimiter)
        want = len(self.schema.columns) + self.fmt.trailing
        hlen = len(self.fmt.header)
        # a BOM before a line: files joined end to end (cat a.csv b.csv) repeat the header with it
        for i in np.flatnonzero(keep & (length >= hlen) & (length <= hlen + len(BOM) + 2)):
            if data[starts[i]:ends[i]].rstrip(b"\r\n").removeprefix(BOM) == self.fmt.header:
                reasons.setdefault(int(i), "repeated header line")
        first_name = self.fmt.header.split(self.fmt.delimiter.encode())[0] + self.fmt.delimiter.encode()
        for i in np.flatnonzero(keep & (counts != want)):
            if data[starts[i]:ends[i]].removeprefix(BOM).startswith(first_name):
                reasons.setdefault(int(i), "a different header line mid-stream; the columns were fixed when "
                                           "the stream started, so rows of the new layout are set aside")
            reasons.setdefault(int(i), f"expected {want - self.fmt.trailing} fields, found {int(counts[i])}")
        if self.fmt.encoding == "utf-8":
            for i, why in bad_utf8(data, starts, ends).items():
                if keep[i]:
                    reasons.setdefault(i, why)

        for i in reasons:
            keep[i] = False
        bad = [Bad(base + int(starts[i]), _raw(data[starts[i]:ends[i]], self.fmt.encoding), r)
               for i, r in reasons.items()]
        rows = np.flatnonzero(keep)
        good = _slice_join(data, starts, ends, _runs(rows))
        try:
            table = self._read(good, {n: pa.string() for n in self._read_names}, threads=False) if len(rows) \
                else pa.table({n: pa.array([], pa.string()) for n in self.schema.names})
        except pa.ArrowInvalid:
            table = None
        if table is None or table.num_rows != len(rows):
            # a quote inside an unquoted field (`a"b`) can make pyarrow see other record
            # bounds than the quote count does: settle it one record at a time
            table, rows, odd = self._one_by_one(data, starts, ends, rows, base)
            bad.extend(odd)
        columns, lost = [], []
        for col in self.schema.columns:
            text = table.column(col.name).combine_chunks()
            arr, problems = convert(text, col, self.ints)
            columns.append(arr)
            lost += [(col, text, mask, what) for mask, what in problems]
        if any(c.integer and c.name in self.ints.floats for c in self.schema.columns):
            self._set(self.schema)          # this block turned a column to floats
        bad += flagged(lost, data, starts[rows], ends[rows], base, self.fmt.encoding)
        bad.sort(key=lambda b: b.position)
        return Parsed(pa.Table.from_arrays(columns, schema=self.schema.arrow()), bad, base + ends[rows])

    def _one_by_one(self, data: bytes, starts, ends, rows, base: int):
        names, want = list(self.schema.names), len(self.schema.names)
        values, kept, bad = [], [], []
        for i in rows:
            text = data[starts[i]:ends[i]].decode(self.fmt.encoding, errors="replace").rstrip("\r\n")
            try:
                records = list(csv.reader(io.StringIO(text, newline=""), delimiter=self.fmt.delimiter, strict=True))
            except csv.Error as e:
                records = [None, str(e)]
            fields = records[0] if len(records) == 1 else None
            if fields is not None and self.fmt.trailing and len(fields) == want + self.fmt.trailing:
                fields = fields[:want]
            if fields is None or len(fields) != want:
                bad.append(Bad(base + int(starts[i]), _raw(data[starts[i]:ends[i]], self.fmt.encoding),
                               "malformed quoting: the record cannot be split into "
                               f"{want} fields"))
                continue
            values.append([None if v in NA_SET else v for v in fields])
            kept.append(i)
        columns = list(zip(*values)) if values else [()] * want
        table = pa.table({n: pa.array(list(c), pa.string()) for n, c in zip(names, columns)})
        return table, np.array(kept, np.int64), bad



def bad_utf8(data: bytes, starts: np.ndarray, ends: np.ndarray) -> dict[int, str]:
    """{record index: reason} for the records (data[starts[i]:ends[i]], in order) holding bytes
    that are not UTF-8. One decoding pass, noting each bad sequence, whatever their number."""
    try:
        data.decode("utf-8")
        return {}
    except UnicodeDecodeError:
        pass
    _noted.at = []
    data.decode("utf-8", errors=_NOTE_ERRORS)
    at = np.array(_noted.at, np.int64)
    rec, first = np.unique(np.searchsorted(ends, at, side="right"), return_index=True)
    return {int(r): f"invalid UTF-8 at byte {int(at[i] - starts[r])} of the line"
            for r, i in zip(rec, first) if r < len(ends)}


def _note_error(e: UnicodeDecodeError) -> tuple[str, int]:
    _noted.at.append(e.start)
    return "", e.end


_noted = threading.local()            # streams parse in their own threads
_NOTE_ERRORS = "rivulet-note-position"
codecs.register_error(_NOTE_ERRORS, _note_error)


def _joined(a: Parsed, b: Parsed) -> Parsed:
    return Parsed(pa.concat_tables([a.table, b.table]), a.bad + b.bad, np.concatenate([a.ends, b.ends]))


def flagged(lost: list[tuple], data: bytes, starts, ends, base: int, encoding: str = "utf-8") -> list[Bad]:
    """Rows kept with values lost, one Bad each: per column its value (as shown) where `lost` is set.
    Row r's record is data[starts[r]:ends[r]]. `lost` holds (column, shown, mask[, what it is])."""
    why: dict[int, list[str]] = {}
    for col, shown, mask, *what in lost:
        what = what[0] if what else _what(col)
        for r in np.flatnonzero(mask):
            why.setdefault(int(r), []).append(f"column {col.name!r}: {shown[int(r)].as_py()!r} is {what}")
    return [Bad(base + int(starts[r]), _raw(data[starts[r]:ends[r]], encoding), "; ".join(w), kept=True)
            for r, w in why.items()]


def _runs(rows: np.ndarray):
    """Yield slices covering consecutive record indexes, so good records join cheaply."""
    if not len(rows):
        return
    breaks = np.flatnonzero(np.diff(rows) != 1)
    first = np.concatenate(([0], breaks + 1))
    last = np.concatenate((breaks, [len(rows) - 1]))
    for a, b in zip(rows[first], rows[last]):
        yield slice(int(a), int(b) + 1)


def _slice_join(data: bytes, starts, ends, runs) -> bytes:
    return b"".join(data[starts[r.start]:ends[r.stop - 1]] for r in runs)


def _raw(line: bytes, encoding: str) -> str:
    text = line.rstrip(b"\r\n").decode(encoding if encoding != "utf-8" else "utf-8", errors="replace")
    return text if len(text) <= RAW_KEEP else text[:RAW_KEEP] + f"... ({len(text)} characters)"


def _transcode(data: bytes, encoding: str) -> bytes:
    return data.decode(encoding, errors="replace").encode("utf-8")


def _what(col: Column) -> str:
    if col.kind == "time" and col.format:
        return times.what(col)
    return {"number": "not a finite number", "bool": "not true/false",
            "time": f"not an ISO 8601 time in the years {TIME_YEARS}"}.get(col.kind, "invalid")


def _within_floats(table: pa.Table, names: list[str]) -> bool:
    """Whether every present value of the float columns `names` lies within ±2**53 (so is finite), from
    the plain ones' minima and maxima."""
    arrays = []
    for name in names:
        arr = table.column(name)
        if arr.num_chunks == 1 and arr.null_count == 0:
            arrays.append(arr.chunk(0).to_numpy())
        elif arr.null_count < len(arr):
            lo, hi = pc.min_max(arr).values()
            if not (-INT_EXACT < lo.as_py() < INT_EXACT and -INT_EXACT < hi.as_py() < INT_EXACT):
                return False        # NaN compares False too
    # each column's own min and max: stacking the columns first cost a copy of the batch (5x slower at
    # 200 columns); NaN propagates through min, max and the final max, so it fails the test as before
    ends = np.array([(a.min(), a.max()) for a in arrays if len(a)])
    return bool(np.abs(ends).max() < INT_EXACT) if len(ends) else True


def _finite(arr: pa.ChunkedArray) -> bool:
    """Whether every present number is finite."""
    return pc.all(pc.fill_null(pc.is_finite(arr), True)).as_py() is not False


def usable(arr: pa.Array | pa.ChunkedArray, col: Column) -> pa.Array | None:
    """Where a typed value can be used (missing counts as usable): numbers must be finite, times
    within float64 microseconds of 1970 (what event time is computed in). None for other kinds."""
    if col.kind == "number":
        return pc.fill_null(pc.is_finite(arr), True)
    if col.kind == "time":
        return pc.fill_null(time_usable(arr), True)
    return None


def keep_usable(arr: pa.Array, col: Column) -> tuple[pa.Array, pa.Array | None]:
    """`arr` with the values usable() refuses made missing, and where that happened (None: nowhere)."""
    ok = usable(arr, col)
    if ok is None or pc.all(ok).as_py():
        return arr, None
    return pc.if_else(ok, arr, pa.scalar(None, arr.type)), pc.invert(ok)


NOT_WHOLE = ("not a whole number, and the column holds integers beyond 2**53 that floats would round, "
             "so it stays integer")
BEYOND_INT64 = f"an integer beyond the 64-bit range (±{INT64_MAX})"
INEXACT = "an integer beyond 2**53 that this column of fractions (float64) cannot hold exactly"


def convert(arr: pa.Array, col: Column, ints: Integers | None = None
            ) -> tuple[pa.Array, list[tuple[np.ndarray, str]]]:
    """Text -> the column's kind; returns the values and (mask, what the value is) for the rows whose
    value was lost. `ints`: the source's integer columns, which an integer column may move on."""
    present = arr.is_valid()
    if col.kind == "text":
        return arr, []
    s = pc.utf8_trim_whitespace(arr)
    if col.kind == "number":
        return _number(s, present, col, ints if ints is not None else Integers(None))
    elif col.kind == "bool":
        low = pc.utf8_lower(s)
        ok = pc.is_in(low, pa.array(["true", "false", "1", "0", "yes", "no"]))
        out = pc.if_else(ok, pc.is_in(low, pa.array(["true", "1", "yes"])), pa.scalar(None, pa.bool_()))
    elif col.format:
        out, ok = times.parse(s, col.format)
        out = out.cast(col.arrow_type())
    else:
        ok = pc.match_substring_regex(s, _ISO_TIME)
        out, ok = _to_time(pc.if_else(ok, s, pa.scalar(None, pa.string())), ok, col.arrow_type())
    out, refused = keep_usable(out, col)
    if refused is not None:
        ok = pc.and_(ok, pc.invert(refused))
    lost = pc.and_(present, pc.invert(pc.fill_null(ok, False)))
    return out, [(lost.to_numpy(zero_copy_only=False), _what(col))]


def _np(mask) -> np.ndarray:
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def _beyond(s: pa.Array, limit: str) -> pa.Array:
    """Where an integer literal's magnitude is beyond `limit` (its digits), decided on the digits."""
    digits = pc.utf8_ltrim(pc.utf8_ltrim(s, "+-"), "0")
    n = pc.utf8_length(digits)
    return pc.or_(pc.greater(n, len(limit)), pc.and_(pc.equal(n, len(limit)), pc.greater(digits, limit)))


def _beyond_int64(s: pa.Array) -> pa.Array:
    """Where an integer literal lies outside int64 (-2**63 is inside)."""
    return pc.if_else(pc.starts_with(s, "-"), _beyond(s, str(INT64_MAX + 1)), _beyond(s, _INT64))


def _number(s: pa.Array, present: pa.Array, col: Column, ints: Integers) -> tuple[pa.Array, list]:
    """Number text -> int64 (an integer column) or float64. An integer column takes its first fraction by
    turning to floats, unless it holds integers beyond 2**53 (then the fraction is flagged)."""
    ok = _np(pc.match_substring_regex(s, _NUMBER))
    literal = _np(pc.match_substring_regex(s, _INTEGER))
    beyond = literal & _np(_beyond_int64(s))
    lost = [(~ok & _np(present), _what(col))]
    if col.integer and col.name not in ints.floats:
        whole = literal & ~beyond
        out = pc.cast(pc.replace_substring_regex(pc.if_else(pa.array(whole), s, pa.scalar(None, pa.string())),
                                                 r"^\+", ""), pa.int64())
        other = ok & ~literal
        fraction = other & _np(pc.is_finite(pc.cast(pc.if_else(pa.array(other), s, pa.scalar(None, pa.string())),
                                                     pa.float64())))
        lost[0] = (lost[0][0] | (other & ~fraction), _what(col))        # inf, 1e400
        wide = col.name in ints.wide or beyond_floats(out)
        if wide or not fraction.any():
            if wide:
                ints.wide.add(col.name)
            return out, lost + [(beyond, BEYOND_INT64), (fraction, NOT_WHOLE)]
        ints.floats.add(col.name)           # its first fraction, and every integer so far fits a float
    out = pc.cast(pc.if_else(pa.array(ok), s, pa.scalar(None, pa.string())), pa.float64())
    out, refused = keep_usable(out, col)
    if refused is not None:
        lost[0] = (lost[0][0] | (ok & _np(refused)), _what(col))
    inexact = literal & _np(_beyond(s, _FLOAT_EXACT))
    for r in np.flatnonzero(inexact):       # rare: only integers of 16 digits or more are looked at
        text = s[int(r)].as_py()
        if not math.isfinite(float(text)) or int(text) == int(float(text)):
            inexact[r] = False          # held exactly (10**20), or flagged as not finite already
    if inexact.any():
        out = pc.if_else(pa.array(inexact), pa.scalar(None, pa.float64()), out)
        lost.append((inexact, INEXACT))
    return out, lost


def _to_time(s: pa.Array, ok: pa.Array, t: pa.DataType) -> tuple[pa.Array, pa.Array]:
    try:
        return pc.cast(s, t), ok
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values, good = [], []
        for v in s.to_pylist():           # only values that looked like ISO times
            try:
                values.append(pc.cast(pa.array([v], pa.string()), t)[0].as_py() if v is not None else None)
                good.append(v is not None)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                values.append(None)
                good.append(False)
        return pa.array(values, t), pa.array(good)


def infer_schema(fmt: CsvFormat, sample: bytes) -> Schema:
    """Column kinds from the first records: numbers win when 90% of values parse."""
    table = sample_text(fmt, sample)
    numbers, integers, wide = _numbers(table, fmt.names)
    guessed = (("number", False, None) if number else _guess(table.column(name).combine_chunks())
               for name, number in zip(fmt.names, numbers))
    return Schema(tuple(Column(name, kind, utc, format=pattern, integer=bool(integer) and kind == "number",
                               wide=bool(w) and kind == "number")
                        for name, (kind, utc, pattern), integer, w in zip(fmt.names, guessed, integers, wide)))


def sample_text(fmt: CsvFormat, sample: bytes) -> pa.Table:
    """The first records' values as text, bad records left out."""
    return Parser(fmt, Schema(tuple(Column(n, "text") for n in fmt.names)))._slow(sample, 0).table


def _numbers(table: pa.Table, names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which columns `_guess` reads as numbers, which of those hold only integer literals (`3`, not
    `3.0` or `3e0`), and which of those hold one beyond 2**53 (`wide`), for all columns in one pass over
    their values stacked end to end (a wide file's 1,000 columns cost a dozen calls, not a dozen per column)."""
    if not names or table.num_rows == 0:
        return np.zeros(len(names), bool), np.zeros(len(names), bool), np.zeros(len(names), bool)
    values = pa.concat_arrays([table.column(n).combine_chunks().cast(pa.string()) for n in names])
    column = np.repeat(np.arange(len(names)), table.num_rows)
    present = values.is_valid().to_numpy(zero_copy_only=False)
    s = pc.utf8_trim_whitespace(values)
    numeric = pc.fill_null(pc.match_substring_regex(s, _NUMBER), False).to_numpy(zero_copy_only=False)
    digits = pc.utf8_ltrim(pc.utf8_ltrim(s, "+-"), "0")
    n = pc.utf8_length(digits)
    integer = pc.match_substring_regex(s, _INTEGER)
    big = pc.and_(integer, pc.or_(pc.greater(n, len(_FLOAT_EXACT)),
                                  pc.and_(pc.equal(n, len(_FLOAT_EXACT)), pc.greater(digits, _FLOAT_EXACT))))
    big = np.bincount(column, _np(big) & present, len(names)) > 0
    beyond = np.bincount(column, _np(pc.and_(integer, _beyond_int64(s))) & present, len(names)) > 0
    integer = pc.fill_null(integer, False).to_numpy(zero_copy_only=False)
    count = np.bincount(column, present, len(names))
    numbers = np.bincount(column, numeric & present, len(names))
    # values that are not numbers at all become missing; every number must be an integer literal
    integers = np.bincount(column, integer & present, len(names)) == numbers
    # an integer beyond int64, or beyond 2**53 beside fractions, has no exact number type: text (ids)
    number = (count > 0) & (numbers / np.maximum(count, 1) >= 0.9) & ~beyond & (integers | ~big)
    return number, number & integers, number & integers & big


def _guess(arr: pa.Array) -> tuple[str, bool, str | None]:
    """(kind, utc, time format) of a column from its sample values."""
    s = pc.utf8_trim_whitespace(arr.drop_null())
    if len(s) == 0:
        return "text", False, None
    numeric = pc.match_substring_regex(s, _NUMBER)
    share = pc.sum(numeric).as_py() / len(s)
    if share >= 0.9:
        # here when _numbers found integers no number type holds exactly (beyond int64, or beyond
        # 2**53 beside fractions): text (ids). Decided on the digits: 2**53 + 1 reads as 2**53 as a float
        digits = pc.utf8_ltrim(pc.utf8_ltrim(s.filter(pc.match_substring_regex(s, _INTEGER)), "+-"), "0")
        n = pc.utf8_length(digits)
        big = pc.or_(pc.greater(n, len(_FLOAT_EXACT)),
                     pc.and_(pc.equal(n, len(_FLOAT_EXACT)), pc.greater(digits, _FLOAT_EXACT)))
        return ("text" if pc.any(big).as_py() else "number"), False, None
    low = pc.utf8_lower(s)
    if pc.all(pc.is_in(low, pa.array(["true", "false"]))).as_py():
        return "bool", False, None
    if pc.all(pc.match_substring_regex(s, _ISO_TIME)).as_py():
        utc = pc.any(pc.match_substring_regex(s, r"(Z|[+-]\d{2}:?\d{2})$")).as_py()
        try:
            pc.cast(s, pa.timestamp("us", tz="UTC" if utc else None))
            return "time", bool(utc), None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    layout = times.guess(s)
    if layout is not None:
        return "time", layout.utc, layout.pattern
    return "text", False, None
