"""View filters of this browser session: column/operator/value rows and an optional time range.

They narrow what this session sees on Aggregates and Correlations; the stream
itself and other sessions are unaffected.
"""
from __future__ import annotations

import streamlit as st

from engine import FILTER_OPS, Filter, Snapshot, parse_time, row_mask
from ui.guard import guard


def filters_panel(snap: Snapshot) -> tuple[list[Filter], float | None, float | None]:
    """Draw the filter editor; returns the filters and the time range (epoch seconds) to apply."""
    kept: list[dict] = st.session_state.setdefault("view_filters", [])
    active = [Filter(**f) for f in kept if f["column"] in snap.schema.names]
    label = f"View filters · {len(active)} active" if active else "View filters"
    with st.expander(label, icon=":material/filter_alt:", expanded=bool(active)):
        st.caption("Only this browser session sees these; the stream and other viewers are unaffected.")
        for i, f in enumerate(active):
            c1, c2 = st.columns([6, 1], vertical_alignment="center")
            c1.markdown(f"`{f.label()}`")
            if c2.button("Remove", key=f"filter_remove_{i}", icon=":material/close:"):
                kept.remove(f.__dict__)
                st.rerun()
        with st.form("add_filter", border=False):
            c1, c2, c3, c4 = st.columns([2, 1, 2, 1], vertical_alignment="bottom")
            column = c1.selectbox("Column", snap.schema.names, key="filter_column")
            op = c2.selectbox("Operator", FILTER_OPS, key="filter_op")
            value = c3.text_input("Value", placeholder="e.g. 20, north, 2024-01-31 12:00", key="filter_value")
            if c4.form_submit_button("Add filter", icon=":material/add:", width="stretch"):
                with guard("The filter"):
                    row_mask(snap.schema.empty_table(), [Filter(column, op, value)])   # a bad value fails now
                    kept.append({"column": column, "op": op, "value": value})
                    st.rerun()
        c1, c2 = st.columns(2)
        since_text = c1.text_input("From time", key="view_since", placeholder="any (e.g. 2024-01-31 12:00)",
                                   help="Rows at or after this time, by the stream's time column "
                                        "(or arrival time when it has none), UTC.")
        until_text = c2.text_input("To time", key="view_until", placeholder="any")
    since = until = None
    with guard("The time range"):
        since = parse_time(since_text) if since_text.strip() else None
        until = parse_time(until_text) if until_text.strip() else None
    return active, since, until


def describe(filters: list[Filter], since: float | None, until: float | None) -> str:
    parts = [f.label() for f in filters]
    if since is not None or until is not None:
        parts.append("time range")
    return ("filtered by " + ", ".join(parts)) if parts else "no filters"


def window_view(engine, name: str, rows: int | None, seconds: float | None, filters: list[Filter],
                since: float | None, until: float | None):
    """(snapshot, this session's view of its window) with a caption saying what it holds; (None, None)
    after saying so when the stream was removed."""
    from engine import view
    from ui import format as fmt
    from ui.controls import window_label
    current = engine.snapshot(name) if name in engine.names() else None
    if current is None:
        st.warning(f"{name} was removed.")
        return None, None
    v = view(current, rows=rows, seconds=seconds, filters=filters, since=since, until=until)
    st.caption(f"**{fmt.count(v.rows)}** rows in the window ({window_label(rows, seconds)}), "
               f"{describe(filters, since, until)} · updated {fmt.clock()}")
    return current, v
