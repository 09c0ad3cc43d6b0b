"""Event time: dates and times in common layouts detected per column, named time columns with a format,
epoch numbers, bad values flagged, zones, real-time replay, a tail with a time column, a pipeline cast
that gives event time, and calendar buckets (1 day, 1 week, 1 month) against pandas `resample`."""
import json

import numpy as np
import pandas as pd
import pytest

from engine.errors import UserError
from engine.ingest.replay import Speed
from engine.runtime import Engine
from engine.stats.buckets import DAY, KEEP, MONTH, WEEK, WIDTHS, Buckets, partial
from tests.conftest import run_cli, wait_for


def epoch(text: str) -> float:
    return pd.Timestamp(text, tz="UTC").timestamp()


def write(tmp_path, values: list[str], name="f.csv", extra=None) -> str:
    x = np.arange(len(values), dtype=float) if extra is None else extra
    path = tmp_path / name
    pd.DataFrame({"when": values, "x": x}).to_csv(path, index=False)
    return str(path)


def replay(tmp_path, path, **kw):
    with Engine(str(tmp_path / "data")) as engine:
        name = engine.add_replay(path, **kw)
        snap = engine.wait(name, timeout=60)
        schema = engine.streams[name].source.schema
        bad = engine.quarantine(name).to_pylist()
    return snap, schema, bad


def rows_in(engine, name) -> int:
    snap = engine.snapshot(name)
    return snap.counts["ingested"] if snap is not None else -1


def event_times(snap) -> np.ndarray:
    return np.concatenate([c.event for c in snap.chunks])


# (layout written, pattern detected, first value's time); 40 rows each, one a day from the first
DAYS = pd.date_range("2012-01-01 13:45", periods=40, freq="D")
LAYOUTS = [
    ("%Y/%m/%d", "%Y/%m/%d", "2012-01-01"),
    ("%m/%d/%Y", "%m/%d/%Y", "2012-01-01"),            # 01/13/2012 .. forces month-first
    ("%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M", "2012-01-01 13:45"),
    ("%b %d %Y", "%b %d %Y", "2012-01-01"),            # Jan 5 2012
    ("%d-%b-%Y", "%d-%b-%Y", "2012-01-01"),            # 05-Jan-2012
    ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M:%S %p", "2012-01-01 13:45"),
]


@pytest.mark.parametrize("layout,pattern,first", LAYOUTS, ids=[x[0] for x in LAYOUTS])
def test_common_layouts_are_detected_and_give_event_time(tmp_path, layout, pattern, first):
    values = [d.strftime(layout).replace(" 0", " ") if "%b %d" in layout else d.strftime(layout) for d in DAYS]
    snap, schema, bad = replay(tmp_path, write(tmp_path, values))
    assert schema["when"].kind == "time" and schema["when"].format == pattern
    assert snap.time_column == "when" and not bad
    t = event_times(snap)
    assert t[0] == epoch(first)
    assert np.all(np.diff(t) == DAY)                   # every value parsed, one day apart


def test_day_first_decided_by_one_value_past_12(tmp_path):
    values = [d.strftime("%d.%m.%Y") for d in pd.date_range("2012-02-01", periods=12, freq="D")] * 4
    values.append("31.01.2012")                       # only this one cannot be month-first
    snap, schema, _ = replay(tmp_path, write(tmp_path, values))
    assert schema["when"].format == "%d.%m.%Y"
    assert event_times(snap)[1] == epoch("2012-02-02")


def test_ambiguous_day_month_is_refused_until_a_format_is_picked(tmp_path):
    values = ["01/02/2012", "03/04/2012", "05/06/2012", "07/08/2012"]
    path = write(tmp_path, values)
    snap, schema, _ = replay(tmp_path / "a", path)
    assert schema["when"].kind == "text" and snap.time_column is None       # nothing guessed
    with Engine(str(tmp_path / "b")) as engine:
        with pytest.raises(UserError, match="either way round; pick its time format"):
            engine.add_replay(path, time_column="when")
        assert engine.names() == []
    snap, schema, _ = replay(tmp_path / "c", path, time_column="when", time_format="%d/%m/%Y")
    assert snap.time_column == "when" and event_times(snap)[0] == epoch("2012-02-01")
    snap, _, _ = replay(tmp_path / "d", path, time_column="when", time_format="%m/%d/%Y")
    assert event_times(snap)[0] == epoch("2012-01-02")


