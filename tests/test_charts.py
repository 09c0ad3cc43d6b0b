"""Charts an analyst reads: a lone bucket gets an axis a bucket wide, not plotly's millisecond zoom."""
import numpy as np
import pandas as pd

from ui import charts


def one_bucket(start: float) -> dict:
    one = np.array([[1.0]])
    return {"start": np.array([start]), "mean": one, "min": one / 2, "max": one * 2, "std": one / 10,
            "count": np.array([[3]]), "r": np.array([0.5]), "n": np.array([3])}


def test_a_single_bucket_spans_its_width_on_the_time_axis():
    series = one_bucket(1.7e9)
    for fig in (charts.bucket_bands(series, ["a"], ["a"], "min–max", 60), charts.correlation_line(series, "a", "b", 60)):
        lo, hi = (pd.Timestamp(t) for t in fig.layout.xaxis.range)
        assert hi - lo == pd.Timedelta(seconds=120)
        assert lo < pd.Timestamp(1.7e9, unit="s") < hi


def test_several_buckets_keep_plotlys_own_range():
    series = one_bucket(1.7e9)
    series = {k: np.concatenate([v, v]) for k, v in series.items()}
    series["start"] = np.array([1.7e9, 1.7e9 + 60])
    assert charts.bucket_bands(series, ["a"], ["a"], "min–max", 60).layout.xaxis.range is None


def test_a_band_is_not_drawn_across_buckets_without_values():
    """A column missing from some buckets (every row there had it empty): its min–max band has one
    closed outline per run of buckets with values, none spanning the empty ones."""
    n = 7
    v = np.array([1.0, 2.0, np.nan, np.nan, 3.0, 4.0, 5.0])
    series = {"start": 1.7e9 + 3600.0 * np.arange(n), "mean": v[:, None], "min": v[:, None] - 1,
              "max": v[:, None] + 1, "std": np.ones((n, 1)), "count": np.ones((n, 1), int)}
    fig = charts.bucket_bands(series, ["a"], ["a"], "min–max", 3600)
    band = next(t for t in fig.data if t.fill)
    xs = list(band.x)
    runs, run = [], []
    for t in xs + [None]:
        if t is None:
            if run:
                runs.append(run)
            run = []
        else:
            run.append(pd.Timestamp(t))
    gap_lo, gap_hi = pd.Timestamp(1.7e9 + 3600 * 2, unit="s"), pd.Timestamp(1.7e9 + 3600 * 3, unit="s")
    assert len(runs) == 2
    for r in runs:                                  # no outline reaches into the empty buckets
        assert max(r) < gap_lo or min(r) > gap_hi


def test_heatmap_values_fit_their_cells():
    """Eight long-named columns (breast_cancer's "mean concave points") left cells too narrow for 13 px values,
    which ran into each other; past 12 columns a cell holds no value (hover shows it)."""
    for n, size, shown in ((4, 13, True), (8, 11, True), (20, 11, False)):
        fig = charts.heatmap(np.eye(n), [f"mean column {i}" for i in range(n)])
        assert fig.data[0].textfont.size == size
        assert (fig.data[0].texttemplate == "%{text}") is shown


def test_fold_scores_near_zero_stay_readable():
    """tips, time folds: R² -0.01 drew its label shrunk inside a sliver of a bar; a label that does not fit
    goes beside the bar in dark text (white on the white page would vanish)."""
    fig = charts.fold_scores([-0.013, 0.548, 0.334, 0.692, -0.074], "R²", -0.028, "time")
    bars = fig.data[0]
    assert bars.textposition == "auto" and bars.cliponaxis is False
    assert bars.insidetextfont.color == "white" and bars.outsidetextfont.color not in (None, "white")


def test_confusion_cells_hold_what_fits():
    """digits' ten classes drew count and share in each of 100 cells, overlapping into a smear."""
    for n, want in ((2, "5<br>50%"), (10, "5"), (26, None)):
        m = np.diag(np.full(n, 5)) + (np.eye(n, k=1) * 5 if n == 2 else 0)
        fig = charts.confusion(m.astype(int).tolist(), list(range(n)), "target")
        h = fig.data[0]
        if want is None:
            assert h.text is None and h.texttemplate == ""
        else:
            assert h.text[0][0] == want and h.texttemplate == "%{text}"
            if n == 10:
                assert h.text[0][1] == ""                 # a zero leaves its cell empty
        assert "%{customdata}" in h.hovertemplate and h.customdata[0][0].startswith("5<br>")
