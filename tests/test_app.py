"""Every page under AppTest (no browser): renders with the demo stream, widgets change what is shown,
user errors become messages, an upload through file_uploader becomes a replayed stream."""
import json
import os
import time

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

SOURCES, AGGREGATES, CORRELATIONS = "pages/1_Sources.py", "pages/3_Aggregates.py", "pages/4_Correlations.py"


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("RIVULET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(ROOT)
    yield tmp_path / "data"
    st.cache_resource.clear()          # closes the engine (on_release) so the next test gets its own


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=30).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def rerun_until(at: AppTest, cond, timeout: float = 15.0) -> AppTest:
    """AppTest does not tick run_every: rerun by hand until `cond(at)` holds."""
    end = time.time() + timeout
    while True:
        at.run()
        assert not at.exception, at.exception
        try:
            if cond(at):
                return at
        except (StopIteration, KeyError):      # the element is not drawn yet (e.g. "Starting…")
            pass
        if time.time() > end:
            raise AssertionError("condition not met; page shows: "
                                 + " | ".join(m.value for m in at.markdown)[:2000])
        time.sleep(0.2)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def number(text: str) -> float:
    return float(text.replace(",", ""))


def csv_bytes(n=500, bad=3) -> bytes:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="s"),
                       "kind": rng.choice(["a", "b"], n), "x": rng.normal(size=n), "y": rng.normal(size=n)})
    lines = df.to_csv(index=False).splitlines()
    for i in range(bad):                       # rows with too many fields go to quarantine
        lines.insert(10 + i * 50, f"2024-01-01 00:00:0{i},a,1,2,EXTRA")
    return ("\n".join(lines) + "\n").encode()


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    """Give the uploader a file and wait until its copy to disk has ended (saved or refused)."""
    at.file_uploader[0].set_value((name, data, "text/csv")).run()
    return rerun_until(at, lambda a: any("is ready" in c.value for c in a.caption) or a.error)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_overview_shows_the_demo_stream(app):
    at = open_app()
    at = rerun_until(at, lambda a: number(metric(a, "Rows stored")) > 0)
    assert metric(at, "Streams") == "1"
    assert metric(at, "Engine") == "healthy"
    assert at.dataframe[0].value["stream"].tolist() == ["demo"]
    first = number(metric(at, "Rows stored"))
    at = rerun_until(at, lambda a: number(metric(a, "Rows stored")) > first)


def test_overview_without_streams_says_what_to_do(app, monkeypatch):
    monkeypatch.setenv("RIVULET_DEMO", "0")
    at = open_app()
    assert metric(at, "Streams") == "0"
    assert any("No streams yet" in i.value for i in at.info)


def test_refresh_can_be_paused(app):
    at = open_app()
    at.toggle(key="refresh_live").set_value(False).run()
    assert any(b.label == "Refresh now" for b in at.button)
    rerun_until(at, lambda a: any("refresh paused" in c.value for c in a.caption))


def test_upload_replays_and_lists_the_quarantine(app):
    at = open_app(SOURCES)
    data = csv_bytes()
    at = upload(at, "two words.csv", data)
    assert "**ts** (time)" in at.caption[0].value or any("**ts** (time)" in c.value for c in at.caption)
    button(at, "Start replay").click().run()
    at = rerun_until(at, lambda a: any("stream **two_words**" in s.value for s in a.success))
    assert os.listdir(app / "uploads") == ["two_words.csv"]
    assert at.selectbox(key="source_stream").value == "two_words"
    at = rerun_until(at, lambda a: metric(a, "Rows") == "500" and metric(a, "Quarantined") == "3")
    table = at.dataframe[-1].value
    assert len(table) == 3 and set(table["reason"]) == {"expected 4 fields, found 5"}
    assert any(c.value.startswith("Newest 3 rows set aside") for c in at.caption)
    assert all(r.endswith(",EXTRA") for r in table["raw"])
    assert any(d.label == "Download as CSV" for d in at.get("download_button"))
    overview = rerun_until(open_app(), lambda a: "two_words" in a.dataframe[0].value["stream"].tolist())
    rows = overview.dataframe[0].value.set_index("stream")
    assert rows.loc["two_words", "rows"] == 500 and rows.loc["two_words", "quarantined"] == 3


