"""A process that exits while a partition loop runs (a Dask worker whose cluster closes under a running
stream) stops the loop first, so no thread is inside delta-rs while the interpreter finalises (that can
crash the process: a segfault in deltalake's library)."""
import subprocess
import sys

from tests.conftest import ROOT
from tests.test_cluster_replay import make_csv

SCRIPT = """
import logging, sys, threading, time
logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
from engine.cluster.delta_store import committed
from engine.cluster.replay import stream_config
from engine.cluster.worker import run_partition
from engine.stats.operators import WindowSpec
from engine.cluster.config import Cluster
from tests.test_cluster_exactly_once import produce
cluster = Cluster({log!r}, "", {history!r})
producer, source = produce(cluster, {path!r}, "exits")
config = stream_config("exits", {path!r}, source, WindowSpec(), None, 1)
# a tail's partition (it never ends by itself), in a daemon thread as in Dask's executor
threading.Thread(target=run_partition, args=(cluster.to_json(), "exits", 0, config, False), daemon=True).start()
deadline = time.time() + 120
while (committed(cluster.history, "exits", 1)[0] or {{}}).get("seq") != producer.seq and time.time() < deadline:
    time.sleep(0.05)
print("committed", flush=True)
"""


def test_a_partition_loop_stops_before_its_process_exits(cluster, tmp_path):
    path = make_csv(tmp_path / "exits.csv", n=5_000)
    code = SCRIPT.format(log=cluster.log, history=cluster.history, path=path)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert "committed" in r.stdout
    assert "stopped: its process exits" in r.stderr, r.stderr[-2000:]
