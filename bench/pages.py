"""Page render time: one full AppTest run of each page with the demo stream flowing and one trained,
deployed model, beside a bare Streamlit page with one metric (the floor) and the 1 s refresh budget.

    python bench/pages.py [--runs 15]

Prints a table (page, median and 90th-percentile ms per run, share of a 1 s refresh).
A whole-page run is what a session pays when a widget changes; live refreshes rerun
only the page's fragment, so they cost less.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PAGES = ["pages/0_Overview.py", "pages/1_Sources.py", "pages/2_Preprocessing.py", "pages/3_Aggregates.py",
         "pages/4_Correlations.py", "pages/5_Models.py", "pages/6_Export.py"]


def floor_page():
    import streamlit as st
    st.metric("rows", 1)


def timed(at, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        at.run()
        out.append((time.perf_counter() - t0) * 1000)
        assert not at.exception, at.exception
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    os.chdir(ROOT)
    os.environ["RIVULET_DATA_DIR"] = data = os.path.join(tempfile.mkdtemp(prefix="rivulet-bench-"), "data")
    from streamlit.testing.v1 import AppTest

    from engine.models.spec import ModelSpec
    from ui.engine import _shared_engine

    AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=60).run()
    engine = _shared_engine(data, True)
    while engine.snapshot("demo") is None or engine.snapshot("demo").counts["ingested"] < 400:
        time.sleep(0.5)
    spec = ModelSpec("classification", "alarm", ("temperature", "humidity", "pressure", "vibration", "power"),
                     ("site",), "logreg", cv=3)
    job = engine.models.jobs.wait(engine.models.train("demo", spec), timeout=300)
    engine.deploy("demo", job.result)

    rows = [("bare page, one st.metric (floor)", timed(AppTest.from_function(floor_page).run(), args.runs))]
    for page in PAGES:
        at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=60).run()
        at.switch_page(page).run()
        rows.append((page, timed(at, args.runs)))
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{args.runs} runs per page, demo stream at 20 rows/s, one deployed model")
    print(f"| page | median ms | p90 ms | share of a 1 s refresh |\n|---|---:|---:|---:|")
    for name, ms in rows:
        a = np.asarray(ms)
        print(f"| {name} | {np.median(a):,.0f} | {np.percentile(a, 90):,.0f} | {np.median(a) / 1000:.0%} |")
    engine.close()


if __name__ == "__main__":
    main()