def test_two_files_uploaded_at_once_offer_the_time_columns_both_have(app):
    """Each file's columns are listed, and the time column is chosen among those every file has: a time
    column of the first file only would not start the second."""
    at = open_app(SOURCES)
    other = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=50, freq="s").astype(str),
                          "ts": pd.date_range("2024-02-01", periods=50, freq="s").astype(str),
                          "x": np.arange(50) * 0.5}).to_csv(index=False).encode()
    firsts = pd.DataFrame({"when": pd.date_range("2024-03-01", periods=50, freq="s").astype(str),
                           "y": np.arange(50)}).to_csv(index=False).encode()
    at.file_uploader[0].set_value([("a.csv", other, "text/csv"), ("b.csv", firsts, "text/csv")]).run()
    at = rerun_until(at, lambda a: sum("is ready" in c.value for c in a.caption) == 2 or a.error)
    listed = [c.value for c in at.caption]
    assert any(c.startswith("a.csv: **when**") for c in listed) and any(c.startswith("b.csv: **when**") for c in listed)
    assert any(c.endswith("the columns every file has: **when**.") for c in listed), listed
    assert at.selectbox(key="upload_time_column").options[1:] == ["when"]


def test_replay_controls_and_their_errors(app):
    at = open_app(SOURCES)
    at = upload(at, "slow.csv", csv_bytes(2000, bad=0))
    at.radio(key="upload_speed").set_value("Rows per second").run()
    at.number_input(key="upload_rows_per_s").set_value(50.0).run()
    button(at, "Start replay").click().run()
    at = rerun_until(at, lambda a: number(metric(a, "Rows")) > 0)
    button(at, "Pause").click().run()
    at = rerun_until(at, lambda a: any("paused" in m.value for m in a.markdown))
    time.sleep(0.3)                            # a batch cut before the pause may still commit
    at.run()
    held = metric(at, "Rows")
    time.sleep(1.0)                            # 50 rows/s would add about 50 rows by now
    at.run()
    assert metric(at, "Rows") == held
    at.radio(key="seek_by_slow").set_value("time").run()
    at.text_input(key="seek_time_slow").set_value("not a time").run()
    button(at, "Seek").click().run()
    assert any("is not a time" in e.value for e in at.error)
    button(at, "Resume").click().run()
    at = rerun_until(at, lambda a: any("running" in m.value for m in a.markdown))


def test_realtime_without_time_column_is_a_message(app):
    at = open_app(SOURCES)
    at = upload(at, "plain.csv", b"a,b\n1,2\n3,4\n")
    at.radio(key="upload_speed").set_value("× real time").run()
    button(at, "Start replay").click().run()
    at = rerun_until(at, lambda a: any("needs a time column" in e.value for e in a.error))
    assert not any("--" in e.value for e in at.error)                                      # no CLI flags
    assert os.listdir(app / "uploads") == []          # a refused replay leaves no file behind


def test_oversized_upload_is_refused_with_a_message(app, monkeypatch):
    monkeypatch.setenv("RIVULET_UPLOAD_LIMIT_MB", "0.001")
    at = open_app(SOURCES)
    at = upload(at, "big.csv", csv_bytes(200, bad=0))
    at = rerun_until(at, lambda a: any("larger than the upload limit" in e.value for e in a.error))
    assert button(at, "Start replay").disabled          # nothing left to start
    assert os.listdir(app / "uploads") == []


def test_aggregates_follow_the_widgets(app):
    at = open_app(AGGREGATES)
    # enough rows that every site has some (the demo's first rows are always the same few)
    at = rerun_until(at, lambda a: rows_shown(a) >= 60)
    at.multiselect(key="agg_columns").set_value(["temperature"]).run()
    assert [m.label for m in at.metric] == ["temperature · mean"]
    at.selectbox(key="agg_range").set_value("Last S seconds").run()
    assert any("(last 1 min, by time column 'ts')" in c.value for c in at.caption)
    # a bad filter value is a message, not a traceback
    add_filter(at, "temperature", "warm")
    assert any("enter a number" in e.value for e in at.error)
    # a good one narrows this session's view
    add_filter(at, "site", "north")
    assert any("filtered by site = north" in c.value for c in at.caption), [c.value for c in at.caption]
    groups = at.dataframe[0].value
    assert groups["site"].tolist() == ["north"]


