"""The deployed model's live (prequential) score on a stream, refreshing by itself."""
from __future__ import annotations

import streamlit as st

from engine import Engine
from ui import charts
from ui import format as fmt
from ui.guard import guard


def live_score(engine: Engine, name: str, every: float | None) -> None:
    """Headline numbers, drift warning and score curve; redrawn every `every` seconds (None: paused)."""
    @st.fragment(run_every=every)
    def live() -> None:
        with guard("The live score"):
            status = engine.models.live(name) if name in engine.names() else None
            if status is None:
                snap = engine.snapshot(name) if name in engine.names() else None
                note = ((snap.model if snap is not None else None) or {}).get("error")
                if note:
                    st.warning(fmt.plain(note), icon=":material/warning:")
                st.info(f"No model is deployed on {name}. Deploy a trained model above, or start an online "
                        "learner that learns from every labelled row.", icon=":material/info:")
                return
            metric = status["metric"]
            cols = st.columns(4)
            cols[0].metric("Live " + ("accuracy" if metric == "accuracy" else "MAE"),
                           fmt.num(status.get(metric)) if status.get(metric) is not None else "waiting",
                           help=f"Prequential: each labelled row is scored before the model sees its label; "
                                f"over the last {status['window']:,} labelled rows.")
            cols[1].metric("Rows predicted", fmt.count(status["predicted"]))
            cols[2].metric("Labelled rows", fmt.count(status["labelled"]))
            cols[3].metric("Drift alarms", fmt.count(status["drifts"]),
                           help="Page-Hinkley test on the error rate; a jump in errors raises an alarm.")
            if status.get("drift"):
                st.warning(f"Drift detected at labelled row {status['last_drift_row']:,}: the error rate rose. "
                           + ("The online learner restarted from the rows after it." if status["online"] else
                              "Consider retraining on recent rows."), icon=":material/warning:")
            if status["curve"]["labelled"]:
                st.plotly_chart(charts.live_score(status["curve"], status["drift_rows"], metric, status["window_size"]),
                                key="m_chart_live", config={"displayModeBar": False})
            else:
                st.caption("The chart starts with the first labelled row.")
            st.caption(f"**{fmt.plain(status['name'])}** ({fmt.plain(status['model_id'])}) on {name} · updated {fmt.clock()}")
    live()
