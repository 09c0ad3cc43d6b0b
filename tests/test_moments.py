"""Moments against pandas, and the merge laws, over random data (hypothesis)."""
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.stats.moments import Moments
from engine.read.snapshot import matrix_dict, stats_dict
from tests.reference import check_matrix, check_stats, peak_of


@st.composite
def frames(draw, min_rows=0, max_rows=60):
    n = draw(st.integers(min_rows, max_rows))
    k = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31))
    offset = draw(st.sampled_from([0.0, 1e9, -3e6]))
    missing = draw(st.sampled_from([0.0, 0.2, 0.6]))
    rng = np.random.default_rng(seed)
    X = offset + rng.normal(size=(n, k)) * rng.uniform(0.01, 100, k)
    if draw(st.booleans()) and k > 1:
        X[:, 1] = offset + 3.0                      # a constant column
    X[rng.random((n, k)) < missing] = np.nan
    return pd.DataFrame(X, columns=[f"c{i}" for i in range(k)])


def centred(df: pd.DataFrame) -> pd.DataFrame:
    """The same data minus each column's first value, where that value is large.

    Subtracting a value within a factor of two is exact in floating point
    (Sterbenz), so var/cov/corr are unchanged; pandas' own co-moments lose
    digits at offsets near 1e9, and the reference must not.
    """
    out = df.copy()
    for c in df.columns:
        first = df[c].dropna()
        if len(first) and abs(first.iloc[0]) > 1e4:
            out[c] = df[c] - first.iloc[0]
    return out


def check(m: Moments, df: pd.DataFrame):
    cols = list(df.columns)
    check_stats(stats_dict(m, cols), df)
    ref = centred(df)[cols[:m.pairs]]             # pairs cover the first m.pairs columns
    scale = float(np.nanmax(np.abs(ref.to_numpy()))) if ref.count().sum() else 1.0
    check_matrix(matrix_dict(m.cov(), list(ref.columns)), ref.cov(), atol=1e-12 * scale ** 2, what="cov")
    check_matrix(matrix_dict(m.corr(), list(ref.columns)), ref.corr(), atol=1e-9, what="corr")


@settings(max_examples=150, deadline=None)
@given(frames())
def test_batch_matches_pandas(df):
    check(Moments.of(df.to_numpy()), df)


@settings(max_examples=100, deadline=None)
@given(frames(min_rows=2), st.data())
def test_merge_equals_batch(df, data):
    cut = data.draw(st.integers(0, len(df)))
    m = Moments.of(df.to_numpy()[:cut])
    m += Moments.of(df.to_numpy()[cut:])
    check(m, df)


@settings(max_examples=100, deadline=None)
@given(frames(min_rows=2), st.data())
def test_subtract_undoes_add(df, data):
    cut = data.draw(st.integers(1, len(df)))
    X = df.to_numpy()
    m = Moments.of(X)
    m -= Moments.of(X[cut:])
    want = Moments.of(X[:cut])
    # subtraction is checked against a direct batch; min/max are not invertible
    assert np.allclose(m.count(), want.count())
    np.testing.assert_allclose(np.nan_to_num(m.var()), np.nan_to_num(want.var()), rtol=1e-6, atol=1e-6 * np.nanmax(np.abs(np.nan_to_num(want.var()))) + 1e-9)


def test_large_offset_beats_naive_sums():
    rng = np.random.default_rng(3)
    X = 1e9 + rng.normal(size=(5000, 2))
    X[:, 1] = X[:, 0] * 0.5 + rng.normal(size=5000)
    df = pd.DataFrame(X, columns=["a", "b"])
    m = Moments.of(X[:2500])
    m += Moments.of(X[2500:])
    check(m, df)
    naive = (X[:, 0] ** 2).sum() / 5000 - X[:, 0].mean() ** 2      # what a sum-of-squares engine reports
    assert abs(naive - df["a"].var(ddof=0)) > 1e-3                 # the trap is real


def test_roundtrip_bytes():
    m = Moments.of(np.array([[1.0, np.nan], [2.0, 5.0], [4.0, 7.0]]))
    back = Moments.from_bytes(m.to_bytes())
    for name in Moments.__slots__:
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name))