def rows_shown(at: AppTest) -> int:
    """The row count in the live caption ("**123** rows in the window ...")."""
    for c in at.caption:
        if "rows in the window" in c.value:
            return int(number(c.value.split("**")[1]))
    return 0


def add_filter(at: AppTest, column: str, value: str, op: str = "=") -> None:
    at.selectbox(key="filter_column").set_value(column)
    at.selectbox(key="filter_op").set_value(op)
    at.text_input(key="filter_value").set_value(value)
    next(b for b in at.get("form_submit_button") if b.label == "Add filter").click().run()


def test_correlations_render_and_pair_choice(app):
    at = open_app(CORRELATIONS)
    at = rerun_until(at, lambda a: len(a.dataframe) >= 2)
    pairs = at.dataframe[0].value
    assert {"pair", "r", "rows"} <= set(pairs.columns)
    assert (pairs["r"].abs().diff().dropna() <= 1e-12).all()           # ranked by |r|
    cov = at.dataframe[1].value
    assert list(cov.columns) == list(cov.index)
    at.selectbox(key="corr_y").set_value(at.selectbox(key="corr_x").value).run()
    assert any("two different columns" in i.value for i in at.info)


def test_sessions_share_streams_but_not_view_settings(app):
    one, two = open_app(AGGREGATES), open_app(AGGREGATES)
    one = rerun_until(one, lambda a: len(a.metric) > 0)
    two = rerun_until(two, lambda a: len(a.metric) > 0)
    one.multiselect(key="agg_columns").set_value(["power"]).run()
    two.run()
    assert [m.label for m in one.metric] == ["power · mean"]
    assert len(two.metric) == 4
    src = open_app(SOURCES)
    src = upload(src, "shared.csv", b"a,b\n1,2\n")
    button(src, "Start replay").click().run()
    two.run()
    assert "shared" in two.selectbox(key="view_stream").options


def test_guard_turns_a_bug_into_a_message():
    def page():
        from ui.guard import guard
        with guard("The widget"):
            raise ValueError("boom")

    at = AppTest.from_function(page).run()
    assert not at.exception
    assert "The widget could not be shown (ValueError)" in at.error[0].value
    assert "boom" not in at.error[0].value and "Traceback" not in at.error[0].value


def test_sign_in_is_off_by_default_and_guards_every_page_when_configured(app):
    at = open_app()
    assert not any("needs you to sign in" in i.value for i in at.info)
    auth = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s" * 32,
            "client_id": "rivulet", "client_secret": "x",
            "server_metadata_url": "https://id.example.com/.well-known/openid-configuration"}
    for page in (None, SOURCES, "pages/5_Models.py", "pages/6_Export.py"):
        at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=30)
        at.secrets["auth"] = auth
        at.user = {"is_logged_in": False}
        at.run()
        if page:
            at.switch_page(page).run()
        assert not at.exception
        assert any("needs you to sign in" in i.value for i in at.info)
        assert [b.label for b in at.button] == ["Sign in"]
        assert not at.metric and not at.file_uploader             # nothing of the page itself
    at.user = {"is_logged_in": True, "name": "Ada", "email": "ada@example.com"}
    at.run()
    assert not any("needs you to sign in" in i.value for i in at.info)
    assert at.get("download_button")                               # the Export page itself
    at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=30)
    at.secrets["auth"] = auth
    at.user = {"is_logged_in": True, "name": "Ada", "email": "ada@example.com"}
    at.run()
    assert metric(at, "Streams") == "1"
    assert any("Signed in as **Ada**" in c.value for c in at.sidebar.caption)
    assert any(b.label == "Sign out" for b in at.button)


