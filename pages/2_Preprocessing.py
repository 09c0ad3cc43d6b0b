"""Preprocessing: build a stream's pipeline step by step, preview it, apply it, backfill history, go back."""
from __future__ import annotations

import time

import streamlit as st

from engine import UserError, kinds_of
from engine.models import likely_label
from ui import format as fmt
from ui.controls import flash, show_flash, stream_row
from ui.guard import guard
from ui.page import header
from ui.refresh import live_fragment
from ui.steps import KINDS, describe, step_form

engine, every = header(
    "Preprocessing",
    "Clean and shape a stream while it flows. Preview on the newest stored rows, apply from the next "
    "batch, and re-run stored history so every view agrees with the new version.")
PREVIEW_ROWS = 20


def draft(name: str) -> list[dict]:
    """This session's draft steps for `name`; starts as the stream's current pipeline."""
    drafts = st.session_state.setdefault("pp_drafts", {})
    if name not in drafts:
        drafts[name] = [dict(s) for s in engine.pipeline(name)["steps"]]
    return drafts[name]


def steps_editor(name: str, steps: list[dict]) -> None:
    current = engine.pipeline(name)
    if not steps:
        st.caption("No steps: rows reach the statistics as parsed. Add a step below.")
    for i, step in enumerate(steps):
        c1, c2, c3, c4 = st.columns([12, 1, 1, 1], vertical_alignment="center")
        c1.markdown(f"**{i + 1}.** {describe(step)}")
        if c2.button("", icon=":material/arrow_upward:", key=f"pp_up_{i}", disabled=i == 0, help="Move up"):
            steps[i - 1], steps[i] = steps[i], steps[i - 1]
            st.rerun()
        if c3.button("", icon=":material/arrow_downward:", key=f"pp_down_{i}", disabled=i == len(steps) - 1,
                     help="Move down"):
            steps[i + 1], steps[i] = steps[i], steps[i + 1]
            st.rerun()
        if c4.button("", icon=":material/delete:", key=f"pp_remove_{i}", help="Remove this step"):
            steps.pop(i)
            st.rerun()
    if steps != current["steps"]:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.caption(f":orange[Draft] — differs from the running version {current['version']}; preview it below, "
                   "then apply.")
        if c2.button("Discard draft", icon=":material/undo:", width="stretch"):
            st.session_state["pp_drafts"][name] = [dict(s) for s in current["steps"]]
            st.rerun()


def add_step(name: str, steps: list[dict], kinds: dict[str, str], leave_out=()) -> None:
    with st.expander("Add a step", icon=":material/add:", expanded=not steps):
        kind = st.selectbox("Kind", list(KINDS), format_func=KINDS.get, key="pp_kind")
        params = None
        with guard("The step"):
            params = step_form(kind, kinds, leave_out)
        if st.button("Add step", type="primary", icon=":material/add:", disabled=params is None):
            with guard("Adding the step"):
                step = {"kind": kind, "params": params}
                engine.preview(name, {"steps": [*steps, step]}, n=1)      # a step that does not fit is refused now
                steps.append(step)
                st.rerun()


def preview_panel(name: str, steps: list[dict]):
    """Before/after on the newest rows; returns the preview (None when the draft does not fit)."""
    p = engine.preview(name, {"steps": steps}, n=PREVIEW_ROWS)
    notes = [f"{p.before.num_rows} newest stored rows"]
    if p.dropped:
        notes.append(f"{p.dropped} dropped by filters")
    if p.added:
        notes.append("adds " + ", ".join(p.added))
    if p.removed:
        notes.append("removes " + ", ".join(p.removed))
    st.caption(" · ".join(notes))
    # the columns a step adds or removes come first, so the change is in view without scrolling
    before_cols = p.removed + [c for c in p.before.column_names if c not in p.removed]
    after_cols = p.added + [c for c in p.after.column_names if c not in p.added]
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Before** (as parsed)")
        st.dataframe(fmt.frame(p.before), hide_index=True, width="stretch", height=380, column_order=before_cols)
    with c2:
        st.markdown("**After** (as the statistics and models would see them)")
        st.dataframe(fmt.frame(p.after), hide_index=True, width="stretch", height=380, column_order=after_cols,
                     column_config={c: st.column_config.Column(f"{c} (new)") for c in p.added})
    return p


def apply_controls(name: str, steps: list[dict]) -> None:
    current = engine.pipeline(name)
    c1, c2, c3 = st.columns([1, 2, 2], vertical_alignment="center")
    if "backfill" in engine.refused:
        backfill = False
        c2.caption(engine.refused["backfill"])
    else:
        backfill = c2.toggle("Re-run stored history", value=True, key="pp_backfill",
                             help="Rebuild windows, buckets, groups and cumulative statistics from the stored raw "
                                  "rows with the new version, in the background. Without it, only new rows use it.")
    if c1.button("Apply", type="primary", icon=":material/check:", width="stretch",
                 disabled=steps == current["steps"]):
        with guard("Applying"):
            out = engine.apply(name, {"steps": steps}, backfill=backfill)
            st.session_state["pp_drafts"][name] = [dict(s) for s in out["spec"]["steps"]]
            flash("preprocessing", "success", f"Version {out['version']} runs from row {out['from_row']:,}" + (
                "; the re-run of stored history shows its progress below." if backfill else "."))
            st.rerun()
    c3.caption(f"Running now: version **{current['version']}** with {len(current['steps'])} step(s).")


