"""The data folder going wrong: read-only, a damaged database file, a full disk, held by a running engine.

Each is one line on stderr and exit 2, never a traceback (nor nanobind's leak report at exit). A
read-only folder and a full disk are real: a small tmpfs mounted in a private mount namespace
(`unshare`), so nothing is mocked and the machine's own mounts are untouched.
"""
import os
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli
from tests.test_tail import DEADLINE, wait_engine_running

PY = shlex.quote(sys.executable)


def one_line(out):
    err = out.stderr.strip()
    assert out.returncode == 2, out.stderr
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def small_csv(path, rows=3):
    path.write_text("a,b\n" + "".join(f"{i},{i * 0.5}\n" for i in range(rows)))
    return str(path)


def in_tmpfs(script: str, size: str = "20M") -> subprocess.CompletedProcess:
    """Run a shell script with a fresh tmpfs of `size` at $T, in a private mount namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) for a private tmpfs")
    cmd = (f'T=$(mktemp -d) && mount -t tmpfs -o size={size} tmpfs "$T" && cd {shlex.quote(ROOT)} && '
           f'export PY={PY} && {script}')
    out = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", cmd],
                         capture_output=True, text=True, timeout=DEADLINE)
    if "mount:" in out.stderr or "unshare:" in out.stderr:
        pytest.skip(f"cannot mount a private tmpfs here: {out.stderr.strip()}")
    return out


def test_a_read_only_data_folder_is_one_line_and_status_still_reads_it(tmp_path):
    csv = small_csv(tmp_path / "x.csv")
    script = (f'$PY -m engine replay {csv} --data-dir "$T/d" >/dev/null && mount -o remount,ro "$T" && '
              f'$PY -m engine replay {csv} --data-dir "$T/d"; echo "rc=$?" >&2; '
              f'$PY -m engine replay {csv} --data-dir "$T/new"; echo "rc=$?" >&2; '
              f'$PY -m engine status --data-dir "$T/d" --json')
    out = in_tmpfs(script)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 4, out.stderr
    assert lines[0].startswith("error: cannot write to the data folder ") and "Read-only file system" in lines[0]
    assert lines[1] == "rc=2"
    assert lines[2].startswith("error: cannot create the data folder ") and lines[3] == "rc=2"
    assert '"ingested":3' in out.stdout.replace(" ", "")       # status opens the store read-only


def test_a_full_disk_is_one_line_saying_so(tmp_path):
    import numpy as np
    import pandas as pd
    big = tmp_path / "big.csv"      # random doubles: about 6 MB stored, twice the disk
    pd.DataFrame(np.random.default_rng(1).random((200_000, 4)), columns=list("abcd")).to_csv(big, index=False)
    out = in_tmpfs(f'$PY -m engine replay {big} --data-dir "$T/d"', size="3M")
    err = one_line(out)
    assert "no space left on the device" in err and "TransactionContext" not in err, err


@pytest.mark.parametrize("size", [300_000, 20_000, 1_000])
def test_a_truncated_database_file_is_one_line(tmp_path, size):
    data = tmp_path / "d"
    assert run_cli("replay", small_csv(tmp_path / "x.csv", 20_000), "--data-dir", str(data)).returncode == 0
    db = data / "rivulet.duckdb"
    assert db.stat().st_size > size
    os.truncate(db, size)
    for command in (["status"], ["quarantine", "x"], ["replay", str(tmp_path / "x.csv")]):
        err = one_line(run_cli(*command, "--data-dir", str(data)))
        assert "damaged" in err and "nanobind" not in err, err


def test_status_and_quarantine_name_the_engine_holding_the_folder(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    small_csv(logs / "app.csv")
    data = str(tmp_path / "data")
    tail = subprocess.Popen([sys.executable, "-m", "engine", "tail", str(logs / "app.csv"), "--data-dir", data,
                             "--idle-exit", "120", "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_engine_running(tail, data)
        for command in (["status"], ["quarantine", "app"]):
            err = one_line(run_cli(*command, "--data-dir", data))
            assert f"held by a running Rivulet engine (pid {tail.pid}: " in err and "engine tail" in err, err
            assert "stop that engine" in err
    finally:
        tail.send_signal(signal.SIGTERM)
        assert tail.wait(timeout=DEADLINE) == 0, tail.stderr.read()
    out = run_cli("status", "--data-dir", data, "--json")
    assert out.returncode == 0 and '"ingested":3' in out.stdout.replace(" ", ""), out.stderr


def test_status_of_a_folder_without_a_store_creates_nothing(tmp_path):
    err = one_line(run_cli("status", "--data-dir", str(tmp_path / "none")))
    assert "there is no Rivulet store" in err and not (tmp_path / "none").exists()


def test_the_dashboard_on_a_read_only_folder_shows_one_message(tmp_path):
    """Before, the page drew OSError's stack; now one message (and once, not once per get_engine)."""
    script = tmp_path / "page.py"
    script.write_text("import os, sys\n"
                      "os.environ['RIVULET_DATA_DIR'] = sys.argv[1]\n"
                      "from streamlit.testing.v1 import AppTest\n"
                      "at = AppTest.from_file(os.path.join(os.getcwd(), 'app.py'), default_timeout=60).run()\n"
                      "print('exceptions', len(at.exception))\n"
                      "for e in at.error:\n"
                      "    print('error', e.value)\n")
    out = in_tmpfs(f'mkdir "$T/d" && mount -o remount,ro "$T" && $PY {script} "$T/d"', size="5M")
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(("exceptions", "error"))]
    assert lines[0] == "exceptions 0" and len(lines) == 2, out.stdout + out.stderr
    assert lines[1].startswith("error The engine could not start: cannot write to the data folder ")
