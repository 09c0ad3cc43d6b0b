"""Training rows: a CSV file or a slice of stored history -> features X and target y, in time order."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from ..ingest.parse import Parsed, Parser, read_format, sample_schema
from ..ingest.paths import regular_file
from ..schema import kind_of



def read_csv(path: str) -> tuple[pa.Table, int]:
    """A whole CSV through the stream parser: typed columns and the number of quarantined rows."""
    parsed = read_parsed(path)
    return parsed.table, parsed.rejected


def read_parsed(path: str) -> Parsed:
    """A whole CSV through the stream parser, with each row's place in the file."""
    regular_file(path)
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"{path} is UTF-16; save it as UTF-8")
    fmt = read_format(lambda n: data[:n], final=True)
    if fmt is None:
        raise UserError(f"{path} is empty")
    body = data[fmt.data_start:]
    schema = sample_schema(fmt, body, more=False)
    return Parser(fmt, schema).parse(body, fmt.data_start, positions=True)


def with_gaps(table: pa.Table, parsed: Parsed) -> pa.Table:
    """`table` (one row per parsed row) with an all-empty row where each quarantined record was,
    so that output rows line up with the file's records."""
    rejected = np.array([b.position for b in parsed.bad if not b.kept], dtype=np.int64)
    if not len(rejected):
        return table
    n = table.num_rows
    # a row sits before a rejected record that starts at or after the row's end
    order = np.argsort(np.concatenate([parsed.ends - 1, rejected]), kind="stable")
    empty = pa.Table.from_arrays([pa.nulls(1, f.type) for f in table.schema], schema=table.schema)
    return pa.concat_tables([table, empty]).take(pa.array(np.minimum(order, n)))


@dataclass
class Rows:
    """Features and target of the usable rows, oldest first."""
    X: pd.DataFrame
    y: np.ndarray
    missing_target: int          # rows dropped because the target was missing
    rid_range: tuple[int, int] | None = None
    time_range: tuple[str, str] | None = None


def column_kinds(table: pa.Table) -> dict[str, str]:
    return {f.name: kind_of(f.type) for f in table.schema}


def check_features(have: dict[str, str], numeric, categorical, where: str = "the data") -> None:
    """Every feature present; numeric features are numbers or booleans."""
    missing = [c for c in [*numeric, *categorical] if c not in have]
    if missing:
        raise UserError(f"features missing from {where}: {', '.join(missing)}; "
                        f"columns: {', '.join(c for c in have if not c.startswith('_'))}")
    wrong = [c for c in numeric if have[c] not in ("number", "bool")]
    if wrong:
        raise UserError(f"numeric features must be number columns: {', '.join(wrong)} "
                        f"({', '.join(have[c] for c in wrong)}); list them as categorical instead")


