"""A stream's columns and their kinds, fixed once inferred.

Four kinds: ``number`` (float64; integers too, so a later 1.5 is not an error),
``bool``, ``text`` and ``time`` (timestamps, stored as microseconds, UTC when the
source carried an offset). Numbers never turn into text after inference: a value
that does not parse becomes missing and its row is flagged.

A number column whose sampled values were all written as integers is `integer`: it is parsed
and stored as int64, exactly, and the statistics, pipeline and models see it as float64
(`as_floats`). The first value that is not whole turns it to float64 for good (`Schema.settled`),
unless it already held an integer beyond 2**53 (`wide`), which floats would round: then it stays
int64 and such a value is flagged. Nothing stored is ever rounded.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import UserError

KINDS = ("number", "bool", "text", "time")
INT_EXACT = 2 ** 53          # float64 holds every integer up to this exactly
INT64_MAX = 2 ** 63 - 1      # integer columns hold int64; a literal beyond it is flagged (CSV) or text (inferred)
TIME_LIMIT_US = 2 ** 53      # event time is float64 microseconds: exact within this of 1970
TIME_YEARS = "1685 to 2254"  # the whole years inside that limit (1684-07-28 to 2255-06-05)
RESERVED = ("_rid", "_ingest", "_segment")   # the store's own columns in every rows table (and its view's)


def safe_names(names) -> list[str]:
    """The user's names, made safe to store: stripped, empty ones named `column_<i>`, and a
    name that equals an earlier one or a reserved one without regard to case (DuckDB folds
    case: `ID` and `id` are one column) gets a visible suffix, as pandas does: id, id.1, id.2."""
    out: list[str] = []
    seen = {r.lower() for r in RESERVED}
    for i, raw in enumerate(names):
        name = re.sub(r"[\r\n\t]+", " ", str(raw)).strip() or f"column_{i + 1}"   # a quoted name may span lines
        base, n = name, 0
        while name.lower() in seen:
            n += 1
            name = f"{base}.{n}"
        seen.add(name.lower())
        out.append(name)
    return out


def name_clash(names, new=None) -> str | None:
    """Why `names` cannot all be columns of one table, looking at the names in `new` (default: all):
    an empty or reserved name, or two that differ only in case. None when they can."""
    names = list(names)
    same: dict[str, list[str]] = {}
    for n in names:
        same.setdefault(n.lower(), []).append(n)
    for n in names if new is None else new:
        if not n.strip():
            return "a column name is empty"
        if n.lower() in RESERVED:
            return f"{n!r} is reserved for the store's own column"
        if len(same[n.lower()]) > 1:
            other = next((o for o in same[n.lower()] if o != n), None)
            return f"two columns would be named {n!r}" if other is None else \
                f"{n!r} and {other!r} would be one column (names are compared without regard to case)"
    return None


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    utc: bool = False   # time columns: the source carried a zone offset
    key: str | None = None   # JSON Lines: the key in the source, when `name` had to differ from it
    format: str | None = None   # time columns: strptime pattern of the text (None: ISO 8601)
    integer: bool = False       # number columns: every value so far was an integer literal, stored as int64
    wide: bool = False          # integer columns: held a value beyond INT_EXACT, so they never turn to floats

    def arrow_type(self) -> pa.DataType:
        if self.kind == "number":
            return pa.int64() if self.integer else pa.float64()
        if self.kind == "bool":
            return pa.bool_()
        if self.kind == "time":
            return pa.timestamp("us", tz="UTC" if self.utc else None)
        return pa.string()


@dataclass(frozen=True)
class Schema:
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise UserError(f"unknown column {name!r}; the stream has: {', '.join(self.names)}")

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def of_kind(self, *kinds: str) -> list[str]:
        return [c.name for c in self.columns if c.kind in kinds]

    def arrow(self) -> pa.Schema:
        return pa.schema([(c.name, c.arrow_type()) for c in self.columns])

    @property
    def integers(self) -> list[str]:
        return [c.name for c in self.columns if c.integer]

    def settled(self, rows: pa.Table) -> "Schema | None":
        """This schema after `rows` (as parsed): `integer` off for each integer column the parser gave
        as floats (it took a fraction), `wide` on for each that holds a value beyond INT_EXACT; None
        when nothing changes."""
        cols = []
        for c in self.columns:
            if c.integer and c.name in rows.column_names:
                arr = rows.column(c.name)
                if not pa.types.is_integer(arr.type):
                    c = replace(c, integer=False, wide=False)
                elif not c.wide and beyond_floats(arr):
                    c = replace(c, wide=True)
            cols.append(c)
        return None if tuple(cols) == self.columns else Schema(tuple(cols))

    def to_json(self) -> str:
        return json.dumps([{"name": c.name, "kind": c.kind, "utc": c.utc, **({"key": c.key} if c.key is not None else {}),
                            **({"format": c.format} if c.format else {}), **({"integer": True} if c.integer else {}),
                            **({"wide": True} if c.wide else {})}
                           for c in self.columns])

    @classmethod
    def from_json(cls, text: str) -> "Schema":
        # a schema stored before `integer` existed reads as floats, as its rows table was made
        return cls(tuple(Column(d["name"], d["kind"], d.get("utc", False), d.get("key"), d.get("format"),
                                bool(d.get("integer", False)), bool(d.get("wide", False)))
                         for d in json.loads(text)))

    @classmethod
    def from_arrow(cls, schema: pa.Schema) -> "Schema":
        return cls(tuple(Column(f.name, kind_of(f.type), _is_utc(f.type)) for f in schema))


def kind_of(t: pa.DataType) -> str:
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "time"
    return "text"


def all_whole(arr: pa.Array | pa.ChunkedArray) -> bool:
    """Whether every present value is a whole number within INT_EXACT (NaN is not)."""
    if pa.types.is_integer(arr.type):
        return True
    if not pa.types.is_floating(arr.type):
        return False
    ok = pc.and_(pc.equal(pc.floor(arr), arr), pc.less_equal(pc.abs(arr), float(INT_EXACT)))
    return bool(pc.all(ok).as_py() is not False)      # null (nothing present) counts as whole


def beyond_floats(arr: pa.Array | pa.ChunkedArray) -> bool:
    """Whether an int64 column holds a value float64 cannot be trusted to hold (beyond INT_EXACT)."""
    lo, hi = pc.min_max(arr).values()
    return lo.is_valid and (lo.as_py() < -INT_EXACT or hi.as_py() > INT_EXACT)


def as_floats(table: pa.Table, keep=()) -> pa.Table:
    """`table` with its int64 value columns (integer columns, as parsed and stored) as float64, which
    statistics, the pipeline and models compute in: beyond 2**53 that rounds, necessarily. `keep`: names
    left as they are."""
    fields = [pa.field(f.name, pa.float64()) if pa.types.is_integer(f.type) and f.name not in RESERVED
              and f.name not in keep else f for f in table.schema]
    return table.cast(pa.schema(fields), safe=False) if fields != list(table.schema) else table


def whole_numbers(table: pa.Table, names, exact: pa.Table | None = None) -> pa.Table:
    """`table` with its float columns among `names` as int64, each one whose values are all whole
    (all_whole); a column holding any other value stays float, so nothing is rounded. `exact`: the
    stored rows `table` was computed from (both with `_rid`): where a value is still the float of the
    stored int64 under its name, the stored integer is given, so a value beyond 2**53 comes back whole."""
    if exact is not None and "_rid" in table.column_names and "_rid" in exact.column_names:
        at = pc.index_in(table.column("_rid"), exact.column("_rid"))
    else:
        exact = None
    for name in names:
        if name not in table.column_names:
            continue
        i = table.column_names.index(name)
        col = table.column(i)
        if not pa.types.is_floating(col.type):
            continue
        if exact is not None and name in exact.column_names and pa.types.is_integer(exact.column(name).type):
            stored = exact.column(name).take(at)
            same = pc.fill_null(pc.equal(pc.cast(stored, pa.float64(), safe=False), col), False)
            rest = pc.if_else(same, pa.scalar(None, pa.float64()), col)       # values a step computed
            if all_whole(rest):
                table = table.set_column(i, pa.field(name, pa.int64()),
                                         pc.if_else(same, stored, pc.cast(rest, pa.int64())))
        elif all_whole(col):
            table = table.set_column(i, pa.field(name, pa.int64()), pc.cast(col, pa.int64()))
    return table


def _is_utc(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) and t.tz is not None


def time_usable(arr: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """True where a timestamp lies within TIME_LIMIT_US of 1970 (null where missing)."""
    us = pc.cast(pc.cast(arr, pa.timestamp("us", tz=arr.type.tz)), pa.int64())
    return pc.less_equal(pc.abs(us), TIME_LIMIT_US)


def time_seconds(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Epoch seconds of a time or number column (numbers: seconds, or ms when > 1e11); NaN if missing."""
    t = arr.type
    if pa.types.is_timestamp(t):
        us = pc.cast(pc.cast(arr, pa.timestamp("us", tz=t.tz)), pa.int64())
        # unsafe: rows stored before times were range-checked may lie beyond 2**53 us; they round
        return pc.divide(pc.cast(us, pa.float64(), safe=False), 1e6).to_numpy(zero_copy_only=False).astype(np.float64)
    v = pc.cast(arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False).astype(np.float64)
    return np.where(np.abs(v) > 1e11, v / 1e3, v)
