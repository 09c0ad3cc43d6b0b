"""One stored model's evaluation on the Models page: the model picker, what the model was trained on,
score cards against the baseline (the task's headline first), confusion matrix / ROC or residuals,
precision-recall at a chosen threshold (two classes), folds, and the search table."""
from __future__ import annotations

import streamlit as st

from engine import Engine
from engine.models import HEADLINE
from ui import charts
from ui import format as fmt

# precision and recall are macro averages, named so beside the threshold panel's values for one class
CLASS_METRICS = [("f1", "Macro F1"), ("accuracy", "Accuracy"), ("precision", "Macro precision"),
                 ("recall", "Macro recall"), ("roc_auc", "ROC AUC")]
REG_METRICS = [("r2", "R²"), ("mae", "MAE"), ("rmse", "RMSE")]
HELP = {"f1": "The headline: F1 of each class, averaged with every class counting the same (macro). ",
        "precision": "Macro average over the classes. ", "recall": "Macro average over the classes. ",
        "r2": "The headline: the share of the target's variance the model explains. "}
PLAIN = {"displayModeBar": False}


def pick_model(engine: Engine, name: str) -> str | None:
    """The model this session looks at among those offered on stream `name`; None when there is none."""
    cards = engine.models.listed(name, archived=st.session_state.get("m_show_archived", False))
    if not cards:
        st.info("No trained models for this stream yet: choose a target and features, then Train. "
                "The results appear here.", icon=":material/info:")
        return None
    ids = [c["id"] for c in cards]
    labels = {c["id"]: label(c) for c in cards}
    if st.session_state.get("m_selected") in ids:           # a job just stored it: show it
        st.session_state["m_model"] = st.session_state.pop("m_selected")
    c1, _ = st.columns([1, 1])
    return c1.selectbox("Model", ids, format_func=labels.get, key="m_model")


def archived_toggle() -> bool:
    return st.toggle("Show archived models", key="m_show_archived")


def label(card: dict) -> str:
    """"logreg · alarm · trained 2024-01-31 12:00"; an import says when it was imported instead."""
    training = card.get("training") or {}
    when = "imported" if "imported" in training else "trained"
    target = (card.get("spec") or {}).get("target") or "target unknown"
    return f"{card['name']} · {target} · {when} {card['created'].replace('T', ' ')[:-4]}"


def results(engine: Engine, model_id: str) -> None:
    card = engine.models.registry.card(model_id)
    report = card.get("metrics")
    if not report:
        imported_summary(card)
        return
    spec = card["spec"]
    st.caption(summary(card))
    metric_cards(report)
    h, cv = report["holdout"], report["cv"]
    c1, c2, c3 = st.columns(3, gap="medium")
    if report["task"] == "classification":
        with c1:
            st.markdown("**Confusion matrix** · holdout rows")
            st.plotly_chart(charts.confusion(h["confusion"], h["classes"], spec["target"]), key="m_chart_confusion",
                            config=PLAIN)
        with c2:
            if h.get("roc"):
                st.markdown(f"**ROC curve** · positive class {fmt.plain(repr(h['classes'][1]))}")
                st.plotly_chart(charts.roc(h["roc"]["fpr"], h["roc"]["tpr"], h.get("roc_auc")),
                                key="m_chart_roc", config=PLAIN)
            else:
                st.markdown("**Per class** · holdout rows")
                st.dataframe([{"class": k, **v} for k, v in h["per_class"].items()], hide_index=True,
                             width="stretch", column_config={c: st.column_config.NumberColumn(format="%.3f")
                                                             for c in ("precision", "recall", "f1")})
    else:
        with c1:
            st.markdown("**Residuals** · holdout rows")
            st.plotly_chart(charts.residuals(h["residuals"]["predicted"], h["residuals"]["residual"],
                                             spec["target"]), key="m_chart_residuals", config=PLAIN)
    label = metric_label(cv["metric"])
    with (c3 if report["task"] == "classification" else c2):
        st.markdown(f"**Cross-validation** · {label} per fold, {fmt.score(cv['mean'])} ± "
                    f"{fmt.score(cv['std'])}")
        st.plotly_chart(charts.fold_scores(cv["scores"], label, report["baseline"].get(cv["metric"]),
                                           cv["kind"]), key="m_chart_folds", config=PLAIN)
    if h.get("pr"):
        threshold_view(engine, model_id, h)
    if report.get("search"):
        search_table(report["search"])


def metric_label(key: str) -> str:
    return dict(HEADLINE.values()).get(key, key)


def threshold_view(engine: Engine, model_id: str, h: dict) -> None:
    """Precision-recall curve of the positive class and the scores at a threshold the analyst picks."""
    c1, c2 = st.columns([2, 3], gap="medium")
    with c2:
        st.markdown(f"**Threshold** · predict {h['classes'][1]!r} when its probability is at least")
        t = st.slider("Threshold", 0.0, 1.0, 0.5, 0.01, key=f"m_threshold_{model_id}", label_visibility="collapsed")
        at = engine.models.at_threshold(model_id, t)
        boxes = [box for row in (st.columns(2), st.columns(2)) for box in row]
        for box, key in zip(boxes, ("precision", "recall", "f1", "accuracy")):
            box.metric(f"{key.capitalize() if key != 'f1' else 'F1'} at {at['threshold']:.2f}", fmt.score(at[key]),
                       help=f"Of the positive class {at['positive']!r}, on the holdout rows." if key != "accuracy"
                       else "Share of holdout rows right at this threshold.")
        st.caption(f"{at['predicted_positive']:,} of {at['tp'] + at['fp'] + at['fn'] + at['tn']:,} holdout rows "
                   f"predicted {at['positive']!r}: {at['tp']:,} right, {at['fp']:,} wrong; {at['fn']:,} missed.")
    with c1:
        st.markdown(f"**Precision–recall** · positive class {h['classes'][1]!r}")
        st.plotly_chart(charts.pr_curve(h["pr"]["recall"], h["pr"]["precision"], h["pr"]["average_precision"], at),
                        key="m_chart_pr", config=PLAIN)


