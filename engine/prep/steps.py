"""The pipeline's step kinds, each vectorised over a pyarrow table.

A step is built from its JSON params (`__init__` checks their shape), tells the
schema it produces (`output`, which checks column names and kinds), fills in
statistics that are frozen when the spec is applied (`freeze`), and runs on a
batch with a small JSON-serialisable state (`run(table, state) -> (table, state)`).
Running statistics are expanding per-row statistics computed from the state
before the batch plus cumulative sums within it, so they do not depend on how
rows are cut into batches.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UserError
from .expr import Expr, is_number
from ..schema import kind_of, name_clash
from ..ingest import times

Kinds = dict[str, str]        # column name -> "number" | "bool" | "text" | "time", in order
TRUE = ["true", "t", "yes", "y", "1", "on"]
FALSE = ["false", "f", "no", "n", "0", "off"]
MAX_DEPTH = 32       # levels of and/or/not in a filter condition
OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in", "is missing", "not missing")


# --- columns <-> numpy ------------------------------------------------------------------
def floats(col) -> np.ndarray:
    """A number or bool column as float64, NaN for missing."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_floating(col.type):
        col = pc.cast(col, pa.float64())
    return pc.fill_null(col, np.nan).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def number_array(x: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(x, np.float64), pa.float64(), from_pandas=True)      # NaN -> missing


def missing(col) -> np.ndarray:
    return pc.is_null(col, nan_is_null=True).to_numpy(zero_copy_only=False)


def arrow_type(kind: str, utc: bool = True) -> pa.DataType:
    return {"number": pa.float64(), "bool": pa.bool_(), "text": pa.string(),
            "time": pa.timestamp("us", tz="UTC" if utc else None)}[kind]


def kinds_of(schema: pa.Schema) -> Kinds:
    return {f.name: kind_of(f.type) for f in schema}


def replace(table: pa.Table, name: str, arr) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, arr)
    return table.append_column(name, arr)


# --- parameter checks -------------------------------------------------------------------
def _columns(params: dict, key: str = "columns", required: bool = True) -> list[str] | None:
    cols = params.get(key)
    if cols is None:
        if required:
            raise UserError(f"'{key}' is required (a list of column names)")
        return None
    if isinstance(cols, str):
        cols = [cols]
    if not isinstance(cols, list) or not cols or not all(isinstance(c, str) for c in cols):
        raise UserError(f"'{key}' must be a non-empty list of column names")
    return cols


def _need(kinds: Kinds, cols: list[str], allowed: tuple[str, ...] | None = None) -> None:
    for c in cols:
        if c not in kinds:
            raise UserError(f"unknown column {c!r}; columns here: {', '.join(kinds)}")
        if allowed and kinds[c] not in allowed:
            raise UserError(f"column {c!r} is {kinds[c]}; this step needs {' or '.join(allowed)} (cast it first)")


def _choice(params: dict, key: str, options: tuple[str, ...], default: str | None = None) -> str:
    v = params.get(key, default)
    if v not in options:
        raise UserError(f"'{key}' must be one of {', '.join(options)}, not {v!r}")
    return v


def _number(v, what: str) -> float:
    if not is_number(v):
        raise UserError(f"{what} must be a finite number of at most 308 digits, not {_short(v)}")
    return float(v)


def _whole(v) -> bool:
    return is_number(v) and float(v).is_integer()


def _short(v) -> str:
    text = repr(v) if not isinstance(v, int) or abs(v) < 10 ** 40 else f"an integer of {len(str(abs(v)))} digits"
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown(params: dict, known: set[str]) -> None:
    extra = set(params) - known
    if extra:
        raise UserError(f"unknown parameter{'s' * (len(extra) > 1)} {', '.join(sorted(extra))}; "
                        f"known: {', '.join(sorted(known))}")


