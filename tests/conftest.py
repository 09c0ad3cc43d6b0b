import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two test processes on two cores: one OpenMP/BLAS thread each (children inherit it), or their
    # thread pools fight for the cores and spin (a HistGradientBoosting fit went from seconds to minutes)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")

# Under `-n 2 --dist loadfile` a worker takes a whole file (module fixtures start once; the tests of
# test_cluster_browser build on each other in order) and the browser-driving files go to one worker,
# one after another: two Chromiums and two servers at once on two cores made their waits fail at random.
BROWSER_FILES = {"test_browser.py", "test_browser_first_visit.py", "test_cluster_browser.py", "test_load.py"}
# the longest units (about 100-370 s each under xdist) are handed out first, so that no worker is left
# with one at the end while the other idles
LONGEST = ["browser", "tests/test_models_train.py", "tests/test_crash_many.py", "tests/test_models_safety.py",
           "tests/test_models_raw_export.py"]


def unit(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return "browser" if os.path.basename(path) in BROWSER_FILES else path


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST)}
    items.sort(key=lambda item: rank.get(unit(item.nodeid), len(LONGEST)))     # stable: file order kept inside


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` with the browser files as one unit, units handed out in collection order.
    (xdist's own `loadgroup` does not group on pytest 9.2: it renames `item._nodeid`, which pytest no
    longer reads.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit(nodeid)

    config.option.loadscopereorder = False       # not by test count: LONGEST's order, above
    return FileUnits(config, log)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")


def run_cli(*args, timeout=120, **kw):
    """Run `python -m engine ...` in a fresh process from the project root."""
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(data_dir, demo: bool = True, env: dict | None = None):
    """`streamlit run app.py` on a free port with its own data folder (and `env` added), until the
    block ends: (url, process). Its output goes to streamlit.log beside the data folder."""
    port = free_port()
    log_path = os.path.join(os.path.dirname(os.path.abspath(data_dir)), "streamlit.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "RIVULET_DATA_DIR": str(data_dir),
                                     "RIVULET_DEMO": "1" if demo else "0", **(env or {})})
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                        break
                except OSError:
                    time.sleep(0.2)
            else:
                raise AssertionError("streamlit did not start: " + open(log_path).read()[-2000:])
            yield url, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def data_dir(tmp_path):
    return str(tmp_path / "data")


def wait_for(cond, timeout=10):
    """Poll `cond` until it holds (True) or `timeout` seconds pass (False)."""
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="session")
def cluster_servers(tmp_path_factory):
    """redis-server on a free loopback port and a Dask LocalCluster(2, processes=True) on 127.0.0.1,
    for the whole session; stopped by PID at the end (engine/cluster/local.py)."""
    from engine.cluster.local import LocalServers
    servers = LocalServers(str(tmp_path_factory.mktemp("cluster"))).start()
    yield servers
    servers.stop()


@pytest.fixture
def cluster(cluster_servers, tmp_path):
    """A Cluster on the session's servers with an empty log and its own history folder."""
    import redis

    from engine.cluster.config import Cluster
    redis.Redis.from_url(cluster_servers.redis_url).flushdb()
    return Cluster(cluster_servers.redis_url, cluster_servers.scheduler, str(tmp_path / "history"))


@pytest.fixture
def own_cluster(tmp_path):
    """Servers of its own for a test that kills Dask workers, so a cluster it leaves short of workers
    (a nanny that does not bring one back on a loaded machine) cannot stall the tests after it."""
    from engine.cluster.config import Cluster
    from engine.cluster.local import LocalServers
    servers = LocalServers(str(tmp_path / "servers")).start()
    try:
        yield Cluster(servers.redis_url, servers.scheduler, str(tmp_path / "history"))
    finally:
        servers.stop()


def cluster_env(cluster) -> dict:
    """The environment a `python -m engine ... --cluster redis://...` child needs to join `cluster`."""
    return {**os.environ, "RIVULET_DASK": cluster.scheduler, "RIVULET_HISTORY": cluster.history}


def tail_once(path, data_dir, *options):
    """Follow `path` with the tail command in its own process until it is idle: (snapshot JSON,
    quarantine rows, stored rows). A crash (pyarrow has killed the process on some JSON lines)
    fails the caller's assertion instead of killing pytest."""
    import json

    from engine.store.duck import DuckStore
    out = run_cli("tail", str(path), "--data-dir", str(data_dir), "--idle-exit", "1", "--json", *options)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    store = DuckStore(str(data_dir))
    try:
        sid = store.streams()[0]["id"]
        return json.loads(out.stdout), store.quarantine(sid).to_pylist(), store.rows(sid)
    finally:
        store.close()
