"""Per-viewer views (filters, time ranges, buckets, pair correlations) against pandas."""
import numpy as np
import pandas as pd
import pytest

from engine.errors import UserError
from engine.stats.operators import WindowSpec
from engine.runtime import Engine
from engine.read.views import Filter, row_mask, strongest_pairs, throughput_series, view
from tests.reference import check_stats, close

N = 3000


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    x = rng.normal(10, 2, N)
    df = pd.DataFrame({
        "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(N) * 0.5, unit="s"),
        "site": rng.choice(["north", "south", "east"], N),
        "x": x, "y": 3 * x + rng.normal(0, 4, N), "z": rng.normal(size=N)})
    df.loc[rng.random(N) < 0.05, "y"] = np.nan
    df.loc[rng.random(N) < 0.02, "site"] = np.nan
    return df


@pytest.fixture(scope="module")
def snap(frame, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("views")
    path = tmp / "v.csv"
    frame.to_csv(path, index=False)
    with Engine(str(tmp / "data")) as e:
        name = e.add_replay(str(path), window=WindowSpec("count", N))
        yield e.wait(name, timeout=30)


def test_filtered_window_stats_match_pandas(frame, snap):
    v = view(snap, rows=2000, filters=[Filter("x", ">", "10"), Filter("site", "≠", "south")])
    tail = frame.tail(2000)
    want = tail[(tail.x > 10) & (tail.site != "south") & tail.site.notna()]
    assert v.rows == len(want)
    check_stats(v.stats(), want[["x", "y", "z"]])


def test_contains_and_time_range(frame, snap):
    since = pd.Timestamp("2024-01-01 00:05:00").timestamp()
    until = pd.Timestamp("2024-01-01 00:10:00").timestamp()
    v = view(snap, rows=N, filters=[Filter("site", "contains", "th")], since=since, until=until)
    ts = frame.ts.astype("int64") / 1e9
    want = frame[frame.site.str.contains("th", na=False) & (ts >= since) & (ts <= until)]
    assert v.rows == len(want) > 0
    check_stats(v.stats(), want[["x", "y", "z"]])


def test_time_filter_value_parses(frame, snap):
    v = view(snap, rows=N, filters=[Filter("ts", "<", "2024-01-01 00:01:00")])
    assert v.rows == int((frame.ts < "2024-01-01 00:01:00").sum()) == 120


def test_bucket_series_and_groups_match_pandas(frame, snap):
    v = view(snap, rows=N)
    b = v.bucket_series(60)
    g = frame.groupby(frame.ts.dt.floor("60s"))
    assert b["start"].tolist() == [t.timestamp() for t in g.groups.keys()]
    for j, col in enumerate(["x", "y", "z"]):
        np.testing.assert_allclose(b["mean"][:, j], g[col].mean().to_numpy(), rtol=1e-9)
        np.testing.assert_allclose(b["std"][:, j], g[col].std().to_numpy(), rtol=1e-9)
        np.testing.assert_allclose(b["min"][:, j], g[col].min().to_numpy(), rtol=1e-12)
    groups = v.group_stats("site")
    want = frame.groupby(frame.site.fillna("(missing)"))
    assert sorted(groups) == sorted(want.groups)
    for site, stats in groups.items():
        close(stats["y"]["mean"], want.get_group(site).y.mean(), what=f"{site}.y.mean")
        assert stats["x"]["count"] == len(want.get_group(site))


def test_pair_correlation_over_time_matches_pandas(frame, snap):
    s = view(snap, rows=N).pair_corr_series("x", "y", 60)
    g = frame.groupby(frame.ts.dt.floor("60s"))
    want = g.apply(lambda d: d.x.corr(d.y))
    np.testing.assert_allclose(s["r"], want.to_numpy(), rtol=1e-9)
    assert s["n"].tolist() == g.apply(lambda d: int((d.x.notna() & d.y.notna()).sum())).tolist()


def test_strongest_pairs_ranked_by_absolute_r(frame, snap):
    v = view(snap, rows=N)
    pairs = strongest_pairs(v.moments, v.columns)
    corr = frame[["x", "y", "z"]].corr()
    assert (pairs[0]["a"], pairs[0]["b"]) == ("x", "y")
    close(pairs[0]["r"], corr.loc["x", "y"])
    assert [abs(p["r"]) for p in pairs] == sorted((abs(p["r"]) for p in pairs), reverse=True)
    assert pairs[0]["n"] == int((frame.x.notna() & frame.y.notna()).sum())


def test_bad_filters_say_what_to_do(snap):
    with pytest.raises(UserError, match="enter a number"):
        view(snap, rows=10, filters=[Filter("x", ">", "ten")])
    with pytest.raises(UserError, match="no such column"):
        view(snap, rows=10, filters=[Filter("nope", "=", "1")])
    with pytest.raises(UserError, match="text columns"):
        view(snap, rows=10, filters=[Filter("x", "contains", "1")])
    with pytest.raises(UserError, match="not a numeric column"):
        view(snap, rows=10).pair_corr_series("x", "site", 10)
    with pytest.raises(UserError, match="at least 1 row"):
        view(snap, rows=0)


def test_row_mask_treats_missing_as_failing():
    import pyarrow as pa
    t = pa.table({"a": [1.0, None, 3.0]})
    assert row_mask(t, [Filter("a", "≠", "1")]).tolist() == [False, False, True]


def test_throughput_series_sums_into_seconds():
    # the current second is still filling, so the series ends at the last whole one
    assert throughput_series(((10, 1), (12, 2), (12, 3)), seconds=3, now=13.2).tolist() == [1.0, 0.0, 5.0]


def test_pairs_beyond_the_kept_ones_are_recomputed_from_the_rows(frame, tmp_path, monkeypatch):
    """With pairs kept for the first column only (PAIR_LIMIT 1), the snapshot's cov/corr cover x and the
    Correlations page's pair_moments of any picked columns still matches pandas."""
    from engine.stats import moments
    from tests.reference import check_matrix
    from engine.read.snapshot import matrix_dict
    monkeypatch.setattr(moments, "PAIR_LIMIT", 1)
    path = tmp_path / "v.csv"
    frame.to_csv(path, index=False)
    with Engine(str(tmp_path / "data")) as e:
        snap = e.wait(e.add_replay(str(path), window=WindowSpec("count", N)), timeout=30)
    out = snap.to_json()
    assert out["cov_columns"] == 1 and list(out["corr"]) == ["x"] and list(out["stats"]) == ["x", "y", "z"]
    check_stats(out["stats"], frame[["x", "y", "z"]])
    v = view(snap, rows=2000, filters=[Filter("site", "≠", "south")])
    tail = frame.tail(2000)
    tail = tail[tail.site.notna() & (tail.site != "south")]          # a missing value passes no filter
    for picked in (["z", "y"], ["x", "y", "z"]):
        m = v.pair_moments(picked)
        check_matrix(matrix_dict(m.corr(), picked), tail[picked].corr(), what="corr")
        check_matrix(matrix_dict(m.cov(), picked), tail[picked].cov(), what="cov")
    assert strongest_pairs(v.moments, v.columns) == []          # no pair kept beyond x