def test_unparseable_times_are_missing_and_flagged(tmp_path):
    values = [d.strftime("%d.%m.%Y") for d in pd.date_range("2012-01-01", periods=30, freq="D")]
    values[5], values[9] = "31.02.2012", "soon"         # a day February lacks, and no date at all
    snap, _, bad = replay(tmp_path, write(tmp_path, values))
    assert snap.to_json()["rows"] == {"ingested": 30, "quarantined": 0, "late": 0, "flagged": 2, "replayed": 0}
    t = event_times(snap)
    assert np.isnan(t[[5, 9]]).all() and np.isfinite(np.delete(t, [5, 9])).all()
    assert len(bad) == 2 and all("is not a time in the format %d.%m.%Y" in b["reason"] and b["kept"] for b in bad)
    assert sorted(b["raw"].split(",")[0] for b in bad) == ["31.02.2012", "soon"]


def test_offsets_are_stored_as_utc_and_naive_times_stay_naive(tmp_path):
    values = ["2012/01/01 10:00+02:00", "2012/01/01 10:00Z", "2012/01/01 10:00 -0130"]
    snap, schema, _ = replay(tmp_path / "a", write(tmp_path, values))
    assert schema["when"].utc and snap.schema.field("when").type.tz == "UTC"
    assert list(event_times(snap)) == [epoch("2012-01-01 08:00"), epoch("2012-01-01 10:00"),
                                       epoch("2012-01-01 11:30")]
    snap, schema, _ = replay(tmp_path / "b", write(tmp_path, ["2012/01/01 10:00", "2012/01/02 10:00"]))
    assert not schema["when"].utc and snap.schema.field("when").type.tz is None
    assert event_times(snap)[0] == epoch("2012-01-01 10:00")   # wall-clock, read as UTC


@pytest.mark.parametrize("scale", [1, 1000], ids=["seconds", "milliseconds"])
def test_epoch_numbers_only_when_named(tmp_path, scale):
    t0 = epoch("2012-01-01")
    path = tmp_path / "e.csv"
    pd.DataFrame({"t": (t0 + np.arange(10) * 3600) * scale, "x": np.arange(10.0)}).to_csv(path, index=False)
    snap, _, _ = replay(tmp_path / "a", str(path))
    assert snap.time_column is None and "t" in snap.columns            # a number like any other
    snap, _, _ = replay(tmp_path / "b", str(path), time_column="t")
    assert snap.time_column == "t" and "t" not in snap.columns
    assert list(event_times(snap)) == list(t0 + np.arange(10) * 3600.0)


def test_real_time_replay_on_slash_dates(tmp_path):
    """2012/01/01-style dates paced at 10 days per second: the replay anchors on the first date."""
    values = [d.strftime("%Y/%m/%d") for d in pd.date_range("2012-01-01", periods=20, freq="D")]
    path = write(tmp_path, values)
    with Engine(str(tmp_path / "data")) as engine:
        name = engine.add_replay(path, time_column="when", speed=Speed("realtime", 10 * DAY))
        seen = []
        assert wait_for(lambda: seen.append(engine.snapshot(name)) or
                        (seen[-1] is not None and seen[-1].counts["ingested"] == 20), timeout=60)
        src = engine.snapshot(name).source
        assert src["speed"] == "realtime" and src["anchor"]["event"] == epoch("2012-01-01")
        assert engine.snapshot(name).newest_event == epoch("2012-01-20")
        assert any(0 < s.counts["ingested"] < 20 for s in seen if s is not None)    # released over time


