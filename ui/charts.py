"""Plotly figures the pages share: one look, labelled axes, no computation beyond drawing."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from engine import bucket_label
from ui import format as fmt

PALETTE = ["#1f6feb", "#e36209", "#2da44e", "#8250df", "#cf222e", "#0a7ea4", "#bf8700", "#57606a"]
FONT = dict(family="Source Sans Pro, sans-serif", size=13)
# As the default, plotly applies the template unvalidated; named on each figure it was validated
# every time (7 ms a chart, most of a live page's refresh)
pio.templates.default = "plotly_white"


def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), font=FONT,
                      showlegend=kw.pop("showlegend", False), **kw)
    return fig


def times(epoch_seconds) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(epoch_seconds, dtype=np.float64), unit="s")


def _bucket_range(x: pd.DatetimeIndex, width: int) -> dict:
    """An x range a bucket wide around a lone bucket: plotly would zoom to the millisecond."""
    if len(x) != 1:
        return {}
    pad = pd.Timedelta(seconds=max(int(width), 1))
    return {"range": [x[0] - pad / 2, x[0] + pad * 1.5]}


def _hover_time(width: int) -> str:
    """Dates for buckets of a day or more, the time of day as well below."""
    return "%{x|%Y-%m-%d}" if width >= 86_400 else "%{x|%Y-%m-%d %H:%M:%S}"


def sparkline(values: np.ndarray, colour: str = PALETTE[0], height: int = 70) -> go.Figure:
    x = np.arange(-len(values), 0)
    fig = go.Figure(go.Scatter(x=x, y=values, mode="lines", line=dict(color=colour, width=1.5),
                               fill="tozeroy", fillcolor="rgba(31,111,235,0.12)",
                               hovertemplate="%{x} s: %{y:,} rows<extra></extra>"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, rangemode="tozero")
    return _layout(fig, height, margin=dict(l=0, r=0, t=0, b=0))


def bucket_bands(series: dict, columns: list[str], all_columns: list[str], band: str, width: int) -> go.Figure:
    """Bucket means per column (one panel each) with a min–max or ±1 std band."""
    x = times(series["start"])
    fig = make_subplots(rows=len(columns), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[f"{c} — mean per {bucket_label(width)} bucket" for c in columns])
    for r, col in enumerate(columns, start=1):
        j = all_columns.index(col)
        mean = series["mean"][:, j]
        if band == "min–max":
            lo, hi = series["min"][:, j], series["max"][:, j]
        else:
            lo, hi = mean - series["std"][:, j], mean + series["std"][:, j]
        colour = PALETTE[(r - 1) % len(PALETTE)]
        bx, by = _band(x, lo, hi)
        fig.add_trace(go.Scatter(x=bx, y=by, mode="lines", line=dict(width=0), fill="toself",
                                 fillcolor=_alpha(colour, 0.15), hoverinfo="skip"), row=r, col=1)
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers" if len(x) < 40 else "lines",
                                 line=dict(color=colour, width=2), marker=dict(size=4), name=col,
                                 customdata=np.stack([lo, hi, series["count"][:, j]], axis=1),
                                 hovertemplate=f"{_hover_time(width)}<br>mean %{{y:.4g}}<br>{band} "
                                               "%{customdata[0]:.4g} … %{customdata[1]:.4g}"
                                               "<br>rows %{customdata[2]:,}<extra></extra>"), row=r, col=1)
    fig.update_xaxes(**_bucket_range(x, width))
    fig.update_xaxes(title_text="bucket start (UTC)", row=len(columns), col=1)
    return _layout(fig, 40 + 190 * len(columns), hovermode="x unified")


def _band(x: pd.DatetimeIndex, lo: np.ndarray, hi: np.ndarray) -> tuple[list, list]:
    """One closed outline (hi forward, lo back) per run of buckets where the column has values, runs
    split by None: a fill between two lines would join the runs across buckets without values."""
    ok = np.isfinite(lo) & np.isfinite(hi)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    xs, ys = [], []
    for a, b in zip(edges[::2], edges[1::2]):
        xs += [*x[a:b], *x[a:b][::-1], None]
        ys += [*hi[a:b], *lo[a:b][::-1], None]
    return xs, ys


def _alpha(hex_colour: str, a: float) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{a})"


def histograms(frame: pd.DataFrame, columns: list[str], per_row: int = 4) -> go.Figure:
    rows = -(-len(columns) // per_row)
    fig = make_subplots(rows=rows, cols=min(per_row, len(columns)), subplot_titles=columns,
                        vertical_spacing=0.18 if rows > 1 else 0.1, horizontal_spacing=0.06)
    for i, col in enumerate(columns):
        fig.add_trace(go.Histogram(x=frame[col], marker_color=PALETTE[i % len(PALETTE)], nbinsx=40,
                                   hovertemplate="%{x}<br>%{y:,} rows<extra></extra>"),
                      row=i // per_row + 1, col=i % per_row + 1)
    fig.update_yaxes(title_text="rows", col=1)
    return _layout(fig, 60 + 230 * rows, bargap=0.05)


def group_bars(groups: list[str], means: list, stds: list, counts: list, column: str, by: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=groups, y=means, marker_color=PALETTE[0],
                           error_y=dict(type="data", array=[s if s is not None else 0 for s in stds], visible=True,
                                        color="#57606a", thickness=1.2),
                           customdata=counts,
                           hovertemplate=f"{by} %{{x}}<br>mean {column} %{{y:.4g}}<br>rows %{{customdata:,}}"
                                         "<extra></extra>"))
    fig.update_xaxes(title_text=by)
    fig.update_yaxes(title_text=f"mean {column} (±1 std)")
    return _layout(fig, 320)


HEATMAP_TEXT_COLUMNS = 12      # beyond this many columns a cell is too narrow for its value: hover shows it


def heatmap(matrix: np.ndarray, columns: list[str]) -> go.Figure:
    text = [[("—" if not np.isfinite(v) else f"{v:.2f}") for v in row] for row in matrix]
    n = len(columns)
    fig = go.Figure(go.Heatmap(z=matrix, x=columns, y=columns, zmin=-1, zmax=1, zmid=0,
                               colorscale="RdBu", reversescale=True, text=text,
                               texttemplate="%{text}" if n <= HEATMAP_TEXT_COLUMNS else "",
                               textfont=dict(size=13 if n <= 5 else 11), xgap=2, ygap=2,
                               colorbar=dict(title="r", thickness=12),
                               hovertemplate="%{y} × %{x}<br>r = %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    side = 80 + 60 * len(columns)
    return _layout(fig, min(max(side, 320), 640))


def scatter(frame: pd.DataFrame, x: str, y: str) -> go.Figure:
    fig = go.Figure(go.Scattergl(x=frame[x], y=frame[y], mode="markers",
                                 marker=dict(size=5, color=PALETTE[0], opacity=0.45),
                                 hovertemplate=f"{x} %{{x:.4g}}<br>{y} %{{y:.4g}}<extra></extra>"))
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return _layout(fig, 380)


def correlation_line(series: dict, a: str, b: str, width: int) -> go.Figure:
    x = times(series["start"])
    fig = go.Figure(go.Scatter(x=x, y=series["r"], mode="lines+markers" if len(x) < 60 else "lines",
                               line=dict(color=PALETTE[3], width=2), marker=dict(size=5), customdata=series["n"],
                               hovertemplate=_hover_time(width) + "<br>r = %{y:.3f}<br>rows %{customdata:,}"
                                             "<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#8c959f", width=1, dash="dot"))
    fig.update_yaxes(title_text=f"r({a}, {b})", range=[-1.05, 1.05])
    fig.update_xaxes(title_text=f"bucket start (UTC), {bucket_label(width)} buckets", **_bucket_range(x, width))
    return _layout(fig, 300)


# --- models ---------------------------------------------------------------------------

def confusion(matrix: list[list[int]], classes: list, target: str) -> go.Figure:
    """Counts with each row's share (recall per true class) as the colour, so rare classes still show."""
    m = np.asarray(matrix, dtype=np.float64)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    labels = [str(c) for c in classes]
    n = len(labels)
    full = [[f"{int(v):,}<br>{s:.0%}" for v, s in zip(row, srow)] for row, srow in zip(m, share)]
    # a cell holds count and share up to 4 classes; up to 12 its count (none for 0); beyond, hover only
    # (digits' 10 classes drew 200 overlapping labels)
    text = full if n <= 4 else [[f"{int(v):,}" if v else "" for v in row] for row in m] if n <= 12 else None
    fig = go.Figure(go.Heatmap(z=share, x=labels, y=labels, zmin=0, zmax=1, colorscale="Blues", text=text,
                               texttemplate="%{text}" if text else "", textfont=dict(size=14 if n <= 4 else 11),
                               xgap=2 if n <= 12 else 1, ygap=2 if n <= 12 else 1, showscale=False, customdata=full,
                               hovertemplate=f"true {target} %{{y}}<br>predicted %{{x}}<br>%{{customdata}}"
                                             "<extra></extra>"))
    fig.update_xaxes(title_text=f"predicted {target}", type="category")
    fig.update_yaxes(title_text=f"true {target}", type="category", autorange="reversed")
    return _layout(fig, 320)


