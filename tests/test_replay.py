"""Replay controls: pause holds, seek and loop land where asked, rows/s is honoured."""
import time

import numpy as np
import pandas as pd
import pytest

from engine.errors import EngineBusy, UserError
from engine.stats.operators import WindowSpec
from engine.runtime import Engine
from engine.ingest.replay import Speed
from tests.conftest import wait_for


@pytest.fixture
def csv_file(tmp_path):
    n = 5000
    df = pd.DataFrame({"ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="s"),
                       "id": np.arange(n), "x": np.random.default_rng(0).normal(size=n)})
    path = tmp_path / "r.csv"
    df.to_csv(path, index=False)
    return str(path)


def ingested(engine, name):
    snap = engine.snapshot(name)
    return snap.counts["ingested"] if snap else 0


def test_rate_is_honoured_and_pause_holds(tmp_path, csv_file):
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(csv_file, speed=Speed("rows", 200))
        assert wait_for(lambda: ingested(e, name) > 0)
        start, t0 = ingested(e, name), time.time()
        time.sleep(3)
        rate = (ingested(e, name) - start) / (time.time() - t0)
        assert 200 * 0.6 < rate < 200 * 1.2, rate      # never faster; slower only on a starved CPU
        e.pause(name)
        time.sleep(0.3)
        held = ingested(e, name)
        time.sleep(1.0)
        assert ingested(e, name) == held
        e.resume(name)
        assert wait_for(lambda: ingested(e, name) > held)


def test_seek_to_row_and_time_then_loop(tmp_path, csv_file):
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(csv_file, speed=Speed("rows", 1000), window=WindowSpec("count", 100000))
        e.pause(name)
        e.seek(name, row=4900)
        e.set_speed(name, "max")
        e.resume(name)
        snap = e.wait(name, timeout=30)
        ids = snap.window_table().column("id").to_pylist()
        assert ids[-100:] == list(range(4900, 5000)) and ids.count(4900) == 1
        e.seek(name, at=pd.Timestamp("2024-01-01 01:23:00").timestamp())   # row 4980
        snap = e.wait(name, timeout=30)
        assert snap.window_table().column("id").to_pylist() == list(range(4980, 5000))
        def flowed():      # the loop's next pass stores rows the seeks skipped and replays the others
            return e.snapshot(name).counts["ingested"] + e.snapshot(name).counts["replayed"]
        before = flowed()
        e.set_speed(name, "rows", 500)
        e.set_loop(name, True)
        assert wait_for(lambda: flowed() > before + 100)
        ids = e.snapshot(name).window_table().column("id").to_pylist()
        again = ids.index(0)                                         # the loop starts again at row 0
        assert ids[again - 1] == 4999 and ids[again:] == list(range(len(ids) - again))


def test_realtime_speed(tmp_path, csv_file):
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(csv_file, speed=Speed("realtime", 50))     # 50 s of data per second
        assert wait_for(lambda: ingested(e, name) > 0)
        start, t0 = ingested(e, name), time.time()
        time.sleep(3)
        rate = (ingested(e, name) - start) / (time.time() - t0)
        assert 50 * 0.6 < rate < 50 * 1.2, rate        # never faster; slower only on a starved CPU


def test_realtime_snapshots_tell_when_their_rows_were_due(tmp_path, csv_file):
    """The anchor maps event time to wall time, so each row's due time is known to readers."""
    ts = pd.read_csv(csv_file, parse_dates=["ts"])["ts"]
    times = ((ts - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)).to_numpy()
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(csv_file, speed=Speed("realtime", 500))
        assert wait_for(lambda: ingested(e, name) > 1000)
        snap = e.snapshot(name)
        anchor = snap.source["anchor"]
        n = snap.counts["ingested"]
        assert snap.newest_event == times[n - 1]          # rows arrive in file order
        due = anchor["wall"] + (snap.newest_event - anchor["event"]) / anchor["speed"]
        assert due <= snap.created                        # never visible before it was due
        assert anchor["event"] == times[0]
        e.set_speed(name, "max")
        final = e.wait(name)
        assert final.newest_event == times[-1] and final.source["anchor"] is None


def test_second_engine_on_the_same_folder_is_refused(tmp_path):
    with Engine(str(tmp_path / "d")):
        with pytest.raises(EngineBusy, match="in use by another Rivulet engine"):
            Engine(str(tmp_path / "d"))


def test_bad_requests_are_user_errors(tmp_path, csv_file):
    with Engine(str(tmp_path / "d")) as e:
        with pytest.raises(UserError, match="no such file"):
            e.add_replay(str(tmp_path / "missing.csv"))
        with pytest.raises(UserError, match="time column"):
            e.add_replay(csv_file, time_column="x_missing")
        with pytest.raises(UserError, match="no stream named"):
            e.pause("nope")
        assert e.names() == []