def test_the_stored_state_of_complete_rows_leaves_out_what_the_columns_give():
    """The cumulative state is stored with every commit: 1.3 MB at 200 columns with all four pair
    matrices (issue 15). With nothing missing, three of them repeat the column moments, so they are
    left out and rebuilt on load, bit for bit, also after merges; with a missing value all are kept."""
    rng = np.random.default_rng(8)
    m = Moments.of(rng.normal(size=(300, 50)) + 1e6)
    for part in np.array_split(rng.normal(size=(1000, 50)) * 3, 4):
        m += Moments.of(part)
    blob = m.to_bytes()
    assert len(blob) < 50 * 50 * 8 + 6 * 50 * 8 + 100            # c and the columns, not n, mean_, m2
    back = Moments.from_bytes(blob)
    for name in Moments.__slots__:
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name))
    X = rng.normal(size=(100, 50))
    X[3, 7] = np.nan
    m += Moments.of(X)
    assert len(m.to_bytes()) > 4 * 50 * 50 * 8
    back = Moments.from_bytes(m.to_bytes())
    for name in Moments.__slots__:
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name))


@settings(max_examples=100, deadline=None)
@given(frames(min_rows=2), st.data())
def test_pairs_kept_for_the_first_columns_only(df, data):
    """Per-column statistics cover every column; covariance and correlation the first `pairs`, through
    merges and subtraction alike."""
    p = data.draw(st.integers(0, df.shape[1]))
    cut = data.draw(st.integers(0, len(df)))
    X = df.to_numpy()
    m = Moments.of(X[:cut], pairs=p)
    m += Moments.of(X[cut:], pairs=p)
    assert m.pairs == p and m.cov().shape == (p, p) and m.corr().shape == (p, p)
    check(m, df)
    if cut:
        m -= Moments.of(X[cut:], pairs=p)
        want = Moments.of(X[:cut])
        np.testing.assert_array_equal(m.count(), want.count())
        np.testing.assert_allclose(m.cov(), want.cov()[:p, :p], rtol=1e-6, equal_nan=True,
                                   atol=1e-6 * np.nanmax(np.abs(np.nan_to_num(want.cov()))) + 1e-9)


def test_a_value_stored_before_pairs_were_limited_is_read(monkeypatch):
    """Blobs written by the earlier k x k layout (the state table of an existing data folder) load,
    and keep the pairs of the first PAIR_LIMIT columns."""
    import json
    from engine.stats import moments
    monkeypatch.setattr(moments, "PAIR_LIMIT", 2)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 4))
    X[rng.random((40, 4)) < 0.2] = np.nan
    full = Moments.of(X, pairs=4)
    square = {"n": full.n, "mean_": full.mean_, "m2": full.m2, "c": full.c}
    # the earlier layout: pair arrays whose diagonals hold the columns, then min, max, shift
    head = json.dumps({"k": 4}).encode()
    body = b"".join(np.ascontiguousarray(a, "<f8").tobytes() for a in
                    (square["n"], square["mean_"], square["m2"], square["c"], full.min_, full.max_, full.shift))
    back = Moments.from_bytes(len(head).to_bytes(4, "little") + head + body)
    assert back.pairs == 2
    check(back, pd.DataFrame(X, columns=list("abcd")))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 30), st.sampled_from([1, 3]))
def test_many_partials_merge_like_pandas_groupby_aligned_or_sorted(seed, parts, k):
    """merge_many (partitions' buckets) equals pandas' groupby of every row, whether it aligns the parts
    on their keys (few cells) or sorts them (many): both paths run on the same parts."""
    import engine.stats.groups as groups
    rng = np.random.default_rng(seed)
    frames_, partials = [], []
    for _ in range(parts):
        n = int(rng.integers(1, 60))
        keys = np.sort(rng.integers(0, 25, n))
        X = 1e6 + rng.normal(size=(n, k)) * 10
        X[rng.random((n, k)) < 0.2] = np.nan
        partials.append(groups.KeyedStats.of_rows(keys, X))
        frames_.append(pd.DataFrame(X, columns=[f"c{j}" for j in range(k)]).assign(key=keys))
    want = pd.concat(frames_).groupby("key")
    for cells in (groups.ALIGN_CELLS, 0):
        saved, groups.ALIGN_CELLS = groups.ALIGN_CELLS, cells
        try:
            got = groups.merge_many(partials, k)
        finally:
            groups.ALIGN_CELLS = saved
        s = got.stats()
        assert got.keys.tolist() == list(want.groups)
        for j in range(k):
            col = f"c{j}"
            np.testing.assert_array_equal(s["count"][:, j], want[col].count().to_numpy())
            np.testing.assert_allclose(s["mean"][:, j], want[col].mean().to_numpy(), rtol=1e-12)
            np.testing.assert_allclose(s["var"][:, j], want[col].var().to_numpy(), rtol=1e-6, atol=1e-9)
            np.testing.assert_array_equal(s["min"][:, j], want[col].min().to_numpy())
            np.testing.assert_array_equal(s["max"][:, j], want[col].max().to_numpy())


