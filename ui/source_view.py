"""The Sources page's view of one source: its live status, a replay's controls, removing it, and its
quarantine."""
from __future__ import annotations

import streamlit as st

from engine import SPEED_LIMITS, Engine, parse_time, recent_rate, to_csv_bytes
from ui import format as fmt
from ui.guard import guard
from ui.refresh import live_fragment
from ui.shared import SHARED
from ui.source_add import REALTIME_HELP, SPEEDS
from ui.uploads import forget_stream


def status_panel(engine: Engine, name: str, every: float | None) -> None:
    """The source's live state: rows, rate, quarantined and flagged rows, lag, a replay's progress."""
    @live_fragment(every)
    def live() -> None:
        with guard("The source status"):
            if name not in engine.names():
                st.warning(f"{name} was removed.")
                return
            snap = engine.snapshot(name)
            if snap is None:
                st.info("Starting…")
                return
            src = snap.source or {}
            st.markdown(f"{fmt.state(snap.state)} &nbsp; **{name}** · {src.get('kind', '')}"
                        + (f" · `{src['path']}`" if src.get("path") else ""))
            c = st.columns(5)
            c[0].metric("Rows", fmt.count(snap.counts["ingested"]))
            c[1].metric("Rows/s", fmt.rate(recent_rate(snap.throughput)), help="Over the last 5 seconds")
            c[2].metric("Quarantined", fmt.count(snap.counts["quarantined"]))
            c[3].metric("Flagged", fmt.count(snap.counts["flagged"]), help="Rows kept with missing values")
            c[4].metric("Lag", fmt.seconds(src.get("lag_s", 0)), help="From reading a batch to committing it")
            if src.get("kind") == "replay":
                speed = {"max": "full speed", "rows": f"{fmt.num(src.get('speed_value'))} rows/s",
                         "realtime": f"{fmt.num(src.get('speed_value'))}× real time"}.get(src.get("speed"), "")
                st.progress(float(src.get("progress", 0)),
                            text=f"{src.get('progress', 0):.0%} of the file · {speed}"
                                 + (f" · looping (pass {src.get('loops', 0) + 1})" if src.get("loop") else "")
                                 + (" · replaying stored rows (not stored again)" if src.get("replaying") else "")
                                 + f" · {fmt.size(src.get('bytes_behind', 0))} to go")
            if snap.error or src.get("last_error"):
                st.error(f"{fmt.plain(snap.error or src.get('last_error'))}. Remove the source and add it again.")
    live()


def controls(engine: Engine, name: str) -> None:
    """A replay's pause/resume, speed, loop and seek."""
    # from the source itself: right after "Start replay" the stream has no snapshot yet, and this part of
    # the page is not redrawn by the live fragment
    src = engine.source_status(name)
    if src.get("kind") != "replay":
        st.caption("Only replays have speed, seek and loop controls.")
        return
    with st.container(border=True):
        c1, c2, c3, c4 = st.columns([1, 2, 1, 1], vertical_alignment="bottom")
        paused = src.get("state") == "paused"
        ended = src.get("state") == "ended"      # nothing left to pause; seek or loop starts it again
        if c1.button("Resume" if paused else "Pause", icon=":material/play_arrow:" if paused else ":material/pause:",
                     width="stretch", disabled=ended and not paused):
            with guard("Pausing"):
                engine.resume(name) if paused else engine.pause(name)
                st.rerun()
        modes = list(SPEEDS)
        current = next((k for k, v in SPEEDS.items() if v == src.get("speed")), modes[0])
        mode = c2.selectbox("Speed", modes, index=modes.index(current), key=f"speed_mode_{name}")
        paced = SPEEDS[mode] if SPEEDS[mode] != "max" else "rows"
        shown = src.get("speed_value") if src.get("speed") == SPEEDS[mode] else None
        value = c3.number_input("rows/s" if paced == "rows" else "× real time", *SPEED_LIMITS[paced],
                                float(shown or (100.0 if paced == "rows" else 1.0)),
                                key=f"speed_value_{name}_{SPEEDS[mode]}", disabled=SPEEDS[mode] == "max",
                                help=None if paced == "rows" else REALTIME_HELP)
        if c4.button("Set speed", width="stretch"):
            with guard("Changing the speed"):
                engine.set_speed(name, SPEEDS[mode], value)
                st.toast(f"{name}: {mode.lower()}" + ("" if SPEEDS[mode] == "max" else f" {fmt.num(value)}"))
        if "seek" in engine.refused:
            st.caption(engine.refused["seek"])
            return
        s1, s2, s3, s4 = st.columns([1, 1, 2, 1], vertical_alignment="bottom")
        loop = s1.toggle("Loop", value=bool(src.get("loop")), key=f"loop_{name}")
        # asked once per change: a cluster's source shows it a second or more later, and asking again on
        # every run until then (with the rerun below) spun the page
        asked_key = f"_loop_asked_{name}"
        if st.session_state.get(asked_key) == bool(src.get("loop")):
            del st.session_state[asked_key]
        if loop != st.session_state.get(asked_key, bool(src.get("loop"))):
            with guard("Changing loop"):
                engine.set_loop(name, loop)
                st.session_state[asked_key] = loop
                st.rerun()       # Pause was drawn above for an ended replay (disabled); looping, it runs again
        by = s2.radio("Seek to", ["row", "time"], horizontal=True, key=f"seek_by_{name}")
        if by == "row":
            target = s3.number_input("Row (0 = first data row)", 0, None, 0, step=1000, key=f"seek_row_{name}")
        else:
            target = s3.text_input("Time", key=f"seek_time_{name}", placeholder="2024-01-31 12:00:00")
        if s4.button("Seek", width="stretch", icon=":material/fast_forward:"):
            with guard("Seeking"):
                if by == "row":
                    engine.seek(name, row=int(target))
                else:
                    engine.seek(name, at=parse_time(str(target)))
                st.toast(f"{name}: continuing from {by} {target}; windows restart there")
        st.caption("Seek or loop back and the rows play again through windows and charts; rows already "
                   "stored are not stored twice, so training and exports see each row of the file once.")


