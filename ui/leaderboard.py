"""The table of a stream's trained models for one target, best cross-validation score first."""
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
    metric = rows[0]["metric"]
    cv, holdout, baseline = f"CV {metric}", f"holdout {metric}", f"baseline {metric}"
    st.dataframe([{"model": r["name"], "algorithm": fmt.algorithm(r["algorithm"]),
                   "hyperparameters": fmt.params(r["params"]),
                   cv: r["cv_mean"], "± std": r["cv_std"], holdout: r["holdout"],
                   baseline: r["baseline"], "rows": r["rows"],
                   "trained (UTC)": (r["created"] or "").replace("T", " ").rstrip("Z")} for r in rows],
                 hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("± std", holdout, baseline)}
                 | {cv: st.column_config.ProgressColumn(cv, min_value=0.0, max_value=1.0, format="%.3f")}
                 | {"rows": st.column_config.NumberColumn(format="localized")})
    st.caption(f"Best cross-validation {metric} first; every model was scored on its own newest rows.")
