"""Train, evaluate, deploy and export models on a stream's history; no Streamlit, scikit-learn loads on use.

The names below are what the dashboard uses; the engine reaches the rest through `Engine.models`.
"""
from __future__ import annotations

from .. import lazy_exports

_EXPORTS = {
    "ModelSpec": (".spec", "ModelSpec"),
    "TASKS": (".spec", "TASKS"),
    "algorithms_for": (".spec", "algorithms_for"),
    "guess_task": (".data", "guess_task"),
    "guess_target": (".data", "guess_target"),
    "likely_label": (".data", "likely_label"),
    "model_columns": (".data", "model_columns"),
    "id_like": (".data", "id_like"),
    "split_features": (".data", "split_features"),
    "GRIDS": (".selection", "GRIDS"),
    "HEADLINE": (".evaluate", "HEADLINE"),
    "JOBLIB_WARNING": (".export", "JOBLIB_WARNING"),
    "SUFFIX": (".export", "SUFFIX"),
    "export_bytes": (".export", "export_bytes"),
    "raw_warning": (".export", "raw_warning"),
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