class Step:
    kind = ""
    known: set[str] = set()

    def __init__(self, params: dict):
        if not isinstance(params, dict):
            raise UserError("'params' must be an object")
        _unknown(params, self.known)
        self.params = dict(params)

    def output(self, kinds: Kinds) -> Kinds:
        return kinds

    def integers(self, names: set[str]) -> set[str]:
        """Which of the integer columns `names` hold only whole numbers after this step, by what it
        does to them (renamed ones by their new name): by default it leaves them alone."""
        return names

    def needs_freeze(self) -> bool:
        return False

    def freeze(self, table: pa.Table) -> dict:
        return self.params

    def check_sample(self, table: pa.Table) -> None:
        """Data checks on a sample of the input (a cast that fails on every row)."""

    def keep(self, table: pa.Table) -> np.ndarray | None:
        """Steps that drop rows say which to keep (None: all); `run` then filters."""
        return None

    def run(self, table: pa.Table, state):
        keep = self.keep(table)
        if keep is None or keep.all():
            return table, state
        return table.filter(pa.array(keep)), state


# --- the step kinds ---------------------------------------------------------------------------
class DropMissing(Step):
    """Drop rows with a missing value in any (or all) of `columns` (default: every column)."""
    kind = "drop_missing"
    known = {"columns", "how"}

    def __init__(self, params):
        super().__init__(params)
        self.columns = _columns(params, required=False)
        self.how = _choice(params, "how", ("any", "all"), "any")

    def output(self, kinds):
        _need(kinds, self.columns or [])
        return kinds

    def keep(self, table):
        cols = self.columns or table.column_names
        if not cols or table.num_rows == 0:
            return None
        m = np.column_stack([missing(table.column(c)) for c in cols])
        return ~(m.any(axis=1) if self.how == "any" else m.all(axis=1))


class FillMissing(Step):
    """Fill missing values with a value, the mean or median (frozen, or a running mean), or forward fill.

    Forward fill carries the last value across batches; a running mean fills with the
    mean of every earlier value (pandas: ``s.fillna(s.expanding().mean())``).
    """
    kind = "fill_missing"
    known = {"columns", "method", "value", "stats", "values"}

    def __init__(self, params):
        super().__init__(params)
        self.method = _choice(params, "method", ("value", "mean", "median", "ffill"), "value")
        self.columns = _columns(params, required=self.method != "value" or not isinstance(params.get("value"), dict))
        self.stats = _choice(params, "stats", ("frozen", "running"), "frozen")
        if self.method == "value":
            if "value" not in params:
                raise UserError("'value' is required with method 'value'")
            v = params["value"]
            self.values = dict(v) if isinstance(v, dict) else {c: v for c in self.columns}
            self.columns = list(self.values)
        elif self.method in ("mean", "median"):
            if self.method == "median" and self.stats == "running":
                raise UserError("a running median is not available; use stats 'frozen' or the mean")
            self.values = params.get("values")
            if self.values is not None and set(self.values) != set(self.columns):
                raise UserError("'values' must hold one value for each of 'columns'")

    def output(self, kinds):
        if self.method in ("mean", "median"):
            _need(kinds, self.columns, ("number",))
        else:
            _need(kinds, self.columns)
        if self.method == "value":
            for c, v in self.values.items():
                ok = {"number": lambda: is_number(v),
                      "bool": lambda: isinstance(v, bool), "text": lambda: isinstance(v, str),
                      "time": lambda: False}[kinds[c]]()
                if not ok:
                    raise UserError(f"the value {_short(v)} does not fit column {c!r}, which is {kinds[c]}")
        return kinds

    def integers(self, names):
        if self.method == "ffill":
            return names
        if self.method == "value":
            return names - {c for c, v in self.values.items() if not _whole(v)}
        return names - set(self.columns)

    def needs_freeze(self):
        return self.method in ("mean", "median") and self.stats == "frozen" and self.values is None

    def freeze(self, table):
        f = np.nanmedian if self.method == "median" else np.nanmean
        values = {}
        for c in self.columns:
            x = floats(table.column(c))
            if not np.isfinite(x).any():
                raise UserError(f"column {c!r} has no values in the recent rows to take the {self.method} of")
            with np.errstate(all="ignore"):
                values[c] = float(f(x))
        return {**self.params, "values": values}

    def run(self, table, state):
        if table.num_rows == 0:
            return table, state
        if self.method == "ffill":
            return self._ffill(table, state or {})
        if self.method == "mean" and self.stats == "running":
            state = dict(state or {})
            for c in self.columns:
                x = floats(table.column(c))
                mean, _, st = expanding(x, state.get(c))
                state[c] = st
                table = replace(table, c, number_array(np.where(np.isnan(x), mean, x)))
            return table, state
        values = self.values if self.method == "value" else self.params["values"]
        for c in self.columns:
            col = table.column(c)
            table = replace(table, c, pc.fill_null(_nan_null(col), pa.scalar(values[c], col.type)))
        return table, state

    def _ffill(self, table, state):
        state = dict(state)
        for c in self.columns:
            col = pc.fill_null_forward(_nan_null(table.column(c)).combine_chunks())
            last = state.get(c)
            if last is not None and col.null_count:
                col = pc.fill_null(col, _from_json(last, col.type))
            valid = col.drop_null()
            if len(valid):
                state[c] = _to_json(valid[-1])
            table = replace(table, c, col)
        return table, state


