import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")


def run_cli(*args, timeout=120, **kw):
    """Run `python -m engine ...` in a fresh process from the project root."""
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, **kw)


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
