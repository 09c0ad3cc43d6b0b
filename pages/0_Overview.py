"""Overview: every stream's live status and the engine's health."""
from __future__ import annotations

import os

import streamlit as st

from engine.views import throughput_series
from ui import format as fmt
from ui.engine import get_engine
from ui.guard import guard
from ui.refresh import live_every

st.set_page_config(page_title="Rivulet · Overview", page_icon="🌊", layout="wide")
st.title("Rivulet")
st.caption("Live analytics on data streams: every stream, its rate and health, refreshing by itself.")

engine = get_engine()
every = live_every()
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
            "rows/s": src.get("rows_per_s", 0.0),
            "lag (s)": src.get("lag_s", 0.0),
            "quarantined": s.counts["quarantined"],
            "flagged": s.counts["flagged"],
            "progress": src.get("progress") if src.get("kind") == "replay" else None,
            "throughput": throughput_series(s.throughput, SPARK_SECONDS).tolist(),
            "pipeline": f"v{s.pipeline}",
            "last error": s.error or src.get("last_error") or "",
        })
    return rows


@st.fragment(run_every=every)
def live_status() -> None:
    with guard("The overview"):
        snaps = engine.snapshots()
        health = engine.health()
        total_rate = sum((s.source or {}).get("rows_per_s", 0.0) for s in snaps.values())
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
        cols[5].metric("Uptime", fmt.seconds(health["uptime_s"]))
        if not health["writer_alive"]:
            st.error("The engine's writer has stopped: no new rows are stored. Restart the dashboard.")
        for name in health["errors"]:
            st.error(f"Stream **{name}** stopped: {snaps[name].error}. Remove it on Sources and add it again.")
        if not snaps:
            st.info("No streams yet. Upload a CSV on the Sources page, or start the dashboard with "
                    "RIVULET_DEMO=1 (the default) for the built-in demo stream.", icon=":material/info:")
            st.page_link("pages/1_Sources.py", label="Add a source", icon=":material/upload_file:")
            return
        st.dataframe(
            stream_rows(snaps), hide_index=True, width="stretch",
            column_config={
                "rows": st.column_config.NumberColumn(format="localized"),
                "rows/s": st.column_config.NumberColumn(format="%.1f", help="Over the last 5 seconds"),
                "lag (s)": st.column_config.NumberColumn(format="%.3f",
                                                         help="Time from reading a batch to committing it"),
                "quarantined": st.column_config.NumberColumn(format="localized"),
                "flagged": st.column_config.NumberColumn(format="localized",
                                                         help="Rows kept with some values missing"),
                "progress": st.column_config.ProgressColumn("replayed", min_value=0, max_value=1, format="percent"),
                "throughput": st.column_config.AreaChartColumn(f"rows/s, last {SPARK_SECONDS // 60} min",
                                                               y_min=0, width="medium"),
                "last error": st.column_config.TextColumn(width="medium"),
            })
        st.caption(f"Updated {fmt.clock()} · "
                   + (f"refreshing every {fmt.seconds(every)}" if every else "refresh paused")
                   + f" · data folder {health['data_dir']}")


if engine is not None:
    live_status()
    st.divider()
    c1, c2, c3 = st.columns(3)
    c1.page_link("pages/1_Sources.py", label="Sources: upload, replay, quarantine", icon=":material/upload_file:")
    c2.page_link("pages/2_Aggregates.py", label="Aggregates: windows, buckets, groups", icon=":material/monitoring:")
    c3.page_link("pages/3_Correlations.py", label="Correlations: heatmap, pairs, drift", icon=":material/grid_on:")