class Cast(Step):
    """Cast columns to number, bool, text or time; values that do not convert become missing.
    To time, text may name its `format` (a strptime pattern such as %d/%m/%Y); without one, ISO 8601
    and the layouts engine/ingest/times.py detects are read."""
    kind = "cast"
    known = {"columns", "to", "format"}

    def __init__(self, params):
        super().__init__(params)
        self.columns = _columns(params)
        self.to = _choice(params, "to", ("number", "bool", "text", "time"))
        self.format = params.get("format") or None
        if self.format is not None:
            if self.to != "time" or not isinstance(self.format, str):
                raise UserError("'format' is a time format (like %d/%m/%Y) for a cast to time")
            times.check_pattern(self.format)

    def output(self, kinds):
        _need(kinds, self.columns)
        return {**kinds, **{c: self.to for c in self.columns}}

    def integers(self, names):
        return names if self.to == "number" else names - set(self.columns)     # number to number: unchanged

    def check_sample(self, table):
        for c in self.columns:
            col = table.column(c)
            have = len(col) - col.null_count
            out = cast(col, self.to, self.format)
            if have and out.null_count == len(out):
                example = col.drop_null()[0].as_py()
                raise UserError(f"casting column {c!r} to {self.to} fails on every one of the {have} recent "
                                f"values (e.g. {example!r})")

    def run(self, table, state):
        for c in self.columns:
            table = replace(table, c, cast(table.column(c), self.to, self.format))
        return table, state


