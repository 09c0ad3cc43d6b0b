"""Tables an analyst can download (window statistics, bucket series, stored history) as CSV or Parquet.

CSV goes through export_csv (formula cells escaped); Parquet keeps the types as they are.
"""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UserError
from .export_csv import to_csv_bytes
from ..stats.groups import STAT_NAMES
from .snapshot import Snapshot

FORMATS = ("csv", "parquet")
MIME = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def window_stats(snap: Snapshot, rows: int | None = None, seconds: float | None = None) -> pa.Table:
    """One row per numeric column: count, mean, var, std, min, max over the window."""
    from .snapshot import stats_dict
    moments, _ = snap.window(rows, seconds)
    stats = stats_dict(moments, snap.columns)
    return pa.table({"column": snap.columns,
                     **{name: pa.array([stats[c][name] for c in snap.columns],
                                       pa.int64() if name == "count" else pa.float64()) for name in STAT_NAMES}})


def bucket_series(snap: Snapshot, width: int) -> pa.Table:
    """One row per tumbling bucket and numeric column: bucket start (UTC) and its statistics."""
    series = snap.bucket_series(width)
    n, k = len(series["start"]), len(snap.columns)
    start = pa.array((np.repeat(np.asarray(series["start"], np.float64), k) * 1e6).astype(np.int64),
                     pa.timestamp("us", tz="UTC"))
    out = {"bucket_start": start, "width_s": pa.array(np.full(n * k, width, np.int64)),
           "column": pa.array(np.tile(np.array(snap.columns, dtype=object), n), pa.string())}
    for name in STAT_NAMES:
        values = np.asarray(series[name]).reshape(n * k)
        out[name] = pa.array(values.astype(np.int64) if name == "count" else values.astype(np.float64),
                             from_pandas=True)
    return pa.table(out)


def to_bytes(table: pa.Table, fmt: str) -> bytes:
    if fmt == "csv":
        return to_csv_bytes(table)
    if fmt == "parquet":
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()
    raise UserError(f"unknown format {fmt!r}; use csv or parquet")
