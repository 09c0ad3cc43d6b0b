"""CSV bytes for downloads, safe to open in a spreadsheet.

A text cell starting with = + - @ (or a tab / carriage return) is a formula to
Excel and LibreOffice ("CSV injection"); such cells, and such column names in the
header line, get a leading apostrophe. Numbers are left alone, so -3.5 stays a number.
"""
from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_text(column: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """Prefix risky text cells with an apostrophe.

    >>> escape_text(pa.array(["=1+1", "ok", None, "-x"])).to_pylist()
    ["'=1+1", 'ok', None, "'-x"]
    """
    risky = None
    for start in FORMULA_START:
        hit = pc.starts_with(column, start)
        risky = hit if risky is None else pc.or_(risky, hit)
    quote, nothing = pa.scalar("'", column.type), pa.scalar("", column.type)
    return pc.if_else(pc.fill_null(risky, False), pc.binary_join_element_wise(quote, column, nothing), column)


def whole_seconds(table: pa.Table) -> pa.Table:
    """Time columns whose values all fall on a whole second written without pyarrow's ".000000"
    (2024-01-01 08:00:00, not 2024-01-01 08:00:00.000000); a UTC column keeps its Z."""
    for i, field in enumerate(table.schema):
        if not pa.types.is_timestamp(field.type):
            continue
        column = table.column(i)
        if pc.any(pc.not_equal(pc.subsecond(column), 0)).as_py():
            continue
        zone = "Z" if field.type.tz in ("UTC", "+00:00", "Z") else ("%z" if field.type.tz else "")
        table = table.set_column(i, pa.field(field.name, pa.string()),
                                 pc.strftime(column.cast(pa.timestamp("s", field.type.tz)),   # %S: no fraction
                                             format="%Y-%m-%d %H:%M:%S" + zone))
    return table


def escaped(table: pa.Table) -> pa.Table:
    """The table with every text column and every column name escaped."""
    table = table.rename_columns(escape_text(pa.array(table.column_names, pa.string())).to_pylist())
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            table = table.set_column(i, field, escape_text(table.column(i)))
    return table


def to_csv_bytes(data: pa.Table | pd.DataFrame) -> bytes:
    """UTF-8 CSV with a header line; text cells escaped against formula injection."""
    table = pa.Table.from_pandas(data, preserve_index=False) if isinstance(data, pd.DataFrame) else data
    table = escaped(whole_seconds(table))
    out = io.BytesIO()
    pacsv.write_csv(table, out)
    return out.getvalue()
