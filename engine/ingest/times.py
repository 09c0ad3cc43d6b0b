"""Dates and times as people write them: a format decided per column from a sample, parsed vectorised.

ISO 8601 is read by pyarrow's cast (parse.py). Other common layouts (2012/01/01, 01/31/2012,
31.01.2012 13:45, Jan 5 2012, 05-Jan-2012, with an optional time, AM/PM and zone offset) are
found here: a column is one of them when 90% of its sample values match its shape, and when
day and month could be either way round the sample decides (a 31.01 forces day-first). When
every value reads both ways (01/02/2012 only) nothing is guessed: the column stays text and the
analyst names the format. Values are parsed with pyarrow's strptime; it rolls 31.02 over into
March, so values that may have rolled over are checked again strictly with pandas.

Offsets (+02:00, Z) are converted to UTC and stored as UTC; times without one stay naive
(wall-clock, read as UTC wherever epoch seconds are needed).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from ..schema import Column, Schema

SHARE = 0.9                 # of a sample's values that must parse, as for numbers
_ZONE = r"\s?(Z|[+-]\d{2}:?\d{2})"
_MONTH = r"[A-Za-z]{3,9}"
# date layouts: (strptime pattern, regex of a value); layouts sharing a regex differ in day/month order
_DATES = (
    ("%Y/%m/%d", r"\d{4}/\d{1,2}/\d{1,2}"),
    ("%Y.%m.%d", r"\d{4}\.\d{1,2}\.\d{1,2}"),
    ("%d/%m/%Y", r"\d{1,2}/\d{1,2}/\d{4}"), ("%m/%d/%Y", r"\d{1,2}/\d{1,2}/\d{4}"),
    ("%d.%m.%Y", r"\d{1,2}\.\d{1,2}\.\d{4}"), ("%m.%d.%Y", r"\d{1,2}\.\d{1,2}\.\d{4}"),
    ("%d-%m-%Y", r"\d{1,2}-\d{1,2}-\d{4}"), ("%m-%d-%Y", r"\d{1,2}-\d{1,2}-\d{4}"),
    ("%b %d %Y", _MONTH + r" \d{1,2} \d{4}"), ("%b %d, %Y", _MONTH + r" \d{1,2}, \d{4}"),
    ("%d %b %Y", r"\d{1,2} " + _MONTH + r" \d{4}"), ("%d-%b-%Y", r"\d{1,2}-" + _MONTH + r"-\d{4}"),
)
_CLOCKS = (
    ("", ""),
    (" %H:%M", r" \d{1,2}:\d{2}"), (" %H:%M:%S", r" \d{1,2}:\d{2}:\d{2}"),
    ("T%H:%M", r"T\d{1,2}:\d{2}"), ("T%H:%M:%S", r"T\d{1,2}:\d{2}:\d{2}"),
    (" %I:%M %p", r" \d{1,2}:\d{2} ?[AaPp][Mm]"), (" %I:%M:%S %p", r" \d{1,2}:\d{2}:\d{2} ?[AaPp][Mm]"),
)


@dataclass(frozen=True)
class Layout:
    pattern: str
    regex: str

    @property
    def utc(self) -> bool:
        return "%z" in self.pattern


def _layouts() -> tuple[Layout, ...]:
    out = []
    for date, dre in _DATES:
        for clock, cre in _CLOCKS:
            for zone, zre in (("", ""), ("%z", _ZONE)):
                if zone and not clock:
                    continue
                out.append(Layout(date + clock + zone, "(?i)^" + dre + cre + zre + "$"))
    return tuple(out)


LAYOUTS = _layouts()
_ANY = "(?i)^(" + "|".join(dict.fromkeys(layout.regex[5:-1] for layout in LAYOUTS)) + ")$"   # one pass to rule out
FORMATS = tuple(dict.fromkeys(layout.pattern for layout in LAYOUTS))   # offered to the analyst


def example(pattern: str) -> str:
    """How 31 January 2012, 13:45:30 looks in `pattern` (for pickers and messages)."""
    import pandas as pd     # only here: its import costs a quarter second
    return pd.Timestamp("2012-01-31 13:45:30+01:00").strftime(pattern)


# --- parsing ----------------------------------------------------------------------------

def parse(s: pa.Array, pattern: str) -> tuple[pa.Array, pa.Array]:
    """Text in `pattern` -> timestamps (us; UTC when the pattern has %z), and which values parsed.

    `s` is trimmed text; nulls stay null and do not count as failures of the caller's.
    """
    s = s.combine_chunks() if isinstance(s, pa.ChunkedArray) else s
    utc = "%z" in pattern
    out = pc.strptime(s, format=pattern, unit="us", error_is_null=True)
    if utc and out.type.tz is None:
        out = pc.assume_timezone(out, "UTC")
    out = _strict(s, out, pattern, utc)
    return out, out.is_valid()


def _strict(s: pa.Array, out: pa.Array, pattern: str, utc: bool) -> pa.Array:
    """strptime reads day 29-31 of a shorter month as the first days of the next (31.02 -> 02.03):
    only days 1-3 of March, May, July, October and December can be such a roll-over, so only those
    values are parsed again, strictly, by pandas; a roll-over becomes null. (With an offset the
    day may have moved by one: then the first four and last four days of every month.)"""
    import pandas as pd     # only here: its import costs a quarter second
    if out.null_count == len(out):
        return out
    day, month = pc.day(out), pc.month(out)
    if utc:
        maybe = pc.or_(pc.less_equal(day, 4), pc.greater_equal(day, 28))
    else:
        maybe = pc.and_(pc.less_equal(day, 3), pc.is_in(month, pa.array([3, 5, 7, 10, 12], pa.int64())))
    idx = np.flatnonzero(pc.fill_null(maybe, False).to_numpy(zero_copy_only=False))
    if not len(idx):
        return out
    some = s.take(pa.array(idx))
    if utc:      # strptime allows a space before the offset, pandas does not
        some = pc.replace_substring_regex(some, r"\s+(Z|z|[+-]\d{2}:?\d{2})$", r"\1")
    text = pd.Series(some.to_pylist(), dtype=object)
    ok = np.zeros(len(idx), bool)
    # pandas' %b is the short name only, and it wants the spaces strptime lets go (1:45pm)
    for p in {v for b in (pattern, pattern.replace("%b", "%B")) for v in (b, b.replace(" %p", "%p"))}:
        ok |= pd.to_datetime(text, format=p, errors="coerce", utc=utc).notna().to_numpy()
    if ok.all():
        return out
    valid = np.ones(len(out), bool)
    valid[idx[~ok]] = False
    return pc.if_else(pa.array(valid), out, pa.scalar(None, out.type))


# --- detection ------------------------------------------------------------------------------

def candidates(s: pa.Array) -> list[Layout]:
    """The layouts that read the most of these (trimmed, non-null) values, if they read 90%.

    Several are returned only when they read exactly the same values: day and month order
    cannot be told from the sample.
    """
    need = SHARE * len(s)
    if len(s) == 0 or (pc.sum(pc.match_substring_regex(s, _ANY)).as_py() or 0) < need:
        return []
    best, found, shaped = 0, [], {}
    for layout in LAYOUTS:
        if layout.regex not in shaped:
            shaped[layout.regex] = pc.sum(pc.match_substring_regex(s, layout.regex)).as_py() or 0
        if shaped[layout.regex] < need:
            continue
        _, ok = parse(s, layout.pattern)
        n = pc.sum(ok).as_py() or 0
        if n < need or n < best:
            continue
        if n > best:
            best, found = n, []
        found.append(layout)
    return found


def guess(s: pa.Array) -> Layout | None:
    """The one layout these values are written in; None when none or several fit."""
    found = candidates(s)
    return found[0] if len(found) == 1 else None


# --- the stream's time column ------------------------------------------------------------------

def name_time_column(schema: Schema, column: str | None, pattern: str | None,
                     texts) -> tuple[Schema, str | None]:
    """The schema that reads the stream's time column, and its name.

    No column named: the first time column, if any. A named time column keeps its detected
    format unless `pattern` is given; a named number column is epoch seconds, or milliseconds
    where a value is above 1e11 (schema.time_seconds); a named text column is read in `pattern`
    or in the format its values show. `texts(name)` gives the sample's raw values of a column.
    """
    if column is None:
        if pattern:
            raise UserError("a time format needs a time column: name the column it applies to")
        times = schema.of_kind("time")
        return schema, times[0] if times else None
    if column not in schema:
        raise UserError(f"time column {column!r} is not in the data; columns: {', '.join(schema.names)}")
    col = schema[column]
    if col.kind == "bool":
        raise UserError(f"{column!r} holds true/false values, not times; pick another time column")
    if col.kind == "number" and pattern is None:
        return schema, column
    if col.kind == "time" and pattern in (None, col.format):     # detected, or stored with the stream
        return schema, column
    s = present(texts(column))
    if pattern is None:
        found = candidates(s)
        if len(found) > 1:
            raise UserError(f"{column!r} holds dates like {_first(s)!r} whose day and month could be either "
                            f"way round; pick its time format ({' or '.join(f.pattern for f in found)})")
        if not found:
            raise UserError(f"{column!r} does not hold dates or times in a format the engine knows "
                            f"(e.g. {_first(s)!r}); pick its time format, or another column")
        layout = found[0]
        return _as_time(schema, column, layout.utc, layout.pattern), column
    check_pattern(pattern)
    _, ok = parse(s, pattern)
    if len(s) and not pc.any(ok).as_py():
        raise UserError(f"none of the first values of {column!r} (e.g. {_first(s)!r}) is a time in the format "
                        f"{pattern} (like {example(pattern)})")
    return _as_time(schema, column, "%z" in pattern, pattern), column


def check_pattern(pattern: str) -> None:
    if "%" not in pattern or len(pattern) > 100:
        raise UserError(f"{pattern!r} is not a time format: write one like %d/%m/%Y %H:%M")
    try:
        pc.strptime(pa.array(["x"]), format=pattern, unit="us", error_is_null=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise UserError(f"{pattern!r} is not a time format the engine can read: {e}") from None


def _as_time(schema: Schema, name: str, utc: bool, pattern: str) -> Schema:
    """`schema` with column `name` read as times in `pattern` (a JSON Lines column keeps its key)."""
    # a number column read as times (gapminder's `year` with %Y) drops its integer marks: the parser checked
    # its timestamps as integers and the stream stopped with a TypeError
    return Schema(tuple(replace(c, kind="time", utc=utc, format=pattern, integer=False, wide=False)
                        if c.name == name else c for c in schema.columns))


def present(arr: pa.Array) -> pa.Array:
    """The values that are there, as trimmed text."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    return pc.utf8_trim_whitespace(arr.drop_null())


