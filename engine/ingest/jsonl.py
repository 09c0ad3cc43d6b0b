"""JSON Lines -> typed columns, vectorised, with a quarantine for lines that do not fit.

A block of whole lines goes to pyarrow's JSON reader with the stream's schema
as an explicit schema. Keys the schema does not know are ignored (the schema
is fixed by the first data, as for CSV); missing keys are null. When the
reader refuses the block (a broken line, a value of the wrong type, two
objects on one line), the block is split in halves until each bad line stands
alone: k bad lines cost about k * log2(lines) reader calls, never a Python
loop over the good lines. A bad line is quarantined with its raw text and the
reader's reason.
"""
from __future__ import annotations

import io
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from .parse import MAX_LINE, RESERVED, Bad, Parsed, _raw
from ..schema import Column, Schema, kind_of
from . import times

_WHITESPACE = np.array([9, 10, 13, 32], np.uint8)
_ROW = re.compile(r" in row \d+$")


def lines(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the non-blank lines of `data` (whole lines; ends include the newline)."""
    arr = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(arr == 10) + 1
    if len(data) and (len(ends) == 0 or ends[-1] < len(data)):
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
    filled = np.flatnonzero(~np.isin(arr, _WHITESPACE))
    keep = np.unique(np.searchsorted(ends, filled, side="right"))
    return starts[keep], ends[keep]


def _read(data: bytes, schema: pa.Schema | None) -> tuple[pa.Table | None, str]:
    opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore" if schema else "infer")
    try:
        return pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=max(len(data) + 1, 1 << 16)),
                            parse_options=opts), ""
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        return None, _ROW.sub("", str(e))


def _split(data: bytes, starts, ends, schema, base: int, tables: list, bad: list) -> None:
    """Read lines [starts[0], ends[-1]) as one block, or halve until each bad line is alone."""
    table, why = _read(data[starts[0]:ends[-1]], schema)
    if table is not None and table.num_rows == len(starts):
        tables.append(table)
        return
    if len(starts) == 1:
        if table is not None:
            why = f"{table.num_rows} JSON values on one line; expected one object"
        bad.append(Bad(base + int(starts[0]), _raw(data[starts[0]:ends[0]], "utf-8"), why or "not a JSON object"))
        return
    mid = len(starts) // 2
    _split(data, starts[:mid], ends[:mid], schema, base, tables, bad)
    _split(data, starts[mid:], ends[mid:], schema, base, tables, bad)


def read_lines(data: bytes, schema: pa.Schema | None, base: int = 0,
               max_line: int = MAX_LINE) -> tuple[list[pa.Table], list[Bad]]:
    """Good tables in line order, and the bad lines (over-long ones set aside first)."""
    starts, ends = lines(data)
    tables: list[pa.Table] = []
    bad: list[Bad] = []
    long = ends - starts > max_line
    for i in np.flatnonzero(long):
        bad.append(Bad(base + int(starts[i]), _raw(data[starts[i]:ends[i]], "utf-8"),
                       f"line longer than {max_line} bytes"))
    # read the runs of lines between over-long ones, each as one block
    cuts = np.flatnonzero(long)
    for lo, hi in zip(np.concatenate(([0], cuts + 1)), np.concatenate((cuts, [len(starts)]))):
        if hi > lo:
            _split(data, starts[lo:hi], ends[lo:hi], schema, base, tables, bad)
    bad.sort(key=lambda b: b.position)
    return tables, bad


class JsonParser:
    """Parses blocks of whole JSON lines into tables of one fixed schema."""

    def __init__(self, schema: Schema, max_line: int = MAX_LINE):
        self.schema = schema
        self.arrow = schema.arrow()
        self.read = pa.schema(list(times.read_types(schema).items()))   # formatted times as text first
        self.max_line = max_line

    def parse(self, data: bytes, base: int) -> Parsed:
        tables, bad = read_lines(data, self.read, base, self.max_line)
        if not tables:
            return Parsed(self.arrow.empty_table(), bad)
        table = (tables[0] if len(tables) == 1 else pa.concat_tables(tables)).select(self.schema.names)
        if times.formatted(self.schema):
            table, lost = times.convert_table(table, self.schema)
            if lost:       # a time that does not parse is missing, its row kept and flagged
                starts, ends = lines(data)
                good = np.flatnonzero(~np.isin(starts + base, [b.position for b in bad]))
                bad += [Bad(base + int(starts[good[r]]), _raw(data[starts[good[r]]:ends[good[r]]], "utf-8"),
                            "; ".join(why), kept=True) for r, why in lost.items()]
                bad.sort(key=lambda b: b.position)
        return Parsed(table, bad)


def infer_schema(sample: bytes) -> Schema | None:
    """Columns from the keys of the first good lines, in order of first appearance.

    Nested values (objects, lists) and the reserved names are left out; a key seen only
    with null values is text. The first type seen for a key wins.
    """
    tables, _ = read_lines(sample, None)
    seen: dict[str, Column] = {}
    for table in tables:
        for f in table.schema:
            if f.name in seen or f.name in RESERVED or pa.types.is_nested(f.type):
                continue
            kind = "text" if pa.types.is_null(f.type) else kind_of(f.type)
            seen[f.name] = Column(f.name, kind, pa.types.is_timestamp(f.type) and f.type.tz is not None)
    for name, col in seen.items():       # text in a common date/time layout (2012/01/01, 31.01.2012 13:45)
        if col.kind == "text":
            layout = times.guess(pc.utf8_trim_whitespace(_values(tables, name).drop_null()))
            if layout is not None:
                seen[name] = Column(name, "time", layout.utc, layout.pattern)
    return Schema(tuple(seen.values())) if seen else None


def _values(tables: list[pa.Table], name: str) -> pa.Array:
    parts = [pc.cast(t.column(name), pa.string()) for t in tables if name in t.column_names]
    return pa.chunked_array(parts, pa.string()).combine_chunks()


def json_text(sample: bytes, name: str) -> pa.Array:
    """The sample's values of key `name` as text (for naming a time column)."""
    tables, _ = read_lines(sample, None)
    return _values(tables, name)
