"""The sidebar control every page shares: how often live parts refresh, or paused.

Each browser session has its own setting; it is kept outside widget state so it
survives moving between pages.
"""
from __future__ import annotations

import functools

import streamlit as st

from ui.turns import turn

CHOICES = {"0.5 s": 0.5, "1 s": 1.0, "2 s": 2.0, "5 s": 5.0, "10 s": 10.0, "30 s": 30.0}


def remember(key: str, default, options=None) -> None:
    """Seed widget `key` from this session's kept value (widget state is dropped between pages)."""
    kept = st.session_state.setdefault("_keep_" + key, default)
    if options is not None and kept not in options:
        kept = default if default in options else (options[0] if options else None)
    st.session_state[key] = kept


def keep(key: str) -> None:
    st.session_state["_keep_" + key] = st.session_state[key]


def live_every() -> float | None:
    """Draw the refresh control; seconds between refreshes, or None when paused."""
    with st.sidebar:
        st.subheader("Live refresh")
        remember("refresh_live", True)
        remember("refresh_every", "1 s", list(CHOICES))
        live = st.toggle("Live", key="refresh_live", on_change=keep, args=("refresh_live",),
                         help="Pause to freeze the charts while you read them; the streams keep flowing.")
        st.select_slider("Refresh every", list(CHOICES), key="refresh_every", disabled=not live,
                         on_change=keep, args=("refresh_every",))
        if not live:
            st.button("Refresh now", icon=":material/refresh:", width="stretch")
    return CHOICES[st.session_state["refresh_every"]] if live else None


def live_fragment(every: float | None):
    """`st.fragment(run_every=every)` whose runs take their turn after the server's full runs
    (ui/turns.py), so many sessions refreshing never crowd out a page being opened."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            with turn(urgent=False):
                return fn(*args, **kwargs)
        return st.fragment(run_every=every)(run)
    return wrap
