"""View controls shared by the analysis pages; values live in this browser session only."""
from __future__ import annotations

import streamlit as st

from dataclasses import dataclass

from engine import BUCKET_WIDTHS, Engine, Snapshot, bucket_label, parse_time
from ui.guard import guard
from ui.refresh import keep, live_fragment, remember

WIDTHS = {bucket_label(w): w for w in BUCKET_WIDTHS}     # 1 s ... 1 h, 1 day, 1 week, 1 month
RANGES = {"Last N rows": "rows", "Last 5 min": 300, "Last 1 h": 3600, "Last 1 day": 86_400,
          "Last 7 days": 7 * 86_400, "Last 30 days": 30 * 86_400, "Last S seconds": "seconds",
          "Absolute range": "absolute"}


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


@live_fragment(1.0)
def _wait_for_rows(engine: Engine, name: str) -> None:
    """Rerun the whole page once the stream has columns, so its controls can be drawn."""
    snap = engine.snapshot(name) if name in engine.names() else None
    if snap is not None and snap.columns:
        st.rerun(scope="app")


@dataclass(frozen=True)
class TimePick:
    """What one page's time picker chose: the newest `rows`, the last `seconds` before the newest
    row's time, or the absolute range [since, until] (epoch seconds, UTC)."""
    rows: int | None = None
    seconds: float | None = None
    since: float | None = None
    until: float | None = None

    def label(self) -> str:
        from ui import format as fmt
        if self.rows is not None:
            return f"last {self.rows:,} rows"
        if self.seconds is not None:
            return f"last {fmt.seconds(self.seconds)}"
        ends = [fmt.when(t) if t is not None else "…" for t in (self.since, self.until)]
        return f"{ends[0]} to {ends[1]}"


def pick_time(prefix: str, default_rows: int = 1000) -> TimePick:
    """The page's one time picker, for all its panels: the newest N rows, a relative range (last 5 min,
    1 h, 1 day, ...) ending at the newest row's time, or an absolute range."""
    remember(f"{prefix}_range", "Last N rows", list(RANGES))
    remember(f"{prefix}_window_rows", default_rows)
    remember(f"{prefix}_window_seconds", 60)
    left, right = st.columns([1, 2], vertical_alignment="bottom")
    choice = RANGES[left.selectbox("Time range", list(RANGES), key=f"{prefix}_range", on_change=keep,
                                   args=(f"{prefix}_range",),
                                   help="Every panel of this page shows this range. Time is the stream's time "
                                        "column (else arrival time); relative ranges end at the newest row.")]
    if choice == "rows":
        rows = right.number_input("Rows", 1, 100_000, step=100, key=f"{prefix}_window_rows",
                                  on_change=keep, args=(f"{prefix}_window_rows",),
                                  help="The newest N rows (up to the 100,000 kept in memory).")
        return TimePick(rows=int(rows))
    if choice == "seconds":
        secs = right.number_input("Seconds", 1, 100 * 86_400, step=10, key=f"{prefix}_window_seconds",
                                  on_change=keep, args=(f"{prefix}_window_seconds",),
                                  help="Rows whose time lies in the last S seconds before the newest row's.")
        return TimePick(seconds=float(secs))
    if choice == "absolute":
        c1, c2 = right.columns(2)
        remember(f"{prefix}_since", "")
        remember(f"{prefix}_until", "")
        since_text = c1.text_input("From", key=f"{prefix}_since", placeholder="any (e.g. 2015-06-01)",
                                   on_change=keep, args=(f"{prefix}_since",), help="UTC, at or after.")
        until_text = c2.text_input("To", key=f"{prefix}_until", placeholder="any", on_change=keep,
                                   args=(f"{prefix}_until",), help="UTC, at or before.")
        since = until = None
        with guard("The time range"):
            since = parse_time(since_text) if since_text.strip() else None
            until = parse_time(until_text) if until_text.strip() else None
        return TimePick(since=since, until=until)
    return TimePick(seconds=float(choice))


def pick_columns(snap: Snapshot, prefix: str, limit: int = 4, label: str = "Columns") -> list[str]:
    remember(f"{prefix}_columns", snap.columns[:limit])
    kept = [c for c in st.session_state[f"{prefix}_columns"] if c in snap.columns]
    st.session_state[f"{prefix}_columns"] = kept or snap.columns[:limit]
    return st.multiselect(label, snap.columns, key=f"{prefix}_columns", on_change=keep,
                          args=(f"{prefix}_columns",))


def pick_width(box, key: str, snap: Snapshot, label: str, most: int, fill: int = 1) -> int:
    """A bucket width picker that follows the stream (the width charting all of it in at most `most`
    buckets of `fill` rows: days for weekly rows from 2018, where 10 s showed one dot) until this
    session picks one."""
    fit = bucket_label(snap.fitting_width(most, fill) or 10)
    if not st.session_state.get("_picked_" + key):
        st.session_state["_keep_" + key] = fit
    remember(key, fit, list(WIDTHS))
    return WIDTHS[box.selectbox(label, list(WIDTHS), key=key, on_change=_picked, args=(key,))]


def _picked(key: str) -> None:
    st.session_state["_picked_" + key] = True
    keep(key)


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
