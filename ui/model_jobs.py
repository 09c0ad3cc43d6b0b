"""Training, hyperparameter search and comparison as background jobs: the buttons that start one, and
this session's running job with its progress and a Cancel button."""
from __future__ import annotations

import time

import streamlit as st

from engine import Engine
from engine.models import GRIDS, ModelSpec, algorithms_for
from ui import format as fmt
from ui.controls import flash
from ui.guard import guard
from ui.refresh import live_fragment


def job_buttons(engine: Engine, name: str, spec: ModelSpec, slice_: dict) -> None:
    """Train, Search hyperparameters and Compare algorithms; disabled while this session runs a job."""
    busy = st.session_state.get("m_job") is not None
    c1, c2, c3, _ = st.columns([1, 1.5, 1.5, 1])
    if c1.button("Train", type="primary", icon=":material/model_training:", width="stretch", disabled=busy):
        with guard("Training"):
            start_job(engine.models.train(name, spec, slice_))
    with c2.popover("Search hyperparameters", icon=":material/manage_search:", width="stretch", disabled=busy):
        grid = GRIDS[spec.algorithm]
        st.caption("Candidates from " + "; ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in grid.items())
                   + ", scored on the same folds; the best is trained and kept.")
        method = st.radio("Method", ["halving", "random"], key="m_search_method", horizontal=True,
                          format_func={"halving": "Successive halving", "random": "Random"}.get)
        n_iter = st.number_input("Candidates", 2, 20, 8, key="m_search_n")
        if st.button("Start search", type="primary", key="m_search_go"):
            with guard("The search"):
                start_job(engine.models.search(name, spec, slice_, method, int(n_iter)))
    with c3.popover("Compare algorithms", icon=":material/compare_arrows:", width="stretch", disabled=busy):
        options = algorithms_for(spec.task)
        chosen = st.multiselect("Algorithms", options, default=options[:3], format_func=fmt.algorithm,
                                key="m_compare")
        st.caption("Default hyperparameters, same rows, folds and holdout; each result is kept.")
        if st.button("Start comparison", type="primary", key="m_compare_go", disabled=not chosen):
            with guard("The comparison"):
                specs = [spec.with_(algorithm=a, params={}) for a in chosen]
                start_job(engine.models.compare(name, specs, slice_))


def start_job(job_id: str) -> None:
    st.session_state["m_job"] = job_id
    st.session_state.pop("_flash_models", None)
    st.rerun()


@live_fragment(0.5)
def job_progress(engine: Engine) -> None:
    """Progress of this session's running job; on completion the whole page redraws with its result."""
    job_id = st.session_state.get("m_job")
    if job_id is None:
        return
    with guard("The job"):
        job = engine.models.jobs.get(job_id)
        if job.active:
            with st.container(border=True):
                c1, c2 = st.columns([5, 1], vertical_alignment="center")
                share = job.done / job.total if job.total else 0.0
                c1.progress(min(share, 1.0), text=f"**{job.label}** · {job.message} · "
                                                   f"{fmt.seconds(max(0.0, time.time() - job.started))}")
                if c2.button("Cancel", icon=":material/cancel:", key="m_cancel", width="stretch"):
                    engine.models.jobs.cancel(job_id)
            return
        st.session_state.pop("m_job")
        if job.state == "done":
            if job.kind == "compare":
                flash("models", "success", f"Compared {len(job.result)} models; the table below ranks them.")
                st.session_state["m_selected"] = job.result[0]["model"] if job.result else None
            else:
                st.session_state["m_selected"] = job.result
                flash("models", "success", f"{job.label}: done, stored as {job.result}.")
        elif job.state == "cancelled":
            flash("models", "info", f"{job.label}: cancelled; nothing was stored.")
        else:
            flash("models", "error", f"{job.label} failed: {fmt.plain(job.error)}")
        st.rerun(scope="app")
