"""Rivulet's engine: collect (ingest/), preprocess (prep/), process (stats/), store (store/), read (read/),
models (models/), orchestrated by runtime.py and stream.py. No Streamlit here.

The names below are the public surface the dashboard (pages/, ui/) uses; they load on first use, so
`python -m engine --help` imports none of them.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    # name: (module, attribute; None for the module itself)
    "Engine": (".runtime", "Engine"),
    "open_engine": (".start", "open_engine"),
    "UserError": (".errors", "UserError"),
    "EngineBusy": (".errors", "EngineBusy"),
    "Snapshot": (".read.snapshot", "Snapshot"),
    "stats_dict": (".read.snapshot", "stats_dict"),
    "FILTER_OPS": (".read.views", "OPS"),
    "Filter": (".read.views", "Filter"),
    "parse_time": (".read.views", "parse_time"),
    "recent_rate": (".read.views", "recent_rate"),
    "row_mask": (".read.views", "row_mask"),
    "strongest_pairs": (".read.views", "strongest_pairs"),
    "throughput_series": (".read.views", "throughput_series"),
    "view": (".read.views", "view"),
    "downloads": (".read.downloads", None),
    "to_csv_bytes": (".read.export_csv", "to_csv_bytes"),
    "WindowSpec": (".stats.operators", "WindowSpec"),
    "BUFFER_ROWS": (".stats.operators", "BUFFER_ROWS"),
    "BUCKET_WIDTHS": (".stats.buckets", "WIDTHS"),
    "bucket_label": (".stats.buckets", "label"),
    "TIME_FORMATS": (".ingest.times", "FORMATS"),
    "time_example": (".ingest.times", "example"),
    "Speed": (".ingest.replay", "Speed"),
    "SPEED_LIMITS": (".ingest.replay", "SPEED_LIMITS"),
    "peek_columns": (".ingest.uploads", "peek_columns"),
    "Spool": (".ingest.uploads", "Spool"),
    "start_replay": (".ingest.uploads", "start_replay"),
    "upload_limit_bytes": (".ingest.uploads", "upload_limit_bytes"),
    "default_data_dir": (".runtime", "default_data_dir"),
    "STEP_FILTER_OPS": (".prep.steps", "OPS"),
    "kinds_of": (".prep.steps", "kinds_of"),
    "EXPR_FUNCTIONS": (".prep.expr", "FUNCTIONS"),
}
__all__ = sorted(_EXPORTS)


def lazy_exports(package: str, exports: dict[str, tuple[str, str | None]]):
    """A module `__getattr__` that imports an exported name's module when the name is first used (PEP 562)."""
    def __getattr__(name: str):
        try:
            module, attr = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        mod = importlib.import_module(module, package)
        return mod if attr is None else getattr(mod, attr)
    return __getattr__


__getattr__ = lazy_exports(__name__, _EXPORTS)
