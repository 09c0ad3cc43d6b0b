"""Models: train and evaluate on stored history, search, compare, deploy, and watch the live score."""
from __future__ import annotations

import streamlit as st

from ui.controls import show_flash, stream_row
from ui.feature_ranking import feature_ranking
from ui.guard import guard
from ui.leaderboard import leaderboard
from ui.live_score import live_score
from ui.model_deploy import deploy_controls, online_learner
from ui.model_form import training_form
from ui.model_jobs import job_buttons, job_progress
from ui.model_results import archived_toggle, pick_model, results
from ui.page import header

engine, every = header(
    "Models",
    "Train on the stream's stored history, judge the result against a trivial baseline, deploy it onto "
    "the stream and watch its live score.")


def page() -> None:
    name, snap, _ = stream_row(engine)
    if snap is None:
        return
    show_flash("models")
    spec = slice_ = None
    with st.container(border=True):
        st.subheader("Train")
        with guard("The training settings"):
            spec, slice_ = training_form(snap)
        if spec is not None:
            job_buttons(engine, name, spec, slice_)
    job_progress(engine)

    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.subheader("Evaluation")
    with c2:
        archived_toggle()
    model_id = pick_model(engine, name)
    if model_id is not None:
        with guard("The evaluation"):
            results(engine, model_id)
            deploy_controls(engine, name, model_id)

    if spec is not None:
        st.subheader(f"Trained models for {spec.target}")
        with guard("The comparison"):
            leaderboard(engine, name, spec.target)

    left, right = st.columns([2, 3], gap="large")
    with left:
        st.subheader("Feature ranking")
        if spec is not None:
            with guard("The ranking"):
                feature_ranking(engine, name, spec, slice_)
    with right:
        st.subheader("Live score")
        live_score(engine, name, every)
        if spec is not None and spec.numeric:
            online_learner(engine, name, spec)


if engine is not None:
    with guard("This page"):
        page()
