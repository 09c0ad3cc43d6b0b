"""Many users at once against `streamlit run app.py`: concurrent uploads keep the server's memory
bounded and every "Start replay" takes effect; many sessions refreshing keep getting their runs.
Generous timeouts only: nothing here asserts how fast."""
import os
import threading

import pytest

from tests.conftest import streamlit_server, wait_for
from tests.st_sessions import run_sessions

CHROMIUM = "/usr/bin/chromium"
UPLOADS = 5
FILE_MB = 40         # above glibc's largest mmap threshold (32 MB): a freed upload leaves RSS at once


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def big_csv(path, mb: int) -> None:
    row = b"2024-01-01 00:00:00,12.345,67.890,north,0.5\n"
    with open(path, "wb") as f:
        f.write(b"ts,x,y,site,z\n")
        f.write(row * (mb * 1024 * 1024 // len(row)))


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_concurrent_uploads_hold_no_memory_and_all_start(tmp_path):
    """Five browser sessions upload a 40 MB CSV each at once, then press Start replay. Streamlit
    kept each upload's bytes for the session's life (5 x 40 MB held for good, the clicks racing
    their copies to disk); now each is copied as it arrives and its bytes dropped."""
    from playwright.sync_api import sync_playwright
    first = tmp_path / "upload-0.csv"
    big_csv(first, FILE_MB)
    paths = [first] + [tmp_path / f"upload-{i}.csv" for i in range(1, UPLOADS)]
    for p in paths[1:]:
        os.link(first, p)
    with streamlit_server(tmp_path / "data", demo=False) as (url, proc), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        tabs = []
        for _ in paths:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(url + "/Sources")
            page.get_by_text("Rows per second").first.click()      # paced: the replays add little memory
            tabs.append(page)
        before = rss_mb(proc.pid)
        for page, path in zip(tabs, paths):                           # the uploads run side by side
            page.locator('input[type="file"]').set_input_files(str(path))
        for page, path in zip(tabs, paths):
            page.get_by_text(f"{path.name} is ready").wait_for(timeout=300_000)
        # a copy's end drops the bytes; the page's next full run, which follows, drops the widget's read of them
        wait_for(lambda: rss_mb(proc.pid) - before < 3 * FILE_MB, timeout=60)
        saved = rss_mb(proc.pid) - before
        for page in tabs:
            page.get_by_role("button", name="Start replay").click()
        for page, path in zip(tabs, paths):
            page.get_by_text(f"Replaying {path.name}").wait_for(timeout=120_000)
        names = sorted(os.listdir(tmp_path / "data" / "uploads"))
        assert names == sorted(p.name for p in paths)
        assert all(os.path.getsize(tmp_path / "data" / "uploads" / n) == first.stat().st_size for n in names)
        started = rss_mb(proc.pid) - before
        browser.close()
    # held, the uploads alone are 5 x 40 = 200 MB (each page run deep-copied them again)
    assert saved < 3 * FILE_MB, f"server RSS grew {saved:.0f} MB with {UPLOADS} uploads of {FILE_MB} MB saved"
    # the five replays running add their own read buffers
    assert started < UPLOADS * FILE_MB, f"server RSS grew {started:.0f} MB once {UPLOADS} replays started"


def test_many_sessions_keep_getting_their_runs(tmp_path):
    """Sixteen sessions open pages and refresh their live parts every second (as browser tabs do)
    while another asks for pages now and then: every visit asked for is answered."""
    with streamlit_server(tmp_path / "data") as (url, _):
        port = int(url.rsplit(":", 1)[1])
        run_sessions(port, 1, 20, dwell=20)          # the first visit starts the engine
        crowd = {}
        background = threading.Thread(target=lambda: crowd.update(counts=run_sessions(port, 16, 40, dwell=4)))
        background.start()
        visitor = run_sessions(port, 1, 30, dwell=3, stagger=0)[0]
        background.join()
    counts = crowd["counts"] + [visitor]
    assert not any(c.errors for c in counts), [c.errors for c in counts if c.errors][:3]
    assert not any(c.exceptions for c in counts), [c.exceptions for c in counts if c.exceptions][:3]
    assert all(len(c.visits) >= 3 for c in counts), [len(c.visits) for c in counts]
    assert all(c.fragment_runs > 0 for c in counts), [c.fragment_runs for c in counts]
    assert len(visitor.visits) >= 5, visitor.visits