def test_256_partitions_buckets_merge_without_a_parts_by_keys_array():
    """One bucket width of 256 partitions (720 buckets x 11 columns, their ends and gaps differing as
    partitions' do) merges like the sort of every part's rows, and the merge's memory is of the order of
    the union of keys (a few arrays of keys x columns), not parts x keys x columns (81 MB here): the
    merge adds one part at a time instead of stacking them."""

    import engine.stats.groups as groups
    rng = np.random.default_rng(7)
    k, m = 11, 720
    base = np.arange(1_000, 1_000 + m, dtype=np.int64)
    parts = []
    for i in range(256):
        keys = base[i % 3: m - (i % 2)]                 # the oldest or newest buckets missing in some
        if i % 17 == 0:
            keys = np.delete(keys, [5, 300])            # and a gap in a few
        X = 50 + rng.normal(size=(len(keys) * 3, k)) * 5
        X[rng.random(X.shape) < 0.05] = np.nan
        parts.append(groups.KeyedStats.of_rows(np.repeat(keys, 3), X))
    want = groups._reduce(*(np.concatenate([getattr(p, f) for p in parts])
                            for f in ("keys", "n", "mean", "m2", "min", "max")))
    got, peak = peak_of(lambda: groups.merge_many(parts, k))
    # ~11 arrays of keys x columns (0.7 MB) alone; tracemalloc also counts what other threads of a test
    # worker allocate meanwhile (CI saw 0.85 MB), so the bound is the order of magnitude: 32 arrays, 2 MB,
    # against 81 MB for a parts x keys x columns stack.
    assert peak < 32 * m * k * 8, f"the merge held {peak / 1e6:.1f} MB"
    np.testing.assert_array_equal(got.keys, want.keys)
    np.testing.assert_array_equal(got.n, want.n)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-12)
    np.testing.assert_allclose(got.m2, want.m2, rtol=1e-9)
    np.testing.assert_array_equal(got.min, want.min)
    np.testing.assert_array_equal(got.max, want.max)


@settings(max_examples=40, deadline=None)
@given(st.lists(frames(min_rows=0, max_rows=30), min_size=1, max_size=6))
def test_merge_of_stacked_parts_equals_adding_them(dfs):
    """merge_stacked (a reader's merge of many partitions' blocks) equals `+=` one part after another."""
    from engine.stats.moments import merge_all, merge_stacked
    k = min(df.shape[1] for df in dfs)
    parts = [Moments.of(df.to_numpy()[:, :k]) for df in dfs]
    total = Moments(k)
    for m in parts:
        total += m
    stacked = merge_stacked({s: np.stack([getattr(m, s) for m in parts]) for s in Moments.__slots__}, k)
    for got in (stacked, merge_all(parts, k)):
        assert got.count().tolist() == total.count().tolist()
        np.testing.assert_allclose(got.mean(), total.mean(), rtol=1e-9, equal_nan=True)
        np.testing.assert_allclose(got.var(), total.var(), rtol=1e-7, atol=1e-9, equal_nan=True)
        np.testing.assert_allclose(got.cov(), total.cov(), rtol=1e-7, atol=1e-6, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 12), st.booleans())
def test_bucket_rows_reduce_like_pandas_groupby_in_runs_or_by_index(seed, distinct, missing):
    """KeyedStats.of_rows reduces a few runs of keys (a batch on the ingest clock) block by block and many
    by a per-row index: both equal pandas' groupby of the same rows (issue 15)."""
    import engine.stats.groups as groups
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 400)), 3
    keys = np.sort(rng.integers(0, distinct, n))
    X = 1e6 + rng.normal(size=(n, k)) * 10
    if missing:
        X[rng.random((n, k)) < 0.2] = np.nan
    want = pd.DataFrame(X, columns=["a", "b", "c"]).assign(key=keys).groupby("key")
    for few in (groups.FEW_KEYS, 0):
        saved, groups.FEW_KEYS = groups.FEW_KEYS, few
        try:
            s = groups.KeyedStats.of_rows(keys, X).stats()
        finally:
            groups.FEW_KEYS = saved
        for j, col in enumerate("abc"):
            np.testing.assert_array_equal(s["count"][:, j], want[col].count().to_numpy())
            np.testing.assert_allclose(s["mean"][:, j], want[col].mean().to_numpy(), rtol=1e-12)
            np.testing.assert_allclose(s["var"][:, j], want[col].var().to_numpy(), rtol=1e-9, atol=1e-12)
            np.testing.assert_array_equal(s["min"][:, j], want[col].min().to_numpy())
            np.testing.assert_array_equal(s["max"][:, j], want[col].max().to_numpy())


