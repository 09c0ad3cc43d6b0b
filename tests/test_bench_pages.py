"""bench/pages.py cleans up after itself: its data folder (the demo stream's store) is gone once it exits."""
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_pages_removes_its_data_folder_at_exit(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}       # tempfile.mkdtemp makes its folder here
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "pages.py"), "--runs", "1"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "p50 ms" in r.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("rivulet-pages-")] == []
