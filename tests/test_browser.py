"""End to end in headless Chromium against `streamlit run app.py`: live values change without a
click, an upload is replayed and its quarantine shown, every page renders without an exception.
Screenshots of each page go to $RIVULET_ARTIFACTS (default: artifacts/screenshots)."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
PAGES = ["Overview", "Sources", "Aggregates", "Correlations"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("browser") / "data"
    port = free_port()
    log = open(data.parent / "streamlit.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "RIVULET_DATA_DIR": str(data), "RIVULET_DEMO": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("streamlit did not start: " + open(log.name).read()[-2000:])
        yield url, data
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    yield context.new_page()
    context.close()


def metric_value(page, label: str) -> float:
    box = page.locator('[data-testid="stMetric"]', has=page.get_by_text(label, exact=True))
    return float(box.locator('[data-testid="stMetricValue"]').first.inner_text().replace(",", ""))


def wait_metric(page, label: str, cond, timeout: float = 20.0) -> float:
    end = time.time() + timeout
    while True:
        try:
            value = metric_value(page, label)
            if cond(value):
                return value
        except (ValueError, Exception) as e:         # not drawn yet
            value = e
        if time.time() > end:
            raise AssertionError(f"{label}: last value {value!r}")
        time.sleep(0.25)


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert "Traceback" not in text and not re.search(r"\b\w+Error:", text), text[:2000]


def test_overview_counts_grow_without_reload(server, page):
    url, _ = server
    page.goto(url + "/")
    first = wait_metric(page, "Rows stored", lambda v: v > 0)
    wait_metric(page, "Rows stored", lambda v: v > first)        # the fragment refreshed by itself
    assert page.url.rstrip("/") == url                          # no navigation happened
    assert_no_exception(page)


def test_upload_is_replayed_and_quarantine_listed(server, page, tmp_path):
    url, data = server
    rows = ["ts,kind,x"] + [f"2024-01-01 00:00:{i % 60:02d},{'ab'[i % 2]},{i * 0.5}" for i in range(400)]
    rows[50:50] = ["2024-01-01 00:00:00,a,1,EXTRA", "2024-01-01 00:00:00,b,2,EXTRA"]
    path = tmp_path / "plant data.csv"
    path.write_text("\n".join(rows) + "\n")
    page.goto(url + "/Sources")
    page.locator('input[type="file"]').set_input_files(str(path))
    page.get_by_text("plant data.csv: ").first.wait_for()       # the header was read: columns listed
    page.get_by_role("button", name="Start replay").click()
    page.get_by_text("Replaying plant data.csv").wait_for(timeout=20_000)
    assert wait_metric(page, "Rows", lambda v: v == 400) == 400
    assert wait_metric(page, "Quarantined", lambda v: v == 2) == 2
    page.get_by_text("Newest 2 rows set aside").wait_for(timeout=10_000)
    assert page.get_by_role("button", name="Download as CSV").count() == 1
    assert os.listdir(data / "uploads") == ["plant_data.csv"]
    assert_no_exception(page)


def test_every_page_renders_and_is_saved(server, page):
    url, _ = server
    out = os.environ.get("RIVULET_ARTIFACTS", os.path.join(ROOT, "artifacts", "screenshots"))
    os.makedirs(out, exist_ok=True)
    for name in PAGES:
        page.goto(url + ("/" if name == "Overview" else f"/{name}"))
        page.locator('[data-testid="stMainBlockContainer"] h1').first.wait_for()
        page.wait_for_timeout(2500)                              # a few live refreshes
        assert_no_exception(page)
        height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
        page.set_viewport_size({"width": 1440, "height": max(900, height)})
        page.wait_for_timeout(300)
        page.screenshot(path=os.path.join(out, f"{name}.png"))
        page.set_viewport_size({"width": 1440, "height": 900})
