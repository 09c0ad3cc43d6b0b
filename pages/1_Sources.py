"""Sources: upload and replay CSVs, control each replay, read the quarantine."""
from __future__ import annotations

import math

import streamlit as st

from engine import (SPEED_LIMITS, TIME_FORMATS, Speed, WindowSpec, parse_time, recent_rate,
                    start_replay, time_example, to_csv_bytes, upload_limit_bytes)
from ui import format as fmt
from ui.guard import guard
from ui.page import header
from ui.refresh import keep, live_fragment, remember
from ui.shared import SHARED
from ui.uploads import forget_stream, session_spools, spooled_uploader

engine, every = header(
    "Sources",
    "Add data to the engine and control how it flows. Every browser session sees the same sources.")
SPEEDS = {"Full speed": "max", "Rows per second": "rows", "× real time": "realtime"}
AUTO_TIME = "(first column of dates or times)"
AUTO_FORMAT = "(detected)"


def time_format_box(box, key: str) -> str | None:
    """A strptime pattern picked from the common ones (or typed), None to detect it."""
    choice = box.selectbox("Time format", [AUTO_FORMAT, *TIME_FORMATS], key=key, accept_new_options=True,
                           format_func=lambda p: p if p == AUTO_FORMAT else f"{p}  ({time_example(p)})",
                           help="How the time column writes its dates, when it is not detected or when "
                                "day and month could be either way round (01/02/2012). Type a pattern "
                                "such as %d/%m/%Y %H:%M for another layout.")
    return None if choice == AUTO_FORMAT else choice


def upload_panel() -> None:
    limit_mb = upload_limit_bytes() / 1024 / 1024
    st.session_state.setdefault("upload_round", 0)
    chosen = spooled_uploader(f"upload_{st.session_state.upload_round}", engine.data_dir, label="CSV files",
                              type=["csv", "tsv", "txt"], max_upload_size=max(1, math.ceil(limit_mb)))
    columns = None
    if chosen:
        with guard("Reading the file's header"):
            columns = chosen[0].columns()
        if columns is not None:
            st.caption(f"{chosen[0].name}: " + ", ".join(
                f"**{c.name}** ({c.kind}{', ' + c.format if c.format else ''})" for c in columns.columns))
    c1, c2, c3 = st.columns([2, 1, 2])
    mode = c1.radio("Speed", list(SPEEDS), horizontal=True, key="upload_speed",
                    help="Full speed reads as fast as the engine can; rows per second paces the replay; "
                         "× real time follows the gaps between the file's timestamps.")
    value = 0.0
    if SPEEDS[mode] == "rows":
        value = c2.number_input("Rows per second", *SPEED_LIMITS["rows"], 100.0, step=10.0, key="upload_rows_per_s")
    elif SPEEDS[mode] == "realtime":
        value = c2.number_input("Multiple of real time", *SPEED_LIMITS["realtime"], 1.0, step=0.5,
                                key="upload_multiple")
    # dates and times first; numbers are epoch seconds (or ms); text whose layout was not detected
    times = sorted((c for c in columns.columns if c.kind != "bool"), key=lambda c: ("time", "number", "text").index(
        c.kind)) if columns else []
    time_column = c3.selectbox("Time column", [AUTO_TIME, *(c.name for c in times)], key="upload_time_column",
                               help="Gives rows their event time: used for × real time, seeking to a time, "
                                    "time ranges and buckets. A number column is read as epoch seconds "
                                    "(milliseconds above 1e11).")
    c4, c5, c7, c6 = st.columns([2, 1, 2, 2])
    time_format = time_format_box(c7, "upload_time_format") if time_column != AUTO_TIME else None
    if "loop" in engine.refused:
        loop = False
        c4.caption(engine.refused["loop"])
    else:
        loop = c4.toggle("Loop at the end", key="upload_loop")
    window_rows = c5.number_input("Window (rows)", 10, 100_000, 10_000, step=1000, key="upload_window",
                                  help="The stream's own window; each page can also look at other windows.")
    spread = {}
    if engine.on_cluster:
        p1, p2, p3 = st.columns([1, 2, 4], vertical_alignment="bottom")
        partitions = int(p1.number_input("Partitions", 1, 64, 1, key="upload_partitions",
                                         help="Partition workers on the cluster. One keeps count windows and running "
                                              "preprocessing statistics exact; with more they are per partition."))
        keys = [c.name for c in columns.columns] if columns else []
        key = p2.selectbox("Partition key", ["round-robin", *keys], key="upload_partition_key",
                           disabled=partitions == 1,
                           help="Rows with the same value go to the same partition, so a group-by on it is "
                                "each partition's own.")
        p3.caption("Time windows, buckets, group-bys and cumulative statistics merge exactly over partitions.")
        spread = {"partitions": partitions, "partition_key": None if key == "round-robin" or partitions == 1 else key}
    startable = [sp for sp in chosen if sp.state in ("queued", "saving", "saved")]
    if c6.button("Start replay", type="primary", icon=":material/play_arrow:", disabled=not startable):
        for sp in startable:        # now if saved, else as soon as its copy ends
            start_replay(engine, sp, speed=Speed.parse(SPEEDS[mode], value), loop=loop,
                         time_column=None if time_column == AUTO_TIME else time_column, time_format=time_format,
                         window=WindowSpec("count", int(window_rows)), **spread)
            if sp.stream:
                keep_selection(sp.stream)
        st.session_state.upload_round += 1            # a fresh uploader: a second click cannot start it twice
        st.rerun()
    upload_status(session_spools())


