"""The one engine per server process, shared by every browser session."""
from __future__ import annotations

import os
import threading

import streamlit as st

from engine import Engine, UserError, open_engine
from ui.auth import require_sign_in
from ui.format import plain

_lock = threading.Lock()


def _close(engine: Engine) -> None:
    engine.close()


@st.cache_resource(show_spinner="Starting the engine…", on_release=_close)
def _shared_engine(data_dir: str | None, demo: bool) -> Engine:
    # cache_resource may run this for two first sessions at once; the lock keeps it to one engine
    with _lock:
        return open_engine(data_dir, demo=demo)     # RIVULET_CLUSTER: streams run on the cluster


def get_engine(quiet: bool = False) -> Engine | None:
    """The shared engine, or None after showing why it could not start (unless `quiet`: the page
    shows it once). Stops at sign-in when it is on."""
    require_sign_in(first=False)
    demo = os.environ.get("RIVULET_DEMO", "1") != "0"
    try:
        return _shared_engine(os.environ.get("RIVULET_DATA_DIR"), demo)
    except UserError as e:
        if not quiet:
            st.error(f"The engine could not start: {plain(e)}")
        return None
