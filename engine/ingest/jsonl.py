"""JSON Lines -> typed columns, vectorised, with a quarantine for lines that do not fit.

Lines are screened with byte scans before pyarrow sees them: pyarrow's reader
kills the process (SIGSEGV) on a block holding only a top-level `null`, and on
deep nesting, and it stores bytes that are not UTF-8 as they are. So a line
must be one object (`{` first, `}` last), nest at most MAX_DEPTH levels, be
UTF-8 and at most `max_line` bytes long; any other is quarantined with why.

The screened lines go to pyarrow's JSON reader in blocks, with the stream's
schema as an explicit schema. Keys the schema does not know are ignored (the
schema is fixed by the first data, as for CSV); missing keys are null. When the
reader refuses a block (a broken line, a value of the wrong type, two objects
on one line), the block is split in halves until each bad line stands alone:
k bad lines cost about k * log2(lines) reader calls, never a Python loop over
the good lines. Values a stream cannot use (NaN, Infinity, times far from
1970) become missing and their row is flagged, as in CSV.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from .parse import INEXACT, MAX_LINE, Bad, Integers, Parsed, _raw, bad_utf8, blank, flagged, keep_usable
from ..schema import INT_EXACT, Column, Schema, all_whole, beyond_floats, kind_of, safe_names
from . import times

MAX_DEPTH = 64      # nesting levels a line may have; pyarrow's recursive reader overflows its stack far deeper
_ROW = re.compile(r" in row \d+$")
_OPENING = np.zeros(256, bool)
_OPENING[[ord("{"), ord("[")]] = True


def lines(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the non-blank lines of `data` (whole lines; ends include the newline)."""
    arr = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(arr == 10) + 1
    if len(data) and (len(ends) == 0 or ends[-1] < len(data)):
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1])).astype(np.int64)[:len(ends)]
    keep = ~blank(arr, starts, ends)
    return starts[keep], ends[keep]


def screen(data: bytes, starts: np.ndarray, ends: np.ndarray, max_line: int) -> dict[int, str]:
    """{line index: reason} for the lines pyarrow must not see."""
    reasons = {int(i): f"line longer than {max_line} bytes" for i in np.flatnonzero(ends - starts > max_line)}
    for i, why in bad_utf8(data, starts, ends).items():
        reasons.setdefault(i, why)
    arr = np.frombuffer(data, np.uint8)
    last = ends - 1
    last -= arr[last] == 10
    last -= (arr[last] == 13) & (last > starts)
    framed = (arr[starts] == ord("{")) & (arr[last] == ord("}"))
    for i in np.flatnonzero(~framed):      # leading or trailing blanks, or not an object
        text = data[starts[i]:ends[i]].strip()
        if not (text.startswith(b"{") and text.endswith(b"}")):
            reasons.setdefault(int(i), "not a JSON object: each line must hold one {...} object")
    # a line's nesting is at most its count of { and [; only lines with many get the exact measure
    opening = np.bincount(np.searchsorted(ends, np.flatnonzero(_OPENING[arr]), side="right"),
                          minlength=len(ends))[:len(ends)]
    for i in np.flatnonzero(opening > MAX_DEPTH):
        if int(i) not in reasons and depth(data[starts[i]:ends[i]]) > MAX_DEPTH:
            reasons[int(i)] = f"nested deeper than {MAX_DEPTH} levels"
    return reasons


def depth(line: bytes) -> int:
    """How deep objects and arrays nest in one JSON line (brackets inside strings do not count)."""
    arr = np.frombuffer(line, np.uint8)
    quotes = np.flatnonzero(arr == 34)
    if len(quotes):     # a quote after an odd run of backslashes is escaped
        plain = np.flatnonzero(arr != 92)
        before = np.searchsorted(plain, quotes) - 1
        run = quotes - 1 - np.where(before >= 0, plain[np.maximum(before, 0)], -1)
        quotes = quotes[run % 2 == 0]
    step = np.zeros(len(arr), np.int64)
    step[arr == ord("{")] = step[arr == ord("[")] = 1
    step[arr == ord("}")] = step[arr == ord("]")] = -1
    at = np.flatnonzero(step)
    step[at[np.searchsorted(quotes, at) % 2 == 1]] = 0       # inside a string
    return int(np.cumsum(step).max(initial=0))


def _read(data: bytes, schema: pa.Schema | None) -> tuple[pa.Table | None, str]:
    opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore" if schema else "infer")
    try:
        return pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=max(len(data) + 1, 1 << 16)),
                            parse_options=opts), ""
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        return None, _ROW.sub("", str(e))


