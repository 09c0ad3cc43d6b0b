"""The top of every page: browser-tab title, heading, one-line summary, the shared engine and the
sidebar's refresh control."""
from __future__ import annotations

import streamlit as st

from engine import Engine
from ui.engine import get_engine
from ui.refresh import live_every


def header(title: str, summary: str, tab: str | None = None) -> tuple[Engine | None, float | None]:
    """Draw the page's header; (engine or None when it could not start, seconds between refreshes or None)."""
    st.set_page_config(page_title=f"Rivulet · {tab or title}", page_icon="🌊", layout="wide")
    st.title(title)
    st.caption(summary)
    return get_engine(), live_every()
