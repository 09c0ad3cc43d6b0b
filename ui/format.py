"""Numbers, durations, states and model names as an analyst reads them."""
from __future__ import annotations

import math
import re
import time

STATE_COLOURS = {"running": "green", "ended": "blue", "paused": "orange", "error": "red",
                 "restoring": "violet", "waiting": "gray"}
ALGORITHMS = {"logreg": "Logistic regression", "svm": "SVM (RBF kernel)", "svm-linear": "Linear SVM",
              "rf": "Random forest", "hgb": "Gradient boosting", "sgd": "SGD linear model",
              "ridge": "Ridge regression"}


MARKDOWN = re.compile(r"([\\`*_\[\]()<>!|~$:#.&{}+\-])")


def plain(text) -> str:
    """`text` shown as itself inside Streamlit markdown (st.error, st.caption, ...): model cards and
    file names come from uploads, so `[x](http://...)` or `![x](...)` must not become a link or an
    image, and `__class__` not bold. One line."""
    return MARKDOWN.sub(r"\\\1", " ".join(str(text).split()))


def frame(table):
    """A pyarrow table as pandas for st.dataframe: integer columns stay integers where values are
    missing (nullable Int64; plain to_pandas makes them floats, shown as 3.0)."""
    import pandas as pd
    import pyarrow as pa
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def num(x) -> str:
    """A statistic: thousands separators for big values, 4 significant digits for small ones, whole numbers bare."""
    if x is None:
        return "—"
    x = float(x)
    if not math.isfinite(x):
        return "—"
    a = abs(x)
    if a >= 1e5 or x == int(x):          # a whole number as one (max 94, not 94.00; 10 rows/s)
        return f"{x:,.0f}"
    if a >= 1000:
        return f"{x:,.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}" if a else "0"


def count(n) -> str:
    return "—" if n is None else f"{int(n):,}"


def rows(n: int) -> str:
    """"1 row", "2,000 rows"."""
    return f"{int(n):,} row{'' if int(n) == 1 else 's'}"


def rate(r) -> str:
    r = float(r or 0)
    return f"{r:,.0f}" if r >= 100 else f"{r:,.1f}"


def seconds(s, short: bool = False) -> str:
    """A duration; `short` keeps only the largest unit (for a narrow metric card)."""
    if s is None:
        return "—"
    s = float(s)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.0f} s" if s == int(s) or s >= 10 else f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min" + (f" {int(s % 60)} s" if int(s % 60) and not short else "")
    if s < 86400:
        return f"{int(s // 3600)} h" + (f" {int(s % 3600 // 60)} min" if int(s % 3600 // 60) and not short else "")
    return f"{int(s // 86400)} d" + (f" {int(s % 86400 // 3600)} h" if int(s % 86400 // 3600) and not short else "")


def when(t: float) -> str:
    """An epoch time as UTC date (and time of day when it has one)."""
    import datetime as dt
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    return d.strftime("%Y-%m-%d") if d.time() == dt.time(0) else d.strftime("%Y-%m-%d %H:%M:%S")


def size(n) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


def state(s: str | None) -> str:
    """A coloured state label in Streamlit markdown."""
    s = s or "waiting"
    return f":{STATE_COLOURS.get(s, 'gray')}[● {s}]"


def clock(ts: float | None = None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def moment(ts: float) -> str:
    """The clock for a time today, with its date before it otherwise (a deployment days ago)."""
    same_day = time.localtime(ts)[:3] == time.localtime()[:3]
    return clock(ts) if same_day else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def algorithm(key: str) -> str:
    """An algorithm's name, e.g. "Random forest" for "rf"; unknown keys as they are."""
    return ALGORITHMS.get(key, key)


def score(x) -> str:
    """A model score: three decimals, so cards and tables line up."""
    return "—" if x is None else f"{x:.3f}"


def params(p: dict | None) -> str:
    """Hyperparameters as "C=1.0, gamma=scale", or "defaults"."""
    return ", ".join(f"{k}={v}" for k, v in (p or {}).items()) or "defaults"
