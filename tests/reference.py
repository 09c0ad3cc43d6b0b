"""Compare Rivulet's numbers with pandas' (None in our JSON = NaN in pandas)."""
import math

import numpy as np
import pandas as pd

RTOL = 1e-9


def close(ours, want, rtol=RTOL, atol=0.0, what=""):
    want = float(want) if want is not None else float("nan")
    ours = float("nan") if ours is None else float(ours)
    if math.isnan(want) or math.isnan(ours):
        assert math.isnan(want) and math.isnan(ours), f"{what}: ours={ours} pandas={want}"
        return
    assert math.isclose(ours, want, rel_tol=rtol, abs_tol=atol), f"{what}: ours={ours!r} pandas={want!r}"


def check_stats(stats: dict, df: pd.DataFrame, rtol=RTOL):
    for col in df.columns:
        s = df[col]
        first = s.dropna().iloc[0] if s.count() else 0.0
        c = s - first if abs(first) > 1e4 else s            # exact shift, see centred() in test_moments
        want = {"count": s.count(), "mean": s.mean(), "var": c.var(), "std": c.std(), "min": s.min(), "max": s.max()}
        for name, value in want.items():
            scale = float(np.nanmax(np.abs(s))) if s.count() else 1.0
            atol = 1e-12 * scale if name == "mean" else 1e-12 * float(np.nanmax(np.abs(c))) ** 2 if name == "var" and c.count() else 0.0
            close(stats[col][name], value, rtol, atol, f"{col}.{name}")


def check_matrix(ours: dict, want: pd.DataFrame, rtol=RTOL, atol=1e-12, what=""):
    for a in want.columns:
        for b in want.columns:
            close(ours[a][b], want.loc[a, b], rtol, atol, f"{what}[{a},{b}]")


def peak_of(fn):
    """fn()'s result and the peak of the memory Python and numpy allocated while it ran (tracemalloc)."""
    import tracemalloc
    tracemalloc.start()
    try:
        return fn(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
