"""Preprocessing steps as an analyst reads them, and the widget group that writes each kind's params."""
from __future__ import annotations

import json

import streamlit as st

from engine import EXPR_FUNCTIONS, STEP_FILTER_OPS, UserError

KINDS = {"drop_missing": "Drop rows with missing values", "fill_missing": "Fill missing values",
         "cast": "Cast types", "normalise": "Normalise (z-score, min-max)", "clip": "Clip to a range",
         "derive": "Derive a column", "filter": "Filter rows", "select": "Keep columns",
         "rename": "Rename columns", "onehot": "One-hot encode"}


def _cols(cols, shown: int = 6) -> str:
    if not cols:
        return "every column"
    cols = list(cols)
    return ", ".join(cols) if len(cols) <= shown else ", ".join(cols[:shown - 1]) + f" and {len(cols) - shown + 1} more"


def _cond(c: dict) -> str:
    for key in ("and", "or"):
        if key in c:
            return f" {key} ".join(f"({_cond(p)})" for p in c[key])
    if "not" in c:
        return f"not ({_cond(c['not'])})"
    return f"{c['column']} {c['op']}" + ("" if c["op"] in ("is missing", "not missing") else f" {c['value']!r}")


def describe(step: dict) -> str:
    """One line per step, e.g. "Normalise temperature, humidity (z-score, running statistics)"."""
    k, p = step["kind"], step.get("params", {})
    if k == "drop_missing":
        return f"Drop rows missing {'any' if p.get('how', 'any') == 'any' else 'all'} of {_cols(p.get('columns'))}"
    if k == "fill_missing":
        how = p.get("method", "value")
        what = {"value": f"with {p.get('value')!r}", "mean": f"with the {p.get('stats', 'frozen')} mean",
                "median": "with the frozen median", "ffill": "with the last value (forward fill)"}[how]
        value = p.get("value")
        cols = p.get("columns") or (list(value) if isinstance(value, dict) else [])
        if isinstance(value, dict):
            what = "with " + ", ".join(f"{v!r}" for v in dict.fromkeys(value.values()))
        return f"Fill missing {_cols(cols)} {what}"
    if k == "cast":
        return f"Cast {_cols(p.get('columns'))} to {p.get('to')}" + (f" ({p['format']})" if p.get("format") else "")
    if k == "normalise":
        method = "z-score" if p.get("method", "zscore") == "zscore" else "min-max"
        return f"Normalise {_cols(p.get('columns'))} ({method}, {p.get('stats', 'running')} statistics)"
    if k == "clip":
        return f"Clip {_cols(p.get('columns'))} to [{p.get('lower', '−∞')}, {p.get('upper', '∞')}]"
    if k == "derive":
        return f"Derive {p.get('name')} = {p.get('expr')}"
    if k == "filter":
        return f"Keep rows where {_cond(p['where'])}"
    if k == "select":
        return f"Keep only {_cols(p.get('columns'))}"
    if k == "rename":
        return "Rename " + ", ".join(f"{a} → {b}" for a, b in (p.get("columns") or {}).items())
    if k == "onehot":
        return f"One-hot encode {p.get('column')}" + (" (keep the column)" if p.get("keep") else "")
    return f"{k} {json.dumps(p)}"


def _value(text: str, kind: str):
    """A typed value from a text box, for a column of `kind`."""
    text = text.strip()
    if kind == "number":
        try:
            return float(text) if any(ch in text for ch in ".eE") else int(text)
        except ValueError:
            raise UserError(f"{text!r} is not a number; enter one like 0 or 2.5") from None
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise UserError("enter true or false")
        return text.lower() == "true"
    return text


