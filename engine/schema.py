"""A stream's columns and their kinds, fixed once inferred.

Four kinds: ``number`` (float64; integers too, so a later 1.5 is not an error),
``bool``, ``text`` and ``time`` (timestamps, stored as microseconds, UTC when the
source carried an offset). Numbers never turn into text after inference: a value
that does not parse becomes missing and its row is flagged.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import UserError

KINDS = ("number", "bool", "text", "time")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    utc: bool = False   # time columns: the source carried a zone offset
    format: str | None = None   # time columns: strptime pattern of the text (None: ISO 8601)

    def arrow_type(self) -> pa.DataType:
        if self.kind == "number":
            return pa.float64()
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

    def to_json(self) -> str:
        return json.dumps([{"name": c.name, "kind": c.kind, "utc": c.utc, **({"format": c.format} if c.format else {})}
                           for c in self.columns])

    @classmethod
    def from_json(cls, text: str) -> "Schema":
        return cls(tuple(Column(d["name"], d["kind"], d.get("utc", False), d.get("format")) for d in json.loads(text)))

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


def _is_utc(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) and t.tz is not None


def time_seconds(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Epoch seconds of a time or number column (numbers: seconds, or ms when > 1e11); NaN if missing."""
    t = arr.type
    if pa.types.is_timestamp(t):
        us = pc.cast(pc.cast(arr, pa.timestamp("us", tz=t.tz)), pa.int64())
        return pc.divide(pc.cast(us, pa.float64()), 1e6).to_numpy(zero_copy_only=False).astype(np.float64)
    v = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    return np.where(np.abs(v) > 1e11, v / 1e3, v)