def roc(fpr: list[float], tpr: list[float], auc: float | None) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="#8c959f", dash="dot", width=1),
                             name="chance", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", line=dict(color=PALETTE[0], width=2.5), fill="tozeroy",
                             fillcolor=_alpha(PALETTE[0], 0.1),
                             name=f"model (AUC {auc:.3f})" if auc is not None else "model",
                             hovertemplate="false positive rate %{x:.2f}<br>true positive rate %{y:.2f}"
                                           "<extra></extra>"))
    fig.update_xaxes(title_text="false positive rate", range=[0, 1], tickformat=".0%")
    fig.update_yaxes(title_text="true positive rate", range=[0, 1.02], tickformat=".0%")
    return _layout(fig, 320, showlegend=True, legend=dict(x=0.98, y=0.04, xanchor="right", yanchor="bottom"))


def pr_curve(recall: list[float], precision: list[float], ap: float | None, at: dict | None) -> go.Figure:
    """Precision against recall of the positive class; the slider's threshold as a marked point."""
    fig = go.Figure(go.Scatter(x=recall, y=precision, mode="lines", line=dict(color=PALETTE[0], width=2.5),
                               name=f"model (AP {ap:.3f})" if ap is not None else "model",
                               hovertemplate="recall %{x:.2f}<br>precision %{y:.2f}<extra></extra>"))
    if at is not None:
        fig.add_trace(go.Scatter(x=[at["recall"]], y=[at["precision"]], mode="markers",
                                 marker=dict(size=12, color=PALETTE[4], line=dict(color="white", width=2)),
                                 name=f"threshold {at['threshold']:.2f}", hoverinfo="skip"))
    fig.update_xaxes(title_text="recall", range=[0, 1.02], tickformat=".0%")
    fig.update_yaxes(title_text="precision", range=[0, 1.02], tickformat=".0%")
    return _layout(fig, 320, showlegend=True, legend=dict(x=0.02, y=0.04, xanchor="left", yanchor="bottom"))


