"""Correlations: live heatmap, covariance, strongest pairs, a pair's scatter and its correlation over time."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from engine import BUFFER_ROWS, Snapshot, bucket_label, strongest_pairs, view
from ui import charts
from ui import format as fmt
from ui.controls import pick_columns, pick_time, pick_width, stream_row
from ui.filters import filters_panel, latest, window_caption, window_of
from ui.guard import guard
from ui.page import header
from ui.refresh import keep, live_fragment, remember
from ui.shared import SHARED, version

engine, every = header(
    "Correlations",
    "Pearson correlation and covariance between numeric columns over a live window (pairwise complete "
    "rows, sample covariance).")
SCATTER_ROWS = 3000
ROWS_PER_BUCKET = 10      # the default width for r over time gives buckets of 10 rows or more (r needs several)


def strength(r: float) -> str:
    """The usual words for |r| (the sign is in the r column beside it)."""
    a = abs(r)
    return "very strong" if a >= 0.8 else "strong" if a >= 0.6 else "moderate" if a >= 0.4 else \
        "weak" if a >= 0.2 else "negligible"


@dataclass(frozen=True)
class Panels:
    """What the live part draws, built once for every session with the same view (ui/shared.py)."""
    snap: Snapshot
    view: object                     # the window, filtered (engine.view)
    heatmap: object = None
    pairs: list[dict] | None = None
    cov: pd.DataFrame | None = None
    scatter: object = None           # None when x and y are the same column
    scatter_rows: int = 0
    series: dict | None = None       # r per bucket of the rows kept in memory
    over_time: object = None         # its chart, when some bucket has an r
    kept_rows: int = 0
    kept_filtered: bool = False


def build(snap, pick, filters, columns: list[str], x: str, y: str, width: int) -> Panels:
    v = window_of(snap, pick, filters)
    if v.rows < 3:
        return Panels(snap, v)
    m = v.pair_moments(columns)
    parts = dict(heatmap=charts.heatmap(m.corr(), columns), pairs=strongest_pairs(m, columns, limit=10),
                 cov=pd.DataFrame(m.cov(), index=columns, columns=columns))
    if x != y:
        frame = v.table(last=SCATTER_ROWS).select([x, y]).to_pandas()
        # a time range is already over every row held; the newest N rows widen to all held
        kept = v if v.span is not None else view(snap, rows=BUFFER_ROWS, filters=filters)
        series = kept.pair_corr_series(x, y, width)
        ok = len(series["start"]) > 0 and np.isfinite(series["r"]).any()
        parts.update(scatter=charts.scatter(frame, x, y), scatter_rows=len(frame), series=series,
                     over_time=charts.correlation_line(series, x, y, width) if ok else None,
                     kept_rows=kept.rows, kept_filtered=kept.filtered)
    return Panels(snap, v, **parts)


def page() -> None:
    name, snap, right = stream_row(engine)
    if snap is None:
        return
    with right:
        pick = pick_time("corr", default_rows=1000)
    columns = pick_columns(snap, "corr", limit=8)
    if len(columns) < 2:
        st.info("Choose at least two numeric columns to correlate.")
        return
    c1, c2, c3 = st.columns(3)
    remember("corr_x", columns[0], columns)
    remember("corr_y", columns[1], columns)
    x = c1.selectbox("Pair: x", columns, key="corr_x", on_change=keep, args=("corr_x",))
    y = c2.selectbox("Pair: y", columns, key="corr_y", on_change=keep, args=("corr_y",))
    width = pick_width(c3, "corr_width", snap, "Bucket width (over time)", 240, fill=ROWS_PER_BUCKET)
    filters = filters_panel(snap)

    @live_fragment(every)
    def live() -> None:
        with guard("The correlations"):
            current = latest(engine, name)
            if current is None:
                return
            key = ("correlations", name, pick, tuple(filters), tuple(columns), x, y, width)
            p = SHARED.get(key, version(current), lambda: build(current, pick, filters, columns, x, y, width))
            window_caption(p.snap, p.view, pick, filters)
            if p.view.rows < 3:
                st.warning("Fewer than 3 rows in the time range: widen it or loosen the filters.")
                return
            left, right = st.columns(2, gap="medium")     # the pairs table needs half to show its five columns
            with left:
                st.subheader("Correlation matrix")
                st.plotly_chart(p.heatmap, key="corr_heatmap", config={"displayModeBar": False})
            with right:
                st.subheader("Strongest pairs")
                if p.pairs:
                    st.dataframe([{"pair": f"{q['a']} × {q['b']}", "r": q["r"], "|r|": abs(q["r"]),
                                   "strength": strength(q["r"]), "rows": q["n"]} for q in p.pairs],
                                 hide_index=True, width="stretch", height=38 + 35 * len(p.pairs),
                                 column_config={"r": st.column_config.NumberColumn(format="%+.3f", width="small"),
                                                "|r|": st.column_config.ProgressColumn(
                                                    "|r|", min_value=0, max_value=1, format=" ", width="small"),
                                                "strength": st.column_config.TextColumn(width="small"),
                                                "rows": st.column_config.NumberColumn(
                                                    format="compact", width="small",
                                                    help="Rows with both values in the range")})
                else:
                    st.info("No pair has enough varying values yet.")
            st.subheader("Covariance")
            st.dataframe(p.cov, width="stretch",
                         column_config={c: st.column_config.NumberColumn(format="%.4g") for c in columns})
            st.caption("Sample covariance (ddof = 1) in the columns' own units, squared on the diagonal (variance).")
            if x == y:
                st.info("Pick two different columns for the pair.")
                return
            a, b = st.columns(2)
            with a:
                st.subheader(f"{x} vs {y}")
                st.plotly_chart(p.scatter, key="corr_scatter", config={"displayModeBar": False})
                st.caption(f"Newest {fmt.count(p.scatter_rows)} rows of the window.")
            with b:
                st.subheader("Correlation over time")
                if len(p.series["start"]) == 0:
                    st.info("No rows with both values and a time yet.")
                elif p.over_time is None:
                    st.info(f"No {bucket_label(width)} bucket holds two rows with varying values: "
                            "pick a wider bucket width.")
                else:
                    st.plotly_chart(p.over_time, key="corr_time", config={"displayModeBar": False})
                    st.caption(f"r within each {bucket_label(width)} bucket of the newest "
                               f"{fmt.count(p.kept_rows)} rows kept in memory"
                               + (", filtered" if p.kept_filtered else "") + ".")
    live()


if engine is not None:
    with guard("This page"):
        page()
