"""Overview: every stream's live status. Creates the shared engine."""
from __future__ import annotations

import time

import streamlit as st

from ui.engine import get_engine

st.set_page_config(page_title="Rivulet", page_icon="🌊", layout="wide")
st.title("Rivulet")
st.caption("Live analytics on data streams")

engine = get_engine()


@st.fragment(run_every="1s")
def live_status() -> None:
    snaps = engine.snapshots()
    total = sum(s.counts["ingested"] for s in snaps.values())
    rate = sum(s.source.get("rows_per_s", 0.0) for s in snaps.values())
    cols = st.columns(4)
    cols[0].metric("Streams", len(snaps))
    cols[1].metric("Rows stored", f"{total:,}")
    cols[2].metric("Rows/s", f"{rate:,.1f}")
    cols[3].metric("Quarantined", f"{sum(s.counts['quarantined'] for s in snaps.values()):,}")
    if not snaps:
        st.info("No streams yet. Set RIVULET_DEMO=1 (the default) for the built-in demo stream.")
        return
    rows = [{"stream": name, "source": s.source.get("kind"), "state": s.state,
             "rows": s.counts["ingested"], "rows/s": s.source.get("rows_per_s", 0.0),
             "lag (s)": s.source.get("lag_s", 0.0), "quarantined": s.counts["quarantined"],
             "flagged": s.counts["flagged"], "pipeline": s.pipeline, "last error": s.error or ""}
            for name, s in snaps.items()]
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(f"Updated {time.strftime('%H:%M:%S')} · data folder {engine.data_dir}")


if engine is not None:
    live_status()
