"""Rivulet's dashboard: `streamlit run app.py`. Starts the shared engine and routes to the pages.

Every file in pages/ is a page, in file-name order (0_Overview.py first); a new
page only needs its file. `streamlit run app.py` imports this file once for its server (`app`, below),
then runs it as the script of every session.
"""
from __future__ import annotations

import glob
import os

import streamlit as st

from ui.auth import require_sign_in
from ui.engine import get_engine
from ui.turns import turn

ICONS = {"Overview": ":material/dashboard:", "Sources": ":material/upload_file:",
         "Preprocessing": ":material/tune:", "Aggregates": ":material/monitoring:",
         "Correlations": ":material/grid_on:", "Models": ":material/model_training:",
         "Export": ":material/download:"}

HERE = os.path.dirname(os.path.abspath(__file__))


def title_of(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem.split("_", 1)[1].replace("_", " ") if stem[0].isdigit() and "_" in stem else stem


def pages() -> list:
    found = []
    for path in sorted(glob.glob(os.path.join(HERE, "pages", "*.py"))):
        title = title_of(path)
        found.append(st.Page(os.path.relpath(path, HERE), title=title, icon=ICONS.get(title),
                             url_path=title.replace(" ", "_"), default=title == "Overview"))
    return found


if __name__ == "__main__":      # a session's script run
    st.set_page_config(page_title="Rivulet", page_icon="🌊", layout="wide")
    with turn():             # one of the server's few script runs at a time (ui/turns.py)
        require_sign_in()     # off unless .streamlit/secrets.toml has an [auth] section; then every page needs it
        get_engine(quiet=True)   # start the engine on the first visit, whatever page it opens; the page says why not
        st.navigation(pages()).run()
else:
    # `streamlit run app.py` first imports this file to find the server it describes: Streamlit's own
    # (this file as the script), with uploads streamed to disk instead of held in memory (ui/upload_route.py)
    from starlette.middleware import Middleware

    from ui.upload_route import UploadsToDisk
    app = st.App(__file__, middleware=[Middleware(UploadsToDisk)])