def summary(card: dict) -> str:
    """One line: name, algorithm and hyperparameters, target, the rows it was trained and scored on, features."""
    report, spec = card["metrics"], card["spec"]
    training = card.get("training") or {}
    sl = training.get("slice") or {}
    where = (f"last {sl['last']:,} rows" if "last" in sl else "a time range" if "start" in sl or "end" in sl
             else "all stored rows")
    of = f" of {training['rows']:,}" if training.get("rows") else ""
    imported = f" · imported from {fmt.plain(training['imported'])}" if "imported" in training else ""
    note = f"  \n_{fmt.plain(card['note'])}_" if card.get("note") else ""
    return (f"**{fmt.plain(card['name'])}** · {fmt.plain(fmt.algorithm(spec['algorithm']))} "
            f"({fmt.plain(fmt.params(report.get('params')))}) → "
            f"**{fmt.plain(spec['target'])}** · trained on {report['rows']['train']:,}{of} rows ({where}), scored on "
            f"the newest {report['rows']['holdout']:,}{imported} · "
            f"{fmt.plain(', '.join(f['name'] for f in card['features']))}"
            + (" · archived" if card.get("archived") else "") + note)


def imported_summary(card: dict) -> None:
    """What a model imported without its card records about itself; it has no scores to show."""
    spec = card.get("spec") or {}
    classes = card.get("classes")
    task = spec.get("task") or "task unknown"
    st.caption(f"**{fmt.plain(card['name'])}** · {fmt.plain(card.get('estimator') or 'model')} · imported from "
               f"{fmt.plain((card.get('training') or {}).get('imported') or 'a file')} · {fmt.plain(task)}"
               + (f" of {fmt.plain(', '.join(map(str, classes)))}" if classes else "")
               + f" · {fmt.plain(', '.join(f['name'] for f in card['features']))}")
    st.info("No evaluation: this model was imported without its model card, so its scores and target are "
            "unknown. It can still be deployed to predict every new row; import it with its .card.json "
            "to see how it scored.", icon=":material/info:")


def holdout_words(report: dict) -> str:
    """Which rows the holdout is: the newest (time folds) or a stratified sample (stratified folds)."""
    n = report["rows"]["holdout"]
    if report["rows"].get("holdout_kind") == "stratified":
        return f"a stratified random {n:,} rows"
    return f"the {n:,} newest rows"


def metric_cards(report: dict) -> None:
    h, b = report["holdout"], report["baseline"]
    keys = CLASS_METRICS if report["task"] == "classification" else REG_METRICS
    lower_better = {"mae", "rmse"}
    held_rows = holdout_words(report)
    st.caption(f"On {held_rows} (holdout); the arrows compare with the baseline, "
               + (f"which always predicts {b.get('predicts')!r}." if "predicts" in b
                  else "which always predicts the training mean."))
    for box, (key, name) in zip(st.columns(len(keys)), keys):
        value, base = h.get(key), b.get(key)
        delta = None if value is None or base is None else value - base
        note = h.get("roc_auc_note") if key == "roc_auc" else None
        with box.container(border=True):
            st.metric(name, fmt.score(value),
                      delta=None if delta is None else f"{delta:+.3f}",
                      delta_color="inverse" if key in lower_better else "normal",
                      help=HELP.get(key, "") + (f"ROC AUC: {note}. " if note else "")
                      + f"On {held_rows} (holdout). Baseline "
                      + (f"(always predicts {b.get('predicts')!r}): " if "predicts" in b else
                         "(always predicts the training mean): ") + fmt.score(base))
    held = [c for c, v in (h.get("per_class") or {}).items() if v["support"]]
    if report["task"] == "classification" and len(held) == 1 and len(h.get("classes") or []) > 1:
        st.warning(f"All {report['rows']['holdout']:,} holdout rows are {fmt.plain(held[0])}: the newest rows hold "
                   "one class (is the file sorted by its target?), so these scores say nothing about the others. "
                   "If the rows are not a time series, train with stratified k-fold: its holdout then takes "
                   "a share of every class.", icon=":material/warning:")
    if report["task"] == "classification" and h.get("roc_auc") is None and h.get("roc_auc_note"):
        st.caption(f"ROC AUC is undefined here: {h['roc_auc_note']}.")
    elif h.get("roc_auc_note"):
        st.caption(f"ROC AUC: {h['roc_auc_note']}.")


def search_table(s: dict) -> None:
    """Every candidate a hyperparameter search scored, best first."""
    mean = f"{s['metric']} mean"
    with st.expander(f"Hyperparameter search · {s['method']} · best {s['best']}", icon=":material/manage_search:"):
        st.dataframe([{**{k: str(v) for k, v in r["params"].items()}, mean: r["mean"], "std": r["std"],
                       "rows": r["rows"], "round": r["round"]} for r in s["table"]],
                     hide_index=True, width="stretch",
                     column_config={mean: st.column_config.NumberColumn(format="%.4f"),
                                    "std": st.column_config.NumberColumn(format="%.4f")})