def _first(s: pa.Array) -> str:
    return s[0].as_py() if len(s) else ""


# --- tables -----------------------------------------------------------------------------------

def read_types(schema: Schema) -> dict[str, pa.DataType]:
    """Arrow types to read columns as: a time column with a format is read as text first."""
    return {c.name: pa.string() if c.kind == "time" and c.format else c.arrow_type() for c in schema.columns}


def formatted(schema: Schema) -> list[Column]:
    return [c for c in schema.columns if c.kind == "time" and c.format]


def convert_table(table: pa.Table, schema: Schema) -> tuple[pa.Table, dict[int, list[str]]]:
    """Parse the text of formatted time columns; {row: reasons} for values that did not parse."""
    lost: dict[int, list[str]] = {}
    for col in formatted(schema):
        i = table.column_names.index(col.name)
        raw = table.column(i).combine_chunks()
        s = pc.utf8_trim_whitespace(raw)
        out, ok = parse(s, col.format)
        for r in np.flatnonzero(pc.and_(raw.is_valid(), pc.invert(ok)).to_numpy(zero_copy_only=False)):
            lost.setdefault(int(r), []).append(f"column {col.name!r}: {raw[int(r)].as_py()!r} is {what(col)}")
        table = table.set_column(i, pa.field(col.name, col.arrow_type()), out.cast(col.arrow_type()))
    return table, lost


def what(col: Column) -> str:
    return f"not a time in the format {col.format} (like {example(col.format)})"
