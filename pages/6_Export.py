"""Export: models as .skops, joblib or ONNX with their card; import .skops; data as CSV or Parquet."""
from __future__ import annotations

import json
import math

import streamlit as st

from engine import bucket_label, downloads, upload_limit_bytes
from engine.models import JOBLIB_WARNING, SUFFIX, export_bytes, raw_warning
from ui import format as fmt
from ui.controls import pick_stream, pick_width
from ui.guard import guard
from ui.page import header
from ui.uploads import opened

engine, _ = header(
    "Export",
    "Take models and data out of Rivulet, or bring a model in. Model files carry a card: what the model "
    "was trained on, how it scored, and the library versions it needs.")
FORMAT_NAMES = {"skops": ".skops (safe to load)", "joblib": "joblib (pickle)", "onnx": "ONNX"}
DATA = {"Window statistics": "stats", "Bucket series": "buckets", "Stored history": "history"}


def model_export() -> None:
    cards = engine.models.registry.list()
    if not cards:
        st.info("No models yet: train one on the Models page, or import a .skops file on the right.",
                icon=":material/info:")
        st.page_link("pages/5_Models.py", label="Go to Models", icon=":material/model_training:")
        return
    labels = {c["id"]: f"{c['name']} · {(c.get('spec') or {}).get('target') or 'imported'} · "
                       f"{c['created'].replace('T', ' ')[:-1]}" for c in cards}
    model_id = st.selectbox("Model", list(labels), format_func=labels.get, key="x_model")
    fmt_name = st.radio("Format", list(FORMAT_NAMES), format_func=FORMAT_NAMES.get, horizontal=True,
                        key="x_format")
    chosen = next(c for c in cards if c["id"] == model_id)
    if chosen.get("raw_columns") is False:
        st.warning(raw_warning(chosen).capitalize(), icon=":material/warning:")
    if fmt_name == "joblib":
        st.warning(JOBLIB_WARNING, icon=":material/warning:")
    if fmt_name == "onnx":
        st.caption("For onnxruntime in any language; numeric inputs are float32, one input per feature.")
    with guard("Preparing the file"):
        data, card = _artefact(model_id, fmt_name)
        base = f"{model_id}{SUFFIX[fmt_name]}"
        c1, c2 = st.columns(2)
        c1.download_button(f"Download {SUFFIX[fmt_name]}", data, file_name=base, help=base,
                           mime="application/octet-stream",
                           icon=":material/download:", type="primary", width="stretch", on_click="ignore")
        c2.download_button("Download model card (JSON)", json.dumps(card, indent=1), file_name=base + ".card.json",
                           mime="application/json", icon=":material/description:", width="stretch",
                           on_click="ignore")
        card_summary(card, len(data))


@st.cache_data(max_entries=8, show_spinner="Writing the model file…")
def _artefact(model_id: str, fmt_name: str) -> tuple[bytes, dict]:
    model, card = engine.models.registry.load(model_id)
    return export_bytes(model, card, fmt_name, f"{model_id}{SUFFIX[fmt_name]}")


def card_summary(card: dict, size: int) -> None:
    metrics = card.get("metrics") or {}
    holdout = metrics.get("holdout") or {}
    main = (metrics.get("cv") or {}).get("metric")
    # every text of a card may come from an uploaded file: plain() keeps it from becoming markdown
    lines = [f"**{fmt.plain(card.get('name'))}** · {fmt.size(size)} · SHA-256 `{fmt.plain(card['sha256'][:16])}…`"]
    spec = card.get("spec") or {}
    lines.append(f"Predicts **{fmt.plain(spec.get('target') or 'its target')}** "
                 f"({fmt.plain(spec.get('task') or 'task unknown')}) from "
                 + ", ".join(fmt.plain(f"{f['name']} ({f.get('kind') or f.get('role') or '?'})")
                             for f in card["features"]))
    if main and holdout.get(main) is not None:
        lines.append(f"Holdout {fmt.plain(main)} {holdout[main]:.3f} (baseline {metrics['baseline'].get(main):.3f}) "
                     f"on {metrics['rows']['holdout']:,} rows")
    libs = card.get("libraries") or {}
    if libs:
        lines.append("Needs " + fmt.plain(", ".join(f"{k} {v}" for k, v in libs.items() if v)))
    with st.container(border=True):
        st.markdown("  \n".join(lines))


