"""The overview page renders with the demo stream flowing (AppTest, no browser)."""
import os
import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("RIVULET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(ROOT)
    yield
    st.cache_resource.clear()          # stops the engine (on_release) so the next test gets its own


def test_overview_shows_the_demo_stream(app):
    at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=30).run()
    assert not at.exception
    for _ in range(40):                               # AppTest does not tick run_every: rerun by hand
        time.sleep(0.25)
        at.run()
        if int(at.metric[1].value.replace(",", "")) > 0:
            break
    assert at.metric[0].value == "1"                  # one stream: the demo
    assert int(at.metric[1].value.replace(",", "")) > 0
    assert at.dataframe[0].value["stream"].tolist() == ["demo"]