def test_real_time_without_a_time_column_says_what_to_choose(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    with Engine(str(tmp_path / "data")) as engine:
        with pytest.raises(UserError) as e:
            engine.add_replay(str(path), speed=Speed("realtime", 1))
    assert "choose the time column" in str(e.value) and "--" not in str(e.value)


def test_cli_replay_with_time_column_and_format(tmp_path):
    path = write(tmp_path, ["01/02/2012", "03/04/2012"])
    out = run_cli("replay", path, "--time-column", "when", "--time-format", "%d/%m/%Y", "--window-seconds",
                  str(100 * DAY), "--data-dir", str(tmp_path / "d"), "--json")
    assert out.returncode == 0, out.stderr
    snap = json.loads(out.stdout)
    assert snap["window"]["clock"] == "event" and snap["window"]["count"] == 2
    out = run_cli("replay", path, "--time-column", "when", "--data-dir", str(tmp_path / "e"), "--json")
    assert out.returncode == 2 and "either way round" in out.stderr and "Traceback" not in out.stderr


# --- calendar buckets -----------------------------------------------------------------------

def daily_frame(years=5, seed=0) -> pd.DataFrame:
    days = pd.date_range("2011-01-01", periods=365 * years + 1, freq="D")
    rng = np.random.default_rng(seed)
    temp = 10 + 8 * np.sin(np.arange(len(days)) / 58) + rng.normal(0, 3, len(days))
    temp[rng.random(len(days)) < 0.05] = np.nan
    return pd.DataFrame({"date": days, "temp": temp, "weather": rng.choice(["sun", "rain", "fog"], len(days))})


@pytest.mark.parametrize("width,rule", [(DAY, "D"), (WEEK, "W-MON"), (MONTH, "MS")], ids=["day", "week", "month"])
def test_calendar_buckets_match_pandas_resample(tmp_path, width, rule):
    df = daily_frame()
    path = tmp_path / "weather.csv"
    df.assign(date=df["date"].dt.strftime("%Y/%m/%d")).to_csv(path, index=False, float_format="%.17g")
    snap, _, _ = replay(tmp_path, str(path))
    got = snap.bucket_series(width)
    want = df.set_index("date")["temp"].resample(rule, closed="left", label="left")
    j = snap.columns.index("temp")
    assert list(pd.to_datetime(got["start"], unit="s")) == list(want.count().index)
    np.testing.assert_array_equal(got["count"][:, j], want.count().to_numpy())
    scale = 1e-12 * df["temp"].abs().max()       # values are shifted by a mean before bucketing (last digits)
    np.testing.assert_allclose(got["mean"][:, j], want.mean().to_numpy(), rtol=1e-12, atol=scale)
    np.testing.assert_allclose(got["var"][:, j], want.var().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(got["max"][:, j], want.max().to_numpy(), rtol=0, atol=scale)


def test_bucket_count_is_bounded_per_width():
    """80 years of hourly rows in batches: every width keeps at most its cap, the newest buckets."""
    b = Buckets(1)
    start = epoch("1950-01-01")
    for year in range(80):
        t = start + year * 365.25 * DAY + np.arange(0, 365 * 24) * 3600.0
        b.add(partial(t, np.ones((len(t), 1))))
    last = t[-1]
    for w in WIDTHS:
        assert len(b.series[w]) <= KEEP[w], w
    assert len(b.series[MONTH]) == KEEP[MONTH] and len(b.series[DAY]) == KEEP[DAY]
    months = pd.date_range(end=pd.Timestamp(last, unit="s").normalize(), periods=KEEP[MONTH], freq="MS")
    from engine.stats.buckets import starts_of
    assert list(pd.to_datetime(starts_of(b.series[MONTH].keys, MONTH), unit="s")) == list(months)


# --- tail and pipeline ------------------------------------------------------------------------

def test_tail_with_a_named_time_column(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    path = folder / "app.csv"
    path.write_text("at,level,ms\n" + "".join(f"{d.strftime('%d.%m.%Y %H:%M')},info,{i}\n"
                                              for i, d in enumerate(pd.date_range("2012-01-31 13:45", periods=50,
                                                                                  freq="min"))))
    with Engine(str(tmp_path / "data")) as engine:
        name = engine.add_tail(str(path), roots=[str(tmp_path)], time_column="at", time_format="%d.%m.%Y %H:%M")
        assert wait_for(lambda: rows_in(engine, name) == 50, timeout=60)
        with open(path, "a") as f:
            f.write("31.01.2012 15:00,warn,50\nnot a time,warn,51\n")
        assert wait_for(lambda: rows_in(engine, name) == 52, timeout=60)
        snap = engine.snapshot(name)
        assert snap.time_column == "at" and snap.counts["flagged"] == 1
        assert snap.newest_event == epoch("2012-01-31 15:00")
        assert snap.bucket_series(3600)["count"][:, 0].tolist() == [15, 35, 1]     # 13:45-13:59, 14:00-14:34, 15:00
    with Engine(str(tmp_path / "data")) as engine:                               # resumed from the store
        assert wait_for(lambda: engine.snapshot(name) is not None and engine.snapshot(name).state != "restoring",
                        timeout=60)
        assert engine.snapshot(name).time_column == "at"


def test_tail_of_json_lines_detects_slash_dates(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"day": d.strftime("%Y/%m/%d"), "v": i}) + "\n"
                            for i, d in enumerate(pd.date_range("2012-01-01", periods=10, freq="D"))))
    with Engine(str(tmp_path / "data")) as engine:
        name = engine.add_tail(str(path), roots=[str(tmp_path)])
        assert wait_for(lambda: rows_in(engine, name) == 10, timeout=60)
        snap = engine.snapshot(name)
        assert snap.time_column == "day" and snap.newest_event == epoch("2012-01-10")