def _split(data: bytes, starts, ends, schema, base: int, read: list, bad: list) -> None:
    """Read lines [starts[0], ends[-1]) as one block, or halve until each bad line is alone."""
    table, why = _read(data[starts[0]:ends[-1]], schema)
    if table is not None and table.num_rows == len(starts):
        read.append((table, starts, ends))
        return
    if len(starts) == 1:
        if table is not None:
            why = f"{table.num_rows} JSON values on one line; expected one object"
        bad.append(Bad(base + int(starts[0]), _raw(data[starts[0]:ends[0]], "utf-8"), why or "not a JSON object"))
        return
    mid = len(starts) // 2
    _split(data, starts[:mid], ends[:mid], schema, base, read, bad)
    _split(data, starts[mid:], ends[mid:], schema, base, read, bad)


def read_lines(data: bytes, schema: pa.Schema | None, base: int = 0, max_line: int = MAX_LINE
               ) -> tuple[list[tuple[pa.Table, np.ndarray, np.ndarray]], list[Bad]]:
    """Good tables in line order, each with its lines' (starts, ends), and the bad lines."""
    starts, ends = lines(data)
    reasons = screen(data, starts, ends, max_line)
    read: list = []
    bad = [Bad(base + int(starts[i]), _raw(data[starts[i]:ends[i]], "utf-8"), why) for i, why in reasons.items()]
    # read the runs of lines between the screened-out ones, each as one block
    cuts = np.array(sorted(reasons), np.int64)
    for lo, hi in zip(np.concatenate(([0], cuts + 1)), np.concatenate((cuts, [len(starts)]))):
        if hi > lo:
            _split(data, starts[lo:hi], ends[lo:hi], schema, base, read, bad)
    bad.sort(key=lambda b: b.position)
    return read, bad


class JsonParser:
    """Parses blocks of whole JSON lines into tables of one fixed schema."""

    def __init__(self, schema: Schema, max_line: int = MAX_LINE, ints: Integers | None = None):
        self.ints = ints if ints is not None else Integers(schema)
        self.max_line = max_line
        self._set(schema)

    def _set(self, schema: Schema, floats=()) -> None:
        self.schema = schema = self.ints.current(schema)
        # read by the keys in the file (formatted times as text first); stored under the schema's names
        types = {**times.read_types(schema), **{n: pa.float64() for n in floats}}
        self.read = pa.schema([(c.key if c.key is not None else c.name, types[c.name]) for c in schema.columns])
        self.stored = schema.arrow()

    def parse(self, data: bytes, base: int) -> Parsed:
        read, bad = read_lines(data, self.read, base, self.max_line)
        narrow = [c.name for c in self.schema.columns if c.integer and c.name not in self.ints.wide]
        if bad and narrow and self._widen(data, base, narrow, len(bad)):
            read, bad = read_lines(data, self.read, base, self.max_line)
        if not read:
            return Parsed(self.stored.empty_table(), bad)
        table = pa.concat_tables([t for t, _, _ in read]).select(self.read.names).rename_columns(self.schema.names)
        table = table.combine_chunks()
        starts = np.concatenate([s for _, s, _ in read])      # each row's line, for the quarantine
        ends = np.concatenate([e for _, _, e in read])
        if times.formatted(self.schema):
            table, unread = times.convert_table(table, self.schema)
            # a time that does not parse is missing, its row kept and flagged
            bad = bad + [Bad(base + int(starts[r]), _raw(data[starts[r]:ends[r]], "utf-8"), "; ".join(why), kept=True)
                         for r, why in unread.items()]
        columns, lost = [], []
        for col in self.schema.columns:
            arr, refused = keep_usable(table.column(col.name).combine_chunks(), col)
            if refused is not None:
                lost.append((col, pc.cast(table.column(col.name), pa.string()), refused.to_numpy(zero_copy_only=False)))
            if col.kind == "number" and not col.integer:
                inexact = _inexact(data, starts, ends, arr, col.key if col.key is not None else col.name)
                if inexact is not None:
                    arr = pc.if_else(pa.array(inexact[0]), pa.scalar(None, pa.float64()), arr)
                    lost.append((col, inexact[1], inexact[0], INEXACT))
            columns.append(arr)
        if lost:
            table = pa.Table.from_arrays(columns, schema=self.stored)
            bad = bad + flagged(lost, data, starts, ends, base)
        for name in self.schema.integers:
            if name not in self.ints.wide and beyond_floats(table.column(name)):
                self.ints.wide.add(name)
        bad.sort(key=lambda b: b.position)
        return Parsed(table, bad)

    def _widen(self, data: bytes, base: int, narrow: list[str], failed: int) -> bool:
        """A JSON fraction in an integer column fails its line: read the block with those columns as
        floats, and turn the ones holding a fraction to floats for good, when every integer they hold
        fits a float (else the lines stay quarantined)."""
        schema, read = self.schema, self.read
        self._set(schema, narrow)
        tried, bad = read_lines(data, self.read, base, self.max_line)
        self.schema, self.read = schema, read
        if len(bad) >= failed or not tried:
            return False
        keys = {c.name: c.key if c.key is not None else c.name for c in schema.columns}
        table = pa.concat_tables([t.select(self.read.names) for t, _, _ in tried])
        floats = {n for n in narrow if not all_whole(table.column(keys[n]))}
        if not floats or any((pc.max(pc.abs(table.column(keys[n]))).as_py() or 0) > INT_EXACT for n in floats):
            return False
        self.ints.floats |= floats
        self._set(schema)
        return True