def test_tail_tab_follows_a_file_under_the_roots_and_refuses_others(app, monkeypatch, tmp_path):
    monkeypatch.setenv("RIVULET_DEMO", "0")
    at = open_app(SOURCES)
    folder = app / "incoming"
    folder.mkdir(parents=True)
    log = folder / "plant.csv"
    log.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(50)))
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("a,b\n1,2\n")
    at.text_input(key="tail_path").set_value(str(outside)).run()
    button(at, "Start tailing").click().run()
    assert not at.exception
    assert any("outside" in e.value or "allowed" in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key="tail_path").set_value(str(log)).run()
    button(at, "Start tailing").click().run()
    assert any("as stream **plant**" in s.value for s in at.success), [e.value for e in at.error]
    at = rerun_until(at, lambda a: metric(a, "Rows") == "50", timeout=30)
    with open(log, "a") as f:                     # another program appends: the tail picks it up
        f.write("".join(f"{i},{i * 2}\n" for i in range(50, 80)))
    rerun_until(at, lambda a: metric(a, "Rows") == "80", timeout=30)


def test_replay_controls_are_there_right_after_start_replay(app, monkeypatch):
    """The stream's thread publishes its first snapshot after restoring it; on a loaded machine that comes
    after the page's rerun, and the controls (outside the live fragment) must not depend on it."""
    from engine.stream import Stream
    restore = Stream.restore

    def slow_restore(self):                 # a loaded machine: the stream's thread starts late
        time.sleep(1.5)
        restore(self)

    monkeypatch.setattr(Stream, "restore", slow_restore)
    at = open_app(SOURCES)
    at = upload(at, "fresh.csv", csv_bytes(200, bad=0))
    button(at, "Start replay").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="source_stream").value == "fresh"
    assert not any("Only replays have" in c.value for c in at.caption)
    assert any(b.label in ("Pause", "Resume") for b in at.button) and any(b.label == "Seek" for b in at.button)
    assert any("not stored twice" in c.value for c in at.caption)       # what a seek does, in one line


def test_upload_form_and_controls_take_the_same_speeds(app):
    from engine import SPEED_LIMITS, UserError
    at = open_app(SOURCES)
    at = upload(at, "paced.csv", csv_bytes(2000, bad=0))
    bounds = {}
    for label, key in (("Rows per second", "upload_rows_per_s"), ("× real time", "upload_multiple")):
        at.radio(key="upload_speed").set_value(label).run()
        box = at.number_input(key=key)
        bounds[("upload", label)] = (box.proto.min, box.proto.max)
    at.radio(key="upload_speed").set_value("Rows per second").run()
    at.number_input(key="upload_rows_per_s").set_value(50.0).run()
    button(at, "Start replay").click().run()
    for label, mode in (("Rows per second", "rows"), ("× real time", "realtime")):
        at.selectbox(key="speed_mode_paced").set_value(label).run()
        assert not at.exception, at.exception
        box = at.number_input(key=f"speed_value_paced_{mode}")
        bounds[("controls", label)] = (box.proto.min, box.proto.max)
    for (where, label), got in bounds.items():
        assert got == SPEED_LIMITS["rows" if label == "Rows per second" else "realtime"], (where, label, got)
    from engine.ingest.replay import Speed         # and the engine refuses what the widgets refuse
    with pytest.raises(UserError, match="out of range"):
        Speed.parse("realtime", SPEED_LIMITS["realtime"][1] * 2)


def weather_csv(years: int = 5) -> tuple[bytes, pd.DataFrame]:
    """A daily weather table as public data sets write it: `2012/01/01` dates and a category."""
    rng = np.random.default_rng(3)
    days = pd.date_range("2011-01-01", periods=365 * years + 1, freq="D")
    df = pd.DataFrame({"date": days, "temp_max": rng.normal(15, 6, len(days)),
                       "weather": rng.choice(["sun", "rain", "fog"], len(days))})
    return df.assign(date=df["date"].dt.strftime("%Y/%m/%d")).to_csv(index=False).encode(), df