def model_import() -> None:
    st.caption("Only .skops files: every type inside is checked against a fixed allow-list before "
               "loading, so a file cannot run code. Pickle and joblib files are refused.")
    limit_mb = max(1, math.ceil(upload_limit_bytes() / 1024 / 1024))
    st.session_state.setdefault("x_import_round", 0)
    r = st.session_state["x_import_round"]
    model_file = st.file_uploader("Model file (.skops)", key=f"x_import_{r}", max_upload_size=limit_mb)
    card_file = st.file_uploader("Its card (.card.json, optional)", type=["json"], key=f"x_import_card_{r}")
    if st.button("Import", icon=":material/upload:", disabled=model_file is None):
        with guard("Importing"):
            card = opened(card_file).read() if card_file else None     # on disk, or the widget's bytes
            model_id = engine.models.import_model(opened(model_file), model_file.name, card_data=card)
            st.session_state["x_import_round"] += 1
            st.session_state["x_imported"] = model_id
            st.rerun()
    if st.session_state.get("x_imported"):
        st.success(f"Imported as **{fmt.plain(st.session_state['x_imported'])}**; it is listed on the left and on Models.",
                   icon=":material/check_circle:")


def data_export() -> None:
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    with c1:
        name, snap = pick_stream(engine)
    if snap is None:
        return
    what = c2.radio("Data", list(DATA), horizontal=True, key="x_data")
    kind = DATA[what]
    out_fmt = c4.radio("Format", list(downloads.FORMATS), format_func={"csv": "CSV", "parquet": "Parquet"}.get,
                       key="x_data_format")
    if kind == "stats":
        rows = int(c3.number_input("Last N rows", 1, 100_000, int(snap.window_spec.size)
                                   if snap.window_spec.kind == "count" else 10_000, key="x_stats_rows"))
        table = downloads.window_stats(snap, rows=rows)
        note = f"count, mean, var, std, min, max of each numeric column over the last {rows:,} rows"
    elif kind == "buckets":
        # the finest width holding every row (weekly rows: days; at 10 s the file gave one bucket)
        width = pick_width(c3, "x_width", snap, "Bucket width", 10_000)
        table = downloads.bucket_series(snap, width)
        note = f"every {bucket_label(width)} bucket kept, one row per bucket and column"
    else:
        last = int(c3.number_input("Newest rows (0 = all)", 0, 10_000_000, 10_000, step=10_000, key="x_last"))
        table = engine.models.history(name, {"last": last} if last else None)
        note = "stored rows after the current preprocessing, oldest first, with row id and arrival time"
    data = downloads.to_bytes(table, out_fmt)
    st.download_button(f"Download {name}-{kind}.{out_fmt}", data, file_name=f"{name}-{kind}.{out_fmt}",
                       mime=downloads.MIME[out_fmt], icon=":material/download:", type="primary",
                       on_click="ignore")
    st.caption(f"{table.num_rows:,} rows × {table.num_columns} columns, {fmt.size(len(data))}: {note}."
               + (" Text cells starting with = + - @ get a leading apostrophe so spreadsheets do not run "
                  "them as formulas." if out_fmt == "csv" else ""))
    shown = table.slice(max(0, table.num_rows - 200))
    st.dataframe(fmt.frame(shown), hide_index=True, width="stretch", height=min(280, 38 + 35 * shown.num_rows))


if engine is not None:
    left, right = st.columns([3, 2], gap="large")
    with left, st.container(border=True):
        st.subheader("Download a model")
        with guard("The model export"):
            model_export()
    with right, st.container(border=True):
        st.subheader("Import a model")
        with guard("The model import"):
            model_import()
    with st.container(border=True):
        st.subheader("Download data")
        with guard("The data export"):
            data_export()
