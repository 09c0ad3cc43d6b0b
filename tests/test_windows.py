"""Count and time windows, cumulative, buckets and group-by of a replayed CSV against pandas."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from engine.stats.moments import Moments
from engine.stats.operators import WindowSpec
from engine.stats.windows import last_rows
from engine.runtime import Engine
from tests.reference import check_matrix, check_stats, close, peak_of

NUMERIC = ["big", "small", "mixed"]


def make_frame(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2024-03-01 12:00:00")
    df = pd.DataFrame({
        "ts": t0 + pd.to_timedelta(np.cumsum(rng.integers(50, 700, n)), unit="ms"),
        "big": 1e9 + rng.normal(0, 1, n),                 # large offset, small spread
        "small": rng.normal(0, 1e-3, n),
        "mixed": rng.normal(5, 2, n),
        "site": rng.choice(["a", "b", "c"], n),
    })
    df["mixed"] += 0.8 * (df["big"] - 1e9)
    df.loc[rng.random(n) < 0.1, "small"] = np.nan
    df.loc[rng.random(n) < 0.05, "mixed"] = np.nan
    return df


def replay(tmp_path, df, window, name="f.csv"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    df.to_csv(path, index=False, float_format="%.17g", date_format="%Y-%m-%d %H:%M:%S.%f")
    with Engine(str(tmp_path / "data")) as engine:
        snap = engine.wait(engine.add_replay(str(path), window=window), timeout=60)
    return snap


def centred(df):
    """Exact shift of the offset column (see tests/test_moments.centred)."""
    out = df.copy()
    out["big"] = df["big"] - 1e9
    return out


@pytest.mark.parametrize("n", [1, 7, 500, 2999, 5000])
def test_count_window_and_cumulative(tmp_path, n):
    df = make_frame()
    snap = replay(tmp_path, df, WindowSpec("count", n))
    want = df[NUMERIC].tail(n)
    out = snap.to_json()
    assert out["window"] == {"kind": "count", "size": n, "count": len(want)}
    check_stats(out["stats"], want)
    check_matrix(out["cov"], centred(want).cov(), atol=1e-15, what="cov")
    check_matrix(out["corr"], centred(want).corr(), atol=1e-12, what="corr")
    check_stats(out["cumulative"], df[NUMERIC])
    assert out["rows"] == {"ingested": 3000, "quarantined": 0, "late": 0, "flagged": 0, "replayed": 0}


@pytest.mark.parametrize("seconds", [0.5, 30, 400])
def test_event_time_window(tmp_path, seconds):
    df = make_frame()
    snap = replay(tmp_path, df, WindowSpec("time", seconds, "event"))
    end = df["ts"].max()
    want = df.loc[df["ts"] > end - pd.Timedelta(seconds=seconds), NUMERIC]
    out = snap.to_json()
    assert out["window"]["count"] == len(want)
    check_stats(out["stats"], want)
    check_matrix(out["corr"], centred(want).corr(), atol=1e-12, what="corr")


def test_window_queries_on_snapshot(tmp_path):
    df = make_frame()
    snap = replay(tmp_path, df, WindowSpec("count", 1000))
    for rows in (10, 999, 2500):
        m, _ = snap.window(rows=rows)
        np.testing.assert_allclose(m.count(), df[NUMERIC].tail(rows).count().to_numpy())
    table = snap.window_table(rows=50)
    got = [np.nan if v is None else v for v in table.column("mixed").to_pylist()]
    assert got == pytest.approx(df["mixed"].tail(50).tolist(), nan_ok=True)


@pytest.mark.parametrize("width", [1, 10, 60])
def test_buckets_match_pandas(tmp_path, width):
    df = make_frame()
    snap = replay(tmp_path, df, WindowSpec("count", 100))
    series = snap.bucket_series(width)
    sec = (df["ts"] - pd.Timestamp(0)) // pd.Timedelta(seconds=width) * width
    g = centred(df).groupby(sec)
    raw = df.groupby(sec)
    starts = sorted(sec.unique())
    kept = [x for x in starts if x > starts[-1] - 720 * width]     # the newest 720 buckets of time
    assert list(series["start"]) == kept
    for j, col in enumerate(NUMERIC):
        for i, start in enumerate(kept):
            grp = g.get_group(start)[col]
            close(series["count"][i, j], grp.count(), what=f"{col} count")
            close(series["mean"][i, j], raw.get_group(start)[col].mean(), 1e-9, 1e-12 * abs(df[col]).max(), f"{col} mean")
            close(series["var"][i, j], grp.var(), 1e-9, 1e-15, f"{col} var @{start}")
            close(series["max"][i, j], raw.get_group(start)[col].max(), what=f"{col} max")


def test_group_by_window_and_buckets(tmp_path):
    df = make_frame()
    snap = replay(tmp_path, df, WindowSpec("count", 800))
    groups = snap.group_stats("site")
    tail = df.tail(800)
    for site, part in tail.groupby("site"):
        check_stats(groups[site], part[NUMERIC])
    by = snap.bucket_groups(60)
    sec = (df["ts"] - pd.Timestamp(0)) // pd.Timedelta(seconds=60) * 60
    want = df.assign(start=sec).groupby(["start", "site"])["mixed"]
    for start, site, count, mean in zip(by["start"], by["group"], by["count"][:, 2], by["mean"][:, 2]):
        close(count, want.count()[(start, site)])
        close(mean, want.mean()[(start, site)], 1e-9, 1e-12)


def test_merging_partitions_equals_one_pass(tmp_path):
    """Windows over two halves merged equal the statistics of the whole."""
    df = make_frame(2000)
    a = replay(tmp_path / "a", df.iloc[:1000], WindowSpec("count", 5000))
    b = replay(tmp_path / "b", df.iloc[1000:], WindowSpec("count", 5000))
    m = a.window_moments + b.window_moments
    whole = df[NUMERIC]
    np.testing.assert_allclose(m.mean(), whole.mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.var(), centred(whole).var().to_numpy(), rtol=1e-9)


def test_a_window_edge_inside_a_big_batch_recomputes_a_quarter_of_it_at_most(tmp_path, monkeypatch):
    """A replay's batch of 30,000 rows is one chunk; the 10,000-row window's edge falls inside it. The
    chunk keeps its moments from each quarter on, so the edge's co-moments are recomputed over at most
    a quarter of the chunk (it recomputed all 10,000 rows at every publish), and still match pandas."""
    df = make_frame(30_000, seed=3)
    rows_of = []
    of = Moments.of.__func__

    def spy(cls, X, pairs=None):
        rows_of.append(len(X))
        return of(cls, X, pairs)
    monkeypatch.setattr(Moments, "of", classmethod(spy))
    for n in (10_000, 29_000, 7_499):
        rows_of.clear()
        snap = replay(tmp_path / str(n), df, WindowSpec("count", n))
        assert snap.chunks and len(snap.chunks[-1]) > 7_500 * 2, "the test needs one big chunk"
        assert max(rows_of) <= 30_000 // 4 + 1
        want = df[NUMERIC].tail(n)
        out = snap.to_json()
        check_stats(out["stats"], want)
        check_matrix(out["cov"], centred(want).cov(), atol=1e-15, what="cov")
        check_matrix(out["corr"], centred(want).corr(), atol=1e-12, what="corr")
        check_stats(out["cumulative"], df[NUMERIC])
        for rows in (1, 12_345, 30_000):            # other windows from the same chunk
            m, _ = snap.window(rows=rows)
            tail = df[NUMERIC].tail(rows)
            np.testing.assert_allclose(m.count(), tail.count().to_numpy())
            np.testing.assert_allclose(m.var(), centred(tail).var().to_numpy(), rtol=1e-9)


def test_chunks_older_than_the_window_drop_their_edges():
    """Edges cost memory (a co-moment matrix each): only chunks the count window's edge can still reach keep them."""
    from engine.stats.windows import Chunk, RecentRows
    rng = np.random.default_rng(0)
    recent = RecentRows(3, 100_000, edge_rows=10_000)
    for _ in range(6):
        X = rng.normal(size=(5_000, 3))
        recent.append(Chunk.of(X, np.full(5_000, np.nan), np.zeros(5_000), pa.table({"x": X[:, 0]}), blocks=4))
    assert [bool(c.edges) for c in recent.chunks] == [False] * 4 + [True] * 2     # 10,000 rows newer: out for good
    X = np.concatenate([c.X for c in recent.chunks])
    for count in (1, 4_999, 5_000, 11_111, 30_000):
        m = Moments.of(X[-count:])
        got = last_rows(recent.chunks, count)
        total = got[0].moments
        for c in got[1:]:
            total = total + c.moments
        np.testing.assert_allclose(total.cov(), m.cov(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(total.mean(), m.mean(), rtol=1e-12)


def test_a_wide_batch_is_reduced_into_buckets_without_a_copy_of_its_size():
    """The buckets keep values relative to a per-column shift. A 200-column batch on the ingest clock (one
    second: one bucket) is reduced in blocks of rows, neither through a shifted copy of the batch nor a
    temporary of its deviations: each was fresh memory every batch, whose page faults cost a 200-column
    replay 0.15 s of system CPU (issue 15). Prepare then holds the batch's matrix and the moments' one
    temporary at most (3 matrices before); the bucket equals pandas over the same rows."""

    from engine.stats.operators import Operators
    rng = np.random.default_rng(5)
    n, k = 6000, 200
    X = np.round(1e6 + rng.normal(size=(n, k)) * 10, 3)
    names = [f"c{i}" for i in range(k)]
    table = pa.table({c: X[:, i] for i, c in enumerate(names)})
    ops = Operators(table.schema, names, WindowSpec(), None, None)
    ingest = np.full(n, 1.7e9 + 0.25)
    ops.prepare(table.slice(0, 10), ingest[:10])       # the shift comes from the first batch
    prepared, peak = peak_of(lambda: ops.prepare(table, ingest))
    assert peak < 2.5 * X.nbytes, f"prepare peaked at {peak / X.nbytes:.2f} batch matrices"
    bucket = prepared.buckets.series[1]
    assert len(bucket) == 1
    s = bucket.stats(ops.shift)
    want = pd.DataFrame(X, columns=names)
    for name, got in (("count", s["count"][0]), ("mean", s["mean"][0]), ("var", s["var"][0]),
                      ("min", s["min"][0]), ("max", s["max"][0])):
        np.testing.assert_allclose(got, getattr(want, name)().to_numpy(), rtol=1e-9)
