"""The Sources page's "Add a source" panel: upload CSVs and start their replays (with each upload's
status while its copy is saved), or tail a file, glob or folder."""
from __future__ import annotations

import math

import streamlit as st

from engine import (SPEED_LIMITS, TIME_FORMATS, Engine, Speed, WindowSpec, start_replay, time_example,
                    upload_limit_bytes)
from ui import format as fmt
from ui.guard import guard
from ui.refresh import live_fragment
from ui.uploads import session_spools, spooled_uploader

SPEEDS = {"Full speed": "max", "Rows per second": "rows", "× real time": "realtime"}
AUTO_TIME = "(first column of dates or times)"
AUTO_FORMAT = "(detected)"
YEARS = "%Y"                # a column of years (gapminder's 1952, 1957, ...), offered beside the date layouts
REALTIME_HELP = ("1 keeps the file's own gaps between rows; 3600 plays an hour of data a second, 604800 a week "
                 "a second (daily or weekly data needs such multiples).")


def time_format_box(box, key: str) -> str | None:
    """A strptime pattern picked from the common ones (or typed), None to detect it."""
    choice = box.selectbox("Time format", [AUTO_FORMAT, *TIME_FORMATS, YEARS], key=key, accept_new_options=True,
                           format_func=lambda p: p if p == AUTO_FORMAT else f"{p}  ({time_example(p)})",
                           help="How the time column writes its dates, when it is not detected or when "
                                "day and month could be either way round (01/02/2012). Type a pattern "
                                "such as %d/%m/%Y %H:%M for another layout.")
    return None if choice == AUTO_FORMAT else choice


def shared_columns(chosen: list) -> list:
    """Each chosen file's columns as a caption; the columns every one of them has (the first file's, in its
    order), which the time column and partition key are chosen from: the same choice starts every file."""
    headers = []
    for sp in chosen:
        with guard(f"Reading the header of {sp.name}"):
            schema = sp.columns()
            if schema is not None:
                headers.append(schema.columns)
                st.caption(f"{sp.name}: " + ", ".join(
                    f"**{c.name}** ({c.kind}{', ' + c.format if c.format else ''})" for c in schema.columns))
    if not headers:
        return []
    others = [{d.name for d in h} for h in headers[1:]]
    common = [c for c in headers[0] if all(c.name in names for names in others)]
    if len(common) < len(headers[0]):
        shared = ", ".join(f"**{c.name}**" for c in common) or "none"
        st.caption(f"The time column is chosen among the columns every file has: {shared}.")
    return common


def upload_panel(engine: Engine) -> None:
    """Files to replay, how fast, with which time column and window; Start replay; each upload's status."""
    limit_mb = upload_limit_bytes() / 1024 / 1024
    st.session_state.setdefault("upload_round", 0)
    chosen = spooled_uploader(f"upload_{st.session_state.upload_round}", engine.data_dir, label="CSV files",
                              type=["csv", "tsv", "txt"], max_upload_size=max(1, math.ceil(limit_mb)))
    columns = shared_columns(chosen)
    c1, c2, c3 = st.columns([2, 1, 2])
    mode = c1.radio("Speed", list(SPEEDS), horizontal=True, key="upload_speed",
                    help="Full speed reads as fast as the engine can; rows per second paces the replay; "
                         "× real time follows the gaps between the file's timestamps.")
    value = 0.0
    if SPEEDS[mode] == "rows":
        value = c2.number_input("Rows per second", *SPEED_LIMITS["rows"], 100.0, step=10.0, key="upload_rows_per_s")
    elif SPEEDS[mode] == "realtime":
        value = c2.number_input("Multiple of real time", *SPEED_LIMITS["realtime"], 1.0, step=0.5,
                                key="upload_multiple", help=REALTIME_HELP)
    # dates and times first; numbers are epoch seconds (or ms); text whose layout was not detected
    times = sorted((c for c in columns if c.kind != "bool"), key=lambda c: ("time", "number", "text").index(c.kind))
    time_column = c3.selectbox("Time column", [AUTO_TIME, *(c.name for c in times)], key="upload_time_column",
                               help="Gives rows their event time: used for × real time, seeking to a time, "
                                    "time ranges and buckets. A number column is read as epoch seconds "
                                    "(milliseconds above 1e11).")
    c4, c5, c7, c6 = st.columns([2, 1, 2, 2])
    time_format = time_format_box(c7, "upload_time_format") if time_column != AUTO_TIME else None
    if time_format is None and any(c.name == time_column and c.kind == "number" for c in times):
        # gapminder's `year` read as epoch seconds lands minutes after 1970
        c7.caption(f"{time_column} is a number: read as epoch seconds (milliseconds above 1e11). For years "
                   "such as 1952, pick %Y as its time format.")
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
        keys = [c.name for c in columns]
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


def tail_panel(engine: Engine) -> None:
    """A path, glob or folder under the data roots to follow, with its format and time column."""
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
    """Show a source just started in the Sources picker (its kept value, ui/refresh.py)."""
    st.session_state["_keep_source_stream"] = name
