"""View controls shared by the analysis pages; values live in this browser session only."""
from __future__ import annotations

import streamlit as st

from engine import Engine, Snapshot
from ui.refresh import keep, remember

WIDTHS = {"1 s": 1, "10 s": 10, "1 min": 60, "10 min": 600, "1 h": 3600}


def pick_stream(engine: Engine) -> tuple[str | None, Snapshot | None]:
    """The stream this session looks at, with its latest snapshot (None when there is none yet)."""
    names = engine.names()
    if not names:
        st.info("No streams yet. Upload a CSV on the Sources page to start one.", icon=":material/info:")
        st.page_link("pages/1_Sources.py", label="Go to Sources", icon=":material/upload_file:")
        return None, None
    remember("view_stream", names[0], names)
    name = st.selectbox("Stream", names, key="view_stream", on_change=keep, args=("view_stream",))
    snap = engine.snapshot(name)
    if snap is None or not snap.columns:
        st.info(f"{name} has no numeric rows yet; this view fills in as soon as they arrive.",
                icon=":material/hourglass_empty:")
        _wait_for_rows(engine, name)
        return name, None
    return name, snap


def stream_row(engine: Engine):
    """The stream picker in the left third of a row: (name, snapshot, the row's other two thirds)."""
    left, right = st.columns([1, 2])
    with left:
        name, snap = pick_stream(engine)
    return name, snap, right


@st.fragment(run_every=1.0)
def _wait_for_rows(engine: Engine, name: str) -> None:
    """Rerun the whole page once the stream has columns, so its controls can be drawn."""
    snap = engine.snapshot(name) if name in engine.names() else None
    if snap is not None and snap.columns:
        st.rerun(scope="app")


def pick_window(prefix: str, default_rows: int = 1000) -> tuple[int | None, float | None]:
    """Last N rows or last S seconds: returns (rows, seconds), one of them None."""
    kinds = ["Last N rows", "Last S seconds"]
    remember(f"{prefix}_window_kind", kinds[0], kinds)
    remember(f"{prefix}_window_rows", default_rows)
    remember(f"{prefix}_window_seconds", 60)
    kind = st.radio("Window", kinds, key=f"{prefix}_window_kind", horizontal=True,
                    on_change=keep, args=(f"{prefix}_window_kind",))
    if kind == kinds[0]:
        rows = st.number_input("Rows in the window", 1, 100_000, step=100, key=f"{prefix}_window_rows",
                               on_change=keep, args=(f"{prefix}_window_rows",),
                               help="Statistics over the newest N rows (up to the 100,000 kept in memory).")
        return int(rows), None
    secs = st.number_input("Seconds in the window", 1, 86_400, step=10, key=f"{prefix}_window_seconds",
                           on_change=keep, args=(f"{prefix}_window_seconds",),
                           help="Rows whose time (the stream's time column, else arrival time) lies in "
                                "the last S seconds.")
    return None, float(secs)


def pick_columns(snap: Snapshot, prefix: str, limit: int = 4, label: str = "Columns") -> list[str]:
    remember(f"{prefix}_columns", snap.columns[:limit])
    kept = [c for c in st.session_state[f"{prefix}_columns"] if c in snap.columns]
    st.session_state[f"{prefix}_columns"] = kept or snap.columns[:limit]
    return st.multiselect(label, snap.columns, key=f"{prefix}_columns", on_change=keep,
                          args=(f"{prefix}_columns",))


def window_label(rows: int | None, seconds: float | None) -> str:
    from ui import format as fmt
    return f"last {rows:,} rows" if rows is not None else f"last {fmt.seconds(seconds)}"


def flash(key: str, kind: str, text: str) -> None:
    """A message to show once, on the next run of the page (an action usually ends with st.rerun())."""
    st.session_state[f"_flash_{key}"] = (kind, text)


def show_flash(key: str) -> None:
    kept = st.session_state.pop(f"_flash_{key}", None)
    if kept:
        kind, text = kept
        {"success": st.success, "info": st.info, "error": st.error}[kind](
            text, icon={"success": ":material/check_circle:", "info": ":material/info:",
                        "error": ":material/error:"}[kind])