def feature_roles(features: list[dict], kinds: dict[str, str]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) names of a card's features; a feature without a role takes its column's kind."""
    numeric = [f["name"] for f in features if f.get("role") == "numeric"
               or (f.get("role") is None and kinds.get(f["name"]) in ("number", "bool", None))]
    return numeric, [f["name"] for f in features if f["name"] not in numeric]


def features_frame(table: pa.Table, numeric, categorical) -> pd.DataFrame:
    """The raw feature columns as a model takes them: float64 numbers, object categories (NaN when missing)."""
    cols = {}
    for c in numeric:
        # unsafe: an integer beyond 2**53 rounds, as everywhere the engine computes (a safe cast raised)
        cols[c] = pc.cast(table.column(c), pa.float64(), safe=False).to_numpy(zero_copy_only=False).astype(np.float64)
    for c in categorical:
        arr = table.column(c)
        if not pa.types.is_string(arr.type):
            arr = pc.cast(arr, pa.string())
        values = arr.to_numpy(zero_copy_only=False).astype(object)
        values[arr.is_null().to_numpy(zero_copy_only=False)] = np.nan
        cols[c] = pd.Series(values, dtype=object)      # object, not pandas' str: what exporters expect
    return pd.DataFrame(cols, columns=[*numeric, *categorical])


def training_rows(table: pa.Table, target: str, numeric, categorical, task: str) -> Rows:
    """Split a table into X and y; rows with a missing target are dropped and counted."""
    kinds = column_kinds(table)
    if target not in kinds:
        raise UserError(f"no target column {target!r}; columns: "
                        f"{', '.join(c for c in kinds if not c.startswith('_'))}")
    check_features(kinds, numeric, categorical)
    if task == "regression" and kinds[target] != "number":
        raise UserError(f"regression needs a numeric target; {target!r} is {kinds[target]}")
    present = table.column(target).is_valid()
    missing = table.num_rows - pc.sum(present).as_py() if table.num_rows else 0
    if missing:
        table = table.filter(present)
    y = target_values(table.column(target), task)
    rid_range = time_range = None
    if "_rid" in kinds and table.num_rows:
        rid = table.column("_rid")
        rid_range = (int(pc.min(rid).as_py()), int(pc.max(rid).as_py()))
        t = table.column("_ingest")
        time_range = (pc.min(t).as_py().isoformat(), pc.max(t).as_py().isoformat())
    return Rows(features_frame(table, numeric, categorical), y, int(missing), rid_range, time_range)


def target_values(arr: pa.ChunkedArray, task: str) -> np.ndarray:
    if task == "regression":
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_floating(arr.type):
        v = arr.to_numpy(zero_copy_only=False)
        if np.all(v == np.floor(v)):     # class labels written as 0.0 / 1.0 -> 0 / 1
            return v.astype(np.int64)
        return v
    if pa.types.is_boolean(arr.type) or pa.types.is_integer(arr.type):
        return arr.to_numpy(zero_copy_only=False)
    return np.array(pc.cast(arr, pa.string()).to_pylist(), dtype=object)


def in_time_order(table: pa.Table, column: str | None = None) -> tuple[pa.Table, str | None]:
    """Rows oldest first by `column` (default: the first time column), and the column used.

    A file's rows are not always written in time order, and the holdout must be the
    newest rows. The sort is stable; rows without a time count as oldest, so they
    train rather than pose as the future. No time column: file order is arrival order.
    """
    kinds = column_kinds(table)
    if column is None:
        column = next((c for c, k in kinds.items() if k == "time" and not c.startswith("_")), None)
        if column is None:
            return table, None
    elif kinds.get(column) not in ("time", "number"):
        raise UserError(f"time column {column!r} must be a timestamp or number column; "
                        f"columns: {', '.join(c for c in kinds if not c.startswith('_'))}")
    order = pc.sort_indices(table, sort_keys=[(column, "ascending", "at_start")])
    return table.take(order), column


def guess_task(table: pa.Table, target: str) -> str:
    """Classification for text, bool, or a few whole-number values; regression otherwise."""
    if target not in table.column_names:
        raise UserError(f"no target column {target!r}; columns: {', '.join(table.column_names)}")
    arr = table.column(target)
    if kind_of(arr.type) != "number":
        return "classification"
    values = pc.unique(arr.drop_null()).to_numpy(zero_copy_only=False).astype(np.float64)
    whole = np.all(values == np.floor(values))
    return "classification" if whole and len(values) <= 20 else "regression"


TARGET_NAMES = ("target", "label", "labels", "class", "y", "outcome", "species")


LABEL_NAMES = ("target", "label", "labels", "class", "outcome")   # not `y`: beside `x` it is as often a feature


def likely_label(names: list[str], deployed: str | None = None, labels=LABEL_NAMES) -> str | None:
    """The deployed model's target, else the first column named as one of `labels` (case aside); None when
    neither is there."""
    if deployed in names:
        return deployed
    lower = {n.lower(): n for n in reversed(names)}
    return next((lower[t] for t in labels if t in lower), None)


def guess_target(names: list[str], deployed: str | None = None) -> str:
    """The column a model most likely predicts: the deployed model's target, else one named like a label
    (`target`, `label`, `class`, `y`, ...), else the last column, where data sets put it. The name
    comes before the place because a pipeline step appends its columns last: after a derive step the
    last column was the derived one, and the real target became a feature."""
    return likely_label(names, deployed, TARGET_NAMES) or names[-1]


MODEL_TYPES = ("string", "large_string", "bool", "double", "float", "int64", "int32")


def model_columns(schema: pa.Schema, time_column: str | None) -> list[str]:
    """Columns a model can take as target or feature: text, bool and number columns, neither
    internal (`_rid`, ...) nor the stream's time column."""
    return [f.name for f in schema if not f.name.startswith("_") and f.name != time_column
            and str(f.type) in MODEL_TYPES]


ID_MIN_VALUES = 20       # a text column with at least this many values, different on most rows, is an id


def id_like(table: pa.Table, names: list[str]) -> list[str]:
    """Text columns among `names` whose value differs on most rows (ids, times kept as text such as
    01.03.2024 00:00): one-hot encoded they give a column per row, which no model learns from."""
    n = table.num_rows
    kinds = column_kinds(table)
    return [c for c in names if kinds.get(c) == "text"
            and (k := pc.count_distinct(table.column(c)).as_py()) >= ID_MIN_VALUES and k > n / 2]


def split_features(table: pa.Table, names: list[str] | None, target: str) -> tuple[list[str], list[str]]:
    """(numeric, categorical) among `names` (default: every column but the target, time and id-like ones)."""
    kinds = column_kinds(table)
    if names is None:
        names = [c for c, k in kinds.items() if c != target and not c.startswith("_") and k != "time"]
        names = [c for c in names if c not in id_like(table, names)]
    missing = [c for c in names if c not in kinds]
    if missing:
        raise UserError(f"features missing from the data: {', '.join(missing)}; "
                        f"columns: {', '.join(c for c in kinds if not c.startswith('_'))}")
    numeric = [c for c in names if kinds[c] in ("number", "bool")]
    categorical = [c for c in names if kinds[c] == "text"]
    times = [c for c in names if kinds[c] == "time"]
    if times:
        raise UserError(f"time columns cannot be features: {', '.join(times)}; derive a number from them first")
    return numeric, categorical
