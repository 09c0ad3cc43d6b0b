"""Sources: upload and replay CSVs, control each replay, read the quarantine."""
from __future__ import annotations

import streamlit as st

from ui.guard import guard
from ui.page import header
from ui.refresh import keep, remember
from ui.source_add import tail_panel, upload_panel
from ui.source_view import controls, quarantine_panel, remove_control, status_panel

engine, every = header(
    "Sources",
    "Add data to the engine and control how it flows. Every browser session sees the same sources.")

if engine is not None:
    tabs = ["Upload CSV"] + (["Tail a file"] if hasattr(engine, "add_tail") else [])
    with st.container(border=True):
        st.subheader("Add a source")
        panes = st.tabs(tabs)
        with panes[0]:
            upload_panel(engine)
        if len(panes) > 1:
            with panes[1]:
                tail_panel(engine)

    st.subheader("Sources")
    names = engine.names()
    if not names:
        st.info("No sources yet: upload a CSV above to start one.", icon=":material/info:")
    else:
        remember("source_stream", names[-1], names)
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        name = c1.selectbox("Source", names, key="source_stream", on_change=keep, args=("source_stream",))
        with c2:
            remove_control(engine, name)
        status_panel(engine, name, every)
        with guard("The controls"):
            controls(engine, name)
        st.subheader("Quarantine")
        quarantine_panel(engine, name, every)
