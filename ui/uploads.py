"""Streamlit keeps every uploaded file's bytes in memory for as long as the browser session lives,
even after the widget that took it is gone. Once a page has what it needs from a file (copied to
disk, or imported), it drops them here; the widget keeps showing the file's name."""
from __future__ import annotations

from typing import Callable

from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFileRec


def releaser(file) -> Callable[[], None]:
    """A function that drops `file`'s bytes from the server's memory; callable from any thread.

    The record stays, empty, under the same id, so the widget still returns the file (of size 0)
    and the page can tell it is the one already taken."""
    ctx = get_script_run_ctx()
    if ctx is None or not getattr(file, "file_id", None):
        return lambda: None
    store, session, empty = ctx.uploaded_file_mgr, ctx.session_id, UploadedFileRec(file.file_id, file.name, file.type, b"")
    return lambda: store.add_file(session, empty)
