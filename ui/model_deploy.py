"""Putting a model onto the stream: deploy or undeploy a stored model, or start an online learner."""
from __future__ import annotations

import streamlit as st

from engine import Engine
from engine.models import ModelSpec
from ui import format as fmt
from ui.guard import guard


def deploy_controls(engine: Engine, name: str, model_id: str) -> None:
    live = engine.models.live(name)           # the deployment itself: a snapshot only follows the next batch
    c1, c2, c3 = st.columns([1, 1, 3], vertical_alignment="center")
    if c1.button("Deploy onto " + name, type="primary", icon=":material/rocket_launch:", width="stretch",
                 disabled=live is not None and live["model_id"] == model_id):
        with guard("Deploying"):
            engine.deploy(name, model_id)
            st.toast(f"{model_id} now predicts every new row of {name}")
            st.rerun()
    if c2.button("Undeploy", icon=":material/stop_circle:", disabled=live is None, width="stretch"):
        with guard("Undeploying"):
            engine.undeploy(name)
            st.rerun()
    if live is not None:
        c3.markdown(f":green[● deployed]: **{fmt.plain(live['name'])}** predicts every new row of {name}")


def online_learner(engine: Engine, name: str, spec: ModelSpec) -> None:
    """A button that deploys an SGD learner on the form's target and numeric features."""
    c1, c2 = st.columns([1, 2], vertical_alignment="center")
    if c1.button("Start online learner", icon=":material/autorenew:", width="stretch",
                 help="An SGD model that predicts each batch, then learns from its labels; "
                      "it restarts when drift is detected."):
        with guard("Starting the online learner"):
            engine.deploy_online(name, spec.target, list(spec.numeric), task=spec.task)
            st.rerun()
    c2.caption(f"Online learner: {spec.task} of **{spec.target}** from the numeric features "
               f"{', '.join(spec.numeric)}; replaces the deployed model.")