def test_pipeline_cast_to_time_gives_event_time(tmp_path):
    values = ["01/02/2012", "03/04/2012", "05/06/2012"]          # ambiguous: text until cast
    path = write(tmp_path, values)
    with Engine(str(tmp_path / "data")) as engine:
        name = engine.add_replay(path)
        assert engine.wait(name, timeout=60).time_column is None
        engine.apply(name, {"steps": [{"kind": "cast", "params": {"columns": ["when"], "to": "time",
                                                                  "format": "%d/%m/%Y"}}]}, backfill=True)
        engine.wait_backfill(name, timeout=60)
        snap = engine.snapshot(name)
        assert snap.time_column == "when"
        assert list(event_times(snap)) == [epoch("2012-02-01"), epoch("2012-04-03"), epoch("2012-06-05")]
        assert list(snap.bucket_series(MONTH)["start"]) == [epoch("2012-02-01"), epoch("2012-04-01"),
                                                             epoch("2012-06-01")]
        # the Models page's training range is on the same event time
        rows = engine.models.history(name, {"start": "2012-03-01", "end": "2012-05-01"})
        assert rows.column("x").to_pylist() == [1.0]


def test_every_offered_format_reads_back_what_pandas_writes():
    """For each format the picker offers: pandas' strftime of random times, parsed again, gives them back
    (to the format's resolution); days a month lacks are refused, not rolled into the next month."""
    import pyarrow as pa
    from engine.ingest.times import FORMATS, parse
    rng = np.random.default_rng(7)
    when = pd.to_datetime(rng.integers(epoch("1990-01-01"), epoch("2030-01-01"), 500), unit="s", utc=True)
    when = when.append(pd.DatetimeIndex(["2012-02-29", "2012-03-01", "2013-05-01", "2012-12-31 23:59:59"], tz="UTC"))
    for pattern in FORMATS:
        unit = "s" if "%S" in pattern else "min" if "%M" in pattern else "D"
        shown = when.tz_convert("Europe/Berlin") if "%z" in pattern else when
        text = pa.array(list(shown.strftime(pattern)))
        out, ok = parse(text, pattern)
        assert pa.compute.all(ok).as_py(), (pattern, text.filter(pa.compute.invert(ok))[:3])
        got = pd.to_datetime(out.to_pandas(), utc=True)        # naive ones are wall-clock: read as UTC
        assert (got.to_numpy() == pd.Series(when.floor(unit)).to_numpy()).all(), pattern
    for pattern, bad in [("%d.%m.%Y", "30.02.2012"), ("%m/%d/%Y", "04/31/2012"), ("%b %d %Y", "February 30 2013"),
                         ("%d-%b-%Y", "29-FEB-2013"), ("%m/%d/%Y %I:%M %p", "02/30/2012 1:45pm"),
                         ("%Y/%m/%d %H:%M%z", "2012/06/31 01:00 +0200")]:
        assert not parse(pa.array([bad]), pattern)[1][0].as_py(), (pattern, bad)