def test_sources_offers_slash_dates_as_the_time_column(app):
    at = open_app(SOURCES)
    data, _ = weather_csv(1)
    at = upload(at, "seattle.csv", data)
    assert any("**date** (time, %Y/%m/%d)" in c.value for c in at.caption), [c.value for c in at.caption]
    assert at.selectbox(key="upload_time_column").options[:2] == ["(first column of dates or times)", "date"]
    at.selectbox(key="upload_time_column").set_value("date").run()
    at.radio(key="upload_speed").set_value("× real time").run()
    at.number_input(key="upload_multiple").set_value(1e4).run()
    button(at, "Start replay").click().run()
    assert not at.error, [e.value for e in at.error]
    at = rerun_until(at, lambda a: any("real time" in p.proto.text for p in a.get("progress")))


def weekly_csv(weeks: int = 12) -> bytes:
    """Weekly closing prices as plotly's stocks table has them, dated day-first (`15/01/2018 00:00`)."""
    days = pd.date_range("2018-01-01", periods=weeks, freq="7D")
    return pd.DataFrame({"date": days.strftime("%d/%m/%Y %H:%M"),
                         "GOOG": np.linspace(1.0, 1.2, weeks), "AAPL": np.cos(np.arange(weeks))}
                        ).to_csv(index=False).encode()


def test_weekly_data_replays_at_a_week_a_second_and_more(app):
    """× real time reaches multiples that move weekly data: at the old 10,000x cap a week took a minute."""
    at = open_app(SOURCES)
    at = upload(at, "stocks.csv", weekly_csv())
    assert any("**date** (time, %d/%m/%Y %H:%M)" in c.value for c in at.caption), [c.value for c in at.caption]
    at.radio(key="upload_speed").set_value("× real time").run()
    at.number_input(key="upload_multiple").set_value(20 * 604_800.0).run()     # 20 weeks a second
    assert not at.exception, at.exception
    button(at, "Start replay").click().run()
    assert not at.error, [e.value for e in at.error]
    at = rerun_until(at, lambda a: any("12,096,000× real time" in p.proto.text for p in a.get("progress")))
    at = rerun_until(at, lambda a: number(metric(a, "Rows")) == 12, timeout=30)


def test_bucket_width_follows_the_stream_until_one_is_picked(app):
    """Weekly rows chart by day on Aggregates (the old fixed 10 s default showed one dot) and by month on
    Correlations' r over time (a day holds one row); a width the user picks stays when the stream changes."""
    at = open_app(SOURCES)
    at = upload(at, "stocks.csv", weekly_csv(30))
    button(at, "Start replay").click().run()
    at.switch_page(AGGREGATES).run()
    at = rerun_until(at, lambda a: "stocks" in a.selectbox(key="view_stream").options)
    at.selectbox(key="view_stream").set_value("stocks").run()
    at = rerun_until(at, lambda a: rows_shown(a) == 30)
    at.run()
    assert at.selectbox(key="agg_width").value == "1 day"
    assert any(c.value.startswith("Newest 30 buckets of 1 day") for c in at.caption), [c.value for c in at.caption]
    at.selectbox(key="view_stream").set_value("demo").run()
    assert at.selectbox(key="agg_width").value != "1 day"          # the demo's own: seconds of rows
    at.selectbox(key="agg_width").set_value("1 week").run()
    at.selectbox(key="view_stream").set_value("stocks").run()
    assert at.selectbox(key="agg_width").value == "1 week"         # picked: kept
    at.switch_page(CORRELATIONS).run()
    assert at.selectbox(key="corr_width").value == "1 month"
    at.switch_page("pages/6_Export.py").run()
    at.radio(key="x_data").set_value("Bucket series").run()
    assert at.selectbox(key="x_width").value == "1 day"             # the download holds every week
    assert not at.exception, at.exception


def test_looping_an_ended_replay_can_be_paused_at_once(app):
    """Loop turned on for a replay that had ended started it again, but its Pause button stayed disabled
    (drawn for the ended replay) while a 150-row file looped thousands of passes a minute."""
    at = open_app(SOURCES)
    at = upload(at, "small.csv", weekly_csv())
    button(at, "Start replay").click().run()
    at = rerun_until(at, lambda a: any("100% of the file" in p.proto.text for p in a.get("progress")))
    at.run()
    assert button(at, "Pause").disabled                     # ended: nothing to pause
    at.toggle(key="loop_small").set_value(True).run()
    assert not at.exception, at.exception
    assert not button(at, "Pause").disabled
    button(at, "Pause").click().run()
    at = rerun_until(at, lambda a: any("paused" in m.value for m in a.markdown))


