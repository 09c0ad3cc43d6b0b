"""Uploaded files, for pages. Served by `streamlit run app.py`, an upload's bytes go to disk as they arrive
(ui/upload_route.py) and the widget's file is empty: `opened` gives the file on disk. Otherwise
(another server) Streamlit keeps every uploaded file's bytes in memory for as long as the browser
session lives, even after the widget that took it is gone; once a page has what it needs from a
file (copied to disk, or imported), it drops them here; the widget keeps showing the file's name."""
from __future__ import annotations

from typing import Callable

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.uploaded_file_manager import UploadedFileRec

from engine import Spool
from ui import upload_route

SPOOLS = "upload_spools"      # session state: file id -> Spool, this session's uploads


def spooled_uploader(key: str, data_dir: str, **uploader) -> list[Spool]:
    """A multi-file uploader whose files are copied to disk as they arrive (off the page's thread, one
    at a time server-wide) and whose bytes leave memory after: the Spool of each file it shows."""
    spools = session_spools()
    drop_taken(key, {fid for fid, sp in spools.items() if sp.state not in ("queued", "saving")})
    files = st.file_uploader(key=key, accept_multiple_files=True, **uploader) or []
    held = {f.file_id: f for f in st.session_state.get(key) or []}    # the widget's own objects; `files` copies them
    ids = {f.file_id for f in files}
    if ids - set(spools):                         # new files: earlier outcomes have been read
        for fid in [fid for fid, sp in spools.items() if sp.state in ("started", "failed") and fid not in ids]:
            del spools[fid]
    for f in files:
        if f.file_id in spools:
            continue
        got = on_disk(f)
        if got is not None:         # copied from the received file, which goes once copied
            src = open(got.path, "rb")
            spools[f.file_id] = Spool(src, f.name, data_dir, got.size, release=forgetter(f, src))
        else:
            spools[f.file_id] = Spool(f, f.name, data_dir, f.size,
                                      release=releaser(f, *([held[f.file_id]] if f.file_id in held else [])))
    for fid in [fid for fid, sp in spools.items() if fid not in ids and not sp.asked and not sp.error]:
        spools.pop(fid).discard()                 # removed from the widget before it was started
    return [spools[f.file_id] for f in files]


def on_disk(file) -> upload_route.Received | None:
    """Where an uploaded file's bytes went, when the upload route wrote them to disk."""
    ctx = get_script_run_ctx()
    return None if ctx is None or file is None else upload_route.received(ctx.session_id, file.file_id)


def opened(file):
    """A readable binary file with an uploaded file's bytes: the received file on disk, or the widget's own."""
    got = on_disk(file)
    return file if got is None else open(got.path, "rb")


def forgetter(file, src) -> Callable[[], None]:
    """A function that closes `src` and deletes `file`'s received copy on disk; callable from any thread."""
    session_id, file_id = get_script_run_ctx().session_id, file.file_id

    def forget() -> None:
        src.close()
        upload_route.forget(session_id, file_id)
    return forget


def session_spools() -> dict[str, Spool]:
    return st.session_state.setdefault(SPOOLS, {})


def forget_stream(name: str) -> None:
    """A removed stream's uploads leave this session's list."""
    spools = session_spools()
    for fid in [fid for fid, sp in spools.items() if sp.stream == name]:
        del spools[fid]


def releaser(file, *copies) -> Callable[[], None]:
    """A function that drops `file`'s bytes from the server's memory; callable from any thread.

    Streamlit's record stays, empty, under the same id, so the widget still returns the file (of
    size 0) and the page can tell it is the one already taken. The objects that hold the bytes
    are emptied too: `file` (the page's copy: a widget hands out a deep copy of its value on
    every run) and `copies` (the widget's own value, `st.session_state[key]`, which stays until
    the browser next sends its widgets). Emptied rather than closed, as the next run copies them."""
    ctx = get_script_run_ctx()
    holders = [file, *copies]

    def release() -> None:
        if ctx is not None and getattr(file, "file_id", None):
            ctx.uploaded_file_mgr.add_file(ctx.session_id, UploadedFileRec(file.file_id, file.name, file.type, b""))
        for held in holders:
            empty(held)
    return release


def drop_taken(key: str, taken) -> None:
    """Empty the objects widget `key` holds for files already taken (ids in `taken`). Each run the
    browser asks for (live refreshes too) brings the widget's value again, read anew from the
    server's record; one read before that record was emptied keeps the bytes until emptied here."""
    for held in st.session_state.get(key) or []:
        if getattr(held, "file_id", None) in taken:
            empty(held)


def empty(held) -> None:
    try:
        held.seek(0)
        held.truncate(0)
    except (ValueError, BufferError):       # closed, or a view of it is in use: it goes with its run
        pass
