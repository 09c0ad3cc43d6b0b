"""The dashboard with RIVULET_CLUSTER=local in headless Chromium: `streamlit run app.py` starts its own
redis-server and Dask cluster (in a child process), the demo stream and an uploaded replay run as Dask
tasks, the pages read merged snapshots from Redis and history from Delta, a model is trained by clicks
(its folds on Dask), a version applied with a re-run of the history by clicks, no page shows an error, and
stopping the server stops the cluster.
Screenshots go to $RIVULET_ARTIFACTS as cluster-<page>.png."""
import glob
import json
import os
import subprocess

import pytest

from tests.conftest import wait_for
from tests.test_browser import (CHROMIUM, PAGES, assert_no_exception, browser, draft_power_per_degree, page,  # noqa: F401
                                screenshot, streamlit_server, train_plant, upload_plant, wait_metric, wait_text)

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
START = 120          # seconds for the first page: the engine starts redis-server and Dask first


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("cluster-browser") / "data"
    with streamlit_server(data, env={"RIVULET_CLUSTER": "local"}) as (url, proc):
        yield url, data, proc


def test_overview_is_live_from_the_cluster(server, page):
    url, data, _ = server
    page.goto(url + "/")
    first = wait_metric(page, "Rows stored", lambda v: v > 0, timeout=START)
    wait_metric(page, "Rows stored", lambda v: v > first, timeout=30)       # the demo flows on the cluster
    assert os.path.isdir(data / "history" / "demo" / "rows" / "_delta_log")
    assert page.get_by_text("healthy").count() >= 1
    assert_no_exception(page)


def test_an_upload_is_replayed_through_the_cluster(server, page, tmp_path):
    url, data, _ = server
    upload_plant(page, url, tmp_path, slow=4)     # its rows and quarantine come back from Delta
    assert_no_exception(page)
    assert os.path.isdir(data / "history" / "plant_data" / "rows" / "_delta_log")


def test_a_model_is_trained_by_clicks_on_the_delta_history(server, page):
    url, data, _ = server
    shown_f1 = train_plant(page, url, slow=4)
    cards = [json.load(open(p)) for p in glob.glob(str(data / "models" / "*" / "card.json"))]
    card = next(c for c in cards if c["training"]["stream"] == "plant_data")
    assert card["training"]["rows"] == 400                       # every stored row, read from Delta
    assert card["metrics"]["cv"]["scheduler"].startswith("tcp://127.0.0.1:")     # the folds ran on Dask
    assert f"{card['metrics']['holdout']['f1']:.3f}" == f"{shown_f1:.3f}"
    screenshot(page, "cluster-Models-trained")


def test_every_page_renders_without_an_error(server, page):
    url, _, _ = server
    for name in PAGES:
        page.goto(url + ("/" if name == "Overview" else f"/{name}"))
        page.locator('[data-testid="stMainBlockContainer"] h1').first.wait_for(timeout=START * 1000)
        if name == "Aggregates":
            wait_text(page, "Bucket means", 60_000)           # merged buckets and the history's rows
        if name == "Correlations":
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        page.wait_for_timeout(2000)                              # two live refreshes (1 s apart)
        assert_no_exception(page)
        screenshot(page, f"cluster-{name}")


def test_sources_offers_partitions_seek_and_loop_on_the_cluster(server, page):
    url, _, _ = server
    page.goto(url + "/Sources")
    wait_text(page, "Partition key", START * 1000)                  # a replay can be spread by a column
    wait_text(page, "Loop at the end", START * 1000)                 # seek and loop run on the cluster too
    assert_no_exception(page)


def test_a_version_applied_by_clicks_re_runs_the_history_on_the_cluster(server, page):
    url, _, _ = server
    draft_power_per_degree(page, url, START * 1000)
    assert page.get_by_text("Re-run stored history", exact=True).count() == 1     # offered on the cluster too
    page.get_by_role("button", name="Apply").click()
    wait_text(page, "History re-run with version 1", 120_000)      # the demo's partitions swapped their state
    assert_no_exception(page)
    screenshot(page, "cluster-Preprocessing-backfilled")


def test_stopping_the_dashboard_stops_its_cluster(server):
    _, data, proc = server
    folder = str(data / "cluster")
    assert subprocess.run(["pgrep", "-f", folder], capture_output=True, text=True).stdout.split()
    proc.terminate()
    proc.wait(timeout=60)
    assert wait_for(lambda: not subprocess.run(["pgrep", "-f", folder], capture_output=True,
                                               text=True).stdout.split(), 60), "servers left running"
