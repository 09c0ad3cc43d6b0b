"""Page render time: each dashboard page run under AppTest with the demo stream flowing (p50/p95).

    python bench/pages.py [--runs 30]

Every page is opened through app.py (navigation, shared engine) and then rerun
--runs times; each rerun is a full script run, as when a viewer changes a widget.
Beside them, Streamlit's own floor on the same machine: a page that draws one
metric and one small plotly chart, and one that draws a pandas DataFrame of
the demo stream's window.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, machine, print_table  # noqa: E402

PAGES = ["pages/0_Overview.py", "pages/1_Sources.py", "pages/2_Preprocessing.py", "pages/3_Aggregates.py",
         "pages/4_Correlations.py", "pages/5_Models.py", "pages/6_Export.py"]

FLOOR = """
import plotly.express as px
import streamlit as st
st.metric("rows", 123)
st.plotly_chart(px.line(x=list(range(100)), y=list(range(100))))
"""

PANDAS = """
import numpy as np
import pandas as pd
import streamlit as st
df = pd.DataFrame(np.random.default_rng(0).normal(size=(1000, 6)), columns=list("abcdef"))
st.dataframe(df.describe())
st.dataframe(df.corr())
"""


def timed_runs(at, runs: int) -> np.ndarray:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t)
        if at.exception:
            raise SystemExit(f"the page raised: {at.exception[0].value}")
    return np.array(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="rivulet-pages-")
    atexit.register(shutil.rmtree, data, True)          # the demo stream's store, segments and uploads
    os.environ["RIVULET_DATA_DIR"] = data
    os.environ["RIVULET_DEMO"] = "1"
    os.chdir(ROOT)
    sys.path.insert(0, ROOT)
    from streamlit.testing.v1 import AppTest

    rows = []
    at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=60).run()
    time.sleep(3)                                     # the demo stream fills its first buckets
    for page in PAGES:
        at.switch_page(page).run()
        at.run()                                      # warm: imports, caches
        ms = timed_runs(at, args.runs)
        rows.append([f"Rivulet {os.path.basename(page)[2:-3]}", f"{np.percentile(ms, 50):.0f}",
                     f"{np.percentile(ms, 95):.0f}", f"{ms.max():.0f}"])
    for case, script in (("Streamlit floor: one metric + one plotly chart", FLOOR),
                         ("pandas describe + corr of 1,000 x 6 as two st.dataframe", PANDAS)):
        ref = AppTest.from_string(script, default_timeout=60).run()
        ms = timed_runs(ref, args.runs)
        rows.append([case, f"{np.percentile(ms, 50):.0f}", f"{np.percentile(ms, 95):.0f}", f"{ms.max():.0f}"])
    import streamlit as st
    st.cache_resource.clear()                         # closes the engine
    print(f"\n# AppTest render time, {args.runs} reruns a page, demo stream flowing; {machine()}\n")
    print_table(["page", "p50 ms", "p95 ms", "max ms"], rows)


if __name__ == "__main__":
    main()