def test_restart_resumes_and_rebuilds_state(tmp_path, csv_file):
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(csv_file, window=WindowSpec("count", 700))
        first = e.wait(name, timeout=30).to_json()
    with Engine(str(tmp_path / "d")) as e:
        again = e.wait(name, timeout=30).to_json()
    assert again["rows"] == first["rows"] and again["rows"]["ingested"] == 5000
    assert again["stats"] == first["stats"] and again["cumulative"] == first["cumulative"]


def test_retention_bounds_the_store(tmp_path, csv_file):
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(csv_file, retention_rows=1000)
        e.wait(name, timeout=30)
        s = e.streams[name]
        e.store.prune(s.id, s.counters.next_rid, 1000, None)
        assert e.store.count(s.id) == 1000
        assert e.snapshot(name).counts["ingested"] == 5000


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_file_is_converted_and_replayed(tmp_path, encoding):
    df = pd.DataFrame({"id": np.arange(2000), "name": [f"café {i}" for i in range(2000)],
                       "x": np.random.default_rng(1).normal(size=2000)})
    path = tmp_path / "u16.csv"
    text = df.to_csv(index=False)
    path.write_bytes(("\ufeff" + text).encode("utf-16-be") if encoding == "utf-16-be" else text.encode("utf-16"))
    with Engine(str(tmp_path / "d")) as e:
        snap = e.wait(e.add_replay(str(path)), timeout=20).to_json()
        assert snap["rows"]["ingested"] == 2000 and snap["rows"]["quarantined"] == 0
        assert snap["cumulative"]["x"]["mean"] == pytest.approx(df.x.mean(), rel=1e-9)
        stored = e.store.rows(e.streams["u16"].id, columns=["name"]).column("name").to_pylist()
        assert stored == df.name.tolist()


def test_demo_stream_pauses_and_resumes(tmp_path):
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_demo(rate=200)
        assert wait_for(lambda: ingested(e, name) > 0)
        e.pause(name)
        time.sleep(0.3)                            # a batch cut before the pause may still commit
        held = ingested(e, name)
        time.sleep(1.0)                            # 200 rows/s would add about 200 rows by now
        assert ingested(e, name) == held
        e.resume(name)
        assert wait_for(lambda: ingested(e, name) > held)


class Clock:
    """Stands in for time.monotonic() (the pacing clock) inside the replay source, so stalls are exact."""

    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def test_paced_replay_catches_up_a_short_stall_in_one_batch_and_skips_a_long_one(tmp_path, monkeypatch):
    from engine.ingest import replay
    path = tmp_path / "big.csv"
    pd.DataFrame({"id": np.arange(200_000), "x": np.arange(200_000) * 0.5}).to_csv(path, index=False)
    clock = Clock()
    monkeypatch.setattr(replay.time, "monotonic", clock)
    src = replay.ReplaySource(str(path), speed=Speed("rows", 10_000))
    clock.now += 0.125
    first = src.next_batch()
    assert first.table.num_rows == 1250                 # exactly what is due at 10,000 rows/s
    clock.now += 3.0                                    # ingest stalled 3 s (a loaded machine)
    backlog = src.next_batch()
    assert backlog.table.num_rows == 30_000             # all of it, in one batch
    assert src.next_batch() is None                     # and nothing early
    clock.now += 0.01
    assert src.next_batch() is None                     # 100 rows are due, but a batch has a fixed cost:
    clock.now += 0.04                                   # they wait for the 50 ms tick
    tick = src.next_batch()
    assert tick.table.num_rows == 500
    clock.now += 60.0                                   # a long stall (suspended machine): no burst
    assert src.next_batch().table.num_rows <= 1
    ids = pa_ids(first) + pa_ids(backlog)
    assert ids == list(range(31_250))
    assert pa_ids(tick) == list(range(31_250, 31_750))


def test_a_wall_clock_set_back_does_not_stall_a_paced_replay(tmp_path, monkeypatch):
    """Pacing runs on the monotonic clock; the wall clock jumping back an hour (NTP, by hand) changes
    nothing. Both clocks are injected; before the fix the replay paced on the wall clock and released
    nothing for the hour."""
    from engine.ingest import replay
    path = tmp_path / "big.csv"
    pd.DataFrame({"id": np.arange(100_000), "x": np.arange(100_000) * 0.5}).to_csv(path, index=False)
    mono, wall = Clock(), Clock()

    def tick(seconds):
        mono.now += seconds
        wall.now += seconds

    monkeypatch.setattr(replay.time, "monotonic", mono)
    monkeypatch.setattr(replay.time, "time", wall)
    src = replay.ReplaySource(str(path), speed=Speed("rows", 10_000))
    tick(0.125)
    assert src.next_batch().table.num_rows == 1250
    wall.now -= 3600.0                                  # the wall clock is set back an hour
    got = []
    for _ in range(10):
        tick(0.125)
        got.append(src.next_batch().table.num_rows)
    assert got == [1250] * 10                           # paced on as before