@live_fragment(0.5)
def backfill_panel(name: str) -> None:
    with guard("The backfill"):
        status = engine.backfill_status(name)
        if status is None:
            return
        if status["state"] == "running":
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            c1.progress(min(1.0, status["progress"]),
                        text=f"Re-running stored history with version {status['version']}: "
                             f"{status['rows']:,} of {status['total']:,} rows · {fmt.seconds(status['seconds'])}")
            if c2.button("Cancel", icon=":material/cancel:", key="pp_cancel_backfill", width="stretch"):
                engine.cancel_backfill(name)
        elif status["state"] == "done":
            st.success(f"History re-run with version {status['version']}: {status['rows']:,} rows in "
                       f"{fmt.seconds(status['seconds'])}; every view now agrees with it.",
                       icon=":material/check_circle:")
        elif status["state"] == "failed":
            st.error(f"The backfill stopped: {fmt.plain(status['error'])}")
        else:
            st.info(f"Backfill {status['state']} after {status['rows']:,} of {status['total']:,} rows.")


def history_panel(name: str) -> None:
    versions = engine.pipelines(name)
    current = engine.pipeline(name)["version"]
    rows = [{"version": 0, "created (UTC)": "—", "steps": "no preprocessing"}] + [
        {"version": v["version"], "created (UTC)": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(v["created"]))
         if v.get("created") is not None else "",
         "steps": " → ".join(describe(s) for s in v["spec"]["steps"]) or "no preprocessing"} for v in versions]
    for r in rows:
        r["running"] = "● running" if r["version"] == current else ""
    st.dataframe(rows, hide_index=True, width="stretch", column_order=["version", "running", "created (UTC)", "steps"],
                 column_config={"steps": st.column_config.TextColumn(width="large")})
    c1, c2, c3, c4 = st.columns([1, 1, 1, 2], vertical_alignment="bottom")
    choice = c1.selectbox("Version", [r["version"] for r in reversed(rows)], key="pp_version")
    if c2.button("Go back to it", icon=":material/history:", width="stretch", disabled=choice == current,
                 help="Run this version from the next batch, with the statistics it was recorded with."):
        with guard("Switching version"):
            out = engine.use_pipeline(name, int(choice), backfill="backfill" not in engine.refused
                                      and st.session_state.get("pp_backfill", True))
            st.session_state["pp_drafts"][name] = [dict(s) for s in out["spec"]["steps"]]
            flash("preprocessing", "success", f"Version {choice} runs again from row {out['from_row']:,}.")
            st.rerun()
    if c3.button("Edit a copy", icon=":material/edit:", width="stretch"):
        spec = next((v["spec"] for v in versions if v["version"] == choice), {"steps": []})
        st.session_state["pp_drafts"][name] = [dict(s) for s in spec["steps"]]
        st.rerun()


def page() -> None:
    name, snap, _ = stream_row(engine)
    if snap is None:
        return
    show_flash("preprocessing")
    if getattr(snap, "pipeline_error", None):
        st.warning(f"The pipeline given when this stream started did not fit its first rows: "
                   f"{fmt.plain(snap.pipeline_error)}. The rows flow without preprocessing; fix the steps below and apply.",
                   icon=":material/warning:")
    steps = draft(name)
    parts = len((snap.source or {}).get("partitions") or [])
    with st.container(border=True):
        st.subheader("Steps")
        if parts > 1:
            st.caption(f"This stream runs in {parts} partitions on the cluster: running statistics (forward fill, "
                       "running z-score and min-max, running mean fill) are each partition's own.")
        steps_editor(name, steps)
        try:
            preview = engine.preview(name, {"steps": steps}, n=1) if steps else None
        except UserError:
            preview = None            # the preview below says what is wrong
        # a new step sees the columns the steps before it produce
        kinds = kinds_of(preview.schema) if preview is not None else kinds_of(snap.schema)
        kinds = {c: k for c, k in kinds.items() if not c.startswith("_")}
        # "every number column" leaves out the event time (z-scored, its buckets would land in 1970) and the
        # label a model would predict (a z-scored 0/1 target reads as a regression)
        add_step(name, steps, kinds, {snap.time_column, likely_label(list(kinds), (snap.model or {}).get("target"))})
    st.subheader("Preview")
    with guard("The preview"):
        preview_panel(name, steps)
        apply_controls(name, steps)
    backfill_panel(name)
    st.subheader("Version history")
    with guard("The history"):
        history_panel(name)


if engine is not None:
    with guard("This page"):
        page()