def upload_status(spools: dict) -> None:
    """Each upload of this session: waiting for its copy, saving, saved, started or why not;
    refreshed while any is under way, then one full run to show the new sources."""
    busy = any(sp.pending for sp in spools.values())

    @live_fragment(0.5 if busy else None)
    def status() -> None:
        for sp in spools.values():
            if sp.state == "queued":
                st.info(f"{sp.name}: another upload is being saved; it starts when that one is done.",
                        icon=":material/hourglass_empty:")
            elif sp.state == "saving":
                st.progress(sp.copied / sp.size if sp.size else 0.0, text=f"Saving {sp.name}")
            elif sp.state == "saved":
                st.caption(f"{sp.name} is ready ({fmt.size(sp.size)}); press Start replay.")
            elif sp.state == "starting":
                st.caption(f"Starting {sp.name}…")
            elif sp.state == "started":
                st.success(f"Replaying {sp.name} → stream **{sp.stream}**", icon=":material/check_circle:")
            else:
                st.error(fmt.plain(sp.error), icon=":material/error:")
        if busy and not any(sp.pending for sp in spools.values()):
            started = [sp.stream for sp in spools.values() if sp.state == "started"]
            if started:
                keep_selection(started[-1])
            st.rerun()
    status()


def tail_panel() -> None:
    roots = engine.roots          # RIVULET_DATA_ROOTS, or the data folder; add_tail refuses paths outside
    st.caption("Follow a file, a glob (logs/*.csv) or a folder that another program appends to. "
               "Rotation and restarts are handled." +
               (f" Allowed folders: {', '.join(roots)}." if roots else ""))
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    path = c1.text_input("Path, glob or folder", key="tail_path", placeholder="/data/incoming/*.csv")
    kind = c2.radio("Format", ["csv", "jsonl"], horizontal=True, key="tail_format")
    t1, t2 = st.columns([3, 2], vertical_alignment="bottom")
    time_column = t1.text_input("Time column", key="tail_time_column", placeholder="the first column of dates or times",
                                help="The column that gives rows their event time; checked when the first rows "
                                     "arrive.").strip() or None
    time_format = time_format_box(t2, "tail_time_format") if time_column else None
    if c3.button("Start tailing", type="primary", icon=":material/play_arrow:", disabled=not path.strip()):
        with guard("Starting the tail"):
            name = engine.add_tail(path.strip(), fmt=kind, time_column=time_column, time_format=time_format)
            keep_selection(name)
            st.success(f"Tailing {path} as stream **{name}**")


def keep_selection(name: str) -> None:
    st.session_state["_keep_source_stream"] = name