def test_cli_tail_with_time_column_windows_on_event_time(tmp_path):
    path = tmp_path / "app.csv"
    stamps = pd.date_range("2012-01-31 13:45", periods=60, freq="min")
    path.write_text("at,ms\n" + "".join(f"{d.strftime('%d.%m.%Y %H:%M')},{i}\n" for i, d in enumerate(stamps)))
    out = run_cli("tail", str(path), "--time-column", "at", "--time-format", "%d.%m.%Y %H:%M", "--window-seconds",
                  "600", "--idle-exit", "1", "--data-dir", str(tmp_path / "d"), "--json")
    assert out.returncode == 0, out.stderr
    snap = json.loads(out.stdout)
    assert snap["window"] == {"kind": "time", "size": 600.0, "count": 10, "clock": "event"}   # 14:35 < t <= 14:44
    assert snap["stats"]["ms"]["mean"] == pytest.approx(np.mean(np.arange(50, 60)))


def test_a_formatted_time_out_of_range_is_flagged_and_the_rest_kept(tmp_path):
    """A day-first date in the year 9999 is beyond event time's float64 microseconds: missing and flagged,
    like a bad number; the other rows keep their times (the range is checked after the layout is parsed)."""
    values = [d.strftime("%d.%m.%Y") for d in pd.date_range("2012-01-01", periods=20, freq="D")]
    values[3] = "31.12.9999"
    snap, _, bad = replay(tmp_path, write(tmp_path, values), time_column="when")
    assert snap.to_json()["rows"]["ingested"] == 20 and snap.to_json()["rows"]["flagged"] == 1
    t = event_times(snap)
    assert np.isnan(t[3]) and np.isfinite(np.delete(t, 3)).all()
    assert len(bad) == 1 and bad[0]["kept"] and bad[0]["raw"].startswith("31.12.9999")


def test_typed_times_read_the_detected_layouts():
    """A time typed into a picker (time range, training range, seek) may be written as the file writes
    its times; one that reads with day and month either way round is refused, never guessed."""
    from engine.read.views import parse_time
    assert parse_time("31.01.2012 13:45") == epoch("2012-01-31 13:45")
    assert parse_time("Jan 5 2012") == parse_time("5 Jan 2012") == epoch("2012-01-05")
    assert parse_time("01/31/2012 1:45 PM") == epoch("2012-01-31 13:45")
    assert parse_time("2012-01-31T15:45:00+02:00") == epoch("2012-01-31 13:45")
    for text in ["03/04/2012", "31.02.2012", "tomorrow"]:
        with pytest.raises(UserError, match="year-month-day|not a time"):
            parse_time(text)


# (rows' times, the width a chart of the whole stream takes): the finest width whose kept buckets
# hold every row in at most 240 buckets
FITS = [
    (pd.date_range("2018-01-01", periods=105, freq="7D"), DAY),     # plotly's stocks: 105 days hold a row each
    (pd.date_range("2011-01-01", periods=1827, freq="D"), MONTH),   # 5 years daily: 261 weeks, 60 months
    (pd.date_range("2024-01-01", periods=300, freq="s"), 10),       # 300 seconds: 30 buckets of 10 s
    (pd.date_range("2024-01-01", periods=100, freq="s"), 1),
]


