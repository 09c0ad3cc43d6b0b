"""What the command line imports, in fresh processes: `--help` and a small replay load only what they use.
Module presence, never timing (bench/startup.py times it)."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# run `python -m engine ARGS` in this process, then print its OS threads, OPENBLAS_NUM_THREADS and modules
_PROBE = """
import json, os, runpy, sys
sys.argv = ["engine", *sys.argv[1:]]
def leave(code):                 # engine/__main__.py ends with os._exit: come back here instead
    raise SystemExit(code)
os._exit = leave
try:
    runpy.run_module("engine", run_name="__main__")
except SystemExit as e:
    code = e.code
else:
    code = 0
sys.stderr.write("\\nTHREADS " + json.dumps([len(os.listdir("/proc/self/task")), os.environ.get("OPENBLAS_NUM_THREADS")]))
sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + " " + json.dumps(code) + "\\n")
"""

NEVER = ["sklearn", "scipy", "plotly", "streamlit", "skops", "deltalake", "redis", "dask", "distributed"]


def loaded(*args: str, env: dict | None = None) -> tuple[str, set[str]]:
    """The stdout of `python -m engine ARGS` and the modules the process had loaded when it ended."""
    return _probe(*args, env=env)[:2]


def _probe(*args: str, env: dict | None = None) -> tuple[str, set[str], list]:
    out = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    threads = json.loads(out.stderr.rstrip().splitlines()[-2][len("THREADS "):])
    last = out.stderr.rstrip().splitlines()[-1]
    assert last.startswith("MODULES "), out.stderr[-2000:]
    modules, code = last[len("MODULES "):].rsplit(" ", 1)
    assert json.loads(code) == 0, out.stderr[-2000:]
    return out.stdout, set(json.loads(modules)), threads


def tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.mark.parametrize("command", ["replay", "tail", "status", "quarantine"])
def test_help_loads_no_data_library(command):
    stdout, modules = loaded(command, "--help")
    assert "usage:" in stdout
    heavy = tops(modules) & {*NEVER, "pandas", "numpy", "pyarrow", "duckdb", "watchdog"}
    assert not heavy, heavy


def test_small_replay_loads_only_what_it_uses(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("ts,a,b,site\n" + "".join(f"2024-01-01T00:{i // 60:02d}:{i % 60:02d},{i},{i % 7}.5,s{i % 3}\n"
                                              for i in range(1000)))
    stdout, modules = loaded("replay", str(path), "--data-dir", str(tmp_path / "d"), "--json")
    assert json.loads(stdout)["rows"]["ingested"] == 1000
    assert not tops(modules) & set(NEVER), tops(modules) & set(NEVER)
    # the tail's inotify and folder-scan modules, the models and the cluster: not for a replay
    # (engine.models.commands only declares the train/predict arguments)
    assert "watchdog" not in tops(modules)
    unused = {m for m in modules if m.startswith(("engine.ingest.tail", "engine.ingest.watch", "engine.models.",
                                                  "engine.cluster."))} - {"engine.models.commands"}
    assert not unused, unused


def test_status_and_quarantine_load_no_parquet_writer_nor_pandas(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(20)) + "1,2,3\n")     # one bad row
    data = str(tmp_path / "d")
    loaded("replay", str(path), "--data-dir", data)
    for args in (["status"], ["quarantine", "small"]):
        stdout, modules = loaded(*args, "--data-dir", data, "--json")
        assert json.loads(stdout), args
        # read-only opens write no segment files, and nothing here converts Arrow to Python
        assert not {m for m in modules if m.startswith("pyarrow.parquet")}, args
        assert not tops(modules) & {*NEVER, "pandas", "watchdog"}, args


def test_replay_starts_no_blas_threads_and_leaves_the_environment(tmp_path):
    """The Engine runs BLAS on one thread; the command line asks for that before numpy loads, so OpenBLAS
    starts no threads to park: a replay ends with as many OS threads as one told OPENBLAS_NUM_THREADS=1."""
    path = tmp_path / "small.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i % 5}\n" for i in range(1000)))
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    _, modules, (threads, left) = _probe("replay", str(path), "--data-dir", str(tmp_path / "d"), env=env)
    _, _, (threads_one, _) = _probe("replay", str(path), "--data-dir", str(tmp_path / "d1"),
                                    env={**env, "OPENBLAS_NUM_THREADS": "1"})
    assert "numpy" in modules
    assert left is None             # children (Dask workers, training) get the environment as it was
    assert threads == threads_one
