"""A page's URL opened first after the server starts (a bookmark, a restart) runs through app.py."""
import os

import pytest

from tests.conftest import streamlit_server

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")


def test_a_page_opened_first_has_the_apps_navigation(tmp_path):
    """Streamlit ran pages/5_Models.py alone (its pages/ folder mode) until someone opened /: the sidebar
    listed "app" and the pages without icons, and app.py's turns were skipped, for every session."""
    from playwright.sync_api import sync_playwright
    with streamlit_server(tmp_path / "data", demo=False) as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            for _ in range(2):                       # the first session and the next one
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(url + "/Models")
                page.get_by_role("heading", name="Models").wait_for(timeout=60_000)
                nav = page.locator('[data-testid="stSidebarNav"]')
                nav.get_by_text("Export").wait_for(timeout=30_000)
                labels = [t.strip() for t in nav.locator("a").all_inner_texts()]
                assert "app" not in labels, labels
                assert nav.locator('[data-testid="stIconMaterial"]').count() == 7, labels
                page.close()
        finally:
            browser.close()