@pytest.mark.parametrize("times,width", FITS, ids=["weekly", "daily-5y", "300s", "100s"])
def test_the_bucket_width_that_charts_the_whole_stream(tmp_path, times, width):
    path = write(tmp_path, [t.strftime("%d/%m/%Y %H:%M:%S") for t in times])
    snap, _, _ = replay(tmp_path, path, time_column="when", time_format="%d/%m/%Y %H:%M:%S")
    assert snap.fitting_width(240) == width
    series = snap.bucket_series(width)
    want = pd.Series(1, index=times).resample(pd.Timedelta(seconds=width) if width < DAY else
                                              {DAY: "D", MONTH: "MS"}[width]).count()
    assert series["count"][:, 0].sum() == len(times) and len(series["start"]) == int((want > 0).sum())


def test_a_bucket_width_for_r_over_time_has_rows_to_correlate(tmp_path):
    """With 10 rows a bucket at least, weekly rows get months (a day holds one row: no r), 1 row a second 10 s."""
    weekly = pd.date_range("2018-01-01", periods=105, freq="7D")
    path = write(tmp_path, [t.strftime("%d/%m/%Y") for t in weekly], name="w.csv")
    snap, _, _ = replay(tmp_path / "w", path, time_column="when", time_format="%d/%m/%Y")
    assert snap.fitting_width(240, fill=10) == MONTH
    seconds = pd.date_range("2024-01-01", periods=1000, freq="s")
    path = write(tmp_path, [t.strftime("%Y-%m-%d %H:%M:%S") for t in seconds], name="s.csv")
    snap, _, _ = replay(tmp_path / "s", path)
    assert snap.fitting_width(240, fill=10) == 10
    assert snap.bucket_series(10)["count"][:, 0].min() == 10


def test_a_column_of_whole_years_read_with_a_year_format(tmp_path):
    """gapminder's `year` (1952, 1957, ...) named as the time column with %Y: the integer column kept its
    integer mark, the parser checked its timestamps as integers and the stream stopped with a TypeError."""
    years = np.repeat(np.arange(1952, 2008, 5), 3)
    df = pd.DataFrame({"country": np.tile(["a", "b", "c"], len(years) // 3), "year": years,
                       "lifeExp": np.linspace(30, 80, len(years))})
    path = tmp_path / "gapminder.csv"
    df.to_csv(path, index=False)
    snap, schema, bad = replay(tmp_path, str(path), time_column="year", time_format="%Y")
    assert snap.error is None and snap.counts["ingested"] == len(df) and bad == []
    want = (pd.to_datetime(df["year"].astype(str), format="%Y") - pd.Timestamp("1970-01-01")) / pd.Timedelta("1s")
    assert list(event_times(snap)) == want.tolist()
    assert snap.time_column == "year" and "year" not in snap.columns


def test_the_fitting_width_counts_rows_by_their_fullest_column_and_needs_a_number(tmp_path):
    """A first column missing in most rows made the fill rule see few rows (too coarse a width), and a stream
    without number columns defaulted to "1 month" for 5 minutes of rows: now None (the page's 10 s)."""
    seconds = pd.date_range("2024-01-01", periods=1000, freq="s")
    sparse = np.where(np.arange(1000) % 10 == 0, 1.0, np.nan)
    path = tmp_path / "sparse.csv"
    pd.DataFrame({"when": seconds.strftime("%Y-%m-%d %H:%M:%S"), "a": sparse, "b": np.arange(1000.0)}).to_csv(
        path, index=False)
    snap, _, _ = replay(tmp_path / "sparse", str(path))
    assert snap.fitting_width(240, fill=10) == 10            # 10 rows a 10 s bucket, though `a` has one
    path = tmp_path / "text.csv"
    pd.DataFrame({"when": seconds[:300].strftime("%Y-%m-%d %H:%M:%S"), "site": ["n", "s"] * 150}).to_csv(
        path, index=False)
    snap, _, _ = replay(tmp_path / "text", str(path))
    assert snap.fitting_width(240) is None
