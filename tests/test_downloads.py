"""Export page helpers: window statistics and bucket series against pandas; CSV escaped, Parquet exact;
model import checks the card against the model; live score history of a deployment."""
import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from engine.read import downloads
from engine.errors import UserError
from engine.models.export import export_bytes, import_bytes
from engine.models.online import CURVE_POINTS, LiveMetrics
from engine.runtime import Engine


@pytest.fixture
def replayed(tmp_path):
    rng = np.random.default_rng(5)
    n = 3000
    df = pd.DataFrame({"ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) * 0.5, unit="s"),
                       "who": rng.choice(["=cmd", "+1", "ok"], n), "a": rng.normal(size=n),
                       "b": rng.normal(size=n)})
    df.loc[7, "a"] = np.nan
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    e = Engine(str(tmp_path / "data"))
    name = e.add_replay(str(path), name="d")
    snap = e.wait(name, timeout=60)
    yield e, name, snap, df
    e.close()


def test_window_stats_match_pandas(replayed):
    e, name, snap, df = replayed
    table = downloads.window_stats(snap, rows=1000).to_pandas().set_index("column")
    want = df[["a", "b"]].tail(1000).agg(["count", "mean", "var", "std", "min", "max"]).T
    pd.testing.assert_frame_equal(table.astype(float), want.astype(float), rtol=1e-9, check_names=False)


def test_bucket_series_match_pandas(replayed):
    e, name, snap, df = replayed
    table = downloads.bucket_series(snap, 60).to_pandas()
    got = table[table["column"] == "a"].set_index("bucket_start")
    want = df.set_index("ts")["a"].resample("60s").agg(["count", "mean", "min", "max"])
    want.index = want.index.tz_localize("UTC")
    assert got.index.as_unit("ns").equals(want.index.as_unit("ns"))
    np.testing.assert_allclose(got[["count", "mean", "min", "max"]].to_numpy(float), want.to_numpy(float),
                               rtol=1e-9)


def test_csv_escapes_formulas_and_parquet_keeps_values(replayed):
    e, name, snap, df = replayed
    table = e.models.history(name)
    csv = pd.read_csv(io.BytesIO(downloads.to_bytes(table, "csv")))
    assert set(csv["who"]) == {"'=cmd", "'+1", "ok"}
    back = pq.read_table(io.BytesIO(downloads.to_bytes(table, "parquet")))
    assert back.column("who").to_pylist() == df["who"].tolist()
    with pytest.raises(UserError, match="unknown format"):
        downloads.to_bytes(table, "xlsx")


def test_csv_escapes_formula_column_names_in_the_header(tmp_path):
    path = tmp_path / "names.csv"
    path.write_text("=cmd|' /C calc'!A0,@SUM(1),ok,-x\n1,2,3,4\n5,6,7,8\n")
    with Engine(str(tmp_path / "data")) as e:
        name = e.add_replay(str(path), name="names")
        e.wait(name, timeout=60)
        table = e.models.history(name)
        csv = pd.read_csv(io.BytesIO(downloads.to_bytes(table, "csv")))
    assert [c for c in csv.columns if not c.startswith("_")] == ["'=cmd|' /C calc'!A0", "'@SUM(1)", "ok", "'-x"]
    assert csv["ok"].tolist() == [3, 7]


def test_import_checks_the_card_against_the_model(tmp_path):
    from sklearn.linear_model import LogisticRegression
    X = pd.DataFrame({"a": [0.0, 1, 2, 3], "b": [1.0, 0, 1, 0]})
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    card = {"name": "m", "features": [{"name": "a", "role": "numeric"}, {"name": "b", "role": "numeric"}]}
    data, written = export_bytes(model, card, "skops", "m.skops")
    import json
    back, got = import_bytes(data, "m.skops", json.dumps(written).encode())
    assert got["name"] == "m" and got["classes"] == [0, 1]
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    lying = {**written, "features": [{"name": "b"}, {"name": "a"}]}
    with pytest.raises(UserError, match="do not match"):
        import_bytes(data, "m.skops", json.dumps(lying).encode())
    with pytest.raises(UserError, match="not JSON"):
        import_bytes(data, "m.skops", b"\xff")


def test_live_curve_follows_the_windowed_accuracy():
    m = LiveMetrics("classification", window=10)
    rng = np.random.default_rng(0)
    scores = []
    for _ in range(CURVE_POINTS + 5):
        y = rng.integers(0, 2, 7)
        m.update(y if rng.random() < 0.5 else 1 - y, y)
        scores.append(m.headline())          # the live curve follows the headline metric (macro F1)
    assert len(m.curve) == CURVE_POINTS
    assert [c[1] for c in m.curve] == scores[-CURVE_POINTS:]
    assert m.curve[-1][0] == 7 * (CURVE_POINTS + 5)


def test_times_on_whole_seconds_are_written_without_zero_microseconds():
    """var_dots' '01.01.2024 08:00' came back from the history download and from `predict` as
    '2024-01-01 08:00:00.000000'; a column with real fractions keeps them."""
    import datetime as dt
    import pyarrow as pa
    from engine.read.export_csv import to_csv_bytes
    table = pa.table({"when": pa.array([dt.datetime(2024, 1, 31, 13, 45), None], pa.timestamp("us")),
                      "utc": pa.array([dt.datetime(2024, 1, 5), dt.datetime(2024, 1, 6)], pa.timestamp("us", "UTC")),
                      "fine": pa.array([dt.datetime(2024, 1, 5, 0, 0, 0, 500), dt.datetime(2024, 1, 6)],
                                       pa.timestamp("us")),
                      "v": [1.5, 2.0]})
    lines = to_csv_bytes(table).decode().splitlines()
    assert lines[1] == '"2024-01-31 13:45:00","2024-01-05 00:00:00Z",2024-01-05 00:00:00.000500,1.5'
    assert lines[2].startswith(',"2024-01-06 00:00:00Z",2024-01-06 00:00:00.000000,')


def test_predict_writes_times_as_the_history_download_does(tmp_path):
    from tests.conftest import run_cli
    n = 120
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"when": pd.date_range("2024-01-01 08:00", periods=n, freq="195min").strftime("%d.%m.%Y %H:%M"),
                       "x": rng.normal(size=n)})
    df["y"] = 2 * df["x"] + rng.normal(0, 0.1, n)
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    model = tmp_path / "m.skops"
    assert run_cli("train", str(path), "--target", "y", "--model", "ridge", "--cv", "3", "--out", str(model)).returncode == 0
    r = run_cli("predict", str(model), str(path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].startswith('"2024-01-01 08:00:00",')
