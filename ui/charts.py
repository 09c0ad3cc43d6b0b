"""Plotly figures the pages share: one look, labelled axes, no computation beyond drawing."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ui import format as fmt

PALETTE = ["#1f6feb", "#e36209", "#2da44e", "#8250df", "#cf222e", "#0a7ea4", "#bf8700", "#57606a"]
FONT = dict(family="Source Sans Pro, sans-serif", size=13)


def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), template="plotly_white",
                      font=FONT, showlegend=kw.pop("showlegend", False), **kw)
    return fig


def times(epoch_seconds) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(epoch_seconds, dtype=np.float64), unit="s")


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
                        subplot_titles=[f"{c} — mean per {fmt.seconds(width)} bucket" for c in columns])
    for r, col in enumerate(columns, start=1):
        j = all_columns.index(col)
        mean = series["mean"][:, j]
        if band == "min–max":
            lo, hi = series["min"][:, j], series["max"][:, j]
        else:
            lo, hi = mean - series["std"][:, j], mean + series["std"][:, j]
        colour = PALETTE[(r - 1) % len(PALETTE)]
        fig.add_trace(go.Scatter(x=x, y=hi, mode="lines", line=dict(width=0), hoverinfo="skip"), row=r, col=1)
        fig.add_trace(go.Scatter(x=x, y=lo, mode="lines", line=dict(width=0), fill="tonexty",
                                 fillcolor=_alpha(colour, 0.15), hoverinfo="skip"), row=r, col=1)
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers" if len(x) < 40 else "lines",
                                 line=dict(color=colour, width=2), marker=dict(size=4), name=col,
                                 customdata=np.stack([lo, hi, series["count"][:, j]], axis=1),
                                 hovertemplate=f"%{{x|%H:%M:%S}}<br>mean %{{y:.4g}}<br>{band} "
                                               "%{customdata[0]:.4g} … %{customdata[1]:.4g}"
                                               "<br>rows %{customdata[2]:,}<extra></extra>"), row=r, col=1)
    fig.update_xaxes(title_text="bucket start (UTC)", row=len(columns), col=1)
    return _layout(fig, 40 + 190 * len(columns), hovermode="x unified")


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


def heatmap(matrix: np.ndarray, columns: list[str]) -> go.Figure:
    text = [[("—" if not np.isfinite(v) else f"{v:.2f}") for v in row] for row in matrix]
    fig = go.Figure(go.Heatmap(z=matrix, x=columns, y=columns, zmin=-1, zmax=1, zmid=0,
                               colorscale="RdBu", reversescale=True, text=text, texttemplate="%{text}",
                               textfont=dict(size=13), xgap=2, ygap=2,
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
                               hovertemplate="%{x|%H:%M:%S}<br>r = %{y:.3f}<br>rows %{customdata:,}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#8c959f", width=1, dash="dot"))
    fig.update_yaxes(title_text=f"r({a}, {b})", range=[-1.05, 1.05])
    fig.update_xaxes(title_text=f"bucket start (UTC), {fmt.seconds(width)} buckets")
    return _layout(fig, 300)