def cast(col, to: str, fmt: str | None = None) -> pa.Array:
    import pandas as pd     # only here: its import costs a quarter second
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    src = kind_of(col.type)
    if src == to:
        return col
    if to == "text":
        return pc.cast(col, pa.string())
    if to == "number":
        if src == "bool":
            return pc.cast(col, pa.float64())
        if src == "time":
            us = pc.cast(pc.cast(col, pa.timestamp("us", tz=col.type.tz)), pa.int64())
            return number_array(floats(us) / 1e6)
        s = pd.to_numeric(pd.Series(col.to_numpy(zero_copy_only=False), dtype=object), errors="coerce")
        return number_array(s.to_numpy(np.float64, na_value=np.nan))
    if to == "bool":
        if src == "number":
            x = floats(col)
            return pa.array(x != 0, mask=np.isnan(x))
        if src == "time":
            return pa.nulls(len(col), pa.bool_())
        low = pc.utf8_lower(pc.utf8_trim_whitespace(col))
        t, f = pc.is_in(low, pa.array(TRUE)), pc.is_in(low, pa.array(FALSE))
        return pc.if_else(t, True, pc.if_else(f, False, pa.scalar(None, pa.bool_())))
    # to time: numbers are epoch seconds; text is parsed (naive times are taken as UTC)
    if src == "number":
        x = floats(col)
        return pa.array(np.where(np.isnan(x), 0, x * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC"),
                        mask=np.isnan(x))
    if src == "bool":
        return pa.nulls(len(col), pa.timestamp("us", tz="UTC"))
    if fmt is None:
        layout = times.guess(times.present(col))
        fmt = layout.pattern if layout is not None else None
    if fmt is not None:
        out, _ = times.parse(pc.utf8_trim_whitespace(col), fmt)
        return out if out.type.tz else pc.assume_timezone(out, "UTC")
    text = pd.Series(col.to_numpy(zero_copy_only=False), dtype=object)
    # ISO 8601 parses in C; only the values it misses go through the (per value) mixed-format parser
    s = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    retry = s.isna() & text.notna()
    if retry.any():
        s[retry] = pd.to_datetime(text[retry], errors="coerce", utc=True, format="mixed")
    return pa.array(s.dt.as_unit("us"), pa.timestamp("us", tz="UTC"), from_pandas=True)


class Normalise(Step):
    """z-score or min-max scale number columns, from running or frozen statistics.

    running z-score: (x - expanding mean) / expanding std (ddof=1), rows up to and
    including this one; frozen: mean and std of the recent rows when the spec was
    applied, written into the spec.
    """
    kind = "normalise"
    known = {"columns", "method", "stats", "values"}

    def __init__(self, params):
        super().__init__(params)
        self.columns = _columns(params)
        self.method = _choice(params, "method", ("zscore", "minmax"), "zscore")
        self.stats = _choice(params, "stats", ("running", "frozen"), "running")
        self.values = params.get("values")
        if self.values is not None:
            keys = ("mean", "std") if self.method == "zscore" else ("min", "max")
            if set(self.values) != set(self.columns) or any(sorted(v) != sorted(keys) for v in self.values.values()):
                raise UserError(f"'values' must hold {' and '.join(keys)} for each of 'columns'")

    def output(self, kinds):
        _need(kinds, self.columns, ("number", "bool"))
        return {**kinds, **{c: "number" for c in self.columns}}

    def integers(self, names):
        return names - set(self.columns)

    def needs_freeze(self):
        return self.stats == "frozen" and self.values is None

    def freeze(self, table):
        values = {}
        for c in self.columns:
            x = floats(table.column(c))
            x = x[~np.isnan(x)]
            if len(x) < 2:
                raise UserError(f"column {c!r} has fewer than 2 values in the recent rows to freeze statistics from")
            values[c] = {"mean": float(np.mean(x)), "std": float(np.std(x, ddof=1))} if self.method == "zscore" \
                else {"min": float(np.min(x)), "max": float(np.max(x))}
            if np.min(x) == np.max(x):
                raise UserError(f"column {c!r} is constant ({x[0]:g}) in the recent rows; scaling it would divide "
                                f"by zero (use stats 'running', or give 'values')")
        return {**self.params, "values": values}

    def run(self, table, state):
        if table.num_rows == 0:
            return table, state
        state = dict(state or {}) if self.stats == "running" else state
        for c in self.columns:
            x = floats(table.column(c))
            if self.stats == "frozen":
                v = self.params["values"][c]
                centre, scale = (v["mean"], v["std"]) if self.method == "zscore" else (v["min"], v["max"] - v["min"])
            elif self.method == "zscore":
                centre, var, state[c] = expanding(x, state.get(c))
                scale = np.sqrt(var)
            else:
                lo0, hi0 = state.get(c, [None, None])
                lo = np.fmin.accumulate(np.concatenate([[np.nan if lo0 is None else lo0], x]))[1:]
                hi = np.fmax.accumulate(np.concatenate([[np.nan if hi0 is None else hi0], x]))[1:]
                state[c] = [_finite(lo[-1]), _finite(hi[-1])]
                centre, scale = lo, hi - lo
            with np.errstate(all="ignore"):
                table = replace(table, c, number_array((x - centre) / scale))
        return table, state


def expanding(x: np.ndarray, state: list | None) -> tuple[np.ndarray, np.ndarray, list]:
    """Per-row mean and variance (ddof=1) of every value up to and including each row, NaN skipped.

    `state` is [count, mean, m2] of the rows before; the batch's own part comes from
    cumulative sums shifted by the earlier mean and is merged with Chan's formula, so
    the result does not depend on where batches start.
    """
    n0, mean0, m20 = state if state else (0, 0.0, 0.0)
    valid = ~np.isnan(x)
    shift = mean0 if n0 else (x[valid][0] if valid.any() else 0.0)
    d = np.where(valid, x - shift, 0.0)
    c = np.cumsum(valid)
    s1, s2 = np.cumsum(d), np.cumsum(d * d)
    with np.errstate(all="ignore"):
        mb = np.where(c > 0, s1 / c, 0.0)
        m2b = np.maximum(s2 - s1 * mb, 0.0)
        n = n0 + c
        delta = shift + mb - mean0
        mean = np.where(c > 0, mean0 + delta * c / n, mean0)
        m2 = np.where(c > 0, m20 + m2b + delta * delta * (n0 * c / n), m20)
        var = np.where(n > 1, m2 / (n - 1), np.nan)
        mean = np.where(n > 0, mean, np.nan)
    end = [int(n0 + c[-1]), float(mean[-1]) if n0 + c[-1] else 0.0, float(m2[-1])] if len(x) else [n0, mean0, m20]
    return mean, var, end


class Clip(Step):
    """Limit number columns to [lower, upper] (either may be left out)."""
    kind = "clip"
    known = {"columns", "lower", "upper"}

    def __init__(self, params):
        super().__init__(params)
        self.columns = _columns(params)
        self.lower = _number(params["lower"], "'lower'") if params.get("lower") is not None else -np.inf
        self.upper = _number(params["upper"], "'upper'") if params.get("upper") is not None else np.inf
        if self.lower == -np.inf and self.upper == np.inf:
            raise UserError("give 'lower', 'upper' or both")
        if self.lower > self.upper:
            raise UserError(f"'lower' ({self.lower:g}) is above 'upper' ({self.upper:g})")

    def output(self, kinds):
        _need(kinds, self.columns, ("number",))
        return kinds

    def integers(self, names):
        whole = all(np.isinf(b) or _whole(b) for b in (self.lower, self.upper))
        return names if whole else names - set(self.columns)

    def run(self, table, state):
        for c in self.columns:
            table = replace(table, c, number_array(np.clip(floats(table.column(c)), self.lower, self.upper)))
        return table, state


class Derive(Step):
    """A new (or replaced) column from a safe expression over number and bool columns."""
    kind = "derive"
    known = {"name", "expr"}

    def __init__(self, params):
        super().__init__(params)
        self.name = params.get("name")
        if not isinstance(self.name, str) or not self.name.strip():
            raise UserError("'name' (the new column's name) is required")
        if not isinstance(params.get("expr"), str):
            raise UserError("'expr' (the expression) is required")
        self.expr: Expr | None = None

    def output(self, kinds):
        self.expr = Expr.parse(self.params["expr"], kinds)
        return {**kinds, self.name: self.expr.kind}

    def integers(self, names):
        return names - {self.name}

    def run(self, table, state):
        if self.expr is None:
            self.output(kinds_of(table.schema))
        cols = {c: floats(table.column(c)) if kind_of(table.schema.field(c).type) == "number"
                else pc.fill_null(table.column(c), False).to_numpy(zero_copy_only=False)
                for c in self.expr.columns}
        if not cols:
            cols = {"": np.zeros(table.num_rows)}
        out = self.expr.evaluate(cols)
        arr = pa.array(out) if self.expr.kind == "bool" else number_array(out)
        return replace(table, self.name, arr), state


class Filter(Step):
    """Keep rows where a condition holds: {"column", "op", "value"}, or {"and": [...]}, {"or": [...]},
    {"not": ...}. A comparison with a missing value is false (and its `not` true), as in pandas."""
    kind = "filter"
    known = {"where"}

    def __init__(self, params):
        super().__init__(params)
        if "where" not in params:
            raise UserError("'where' (the condition) is required")
        _condition_shape(params["where"])

    def output(self, kinds):
        _condition_check(self.params["where"], kinds)
        return kinds

    def keep(self, table):
        return _condition(self.params["where"], table) if table.num_rows else None


def _condition_shape(cond, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise UserError(f"the condition is nested more than {MAX_DEPTH} deep; use fewer levels of and/or/not")
    if not isinstance(cond, dict):
        raise UserError(f"a condition must be an object, not {_short(cond)}")
    if "and" in cond or "or" in cond:
        parts = cond.get("and", cond.get("or"))
        if len(cond) != 1 or not isinstance(parts, list) or not parts:
            raise UserError("'and' / 'or' take a non-empty list of conditions")
        for p in parts:
            _condition_shape(p, depth + 1)
    elif "not" in cond:
        if len(cond) != 1:
            raise UserError("'not' takes one condition")
        _condition_shape(cond["not"], depth + 1)
    else:
        _unknown(cond, {"column", "op", "value"})
        if not isinstance(cond.get("column"), str):
            raise UserError(f"condition {cond}: 'column' is required")
        if cond.get("op") not in OPS:
            raise UserError(f"condition {cond}: 'op' must be one of {', '.join(OPS)}")
        if cond["op"] not in ("is missing", "not missing") and "value" not in cond:
            raise UserError(f"condition {cond}: 'value' is required")
        if cond["op"] in ("in", "not in") and not isinstance(cond["value"], list):
            raise UserError(f"condition {cond}: 'in' takes a list of values")


def _condition_check(cond, kinds: Kinds) -> None:
    import pandas as pd     # only here: its import costs a quarter second
    for key in ("and", "or"):
        if key in cond:
            for p in cond[key]:
                _condition_check(p, kinds)
            return
    if "not" in cond:
        return _condition_check(cond["not"], kinds)
    _need(kinds, [cond["column"]])
    kind, op = kinds[cond["column"]], cond["op"]
    if op in ("is missing", "not missing"):
        return
    values = cond["value"] if isinstance(cond["value"], list) else [cond["value"]]
    for v in values:
        fits = {"number": is_number(v), "bool": isinstance(v, bool),
                "text": isinstance(v, str), "time": isinstance(v, str)}[kind]
        if not fits:
            raise UserError(f"condition on {cond['column']!r}: {_short(v)} cannot be compared with a {kind} column")
        if kind == "time" and pd.isna(pd.to_datetime(v, errors="coerce", utc=True)):
            raise UserError(f"condition on {cond['column']!r}: {v!r} is not a time")
    if kind == "bool" and op not in ("==", "!=", "in", "not in"):
        raise UserError(f"condition on {cond['column']!r}: a bool column only takes ==, !=, in, not in")


def _condition(cond, table: pa.Table) -> np.ndarray:
    if "and" in cond:
        return np.logical_and.reduce([_condition(p, table) for p in cond["and"]])
    if "or" in cond:
        return np.logical_or.reduce([_condition(p, table) for p in cond["or"]])
    if "not" in cond:
        return ~_condition(cond["not"], table)
    col, op = table.column(cond["column"]), cond["op"]
    if op in ("is missing", "not missing"):
        m = missing(col)
        return m if op == "is missing" else ~m
    value = cond["value"]
    if pa.types.is_timestamp(col.type):
        value = [_time_scalar(v, col.type) for v in value] if isinstance(value, list) else _time_scalar(value, col.type)
    if op in ("in", "not in"):
        hit = pc.is_in(col, pa.array(value, col.type)).to_numpy(zero_copy_only=False) & ~missing(col)
        return hit if op == "in" else ~hit & ~missing(col)
    fn = {"==": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal,
          ">": pc.greater, ">=": pc.greater_equal}[op]
    return pc.fill_null(fn(col, pa.scalar(value, col.type)), False).to_numpy(zero_copy_only=False) & ~missing(col)


def _time_scalar(v: str, t: pa.DataType):
    import pandas as pd     # only here: its import costs a quarter second
    ts = pd.to_datetime(v, utc=True)
    return ts.tz_convert(None).to_pydatetime() if t.tz is None else ts.to_pydatetime()


class Select(Step):
    """Keep only `columns`, in that order."""
    kind = "select"
    known = {"columns"}

    def __init__(self, params):
        super().__init__(params)
        self.columns = _columns(params)

    def output(self, kinds):
        _need(kinds, self.columns)
        why = name_clash(self.columns)
        if why:
            raise UserError(why)
        return {c: kinds[c] for c in self.columns}

    def integers(self, names):
        return names & set(self.columns)

    def run(self, table, state):
        return table.select(self.columns), state


class Rename(Step):
    """Rename columns: {"columns": {"old": "new"}}."""
    kind = "rename"
    known = {"columns"}

    def __init__(self, params):
        super().__init__(params)
        m = params.get("columns")
        if not isinstance(m, dict) or not m or not all(isinstance(v, str) and v for v in m.values()):
            raise UserError("'columns' must map old names to new names")
        self.mapping = m

    def output(self, kinds):
        _need(kinds, list(self.mapping))
        out = {self.mapping.get(c, c): k for c, k in kinds.items()}
        if len(out) != len(kinds):
            raise UserError("renaming would give two columns the same name")
        return out

    def integers(self, names):
        return {self.mapping.get(c, c) for c in names}

    def run(self, table, state):
        return table.rename_columns([self.mapping.get(c, c) for c in table.column_names]), state


class OneHot(Step):
    """One 0/1 number column per category of a text column, named "<column>_<category>".

    The categories are the most frequent values of the recent rows when the spec is
    applied (at most `max_categories`), written into the spec. A value outside them
    gives all zeros (`unseen: "zeros"`) or a 1 in "<column>_other" (`unseen: "other"`);
    a missing value gives all zeros. The original column is dropped unless `keep`.
    """
    kind = "onehot"
    known = {"column", "categories", "max_categories", "unseen", "keep"}

    def __init__(self, params):
        super().__init__(params)
        if not isinstance(params.get("column"), str):
            raise UserError("'column' is required")
        self.column = params["column"]
        self.max = int(_number(params.get("max_categories", 20), "'max_categories'"))
        if not 1 <= self.max <= 1000:
            raise UserError("'max_categories' must be between 1 and 1000")
        self.unseen = _choice(params, "unseen", ("zeros", "other"), "zeros")
        cats = params.get("categories")
        if cats is not None and (not isinstance(cats, list) or not all(isinstance(c, str) for c in cats)):
            raise UserError("'categories' must be a list of text values")
        self.categories = cats

    def names(self, cats: list[str]) -> list[str]:
        return [f"{self.column}_{c}" for c in cats] + ([f"{self.column}_other"] if self.unseen == "other" else [])

    def output(self, kinds):
        _need(kinds, [self.column], ("text",))
        out = {c: k for c, k in kinds.items() if c != self.column or self.params.get("keep")}
        # before freezing the categories are unknown; the output then shows only the "other" column
        for name in self.names(self.categories or []):
            if name in out:
                raise UserError(f"the one-hot column {name!r} would overwrite the existing column {name!r}; "
                                f"rename that one first")
            out[name] = "number"
        return out

    def needs_freeze(self):
        return self.categories is None

    def freeze(self, table):
        counts = pc.value_counts(table.column(self.column).drop_null()).to_pylist()
        counts.sort(key=lambda d: (-d["counts"], d["values"]))
        cats = [d["values"] for d in counts[:self.max]]
        if not cats:
            raise UserError(f"column {self.column!r} has no values in the recent rows to take categories from")
        return {**self.params, "categories": cats}

    def run(self, table, state):
        cats = self.categories if self.categories is not None else self.params["categories"]
        col = table.column(self.column)
        idx = pc.fill_null(pc.index_in(col, value_set=pa.array(cats, pa.string())), -1).to_numpy(zero_copy_only=False)
        hot = (idx[:, None] == np.arange(len(cats))[None, :]).astype(np.float64)
        if self.unseen == "other":
            hot = np.column_stack([hot, ((idx < 0) & ~missing(col)).astype(np.float64)])
        if not self.params.get("keep"):
            table = table.drop_columns([self.column])
        for j, name in enumerate(self.names(cats)):
            table = replace(table, name, pa.array(hot[:, j]))
        return table, state


STEPS: dict[str, type[Step]] = {s.kind: s for s in (DropMissing, FillMissing, Cast, Normalise, Clip, Derive,
                                                    Filter, Select, Rename, OneHot)}


# --- small helpers ------------------------------------------------------------------------------
def _nan_null(col):
    """NaN counts as missing (pandas' view) for float columns."""
    if pa.types.is_floating(col.type):
        return pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
    return col


def _finite(v) -> float | None:
    return float(v) if np.isfinite(v) else None


def _to_json(scalar: pa.Scalar):
    """A last value kept for forward fill, as JSON (times as microseconds)."""
    if pa.types.is_timestamp(scalar.type):
        return pc.cast(scalar, pa.int64()).as_py()
    return scalar.as_py()


def _from_json(value, t: pa.DataType) -> pa.Scalar:
    if pa.types.is_timestamp(t):
        return pa.scalar(value, pa.int64()).cast(t)
    return pa.scalar(value, t)
