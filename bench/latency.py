"""Write-to-visible latency: how long after a row is due it first shows in a published snapshot.

    python bench/latency.py [--rates 100000,200000,400000] [--seconds 20]

A real-time replay (speed 1) of a file whose `ts` column is spaced 1/rate apart
releases `rate` rows a second, each at a known moment: the replay's anchor says
where event time meets wall time, so row t is due at wall + (t - event). A
poller records every snapshot the engine publishes (its `created` time and
`newest_event`); the rows between two consecutive snapshots' newest events
became visible at the second one. Rows whose snapshot the poller missed are not
counted (coverage column). Window: the last 100,000 rows, store on.

Beside it, what a dashboard without an engine does: poll every second, take the
rows due since the last poll (already in memory: pandas' best case) and
recompute the window's mean, var and corr with pandas.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, machine, make_file, print_table  # noqa: E402

sys.path.insert(0, ROOT)
START = 1_700_000_000.0       # event time of the first row (epoch seconds)
WINDOW = 100_000


def event_times(n: int, rate: float) -> np.ndarray:
    return np.round(START + np.arange(n) / rate, 6)        # as make_file writes them


def rivulet(path: str, data_dir: str, n: int, rate: float) -> dict:
    from engine.stats.operators import WindowSpec
    from engine.runtime import Engine
    from engine.ingest.replay import Speed
    t = event_times(n, rate)
    seen = []                   # (seq, created, newest_event, anchor) of each snapshot observed
    with Engine(data_dir) as engine:
        name = engine.add_replay(path, speed=Speed("realtime", 1.0), time_column="ts",
                                 window=WindowSpec("count", WINDOW))
        deadline = time.time() + n / rate + 120
        last = None
        while time.time() < deadline:
            snap = engine.snapshot(name)
            if snap is not None and snap.seq != last:
                last = snap.seq
                seen.append((snap.seq, snap.created, snap.newest_event, snap.source.get("anchor")))
                if snap.counts["ingested"] >= n:
                    break
            time.sleep(0.0005)
    latencies, first_due, last_seen = [], None, None
    for (seq0, _, newest0, _), (seq1, created, newest1, anchor) in zip(seen, seen[1:]):
        if seq1 != seq0 + 1 or anchor is None or newest0 is None or newest1 is None:
            continue            # a snapshot between them was missed: these rows cannot be attributed
        lo, hi = np.searchsorted(t, newest0, "right"), np.searchsorted(t, newest1, "right")
        due = anchor["wall"] + (t[lo:hi] - anchor["event"]) / anchor["speed"]
        latencies.append(created - due)
        first_due = due[0] if first_due is None and hi > lo else first_due
        last_seen = created
    lat = np.concatenate(latencies) if latencies else np.zeros(0)
    span = (last_seen - first_due) if first_due is not None else float("nan")
    return {"lat": lat, "coverage": len(lat) / n, "snapshots": len(seen), "rate": len(lat) / span if span else 0}


def pandas_polling(path: str, n: int, rate: float, poll: float = 1.0) -> dict:
    import pandas as pd
    df = pd.read_csv(path)
    cols = [f"x{i}" for i in range(10)]
    values = df[cols]
    latencies = []
    t0 = time.time()
    done = 0
    while done < n:
        time.sleep(max(0.0, t0 + (len(latencies) + 1) * poll - time.time()))
        due_now = min(n, int((time.time() - t0) * rate))
        window = values.iloc[max(0, due_now - WINDOW):due_now]
        window.mean(), window.var(), window.corr()
        visible = time.time()
        due = t0 + np.arange(done, due_now) / rate
        latencies.append(visible - due)
        done = due_now
    lat = np.concatenate(latencies)
    return {"lat": lat, "coverage": len(lat) / n, "snapshots": len(latencies), "rate": n / (time.time() - t0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="100000,200000,400000", help="rows/s to try, comma-separated")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each run")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="rivulet-latency-")
    rows = []
    try:
        for rate in [float(r) for r in args.rates.split(",")]:
            n = int(rate * args.seconds)
            path = os.path.join(tmp, f"rate-{int(rate)}.csv")
            make_file(path, n, start=START, rate=rate)
            for case, run in ((f"Rivulet, real-time replay at {rate:,.0f} rows/s",
                               lambda: rivulet(path, os.path.join(tmp, f"data-{int(rate)}"), n, rate)),
                              (f"pandas, poll every 1 s, window recomputed, at {rate:,.0f} rows/s",
                               lambda: pandas_polling(path, n, rate))):
                r = run()
                lat = r["lat"] * 1000
                rows.append([case, f"{np.percentile(lat, 50):,.1f}" if len(lat) else "-",
                             f"{np.percentile(lat, 99):,.1f}" if len(lat) else "-",
                             f"{lat.max():,.0f}" if len(lat) else "-", f"{r['rate']:,.0f}",
                             f"{r['coverage']:.0%}", r["snapshots"]])
            os.remove(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n# due -> visible in a snapshot, window {WINDOW:,} rows, {args.seconds:.0f} s per run; {machine()}\n")
    print_table(["case", "p50 ms", "p99 ms", "max ms", "rows/s seen", "rows measured", "snapshots"], rows)


if __name__ == "__main__":
    main()