def pa_ids(batch):
    return [int(i) for i in batch.table.column("id").to_pylist()]


@pytest.mark.parametrize("size", [2000, 12_000])
def test_resumed_replay_takes_the_new_window(tmp_path, size):
    """Adding a finished replay again with another window shows that window at once, rebuilt from the
    stored rows (it used to keep the old one until a restart), and the cumulative moments stay."""
    n = 20_000
    df = pd.DataFrame({"x": np.random.default_rng(1).normal(size=n).round(3)})
    path = tmp_path / "w.csv"
    df.to_csv(path, index=False)
    with Engine(str(tmp_path / "d")) as e:
        name = e.add_replay(str(path), window=WindowSpec("count", 5000), retention_rows=None)
        e.wait(name)
        assert e.add_replay(str(path), window=WindowSpec("count", size)) == name
        out = e.wait(name).to_json()
    tail = df["x"].tail(size)
    assert out["window"]["size"] == size and out["window"]["count"] == size
    assert out["stats"]["x"]["mean"] == pytest.approx(tail.mean(), rel=1e-12, abs=1e-15)
    assert out["cumulative"]["x"]["count"] == n
    assert out["cumulative"]["x"]["var"] == pytest.approx(df["x"].var(), rel=1e-12)


def test_the_next_block_is_parsed_ahead_in_a_thread_and_a_seek_drops_it(tmp_path):
    """At full speed the source parses the next block in its read-ahead thread while the engine works on
    this one (both cores busy); a seek, a loop's restart or paced batches make that block stale, and
    then it is read again from where the source is, so no row is handed out twice as new or skipped."""
    import threading
    from engine.ingest.replay import ReplaySource
    path = tmp_path / "a.csv"
    pd.DataFrame({"i": np.arange(5000), "x": np.arange(5000) * 0.5}).to_csv(path, index=False)
    src = ReplaySource(str(path), block=4096)
    threads = []
    parse = src.parser.parse

    def spy(data, base, positions=False):
        threads.append(threading.current_thread().name)
        return parse(data, base, positions)
    src.parser.parse = spy
    seen = []
    first = src.next_batch()
    seen += first.table.column("i").to_pylist()
    second = src.next_batch()                   # read ahead while the first was handed out
    seen += second.table.column("i").to_pylist()
    assert threads[0] == threading.current_thread().name
    assert threads[1].startswith("rivulet-read-ahead")
    assert not first.replayed and not second.replayed and seen == list(range(len(seen)))
    src.seek(row=3)                             # the block read ahead after `second` is stale now
    again = src.next_batch()
    assert again.replayed and again.table.column("i").to_pylist()[0] == 3
    rows = again.table.column("i").to_pylist()
    while (b := src.next_batch()) is not None:
        if not b.replayed:
            assert b.table.column("i").to_pylist()[0] == len(seen)
            seen += b.table.column("i").to_pylist()
        rows += b.table.column("i").to_pylist()
    assert seen == list(range(5000)) and rows == list(range(3, 5000))
    src.close()


def test_full_speed_chosen_while_the_writer_is_behind_keeps_the_stream_reading(tmp_path, monkeypatch):
    """A paced replay whose writer is behind (its queue at the paced limit) is switched to full speed,
    which lifts the limit (None) while the ingest thread waits on it: the replay reads on to its end.
    The wait's condition compared the count with None and its TypeError ended the thread silently."""
    from engine.stream import Stream
    path = tmp_path / "paced.csv"
    path.write_text("t,v\n" + "".join(f"{i},{i}\n" for i in range(200_000)))
    commit = Stream.commit

    def slow_disk(self, *works):
        time.sleep(0.3)
        return commit(self, *works)
    monkeypatch.setattr(Stream, "commit", slow_disk)
    with Engine(str(tmp_path / "data")) as e:
        name = e.add_replay(str(path), speed=Speed("rows", 100_000))
        s = e.streams[name]
        assert wait_for(lambda: s.source.max_inflight and s.inflight >= s.source.max_inflight, 30)
        e.set_speed(name, "max")
        assert e.wait(name, timeout=120).counts["ingested"] == 200_000