def fold_scores(scores: list[float], metric: str, baseline: float | None, kind: str) -> go.Figure:
    """Bars per fold; the folds' mean and the baseline as lines named in the legend (no overlapping labels)."""
    x = [f"fold {i}" for i in range(1, len(scores) + 1)]
    fig = go.Figure(go.Bar(x=x, y=scores, marker_color=PALETTE[0], text=[f"{s:.3f}" for s in scores],
                           # inside a bar tall enough, else beside its end in dark text (a fold near 0
                           # had its score shrunk to an unreadable speck inside a sliver of a bar)
                           textposition="auto", insidetextanchor="end", textangle=0, cliponaxis=False,
                           insidetextfont=dict(color="white", size=11), outsidetextfont=dict(color="#24292f", size=11),
                           name="fold", showlegend=False,
                           hovertemplate=f"%{{x}}<br>{metric} %{{y:.3f}}<extra></extra>"))
    ends = [-0.5, len(scores) - 0.5]
    if scores:
        mean = float(np.nanmean(np.asarray(scores, float)))
        fig.add_trace(go.Scatter(x=ends, y=[mean, mean], mode="lines", xaxis="x2", name=f"mean {mean:.3f}",
                                 line=dict(color="#0a3069", dash="dash", width=1.5), hoverinfo="skip"))
    if baseline is not None:
        fig.add_trace(go.Scatter(x=ends, y=[baseline, baseline], mode="lines", xaxis="x2",
                                 name=f"baseline {baseline:.3f}", line=dict(color=PALETTE[4], dash="dot", width=2),
                                 hoverinfo="skip"))
    fig.update_layout(xaxis2=dict(overlaying="x", range=ends, visible=False),
                      xaxis=dict(title_text="time-ordered folds, oldest first" if kind == "time"
                                 else "stratified folds"))
    fig.update_yaxes(title_text=metric, **({"range": [0, 1.05]} if metric in ("macro F1", "accuracy") else {}))
    return _layout(fig, 320, showlegend=True, legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))


