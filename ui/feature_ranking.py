"""How much each feature alone tells about the target: a score choice, a button, and the bar chart."""
from __future__ import annotations

import streamlit as st

from engine import Engine
from engine.models import ModelSpec
from ui import charts
from ui.guard import guard


def feature_ranking(engine: Engine, name: str, spec: ModelSpec, slice_: dict) -> None:
    bar = st.container(horizontal=True, vertical_alignment="bottom")
    method = bar.radio("Score", ["mutual_info", "f_test"], horizontal=True, key="m_rank_method",
                       format_func={"mutual_info": "Mutual information", "f_test": "F-test"}.get)
    if bar.button("Rank features", icon=":material/sort:"):
        with guard("Ranking"), st.spinner("Scoring each feature…"):
            st.session_state["m_ranking"] = ((name, spec.target, tuple(spec.features)), method, engine.models.rank(
                name, spec.target, spec.features, spec.task, method, slice_))
    kept = st.session_state.get("m_ranking")
    if kept and kept[0] == (name, spec.target, tuple(spec.features)):     # ranked for this stream and choice
        label = "mutual information (nats)" if kept[1] == "mutual_info" else "F statistic"
        st.plotly_chart(charts.ranking([r["feature"] for r in kept[2]], [r["score"] for r in kept[2]], label),
                        key="m_chart_ranking", config={"displayModeBar": False})
    else:
        st.caption(f"How much each feature alone tells about {spec.target}, best first.")