def step_form(kind: str, kinds: dict[str, str], leave_out=()) -> dict | None:
    """Widgets for one step of `kind` over columns `kinds` (name -> kind); its params, or None if incomplete.
    `leave_out`: number columns that "every number column" does not mean (the event time, the label)."""
    names = list(kinds)
    numbers = [c for c, k in kinds.items() if k == "number"]
    every = [c for c in numbers if c not in leave_out]
    but = [c for c in numbers if c in leave_out]
    every_label = "Columns (none = every number column" + (f" but {', '.join(but)})" if but else ")")
    texts = [c for c, k in kinds.items() if k == "text"]
    c1, c2, c3 = st.columns(3)
    if kind == "drop_missing":
        cols = c1.multiselect("Columns (none = every column)", names, key="pp_dm_cols")
        how = c2.radio("Drop a row when", ["any", "all"], horizontal=True, key="pp_dm_how",
                       format_func={"any": "any is missing", "all": "all are missing"}.get)
        return {"columns": cols, "how": how} if cols else {"how": how}
    if kind == "fill_missing":
        method = c2.selectbox("With", ["value", "mean", "median", "ffill"], key="pp_fm_method",
                              format_func={"value": "a value", "mean": "the mean", "median": "the median",
                                           "ffill": "the last value (forward fill)"}.get)
        cols = c1.multiselect("Columns", numbers if method in ("mean", "median") else names, key="pp_fm_cols")
        if not cols:
            return None
        if method == "value":
            text = c3.text_input("Value", key="pp_fm_value", placeholder="0")
            if not text.strip():
                return None
            return {"columns": cols, "method": "value",
                    "value": {c: _value(text, kinds[c]) for c in cols}}
        if method == "mean":
            stats = c3.radio("Statistics", ["frozen", "running"], horizontal=True, key="pp_fm_stats",
                             help="Frozen: taken from the recent rows once, when you apply. Running: the mean "
                                  "of every earlier value, updated as rows arrive.")
            return {"columns": cols, "method": "mean", "stats": stats}
        return {"columns": cols, "method": method}
    if kind == "cast":
        cols = c1.multiselect("Columns", names, key="pp_cast_cols")
        to = c2.selectbox("To", ["number", "bool", "text", "time"], key="pp_cast_to")
        fmt = c3.text_input("Time format", key="pp_cast_format", placeholder="detected (e.g. %d/%m/%Y)",
                            disabled=to != "time",
                            help="Only for text cast to time, when its layout is not detected or day and month "
                                 "could be either way round.") if to == "time" else ""
        st.caption("Values that do not convert become missing (and are counted in the preview). A time column "
                   "cast here becomes the stream's event time when it has none.")
        return ({"columns": cols, "to": to} | ({"format": fmt.strip()} if fmt.strip() else {})) if cols else None
    if kind == "normalise":
        # none picked means all of them: a wide file (breast_cancer's 30 columns) took a click per column
        cols = c1.multiselect(every_label, numbers, key="pp_norm_cols") or every
        method = c2.radio("Method", ["zscore", "minmax"], horizontal=True, key="pp_norm_method",
                          format_func={"zscore": "z-score", "minmax": "min-max"}.get)
        stats = c3.radio("Statistics", ["running", "frozen"], horizontal=True, key="pp_norm_stats",
                         help="Running: from every row so far. Frozen: from the recent rows when you apply.")
        return {"columns": cols, "method": method, "stats": stats} if cols else None
    if kind == "clip":
        cols = c1.multiselect(every_label, numbers, key="pp_clip_cols") or every
        lower = c2.text_input("Lower (empty = none)", key="pp_clip_lower")
        upper = c3.text_input("Upper (empty = none)", key="pp_clip_upper")
        if not cols or not (lower.strip() or upper.strip()):
            return None
        out = {"columns": cols}
        if lower.strip():
            out["lower"] = _value(lower, "number")
        if upper.strip():
            out["upper"] = _value(upper, "number")
        return out
    if kind == "derive":
        name = c1.text_input("New column", key="pp_derive_name", placeholder="power_per_degree")
        expr = st.text_input("Expression", key="pp_derive_expr", placeholder="power / (temperature + 273.15)",
                             help="Arithmetic (+ - * / // % **), comparisons, and/or/not and the functions "
                                  + ", ".join(EXPR_FUNCTIONS) + " over number and bool columns; nothing else runs. "
                                  "Put a column name with spaces or signs in backticks: `mean area` / 2.")
        return {"name": name.strip(), "expr": expr} if name.strip() and expr.strip() else None
    if kind == "filter":
        column = c1.selectbox("Column", names, key="pp_filter_col")
        op = c2.selectbox("Operator", STEP_FILTER_OPS, key="pp_filter_op")
        if op in ("is missing", "not missing"):
            return {"where": {"column": column, "op": op}}
        text = c3.text_input("Value" + (" (comma separated)" if op in ("in", "not in") else ""), key="pp_filter_value")
        if not text.strip():
            return None
        kind_of = kinds.get(column, "text")
        value = ([_value(v, kind_of) for v in text.split(",") if v.strip()] if op in ("in", "not in")
                 else _value(text, kind_of) if kind_of != "time" else text.strip())
        return {"where": {"column": column, "op": op, "value": value}}
    if kind == "select":
        cols = st.multiselect("Columns to keep, in order", names, key="pp_select_cols")
        return {"columns": cols} if cols else None
    if kind == "rename":
        old = c1.selectbox("Column", names, key="pp_rename_old")
        new = c2.text_input("New name", key="pp_rename_new")
        return {"columns": {old: new.strip()}} if new.strip() else None
    if kind == "onehot":
        if not texts:
            st.info("No text columns to encode.")
            return None
        column = c1.selectbox("Column", texts, key="pp_onehot_col")
        top = c2.number_input("At most this many categories", 1, 1000, 20, key="pp_onehot_max",
                              help="The most frequent values in the recent rows when you apply.")
        keep = c3.toggle("Keep the text column", key="pp_onehot_keep")
        return {"column": column, "max_categories": int(top), "keep": keep}
    raise UserError(f"unknown step kind {kind!r}")