def status_panel(name: str) -> None:
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


def controls(name: str) -> None:
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
                                key=f"speed_value_{name}_{SPEEDS[mode]}", disabled=SPEEDS[mode] == "max")
        if c4.button("Set speed", width="stretch"):
            with guard("Changing the speed"):
                engine.set_speed(name, SPEEDS[mode], value)
                st.toast(f"{name}: {mode.lower()}" + ("" if SPEEDS[mode] == "max" else f" {fmt.num(value)}"))
        if "seek" in engine.refused:
            st.caption(engine.refused["seek"])
            return
        s1, s2, s3, s4 = st.columns([1, 1, 2, 1], vertical_alignment="bottom")
        loop = s1.toggle("Loop", value=bool(src.get("loop")), key=f"loop_{name}")
        if loop != bool(src.get("loop")):
            with guard("Changing loop"):
                engine.set_loop(name, loop)
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


def remove_control(name: str) -> None:
    with st.popover("Remove source", icon=":material/delete:"):
        st.write(f"Stop **{name}** and delete its stored rows and quarantine. The uploaded file stays.")
        if st.button("Remove", type="primary", key=f"remove_{name}"):
            with guard("Removing"):
                engine.remove(name)
                forget_stream(name)
                SHARED.forget(name)          # a stream added again under the name starts afresh
                st.rerun()


def quarantined(name: str, show_flagged: bool):
    """The newest rows set aside, as the panel shows them."""
    frame = engine.quarantine(name, limit=1000).to_pandas()
    if not show_flagged:
        frame = frame[~frame["kept"].astype(bool)]
    frame = frame.assign(kept=frame["kept"].map({True: "flagged", False: "quarantined"}))
    frame = frame.rename(columns={"kept": "outcome", "position": "byte offset", "seen": "seen at"})
    return frame[["seen at", "outcome", "reason", "raw", "byte offset", "source"]]


def quarantine_panel(name: str) -> None:
    show_flagged = st.toggle("Include flagged rows (kept, with missing values)", key="quarantine_flagged")

    @live_fragment(every)
    def live() -> None:
        with guard("The quarantine"):
            snap = engine.snapshot(name) if name in engine.names() else None
            if snap is None:
                return
            # one store read serves every session watching (ui/shared.py), until rows are set aside
            counts = (snap.source or {}).get("path"), snap.counts["quarantined"], snap.counts["flagged"]
            frame = SHARED.get(("quarantine", name, show_flagged), counts, lambda: quarantined(name, show_flagged),
                               fresh=0.0)
            if frame.empty:
                st.success("No quarantined rows: every row so far parsed cleanly.", icon=":material/check_circle:")
                return
            st.caption(f"Newest {len(frame):,} rows set aside (up to 1,000 shown).")
            st.dataframe(frame, hide_index=True, width="stretch", height=min(420, 38 + 35 * len(frame)),
                         column_config={"raw": st.column_config.TextColumn("raw text", width="large"),
                                        "reason": st.column_config.TextColumn(width="medium"),
                                        "byte offset": st.column_config.NumberColumn(format="%d")})
            st.download_button("Download as CSV", lambda: to_csv_bytes(frame), file_name=f"{name}-quarantine.csv",
                               mime="text/csv", icon=":material/download:", on_click="ignore")
    live()


if engine is not None:
    tabs = ["Upload CSV"] + (["Tail a file"] if hasattr(engine, "add_tail") else [])
    with st.container(border=True):
        st.subheader("Add a source")
        panes = st.tabs(tabs)
        with panes[0]:
            upload_panel()
        if len(panes) > 1:
            with panes[1]:
                tail_panel()

    st.subheader("Sources")
    names = engine.names()
    if not names:
        st.info("No sources yet: upload a CSV above to start one.", icon=":material/info:")
    else:
        remember("source_stream", names[-1], names)
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        name = c1.selectbox("Source", names, key="source_stream", on_change=keep, args=("source_stream",))
        with c2:
            remove_control(name)
        status_panel(name)
        with guard("The controls"):
            controls(name)
        st.subheader("Quarantine")
        quarantine_panel(name)