def residuals(predicted: list[float], residual: list[float], target: str) -> go.Figure:
    fig = go.Figure(go.Scattergl(x=predicted, y=residual, mode="markers",
                                 marker=dict(size=5, color=PALETTE[0], opacity=0.5),
                                 hovertemplate="predicted %{x:.4g}<br>residual %{y:.4g}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#8c959f", width=1, dash="dot"))
    fig.update_xaxes(title_text=f"predicted {target}")
    fig.update_yaxes(title_text=f"actual − predicted {target}")
    return _layout(fig, 320)


def ranking(features: list[str], scores: list[float], label: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=scores, y=features, orientation="h", marker_color=PALETTE[2],
                           text=[fmt.num(s) for s in scores], textposition="outside", cliponaxis=False,
                           hovertemplate=f"%{{y}}<br>{label} %{{x:.4g}}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title_text=None)
    fig.update_xaxes(title_text=label, range=[0, max([*scores, 1e-12]) * 1.25])     # room for the labels
    return _layout(fig, 60 + 32 * len(features))


def live_score(curve: dict, drift_rows: list[int], metric: str, window: int) -> go.Figure:
    """The deployed model's windowed score after each batch, against labelled rows, drift as red lines."""
    fig = go.Figure(go.Scatter(x=curve["labelled"], y=curve["score"], mode="lines",
                               line=dict(color=PALETTE[0], width=2),
                               customdata=times(curve["time"]),
                               hovertemplate=f"%{{x:,}} labelled rows<br>{metric} %{{y:.3f}}"
                                             "<br>%{customdata|%H:%M:%S}<extra></extra>"))
    first = curve["labelled"][0] if curve["labelled"] else 0
    shown = [r for r in drift_rows if r >= first]
    for i, row in enumerate(shown):
        fig.add_vline(x=row, line=dict(color=PALETTE[4], width=1.5, dash="dash"),
                      annotation_text="drift" if i == len(shown) - 1 else None, annotation_position="top")
    fig.update_xaxes(title_text="labelled rows scored (since the time below)")
    fig.update_yaxes(title_text=f"{metric}, rolling {window:,} rows",
                     **({"range": [0, 1.02]} if metric == "macro F1" else {}))
    return _layout(fig, 300)
