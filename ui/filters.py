"""View filters of this browser session (column/operator/value rows), and the view a page's panels share.

They narrow what this session sees on Aggregates and Correlations; the stream
itself and other sessions are unaffected. The time range is the page's time
picker (ui/controls.pick_time).
"""
from __future__ import annotations

import streamlit as st

from engine import FILTER_OPS, Filter, Snapshot, row_mask
from ui.guard import guard


def filters_panel(snap: Snapshot) -> list[Filter]:
    """Draw the filter editor; returns the filters to apply."""
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
    return active


def describe(filters: list[Filter]) -> str:
    return ("filtered by " + ", ".join(f.label() for f in filters)) if filters else "no filters"


def latest(engine, name: str):
    """The stream's newest snapshot; None after saying so when the stream was removed."""
    current = engine.snapshot(name) if name in engine.names() else None
    if current is None:
        st.warning(f"{name} was removed.")
    return current


def window_of(snap: Snapshot, pick, filters: list[Filter]):
    """The page's view of `snap`: the picked time range, filtered."""
    from engine import BUFFER_ROWS, view
    absolute = pick.rows is None and pick.seconds is None
    return view(snap, rows=BUFFER_ROWS if absolute else pick.rows, seconds=pick.seconds, filters=filters,
                since=pick.since, until=pick.until)


def window_caption(snap: Snapshot, v, pick, filters: list[Filter]) -> None:
    """Say what the window holds."""
    from ui import format as fmt
    clock = "" if pick.rows is not None else \
        f", by {'time column ' + repr(snap.time_column) if snap.time_column else 'arrival time'}"
    st.caption(f"**{fmt.count(v.rows)}** rows in the window ({pick.label()}{clock}), "
               f"{describe(filters)} · updated {fmt.clock()}")
