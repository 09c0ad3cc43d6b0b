"""The command-line contract of DESIGN.md, in fresh processes."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd

from tests.conftest import ROOT, run_cli
from tests.reference import check_matrix, check_stats


def test_replay_json_contract(tmp_path):
    rng = np.random.default_rng(5)
    n = 20_000
    df = pd.DataFrame({"ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) * 250, unit="ms"),
                       "a": rng.normal(10, 2, n), "b": rng.normal(-5, 1, n), "cat": rng.choice(["u", "v"], n)})
    df["b"] += 0.5 * df["a"]
    path = tmp_path / "c.csv"
    df.to_csv(path, index=False, float_format="%.17g")
    out = run_cli("replay", str(path), "--window-rows", "3000", "--data-dir", str(tmp_path / "d"), "--json")
    assert out.returncode == 0, out.stderr
    snap = json.loads(out.stdout)
    assert set(snap) >= {"rows", "window", "stats", "cov", "corr", "cumulative", "pipeline"}
    assert snap["rows"] == {"ingested": n, "quarantined": 0, "late": 0, "flagged": 0, "replayed": 0}
    assert snap["window"] == {"kind": "count", "size": 3000, "count": 3000}
    tail = df[["a", "b"]].tail(3000)
    check_stats(snap["stats"], tail)
    check_matrix(snap["cov"], tail.cov(), what="cov")
    check_matrix(snap["corr"], tail.corr(), what="corr")
    check_stats(snap["cumulative"], df[["a", "b"]])
    assert snap["pipeline"] == 0

    out = run_cli("replay", str(path), "--window-seconds", "60", "--time-column", "ts",
                  "--data-dir", str(tmp_path / "d2"), "--json")
    snap = json.loads(out.stdout)
    want = df.loc[df["ts"] > df["ts"].max() - pd.Timedelta(seconds=60), ["a", "b"]]    # (end - 60 s, end]
    assert snap["window"]["kind"] == "time" and snap["window"]["count"] == len(want) == 240
    check_stats(snap["stats"], want)


def test_user_errors_exit_2_with_one_line(tmp_path):
    cases = [
        ("replay", str(tmp_path / "missing.csv"), "--json"),
        ("replay", "x.csv", "--window-rows", "0"),
        ("replay", "x.csv", "--window-rows", "5", "--window-seconds", "3"),
        ("nonsense",),
    ]
    good = tmp_path / "g.csv"
    good.write_text("a,b\n1,2\n")
    cases.append(("replay", str(good), "--time-column", "nope", "--data-dir", str(tmp_path / "d")))
    for args in cases:
        out = run_cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr


def test_busy_data_dir_is_a_clear_error(tmp_path):
    from engine.runtime import Engine
    good = tmp_path / "g.csv"
    good.write_text("a,b\n1,2\n")
    with Engine(str(tmp_path / "d")):
        out = run_cli("replay", str(good), "--data-dir", str(tmp_path / "d"), "--json")
    assert out.returncode == 2 and "in use by another Rivulet engine" in out.stderr


def test_help_on_every_command():
    for cmd in ([], ["replay"], ["status"], ["quarantine"]):
        out = run_cli(*cmd, "--help")
        assert out.returncode == 0 and "usage" in out.stdout


def test_an_error_of_ours_is_one_line_with_exit_1(tmp_path):
    """A bug in a command (here one made to raise, as scikit-learn did on sparse input) still prints one
    line, not a traceback, and exits 1 so that scripts tell it from a user error (2)."""
    code = ("import sys, engine.cli as cli\n"
            "def broken(args):\n"
            "    raise TypeError('Sparse data was passed for X, but dense data is required.\\nUse toarray()')\n"
            "cli.cmd_status = broken\n"
            "sys.exit(cli.main(['status', '--data-dir', sys.argv[1]]))\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert r.stderr == ("error: status failed unexpectedly: TypeError: Sparse data was passed for X, "
                        "but dense data is required.\n")