def test_complete_rows_keep_one_pair_matrix_through_merges():
    """With nothing missing the pair counts, means and M2 are the columns' (views, no memory): a merge of
    such parts keeps them so and equals the moments of all rows; a part with a missing value merges as before."""
    rng = np.random.default_rng(1)
    X = 1e9 + rng.normal(size=(300, 5))
    parts = [Moments.of(X[:100]), Moments.of(X[100:250]), Moments.of(X[250:])]
    total = Moments(5)
    for p in parts:
        total += p
    assert total.shared and all(getattr(total, a).base is not None for a in ("n", "mean_", "m2"))
    check(total, pd.DataFrame(X, columns=[f"c{i}" for i in range(5)]))
    assert Moments.from_bytes(total.to_bytes()).shared and total.copy().shared
    Y = X.copy()
    Y[7, 2] = np.nan
    mixed = Moments.of(Y[:100]) + parts[1] + parts[2]
    assert not mixed.shared
    check(mixed, pd.DataFrame(Y, columns=[f"c{i}" for i in range(5)]))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31), st.booleans(), st.sampled_from([1.0, 3.0, 3600.0, 40_000.0]))
def test_a_batch_spanning_years_reduces_each_row_at_the_width_that_keeps_it(seed, missing, step):
    """A batch is reduced into each width's newest kept buckets (1 s: 720 of them, 10 s: 720, ...). Rows
    older than a width keeps are reduced directly at the coarser width that does, not first into 1-second
    buckets that are dropped (a batch of 8,300 seconds x 4 groups made 33,000 of them): each width's
    buckets and bucket x group cells still equal pandas' groupby of the rows."""
    import engine.stats.buckets as buckets
    import engine.stats.groups as groups
    rng = np.random.default_rng(seed)
    n = 3000
    times = 1.7e9 + np.cumsum(rng.uniform(0, 2 * step, n))
    X = rng.normal(size=(n, 2)) * 5 + 50
    if missing:
        X[rng.random((n, 2)) < 0.1] = np.nan
    codes = rng.integers(0, 3, n)
    reduced = []
    of_rows = groups.KeyedStats.of_rows.__func__

    def spy(cls, keys, Y, *more):
        reduced.append(len(keys))
        return of_rows(cls, keys, Y, *more)
    saved, groups.KeyedStats.of_rows = groups.KeyedStats.of_rows, classmethod(spy)
    try:
        p = buckets.partial(times, X, codes, slots=32)
    finally:
        groups.KeyedStats.of_rows = saved
    assert sum(reduced) <= 2 * n                 # weeks and months share the rows older than the days kept
    assert reduced[0] == int((times >= np.floor(times[-1]) - 719).sum())
    df = pd.DataFrame(X, columns=["a", "b"]).assign(t=times, g=codes)
    for w in buckets.WIDTHS:
        keys = buckets.keys_of(times, w)
        kept = df[keys > keys.max() - buckets.KEEP[w]].assign(key=keys[keys > keys.max() - buckets.KEEP[w]])
        for part, by in ((p.series[w], ["key"]), (p.groups[w], ["key", "g"])):
            want = kept.groupby(by)
            s = part.stats()
            assert len(part) == want.ngroups
            for j, col in enumerate("ab"):
                np.testing.assert_array_equal(s["count"][:, j], want[col].count().to_numpy())
                np.testing.assert_allclose(s["mean"][:, j], want[col].mean().to_numpy(), rtol=1e-12)
                np.testing.assert_allclose(s["var"][:, j], want[col].var().to_numpy(), rtol=1e-9, atol=1e-12)
                np.testing.assert_array_equal(s["min"][:, j], want[col].min().to_numpy())


def test_a_column_with_itself_is_its_variance_and_correlation_one():
    """The diagonal of cov is the variance the stats report (not the co-moment's rounding of it) and of
    corr exactly 1, also with missing values; a constant or single-value column stays NaN."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"a": rng.normal(60, 13, 1704).round(3), "b": rng.lognormal(17, 2, 1704).round(0),
                       "c": rng.normal(7e3, 1e4, 1704), "const": np.full(1704, 2.5)})
    df.loc[rng.random(1704) < 0.2, "c"] = np.nan
    m = Moments.of(df.to_numpy()[:1])
    for part in np.array_split(df.to_numpy()[1:], 7):    # merged batches, as ingest adds them
        m += Moments.of(part)
    np.testing.assert_array_equal(np.diagonal(m.cov()), m.var())
    np.testing.assert_array_equal(np.diagonal(m.corr()), [1.0, 1.0, 1.0, np.nan])
