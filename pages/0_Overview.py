"""Overview: every stream's live status and the engine's health."""
from __future__ import annotations

import os

import streamlit as st

from engine import recent_rate, throughput_series
from ui import format as fmt
from ui.guard import guard
from ui.page import header
from ui.refresh import live_fragment
from ui.shared import SHARED, version

engine, every = header(
    "Rivulet",
    "Live analytics on data streams: every stream, its rate and health, refreshing by itself.",
    tab="Overview")
SPARK_SECONDS = 120


def stream_rows(snaps: dict) -> list[dict]:
    rows = []
    for name, s in snaps.items():
        src = s.source or {}
        path = src.get("path")
        rows.append({
            "stream": name,
            "source": src.get("kind", "") + (f" · {os.path.basename(path)}" if path else ""),
            "state": s.state,
            "rows": s.counts["ingested"],
            "rows/s": recent_rate(s.throughput),
            "lag (s)": src.get("lag_s", 0.0),
            "quarantined": s.counts["quarantined"],
            "flagged": s.counts["flagged"],
            "progress": src.get("progress") if src.get("kind") == "replay" else None,
            "throughput": throughput_series(s.throughput, SPARK_SECONDS).tolist(),
            "pipeline": f"v{s.pipeline}",
            "model": model_label(s.model),
            "last error": s.error or src.get("last_error") or "",
        })
    return rows


def model_label(status: dict | None) -> str:
    if not status:
        return ""
    if not status.get("deployed"):
        return "stopped: " + (status.get("error") or "")
    metric = status.get("metric")
    score = status.get(metric)
    label = status.get("metric_label", metric)
    return status["name"] + (f" · live {label} {score:.3f}" if score is not None else "") + \
        (" · drift" if status.get("drift") else "")


@live_fragment(every)
def live_status() -> None:
    with guard("The overview"):
        snaps = engine.snapshots()
        health = engine.health()
        total_rate = sum(recent_rate(s.throughput) for s in snaps.values())
        ok = health["writer_alive"] and health["ingest_alive"] == health["streams"] and not health["errors"]
        cols = st.columns(6)
        cols[0].metric("Streams", len(snaps))
        cols[1].metric("Rows stored", fmt.count(sum(s.counts["ingested"] for s in snaps.values())))
        cols[2].metric("Rows/s", fmt.rate(total_rate), help="All streams together, over the last 5 seconds.")
        cols[3].metric("Quarantined", fmt.count(sum(s.counts["quarantined"] for s in snaps.values())),
                       help="Rows set aside because they could not be parsed; see Sources.")
        cols[4].metric("Engine", "healthy" if ok else "attention",
                       help=f"Writer thread {'alive' if health['writer_alive'] else 'stopped'}; "
                            f"{health['ingest_alive']} of {health['streams']} ingest threads alive; "
                            f"write queue {health['queue_depth']}/{health['queue_capacity']}.")
        cols[5].metric("Uptime", fmt.seconds(health["uptime_s"], short=True),
                       help=f"Since the engine started: {fmt.seconds(health['uptime_s'])}")
        if not health["writer_alive"]:
            st.error("The engine's writer has stopped: no new rows are stored. Restart the dashboard.")
        for name in health["errors"]:
            st.error(f"Stream **{fmt.plain(name)}** stopped: {fmt.plain(snaps[name].error)}. Remove it on Sources and add it again.")
        if not snaps:
            st.info("No streams yet. Upload a CSV on the Sources page, or start the dashboard with "
                    "RIVULET_DEMO=1 (the default) for the built-in demo stream.", icon=":material/info:")
            st.page_link("pages/1_Sources.py", label="Add a source", icon=":material/upload_file:")
            return
        rows = SHARED.get(("overview",), tuple(version(s) for s in snaps.values()), lambda: stream_rows(snaps))
        hide = {k for k in ("model", "last error", "flagged") if not any(r[k] for r in rows)}
        st.dataframe(
            rows, hide_index=True, width="stretch", column_order=[k for k in rows[0] if k not in hide],
            column_config={
                "rows": st.column_config.NumberColumn(format="localized"),
                "rows/s": st.column_config.NumberColumn(format="%.1f", help="Over the last 5 seconds"),
                "lag (s)": st.column_config.NumberColumn(format="%.3f",
                                                         help="Time from reading a batch to committing it"),
                "quarantined": st.column_config.NumberColumn(format="localized"),
                "flagged": st.column_config.NumberColumn(format="localized",
                                                         help="Rows kept with some values missing"),
                "progress": st.column_config.ProgressColumn("file read", min_value=0, max_value=1, format="percent",
                                                            width="small", help="How much of a replayed file "
                                                            "has been read (blank for tails and the demo)"),
                "throughput": st.column_config.AreaChartColumn("throughput",
                                                               help=f"rows/s over the last {SPARK_SECONDS // 60} min",
                                                               y_min=0, width="small"),
                "model": st.column_config.TextColumn("deployed model", width="large"),
                "last error": st.column_config.TextColumn(width="medium"),
            })
        st.caption(f"Updated {fmt.clock()} · "
                   + (f"refreshing every {fmt.seconds(every)}" if every else "refresh paused")
                   + f" · data folder {health['data_dir']}")


if engine is not None:
    live_status()
    st.divider()
    links = [("pages/1_Sources.py", "Sources", ":material/upload_file:", "upload, replay, quarantine"),
             ("pages/2_Preprocessing.py", "Preprocessing", ":material/tune:", "clean, derive, backfill"),
             ("pages/3_Aggregates.py", "Aggregates", ":material/monitoring:", "windows, buckets, groups"),
             ("pages/4_Correlations.py", "Correlations", ":material/grid_on:", "heatmap, pairs, over time"),
             ("pages/5_Models.py", "Models", ":material/model_training:", "train, compare, deploy"),
             ("pages/6_Export.py", "Export", ":material/download:", "models and data")]
    for col, (path, label, icon, what) in zip(st.columns(len(links)), links):
        col.page_link(path, label=label, icon=icon)
        col.caption(what)
