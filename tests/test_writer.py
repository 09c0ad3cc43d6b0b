"""A writer that falls behind commits the batches queued meanwhile in one transaction (issue 15).

Checked through the Engine on a real DuckDB store: the first commit is held until the queue is
full, so the batches behind it must be committed together; then every row is stored once, in
order, and the window, cumulative and late counts equal pandas over the file.
"""
import threading

import numpy as np
import pandas as pd

from engine.runtime import Engine
from engine.stats.operators import WindowSpec
from engine.store.duck import DuckStore
from tests.reference import check_matrix, check_stats


class HeldStore(DuckStore):
    """The embedded store, whose first commit waits until the engine's queue is full."""

    def __init__(self, data_dir):
        super().__init__(data_dir)
        self.engine = None
        self.commits: list[int] = []       # rows stored by each commit
        self.first = threading.Event()

    def commit(self, stream_id, rows, bad, source, offsets, state, extra=None):
        if not self.first.is_set():
            self.first.set()
            deadline = 200
            while not self.engine.queue.full() and deadline:
                threading.Event().wait(0.05)
                deadline -= 1
        super().commit(stream_id, rows, bad, source, offsets, state, extra)
        self.commits.append(0 if rows is None else rows.num_rows)


def test_a_writer_behind_commits_queued_batches_in_one_transaction(tmp_path):
    n = 20_000
    rng = np.random.default_rng(15)
    t = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) + rng.integers(-30, 1, n), unit="s")
    t = t.where((np.arange(n) < 10_000) | (np.arange(n) >= 10_100), pd.Timestamp("2023-12-31"))   # 100 late rows
    df = pd.DataFrame({"ts": t, "id": np.arange(n), "x": rng.normal(size=n).round(3) * 1e3,
                       "y": rng.normal(size=n).round(3)})
    path = tmp_path / "f.csv"
    df.to_csv(path, index=False)
    store = HeldStore(str(tmp_path / "d"))
    with Engine(store=store) as e:
        store.engine = e
        name = e.add_replay(str(path), window=WindowSpec("time", 600), paused=True)
        e.streams[name].source.block = 16 << 10        # many small batches
        e.resume(name)
        snap = e.wait(name, timeout=120)
        ids = store.rows(e.streams[name].id).column("id").to_numpy()
    assert len(store.commits) < 30, store.commits       # ~50 batches of ~400 rows, several a commit
    assert max(store.commits) > 1_000
    assert (ids == np.arange(n)).all()                              # each row once, in order
    assert snap.counts["ingested"] == n and sum(store.commits) == n
    out = snap.to_json()
    check_stats(out["cumulative"], df[["id", "x", "y"]])
    window = df[df.ts > df.ts.max() - pd.Timedelta(seconds=600)][["id", "x", "y"]]

    check_stats(out["stats"], window)
    check_matrix(out["cov"], window.cov(), what="cov")
    assert snap.counts["late"] == 100         # older than the window when they came; no others