def remove_control(engine: Engine, name: str) -> None:
    with st.popover("Remove source", icon=":material/delete:"):
        st.write(f"Stop **{name}** and delete its stored rows and quarantine. The uploaded file stays.")
        if st.button("Remove", type="primary", key=f"remove_{name}"):
            with guard("Removing"):
                engine.remove(name)
                forget_stream(name)
                SHARED.forget(name)          # a stream added again under the name starts afresh
                st.rerun()


def quarantined(engine: Engine, name: str, show_flagged: bool):
    """The newest rows set aside, as the panel shows them."""
    frame = engine.quarantine(name, limit=1000).to_pandas()
    if not show_flagged:
        frame = frame[~frame["kept"].astype(bool)]
    frame = frame.assign(kept=frame["kept"].map({True: "flagged", False: "quarantined"}))
    frame = frame.rename(columns={"kept": "outcome", "position": "byte offset", "seen": "seen at"})
    return frame[["seen at", "outcome", "reason", "raw", "byte offset", "source"]]


def quarantine_panel(engine: Engine, name: str, every: float | None) -> None:
    """The newest rows set aside (and, on request, flagged), with their reasons, as a table and a CSV."""
    show_flagged = st.toggle("Include flagged rows (kept, with missing values)", key="quarantine_flagged")

    @live_fragment(every)
    def live() -> None:
        with guard("The quarantine"):
            snap = engine.snapshot(name) if name in engine.names() else None
            if snap is None:
                return
            # one store read serves every session watching (ui/shared.py), until rows are set aside
            counts = (snap.source or {}).get("path"), snap.counts["quarantined"], snap.counts["flagged"]
            frame = SHARED.get(("quarantine", name, show_flagged), counts,
                               lambda: quarantined(engine, name, show_flagged), fresh=0.0)
            if frame.empty:
                st.success("No quarantined rows: every row so far parsed cleanly.", icon=":material/check_circle:")
                return
            st.caption(f"Newest {fmt.rows(len(frame))} set aside (up to 1,000 shown).")
            st.dataframe(frame, hide_index=True, width="stretch", height=min(420, 38 + 35 * len(frame)),
                         column_config={"raw": st.column_config.TextColumn("raw text", width="large"),
                                        "reason": st.column_config.TextColumn(width="medium"),
                                        "byte offset": st.column_config.NumberColumn(format="%d")})
            st.download_button("Download as CSV", lambda: to_csv_bytes(frame), file_name=f"{name}-quarantine.csv",
                               mime="text/csv", icon=":material/download:", on_click="ignore")
    live()
