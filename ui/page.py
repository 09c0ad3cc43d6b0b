"""The top of every page: browser-tab title, heading, one-line summary, the shared engine and the
sidebar's refresh control."""
from __future__ import annotations

import streamlit as st

from streamlit.runtime.pages_manager import PagesManager

from engine import Engine
from ui.engine import get_engine
from ui.refresh import live_every


def header(title: str, summary: str, tab: str | None = None) -> tuple[Engine | None, float | None]:
    """Draw the page's header; (engine or None when it could not start, seconds between refreshes or None)."""
    through_app()
    st.set_page_config(page_title=f"Rivulet · {tab or title}", page_icon="🌊", layout="wide")
    st.title(title)
    st.caption(summary)
    return get_engine(), live_every()


def through_app() -> None:
    """Run this page through app.py. Until app.py has called st.navigation once, Streamlit serves a page's
    URL from the pages/ folder by itself (its older multipage mode, for every session): opened first after a
    start, /Models ran without app.py's turns and navigation (the sidebar listed "app", no icons) until
    someone opened /. Leaving that mode makes the rerun start at app.py, which routes to this page. Once a
    session: AppTest goes back to that mode on every run, and a rerun there would drop a click."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if not st.session_state.get("_through_app"):
            st.session_state["_through_app"] = True
            st.rerun()
