"""The training form of the Models page: target, task, algorithm, features, hyperparameters, rows and folds."""
from __future__ import annotations

import streamlit as st

from engine import Snapshot, parse_time
from engine.models import (GRIDS, ModelSpec, TASKS, algorithms_for, guess_target, guess_task, id_like,
                           model_columns, split_features)
from ui import format as fmt
from ui.refresh import keep, remember

SLICES = ["Last N rows", "Time range", "All stored rows"]
CV_KINDS = {"Time-series split": "time", "Stratified k-fold": "stratified"}


def training_form(snap: Snapshot) -> tuple[ModelSpec | None, dict]:
    """Draw the training settings; the spec they describe (None when incomplete) and the slice of rows."""
    names = model_columns(snap.schema, snap.time_column)
    if len(names) < 2:
        st.info("The stream needs a target column and at least one feature column.")
        return None, {}
    c1, c2, c3 = st.columns([2, 1, 2])
    with c1:
        target = kept_select("Target", names, "m_target", guess_target(names, (snap.model or {}).get("target")),
                             help="The column to predict.")
    recent = snap.window_table(rows=2000)
    guessed = guess_task(recent, target) if recent.num_rows else "classification"
    task = c2.radio("Task", TASKS, index=TASKS.index(guessed), key=f"m_task_{target}",
                    help="Guessed from the target: text, yes/no or a few whole numbers are classes.")
    algorithm = c3.selectbox("Algorithm", algorithms_for(task), format_func=fmt.algorithm,
                             key=f"m_algorithm_{task}")
    others = [n for n in names if n != target]
    features = feature_picker(others, id_like(recent, others) if recent.num_rows else [])
    params = hyperparameters(algorithm)
    slice_ = training_slice()
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    kinds = list(CV_KINDS) if task == "classification" else ["Time-series split"]      # what fits the target
    cv_label = c1.radio("Cross-validation", kinds, key=f"m_cv_kind_{task}", horizontal=True,
                        help="Time-series split trains on older rows and scores the rows right after them"
                             + ("; stratified k-fold keeps each class's share in every fold and in the holdout but "
                                "shuffles time away (future rows train the model)" if task == "classification"
                                else "") + ".")
    folds = int(c2.number_input("Folds", 2, 10, 5, key="m_folds"))
    stratified = CV_KINDS[cv_label] == "stratified"
    holdout = c3.slider("Holdout (stratified sample)" if stratified else "Holdout (newest rows)", 0.1, 0.5, 0.2,
                        0.05, key="m_holdout", format="%.2f",
                        help=("A seeded random share of each class" if stratified else "The newest share of the rows")
                        + ", scored once by the final model.")
    if not features:
        st.info("Choose at least one feature.")
        return None, slice_
    numeric, categorical = split_features(snap.schema.empty_table(), features, target)
    spec = ModelSpec(task, target, tuple(numeric), tuple(categorical), algorithm, params, cv=folds,
                     cv_kind=CV_KINDS[cv_label], holdout=holdout)
    return spec, slice_


def kept_select(label: str, options: list, key: str, default, **kw):
    """A selectbox whose choice this session keeps across pages."""
    remember(key, default, options)
    return st.selectbox(label, options, key=key, on_change=keep, args=(key,), **kw)


def feature_picker(others: list[str], ids: list[str]) -> list[str]:
    """The kept feature choice, narrowed to the columns there are (by default all but the id-like ones)."""
    default = [c for c in others if c not in ids] or others
    remember("m_features", default)
    st.session_state["m_features"] = [f for f in st.session_state["m_features"] if f in others] or default
    return st.multiselect("Features", others, key="m_features", on_change=keep, args=("m_features",),
                          help="Numbers are imputed and scaled; text columns are one-hot encoded. Text columns "
                               "with a different value on most rows (ids, times read as text) start unpicked.")


def hyperparameters(algorithm: str) -> dict:
    """The algorithm's main hyperparameters; values from the search grid, defaults as scikit-learn's."""
    p = {}
    c = st.columns(3)
    if algorithm in ("logreg", "svm", "svm-linear"):
        p["C"] = c[0].select_slider("C (inverse regularisation)", GRIDS[algorithm]["C"], value=1.0, key="m_C")
    if algorithm == "svm":
        p["gamma"] = c[1].selectbox("gamma (kernel width)", ["scale", 0.01, 0.1, 1.0], key="m_gamma")
    if algorithm == "rf":
        p["n_estimators"] = int(c[0].number_input("Trees", 10, 1000, 100, step=10, key="m_trees"))
        depth = int(c[1].number_input("Max depth (0 = unlimited)", 0, 50, 0, key="m_depth"))
        p["max_depth"] = depth or None
        p["min_samples_leaf"] = int(c[2].number_input("Min rows per leaf", 1, 100, 1, key="m_leaf"))
    if algorithm == "hgb":
        p["learning_rate"] = c[0].select_slider("Learning rate", [0.01, 0.03, 0.1, 0.3], value=0.1, key="m_lr")
        p["max_iter"] = int(c[1].number_input("Boosting rounds", 10, 1000, 100, step=10, key="m_rounds"))
        p["max_leaf_nodes"] = int(c[2].number_input("Leaves per tree", 2, 255, 31, key="m_leaves"))
    if algorithm in ("sgd", "ridge"):
        grid = [1e-5, 1e-4, 1e-3, 1e-2] if algorithm == "sgd" else [0.1, 1.0, 10.0, 100.0]
        p["alpha"] = c[0].select_slider("alpha (regularisation)", grid, value=grid[1], key=f"m_alpha_{algorithm}")
    return p


def training_slice() -> dict:
    """Which stored rows to train on, as `engine.models.history` takes it."""
    c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    remember("m_slice", SLICES[0], SLICES)
    kind = c1.radio("Training rows", SLICES, key="m_slice", horizontal=True, on_change=keep, args=("m_slice",))
    if kind == SLICES[0]:
        n = c2.number_input("Rows", 20, 10_000_000, 5000, step=1000, key="m_last",
                            help="The newest N stored rows, oldest first.")
        return {"last": int(n)}
    if kind == SLICES[1]:
        start = c2.text_input("From", key="m_from", placeholder="2024-01-31 12:00")
        end = c3.text_input("To", key="m_to", placeholder="now")
        out = {}
        if start.strip():
            out["start"] = parse_time(start)
        if end.strip():
            out["end"] = parse_time(end)
        return out
    return {}
