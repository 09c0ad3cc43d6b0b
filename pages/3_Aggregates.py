"""Live aggregates: window statistics, bucket series, histograms and group-by, per-session filters."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from engine import Snapshot, bucket_label, stats_dict
from ui import charts
from ui import format as fmt
from ui.controls import pick_columns, pick_time, pick_width, stream_row
from ui.filters import filters_panel, latest, window_caption, window_of
from ui.guard import guard
from ui.page import header
from ui.refresh import keep, live_fragment, remember
from ui.shared import SHARED, version

engine, every = header(
    "Live aggregates",
    "Statistics over a window of the newest rows, tumbling-window buckets and group-by, refreshing live.",
    tab="Aggregates")
HIST_ROWS = 5000          # rows drawn in the histograms
CHART_BUCKETS = 240       # newest buckets in the line chart
BANDS = ["min–max", "±1 std"]


@dataclass(frozen=True)
class Panels:
    """What the live part draws, built once for every session with the same view (ui/shared.py)."""
    snap: Snapshot
    view: object                     # the window, filtered (engine.view)
    stats: dict                      # per column over the window
    overall: dict                    # per column over every row
    buckets: object = None           # the bucket chart, or None when no bucket is in the range
    bucket_note: str = ""
    hist: object = None
    hist_rows: int = 0
    groups: list[dict] | None = None
    group_chart: object = None


def build(snap, pick, filters, columns: list[str], width: int, band: str, by: str | None,
          measure: str | None) -> Panels:
    v = window_of(snap, pick, filters)
    if v.rows == 0:
        return Panels(snap, v, {}, {})
    buckets, note = bucket_chart(v, snap, columns, width, band)
    frame = v.table(last=HIST_ROWS).select(columns).to_pandas()
    groups = group_rows(v, by, measure) if by else None
    return Panels(snap, v, v.stats(), stats_dict(snap.cumulative_moments, snap.columns), buckets, note,
                  charts.histograms(frame, columns), len(frame), groups,
                  charts.group_bars([r[by] for r in groups], [r["mean"] for r in groups], [r["std"] for r in groups],
                                    [r["rows"] for r in groups], measure, by) if groups else None)


def stat_cards(p: Panels, columns: list[str]) -> None:
    per_row = 4
    for start in range(0, len(columns), per_row):
        cols = st.columns(per_row)
        for box, col in zip(cols, columns[start:start + per_row]):
            s, o = p.stats[col], p.overall[col]
            delta = None if s["mean"] is None or o["mean"] is None else s["mean"] - o["mean"]
            if delta is not None and abs(delta) <= 1e-9 * max(abs(o["mean"]), 1e-300):
                delta = None           # the window holds every row so far: nothing to compare
            with box.container(border=True):
                st.metric(f"{col} · mean", fmt.num(s["mean"]),
                          delta=None if delta is None else f"{fmt.num(delta)} vs all rows", delta_color="off",
                          help="Mean over the window; the small line compares it with every row stored.")
                st.caption(f"std **{fmt.num(s['std'])}** · min **{fmt.num(s['min'])}** · "
                           f"max **{fmt.num(s['max'])}** · rows **{fmt.count(s['count'])}**")


def bucket_chart(v, snap, columns: list[str], width: int, band: str):
    """(the bucket chart, its caption); (None, "") when the range holds no bucket."""
    if v.rows_filtered:
        series, source = v.bucket_series(width), "the filtered rows of the window"
    elif v.span is not None:       # the picked range, from the buckets of every row of the stream
        series, source = snap.bucket_series(width, *v.span), "every row of the stream in the time range"
    else:
        series, source = snap.bucket_series(width), "every row of the stream"
    n = len(series["start"])
    if n == 0:
        return None, ""
    series = {k: a[-CHART_BUCKETS:] for k, a in series.items()}
    shown = min(n, CHART_BUCKETS)
    note = (("One bucket" if shown == 1 else f"Newest {shown} buckets") + f" of {bucket_label(width)} from {source}; "
            f"time is the {'time column ' + repr(snap.time_column) if snap.time_column else 'arrival time'} "
            "(UTC; days, weeks from Monday and months aligned to the calendar).")
    return charts.bucket_bands(series, columns, snap.columns, band, width), note


def group_rows(v, by: str, measure: str) -> list[dict]:
    groups = v.group_stats(by)
    names = sorted(groups, key=lambda g: -groups[g][measure]["count"])
    return [{by: g, "rows": groups[g][measure]["count"], "mean": groups[g][measure]["mean"],
             "std": groups[g][measure]["std"], "min": groups[g][measure]["min"], "max": groups[g][measure]["max"]}
            for g in names]


def group_section(p: Panels) -> None:
    if not p.groups:
        st.info("No rows in the window to group.")
        return
    c1, c2 = st.columns([2, 3])
    c1.dataframe(p.groups, hide_index=True, width="stretch",
                 column_config={k: st.column_config.NumberColumn(format="%.4g") for k in ("mean", "std", "min", "max")}
                 | {"rows": st.column_config.NumberColumn(format="localized")})
    c2.plotly_chart(p.group_chart, key="agg_groups", config={"displayModeBar": False})


def page() -> None:
    name, snap, right = stream_row(engine)
    if snap is None:
        return
    with right:
        pick = pick_time("agg")
    columns = pick_columns(snap, "agg")
    c1, c2, c3, c4 = st.columns(4)
    width = pick_width(c1, "agg_width", snap, "Bucket width", CHART_BUCKETS)
    remember("agg_band", BANDS[0], BANDS)
    band = c2.radio("Band", BANDS, key="agg_band", horizontal=True, on_change=keep, args=("agg_band",))
    categorical = [f.name for f in snap.schema if f.name != snap.time_column
                   and (str(f.type) in ("string", "large_string", "bool"))]
    by = measure = None
    if categorical:
        remember("agg_group_by", snap.group_column or categorical[0], categorical)
        by = c3.selectbox("Group by", categorical, key="agg_group_by", on_change=keep, args=("agg_group_by",))
        remember("agg_measure", snap.columns[0], snap.columns)
        measure = c4.selectbox("Measure", snap.columns, key="agg_measure", on_change=keep, args=("agg_measure",))
    filters = filters_panel(snap)
    if not columns:
        st.info("Choose one or more columns above.")
        return

    @live_fragment(every)
    def live() -> None:
        with guard("The aggregates"):
            current = latest(engine, name)
            if current is None:
                return
            key = ("aggregates", name, pick, tuple(filters), tuple(columns), width, band, by, measure)
            p = SHARED.get(key, version(current), lambda: build(current, pick, filters, columns, width, band,
                                                                by, measure))
            window_caption(p.snap, p.view, pick, filters)
            if p.view.rows == 0:
                st.warning("No rows match: widen the time range or loosen the filters.")
                return
            stat_cards(p, columns)
            st.subheader("Bucket means")
            if p.buckets is None:
                st.info("No buckets in this time range: they fill in as rows with a time arrive.")
            else:
                st.plotly_chart(p.buckets, key="agg_buckets", config={"displayModeBar": False})
                st.caption(p.bucket_note)
            st.subheader("Distribution")
            st.plotly_chart(p.hist, key="agg_hist", config={"displayModeBar": False})
            st.caption(f"Newest {fmt.count(p.hist_rows)} rows of the window.")
            if by:
                st.subheader(f"{measure} by {by}")
                group_section(p)
    live()


if engine is not None:
    with guard("This page"):
        page()
