"""Work the sessions share (ui/shared.py): viewers of the same stream, page and view settings cost one
build of the page's figures and numbers; other settings get their own."""
import os
import threading
import time

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from engine.ingest.replay import Speed
from engine.runtime import Engine
from tests.conftest import ROOT, wait_for
from ui.shared import SHARED, Shared

AGGREGATES, CORRELATIONS = "pages/3_Aggregates.py", "pages/4_Correlations.py"


@pytest.fixture
def ended_stream(tmp_path, monkeypatch):
    """A dashboard (no demo stream) over one replay that has ended, so its snapshot no longer
    changes; sharing by time is off, so only the same snapshot can share a build."""
    rng = np.random.default_rng(7)
    n = 3000
    frame = pd.DataFrame({"ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="s"),
                          "site": rng.choice(["north", "south"], n), "x": rng.normal(size=n),
                          "y": rng.normal(size=n)})
    path = tmp_path / "ended.csv"
    frame.to_csv(path, index=False)
    data = tmp_path / "data"
    with Engine(str(data)) as engine:
        engine.add_replay(str(path), name="ended", speed=Speed("max"))
        assert wait_for(lambda: (s := engine.snapshot("ended")) is not None and s.state == "ended", 60)
    monkeypatch.setenv("RIVULET_DATA_DIR", str(data))
    monkeypatch.setenv("RIVULET_DEMO", "0")
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(SHARED, "fresh", 0.0)
    SHARED.clear()
    yield frame
    st.cache_resource.clear()
    SHARED.clear()


def session(page: str) -> AppTest:
    at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=30).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def settled(at: AppTest) -> AppTest:
    """Rerun until the page shows the restored stream's window after the stream ended (from its last
    snapshot)."""
    for _ in range(120):
        ended = restored_ended()
        at.run()
        assert not at.exception, at.exception
        if ended and any("rows in the window" in c.value for c in at.caption):
            return at
        time.sleep(0.25)
    raise AssertionError("the restored stream did not end; page shows: " + " | ".join(c.value for c in at.caption))


def restored_ended() -> bool:
    from ui.engine import _shared_engine
    snap = _shared_engine(os.environ["RIVULET_DATA_DIR"], False).snapshot("ended")     # the app's engine
    return snap is not None and snap.state == "ended"


def test_two_sessions_on_the_same_view_cost_one_build(ended_stream):
    one = settled(session(AGGREGATES))
    one.run()                                   # its build is from the last snapshot
    built = SHARED.builds["aggregates"]
    two = session(AGGREGATES)
    two.run()
    assert not two.exception, two.exception
    assert SHARED.builds["aggregates"] == built     # the second viewer drew the first one's build
    assert [(m.label, m.value) for m in two.metric] == [(m.label, m.value) for m in one.metric]
    # what it drew is the window's statistics: the newest 1,000 rows (the page's default), by pandas
    want = ended_stream.tail(1000)
    assert float(next(m.value for m in two.metric if m.label == "x · mean")) == \
        pytest.approx(want["x"].mean(), abs=5e-4 * max(1.0, abs(want["x"].mean())))

    # other view settings are built for the session that picked them, and stay its own
    two.multiselect(key="agg_columns").set_value(["y"]).run()
    assert SHARED.builds["aggregates"] == built + 1
    assert [m.label for m in two.metric] == ["y · mean"]
    one.run()
    assert SHARED.builds["aggregates"] == built + 1
    assert [m.label for m in one.metric] == ["x · mean", "y · mean"]


def test_correlations_share_too(ended_stream):
    one = settled(session(CORRELATIONS))
    one.run()
    built = SHARED.builds["correlations"]
    two = session(CORRELATIONS)
    two.run()
    assert SHARED.builds["correlations"] == built
    assert two.dataframe[0].value.equals(one.dataframe[0].value)       # the strongest pairs


def test_a_build_serves_askers_at_once_and_while_fresh():
    shared = Shared(fresh=60.0, size=2)
    calls, gate = [], threading.Event()

    def build():
        calls.append(1)
        gate.wait(10)
        return object()

    got = []
    askers = [threading.Thread(target=lambda: got.append(shared.get("k", 1, build))) for _ in range(8)]
    for t in askers:
        t.start()
    assert wait_for(lambda: len(calls) == 1)
    gate.set()
    for t in askers:
        t.join(10)
    assert len(calls) == 1 and len(got) == 8 and all(g is got[0] for g in got)
    assert shared.get("k", 2, build) is got[0]             # a newer snapshot, but the build is fresh
    shared.fresh = 0.0
    assert shared.get("k", 1, build) is got[0]             # built from this very snapshot
    assert shared.get("k", 2, build) is not got[0] and len(calls) == 2
    shared.get("a", 1, build), shared.get("b", 1, build)   # two more keys: the oldest is dropped
    assert shared.get("k", 2, build) is not None and len(calls) == 5


def test_a_failed_build_is_not_kept():
    shared = Shared(fresh=60.0)
    with pytest.raises(ValueError):
        shared.get("k", 1, lambda: (_ for _ in ()).throw(ValueError("no rows")))
    assert shared.get("k", 1, lambda: "built") == "built"


def test_forget_drops_a_removed_streams_builds():
    shared = Shared(fresh=60.0)
    shared.get(("aggregates", "s1", 1), 1, lambda: "s1 built")
    shared.get(("aggregates", "s2", 1), 1, lambda: "s2 built")
    shared.forget("s1")
    assert shared.get(("aggregates", "s1", 1), 1, lambda: "again") == "again"
    assert shared.get(("aggregates", "s2", 1), 1, lambda: "again") == "s2 built"
