"""Putting a model onto the stream (deploy, undeploy, or an online learner) and keeping the list tidy
(rename, note, archive, delete)."""
from __future__ import annotations

import streamlit as st

from engine import Engine
from engine.models import ModelSpec
from ui import format as fmt
from ui.guard import guard


def deploy_controls(engine: Engine, name: str, model_id: str) -> None:
    live = engine.models.live(name)           # the deployment itself: a snapshot only follows the next batch
    misfit = engine.models.misfit(name, model_id)
    with st.container(horizontal=True, vertical_alignment="center"):
        if st.button("Deploy onto " + name, type="primary", icon=":material/rocket_launch:",
                     disabled=misfit is not None or (live is not None and live["model_id"] == model_id),
                     help=f"It cannot run on {name}: {misfit}" if misfit else None):
            with guard("Deploying"):
                engine.deploy(name, model_id)
                st.toast(f"{model_id} now predicts every new row of {name}")
                st.rerun()
        if st.button("Undeploy", icon=":material/stop_circle:", disabled=live is None):
            with guard("Undeploying"):
                engine.undeploy(name)
                st.rerun()
        manage(engine, model_id)
        if live is not None:
            st.markdown(f":green[● deployed]: **{fmt.plain(live['name'])}** predicts every new row of {name}")
    if misfit:
        st.caption(f"This model cannot run on {name} now: {misfit}.")


def manage(engine: Engine, model_id: str) -> None:
    """A popover to rename the model, note why it exists, archive it or delete it."""
    card = engine.models.registry.card(model_id)
    with st.popover("Name, note, archive", icon=":material/edit_note:"):
        with st.form(f"m_describe_{model_id}", border=False):
            new_name = st.text_input("Name", card.get("name") or "", max_chars=100, key=f"m_name_{model_id}")
            note = st.text_area("Note", card.get("note") or "", max_chars=2000, height=80, key=f"m_note_{model_id}",
                                placeholder="what it is for, what was tried")
            if st.form_submit_button("Save", type="primary"):
                with guard("Saving"):
                    engine.models.describe(model_id, name=new_name, note=note)
                    st.rerun()
        archived = bool(card.get("archived"))
        if st.button("Restore from archive" if archived else "Archive", icon=":material/archive:",
                     key=f"m_archive_{model_id}",
                     help="Archived models leave the lists and the table; they stay stored and exportable."):
            with guard("Archiving"):
                engine.models.archive(model_id, not archived)
                st.rerun()
        sure = st.checkbox("Delete this model for good", key=f"m_delete_sure_{model_id}")
        if st.button("Delete", icon=":material/delete:", disabled=not sure, key=f"m_delete_{model_id}"):
            with guard("Deleting"):
                engine.models.delete(model_id)
                st.session_state.pop("m_model", None)
                st.rerun()


def online_learner(engine: Engine, name: str, spec: ModelSpec) -> None:
    """A button that deploys an SGD learner on the form's target and numeric features."""
    if "online" in engine.refused:
        st.caption(engine.refused["online"])
        return
    if st.button("Start online learner", icon=":material/autorenew:",
                 help="An SGD model that predicts each batch, then learns from its labels; "
                      "it restarts when drift is detected."):
        with guard("Starting the online learner"):
            engine.deploy_online(name, spec.target, list(spec.numeric), task=spec.task)
            st.rerun()
    st.caption(f"Online learner: {spec.task} of **{spec.target}** from the numeric features "
               f"{', '.join(spec.numeric)}; replaces the deployed model.")
