"""The deployed model's live (prequential) score on a stream, refreshing by itself."""
from __future__ import annotations

import streamlit as st

from engine import Engine, downloads
from ui import charts
from ui import format as fmt
from ui.guard import guard
from ui.refresh import live_fragment

ROWS = 20          # newest predictions shown


def live_score(engine: Engine, name: str, every: float | None) -> None:
    """Headline numbers, drift warning and score curve; redrawn every `every` seconds (None: paused)."""
    @live_fragment(every)
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
            metric, label = status["metric"], status["metric_label"]
            second = "accuracy" if status["task"] == "classification" else "mae"
            cols = st.columns(4)
            cols[0].metric(f"Live {label}", fmt.score(status.get(metric)) if status.get(metric) is not None
                           else "waiting",
                           help=f"Prequential: each labelled row is scored before the model sees its label; "
                                f"over the last {status['window']:,} labelled rows. The same score the table of "
                                f"trained models ranks by. {'Accuracy' if second == 'accuracy' else 'MAE'}: "
                                f"{fmt.score(status.get(second))}.")
            started = fmt.moment(status["since"]) if status.get("since") else "deployment"
            since = (f"Since {started}, when the model was deployed or the engine last started: a restart "
                     "starts the live counts and score again (the predictions stay stored).")
            cols[1].metric("Rows predicted", fmt.count(status["predicted"]), help=since)
            cols[2].metric("Labelled rows", fmt.count(status["labelled"]), help=since)
            cols[3].metric("Drift alarms", fmt.count(status["drifts"]),
                           help="Page-Hinkley test on the error rate; a jump in errors raises an alarm.")
            if status.get("drift"):
                st.warning(f"Drift detected at labelled row {status['last_drift_row']:,}: the error rate rose. "
                           + ("The online learner restarted from the rows after it." if status["online"] else
                              "Consider retraining on recent rows."), icon=":material/warning:")
            if status["curve"]["labelled"]:
                st.plotly_chart(charts.live_score(status["curve"], status["drift_rows"], label, status["window_size"]),
                                key="m_chart_live", config={"displayModeBar": False})
            else:
                st.caption("The chart starts with the first labelled row.")
            st.caption(f"**{fmt.plain(status['name'])}** ({fmt.plain(status['model_id'])}) on {name} · counted since "
                       f"{started} · updated {fmt.clock()}")
            newest_predictions(engine, name, status)
    live()
    download_predictions(engine, name)


def newest_predictions(engine: Engine, name: str, status: dict) -> None:
    """The newest rows with the prediction made for each, beside the true label once it arrived."""
    target = status.get("target")
    table = fmt.frame(engine.models.predictions(name, last=ROWS, target=target))
    if table.empty or table["prediction"].isna().all():
        return
    table = table.iloc[::-1]
    shown = {"_rid": "row", "_ingest": "arrived", "prediction": "prediction", "probability": "probability"}
    if target in table.columns:
        shown[target] = f"{target} (true)"
    for extra in ("correct", "error"):
        if extra in table.columns:
            shown[extra] = extra
    st.markdown(f"**Newest predictions** · {ROWS} rows, newest first; the true {target or 'label'} fills in "
                "when the row carries it")
    st.dataframe(table[list(shown)].rename(columns=shown), hide_index=True, width="stretch", height=280,
                 column_config={"probability": st.column_config.NumberColumn(format="%.3f"),
                                "error": st.column_config.NumberColumn(format="%.4g"),
                                "arrived": st.column_config.DatetimeColumn(format="HH:mm:ss.SSS")})


def download_predictions(engine: Engine, name: str) -> None:
    """Every stored row after the pipeline with its stored prediction, as CSV, prepared on request."""
    if st.button("Prepare predictions download", icon=":material/download:", key="m_predictions_prepare",
                 help="Every stored row of the stream with the prediction stored for it (empty where none was made)."):
        with guard("The predictions download"):
            live = engine.models.live(name)
            table = engine.models.predictions(name, last=None, target=(live or {}).get("target"))
            st.session_state["m_predictions_csv"] = (name, downloads.to_bytes(table, "csv"), table.num_rows)
    kept = st.session_state.get("m_predictions_csv")
    if kept and kept[0] == name:
        st.download_button(f"Download {name}-predictions.csv ({kept[2]:,} rows)", kept[1],
                           file_name=f"{name}-predictions.csv", mime=downloads.MIME["csv"],
                           icon=":material/download:", type="primary", on_click="ignore")
