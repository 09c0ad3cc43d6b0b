"""No traceback reaches a page: user errors become a message, anything else a short apology."""
from __future__ import annotations

import logging
from contextlib import contextmanager

import streamlit as st

from engine import UserError
from ui.format import plain

log = logging.getLogger("rivulet.ui")


@contextmanager
def guard(what: str = "This part of the page"):
    """Show a UserError's message, or a generic one for a bug; Streamlit's own control flow passes."""
    try:
        yield
    except UserError as e:
        st.error(plain(e), icon=":material/error:")
    except Exception as e:        # a bug: logged with its traceback on the server, not shown
        log.exception("%s failed", what)
        st.error(f"{what} could not be shown ({type(e).__name__}). The engine keeps running; "
                 "try again, and check the server log if it persists.", icon=":material/bug_report:")
