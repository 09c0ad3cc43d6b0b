"""Many users at once against `streamlit run app.py`: concurrent uploads keep the server's memory
bounded and every "Start replay" takes effect; many sessions refreshing keep getting their runs.
Generous timeouts only: nothing here asserts how fast."""
import os
import threading

import pytest

from tests.conftest import streamlit_server
from tests.st_sessions import run_sessions

CHROMIUM = "/usr/bin/chromium"
UPLOADS = 6
FILE_MB = 60


def status_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(field + ":"))


def reset_peak(pid: int) -> None:
    """Set the process's peak RSS (VmHWM) back to its current RSS (proc(5): clear_refs, 5)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def big_csv(path, mb: int) -> None:
    row = b"2024-01-01 00:00:00,12.345,67.890,north,0.5\n"
    with open(path, "wb") as f:
        f.write(b"ts,x,y,site,z\n")
        f.write(row * (mb * 1024 * 1024 // len(row)))


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_concurrent_uploads_peak_memory_is_bounded_and_all_start(tmp_path):
    """Six browser sessions upload a 60 MB CSV each at the same moment, then press Start replay.
    Streamlit's upload route read each body whole into memory, so the server's peak RSS grew by
    their combined size (360 MB, more while pages copied them); now the bodies stream to disk as
    they arrive (ui/upload_route.py)."""
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
        reset_peak(proc.pid)
        before = status_mb(proc.pid, "VmRSS")
        for page, path in zip(tabs, paths):                           # the uploads run side by side
            page.locator('input[type="file"]').set_input_files(str(path))
        for page, path in zip(tabs, paths):
            page.get_by_text(f"{path.name} is ready").wait_for(timeout=120_000)
        peak = status_mb(proc.pid, "VmHWM") - before
        print(f"peak RSS growth {peak:.0f} MB over {before:.0f} MB")
        for page in tabs:
            page.get_by_role("button", name="Start replay").click()
        for page, path in zip(tabs, paths):
            page.get_by_text(f"Replaying {path.name}").wait_for(timeout=60_000)
        names = sorted(os.listdir(tmp_path / "data" / "uploads"))
        received = os.listdir(tmp_path / "data" / ".received")     # each received file went once copied
        browser.close()
    assert names == sorted(p.name for p in paths)
    assert all(os.path.getsize(tmp_path / "data" / "uploads" / n) == first.stat().st_size for n in names)
    assert received == []
    # held in memory, the uploads alone are 6 x 60 = 360 MB (the peak grew 687 MB before). What remains
    # does not grow with the files' size (the same with 6 x 5 MB): six sessions' page runs and threads,
    # 87-140 MB as they happen to overlap, so the bound is half of what holding the bodies would take
    assert peak < UPLOADS * FILE_MB / 2, \
        f"server peak RSS grew {peak:.0f} MB with {UPLOADS} uploads of {FILE_MB} MB at once"


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