def _inexact(data: bytes, starts, ends, arr: pa.Array, key: str) -> tuple[np.ndarray, pa.Array] | None:
    """Where a float column holds a JSON integer float64 changed (9007199254740993), with its digits: the
    lines of values beyond 2**53 read again by Python's json, which keeps integers whole. None: nowhere."""
    v = np.abs(np.nan_to_num(arr.to_numpy(zero_copy_only=False).astype(np.float64)))
    rows = np.flatnonzero(v >= INT_EXACT)
    mask, shown = np.zeros(len(v), bool), [None] * len(v)
    for r in rows:          # rare: only values beyond 2**53 are looked at
        try:
            value = json.loads(data[starts[r]:ends[r]]).get(key)
        except (ValueError, AttributeError):
            continue
        if isinstance(value, int) and not isinstance(value, bool) and float(value) != value:
            mask[r], shown[r] = True, str(value)
    return (mask, pa.array(shown, pa.string())) if mask.any() else None


def infer_schema(sample: bytes) -> Schema | None:
    """Columns from the keys of the first good lines, in order of first appearance.

    Nested values (objects, lists) are left out; a key seen only with null values is text.
    The first type seen for a key wins. Keys that cannot be column names as they are (empty,
    reserved, equal but for case) get safe names (schema.safe_names) and keep their key.
    """
    read, _ = read_lines(sample, None)
    seen: dict[str, Column] = {}
    fractions: set[str] = set()          # keys with a JSON number that is not an integer in some block
    for table, _, _ in read:
        for f in table.schema:
            if pa.types.is_floating(f.type):
                fractions.add(f.name)
            if f.name in seen or pa.types.is_nested(f.type):
                continue
            kind = "text" if pa.types.is_null(f.type) else kind_of(f.type)
            seen[f.name] = Column(f.name, kind, pa.types.is_timestamp(f.type) and f.type.tz is not None,
                                  integer=pa.types.is_integer(f.type))
    seen = {k: replace(c, integer=False) if k in fractions else c for k, c in seen.items()}
    tables = [t for t, _, _ in read]
    for key, col in seen.items():       # an integer beyond 2**53: the column never turns to floats
        if col.integer and any(beyond_floats(t.column(key)) for t in tables
                               if key in t.column_names and pa.types.is_integer(t.schema.field(key).type)):
            seen[key] = replace(col, wide=True)
    for key, col in seen.items():       # text in a common date/time layout (2012/01/01, 31.01.2012 13:45)
        if col.kind == "text":
            layout = times.guess(pc.utf8_trim_whitespace(_values(tables, key).drop_null()))
            if layout is not None:
                seen[key] = Column(key, "time", layout.utc, format=layout.pattern)
    if not seen:
        return None
    names = safe_names(seen)
    return Schema(tuple(Column(n, c.kind, c.utc, None if n == c.name else c.name, c.format, c.integer, c.wide)
                        for n, c in zip(names, seen.values())))


def _values(tables: list[pa.Table], key: str) -> pa.Array:
    parts = [pc.cast(t.column(key), pa.string()) for t in tables
             if key in t.column_names and not pa.types.is_nested(t.schema.field(key).type)]   # lists are left out
    return pa.chunked_array(parts, pa.string()).combine_chunks()


def json_text(sample: bytes, key: str) -> pa.Array:
    """The sample's values of key `key` as text (for naming a time column)."""
    read, _ = read_lines(sample, None)
    return _values([t for t, _, _ in read], key)