def test_loop_is_asked_once_while_the_source_has_not_shown_it_yet(app, monkeypatch):
    """On a cluster the source shows a loop change a second or more later; until then each run asked
    again and reran the page at once, a tight loop. Here the source never shows it: one request."""
    from engine.runtime import Engine
    asked = []
    monkeypatch.setattr(Engine, "set_loop", lambda self, name, loop: asked.append(loop))
    at = open_app(SOURCES)
    at = upload(at, "lag.csv", weekly_csv())
    button(at, "Start replay").click().run()
    at = rerun_until(at, lambda a: any("100% of the file" in p.proto.text for p in a.get("progress")))
    at.toggle(key="loop_lag").set_value(True).run()
    at.run()
    at.run()
    assert asked == [True] and not at.exception


def test_a_column_of_years_as_the_time_column(app):
    """gapminder's `year` named as the time column was read as epoch seconds (1952 s after 1970) without a
    word, and with %Y typed as its format the replay stopped with a TypeError."""
    df = pd.DataFrame({"country": ["a", "b"] * 6, "year": np.repeat(np.arange(1952, 1982, 5), 2),
                       "lifeExp": np.linspace(30, 60, 12)})
    at = open_app(SOURCES)
    at = upload(at, "gapminder.csv", df.to_csv(index=False).encode())
    at.selectbox(key="upload_time_column").set_value("year").run()
    assert any("pick %Y as its time format" in c.value for c in at.caption), [c.value for c in at.caption]
    at.selectbox(key="upload_time_format").set_value("%Y").run()
    assert not any("%Y as its time format" in c.value for c in at.caption)
    button(at, "Start replay").click().run()
    assert not at.error, [e.value for e in at.error]
    at = rerun_until(at, lambda a: number(metric(a, "Rows")) == 12)
    assert not any("stopped" in e.value for e in at.error), [e.value for e in at.error]


def test_aggregates_time_range_is_event_time(app):
    """'From 2015-06-01' narrows every panel to the rows dated from then, by the `date` column."""
    at = open_app(SOURCES)
    data, df = weather_csv(5)
    at = upload(at, "weather.csv", data)
    button(at, "Start replay").click().run()
    at.switch_page(AGGREGATES).run()
    at = rerun_until(at, lambda a: "weather" in a.selectbox(key="view_stream").options)   # the replay has begun
    at.selectbox(key="view_stream").set_value("weather").run()
    at = rerun_until(at, lambda a: a.selectbox(key="agg_range"))      # drawn once its first batch is committed
    at.selectbox(key="agg_range").set_value("Absolute range").run()
    at.text_input(key="agg_since").set_value("2015-06-01").run()
    at.selectbox(key="agg_width").set_value("1 month").run()
    want = int((df["date"] >= "2015-06-01").sum())
    at = rerun_until(at, lambda a: rows_shown(a) == want)
    assert any("by time column 'date'" in c.value for c in at.caption)
    mean = float(next(m for m in at.metric if m.label == "temp_max · mean").value)
    assert mean == pytest.approx(df.loc[df["date"] >= "2015-06-01", "temp_max"].mean(), rel=1e-3)
    chart = json.loads(next(c for c in at.get("plotly_chart") if "mean per 1 month" in c.proto.spec).proto.spec)
    starts = pd.to_datetime(next(t for t in chart["data"] if t.get("name"))["x"])     # the first column's means
    assert starts[0] == pd.Timestamp("2015-06-01") and starts[-1] == pd.Timestamp("2015-12-01")
    assert len(starts) == 7
    assert any(c.value.startswith("Newest 7 buckets of 1 month") for c in at.caption)
    at.text_input(key="agg_since").set_value("2015-12-01").run()           # December alone
    at = rerun_until(at, lambda a: any(c.value.startswith("One bucket of 1 month") for c in a.caption))
