"""The table of a stream's trained models for one target, best holdout score first, with the models whose
holdout and cross-validation scores disagree flagged."""
from __future__ import annotations

import streamlit as st

from engine import Engine
from ui import format as fmt


def leaderboard(engine: Engine, name: str, target: str) -> None:
    rows = engine.models.leaderboard(name, target)
    if not rows:
        st.info(f"No models for {target} yet: train one above, or compare several algorithms at once.",
                icon=":material/info:")
        return
    label = rows[0]["metric_label"]
    st.dataframe([{"model": r["name"], "algorithm": fmt.algorithm(r["algorithm"]),
                   "holdout": r["holdout"], "CV": r["cv_mean"], "± std": r["cv_std"], "baseline": r["baseline"],
                   "check": "⚠ gap" if r["warning"] else "", "rows": r["rows"],
                   "trained (UTC)": (r["created"] or "").replace("T", " ").rstrip("Z")[:16],
                   "hyperparameters": fmt.params(r["params"])} for r in rows],
                 hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f", width="small")
                                for c in ("CV", "± std", "baseline")}
                 | {"holdout": st.column_config.NumberColumn(
                     format="%.3f", width="small", help=f"{label} on the holdout rows, which no fold saw: the ranking")}
                 | {"check": st.column_config.TextColumn(width="small",
                                                         help="Holdout and cross-validation more than 0.15 apart")}
                 | {"rows": st.column_config.NumberColumn(format="localized", width="small"),
                    "trained (UTC)": st.column_config.TextColumn(width="medium"),
                    "hyperparameters": st.column_config.TextColumn(width="large")})
    st.caption(f"Scores are {label}. Best holdout first: the holdout is the newest rows (with stratified "
               f"folds, a stratified sample), scored once; cross-validation (CV) folds are the other rows.")
    for r in rows:
        if r["warning"]:
            st.warning(f"**{r['name']}** ({r['model']}): {label} {fmt.score(r['holdout'])} on the holdout, "
                       f"{fmt.score(r['cv_mean'])} in cross-validation; {r['warning']}.", icon=":material/warning:")
