"""Model files crafted to crash or exhaust the process that loads them (issue 16): refused in one line.

Crafted files are real skops archives with their arrays edited (tests/crafted_models.py). Whatever
could crash runs in a subprocess: `python -m engine predict`, or an engine script for restarts.
"""
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import skops.io as sio

from engine.errors import UserError
from engine.models import safe
from engine.runtime import Engine
from tests.conftest import ROOT, run_cli
from tests.crafted_models import bomb, crafted, fitted, frame


@pytest.fixture
def rows_csv(tmp_path):
    path = tmp_path / "rows.csv"
    frame(50, seed=1).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("how", ["child", "feature", "cycle"])
@pytest.mark.parametrize("kind", ["dt", "rf", "hgb"])
def test_trees_whose_nodes_point_out_of_range_are_refused_before_predicting(tmp_path, rows_csv, kind, how):
    model = tmp_path / "m.skops"
    model.write_bytes(crafted(kind, how))
    out = run_cli("predict", str(model), rows_csv, timeout=300)
    assert out.returncode == 2, (out.returncode, out.stderr[-500:])      # was 139 (SIGSEGV) or a hang
    assert "is refused" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


@pytest.mark.parametrize("kind", ["dt", "rf", "hgb"])
def test_untouched_tree_models_pass_the_checks_and_predict(tmp_path, rows_csv, kind):
    model = tmp_path / "m.skops"
    model.write_bytes(sio.dumps(fitted(kind)))
    out = run_cli("predict", str(model), rows_csv, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 51


# The child reports its own high-water mark (VmHWM) as it exits: wait4's ru_maxrss also counts the
# parent's memory the child shared between fork and exec, which is pytest's whole size late in a run.
HWM = ("import atexit, runpy, sys\n"
       "out = sys.argv.pop(1)\n"
       "atexit.register(lambda: open(out, 'w').write(next(l.split()[1] for l in open('/proc/self/status')\n"
       "                                                    if l.startswith('VmHWM'))))\n"
       "sys.argv[0] = 'engine'\n"
       "runpy.run_module('engine', run_name='__main__', alter_sys=True)\n")


def peak_rss_mb(args: list[str], tmp_path) -> tuple[subprocess.CompletedProcess, float]:
    """`python -m engine *args` and the peak resident memory of that process in MB."""
    hwm = tmp_path / "hwm"
    proc = subprocess.run([sys.executable, "-c", HWM, str(hwm), *args], cwd=ROOT, capture_output=True, text=True)
    return proc, int(hwm.read_text()) / 1024


@pytest.mark.parametrize("array_bytes,times,declared", [(2 << 30, 1, None), (8 << 20, 400, None), (8, 1, 80 << 30)],
                         ids=["one-2GB-array", "one-8MB-array-read-400-times", "header-claims-80GB"])
def test_decompression_bombs_are_refused_before_they_inflate(tmp_path, rows_csv, array_bytes, times, declared):
    """Before: 4.3 GB and 3.5 GB of memory for 2 MB and 12 KB files."""
    model = tmp_path / "bomb.skops"
    model.write_bytes(bomb(array_bytes, times, declared))
    proc, rss = peak_rss_mb(["predict", str(model), rows_csv], tmp_path)
    err = proc.stderr
    assert proc.returncode == 2 and "is refused" in err and len(err.strip().splitlines()) == 1, err
    assert rss < 500, f"{rss:.0f} MB"


def test_a_model_that_crashes_its_trial_is_refused_on_import(tmp_path, monkeypatch):
    """The tree checks are switched off here, so only the trial in a spawned process stands between
    the crafted model and this process."""
    monkeypatch.setattr("engine.models.trees.check", lambda model, what: None)
    with Engine(str(tmp_path / "data")) as engine:
        with pytest.raises(UserError, match=r"crashed the process that tried it .*SIGSEGV"):
            engine.models.import_model(crafted("dt", "child"), "evil.skops")
        assert engine.models.registry.list() == []
        good = engine.models.import_model(sio.dumps(fitted("dt")), "good.skops")
        assert [c["id"] for c in engine.models.registry.list()] == [good]


ENGINE_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import engine.models.trees
    engine.models.trees.check = lambda model, what: None      # only the deploy record protects
    from engine.runtime import Engine
    data, csv, step = sys.argv[1], sys.argv[2], sys.argv[3]

    def append(first):
        with open(csv, "a") as f:
            f.write("".join(f"{0.1 * i},{-0.2 * i},yes\\n" for i in range(first, first + 20)))

    def wait_rows(engine, name, n):
        end = time.time() + 60
        while time.time() < end:
            snap = engine.snapshot(name)
            if snap is not None and snap.counts["ingested"] >= n:
                return
            time.sleep(0.05)
        raise SystemExit("rows did not arrive")

    with Engine(data) as engine:
        if step == "deploy":
            name = engine.add_tail(csv, trusted=True)
            wait_rows(engine, name, 50)
            import skops.io as sio
            from engine.models.export import card_from_model
            from engine.models.safe import ALLOWED
            model = sio.loads(open(sys.argv[4], "rb").read(), trusted=list(ALLOWED))
            model_id = engine.models.registry.save(model, card_from_model(model, "evil"))
            engine.deploy(name, model_id)
            append(100)
            wait_rows(engine, name, 70)       # the ingest thread crashes the process first
            print("survived")
        else:
            name = engine.names()[0]
            append(200)
            wait_rows(engine, name, 90)
            time.sleep(1)
            print(json.dumps({"live": engine.models.live(name), "model": engine.snapshot(name).model}))
""")


def test_a_deployment_that_killed_the_engine_is_not_deployed_again_at_start(tmp_path):
    data, csv, model = str(tmp_path / "data"), tmp_path / "rows.csv", tmp_path / "evil.skops"
    frame(50).to_csv(csv, index=False)
    model.write_bytes(crafted("dt", "child"))
    script = tmp_path / "engine_script.py"
    script.write_text(ENGINE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": ROOT}
    first = subprocess.run([sys.executable, str(script), data, str(csv), "deploy", str(model)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == -11, (first.returncode, first.stdout, first.stderr[-1000:])
    again = subprocess.run([sys.executable, str(script), data, str(csv), "restart"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, (again.returncode, again.stderr[-1000:])     # was -11 at every start
    out = json.loads(again.stdout.strip().splitlines()[-1])
    assert out["live"] is None
    assert out["model"]["deployed"] is False
    assert "was not deployed again" in out["model"]["error"] and "Models page" in out["model"]["error"]


def test_a_deployment_that_predicted_is_deployed_again_at_start(tmp_path):
    csv = tmp_path / "rows.csv"
    frame(50).to_csv(csv, index=False)
    data = str(tmp_path / "data")
    with Engine(data) as engine:
        name = engine.add_tail(str(csv), trusted=True)
        model_id = engine.models.import_model(sio.dumps(fitted("dt")), "good.skops", stream=name)
        engine.deploy(name, model_id)
        assert engine._get(name).config["deploy_trial"] == model_id
        with open(csv, "a") as f:
            f.write("0.5,0.5,yes\n")
        end = time.time() + 60
        while engine._get(name).config.get("deploy_trial") and time.time() < end:
            time.sleep(0.05)
        assert engine._get(name).config.get("deploy_trial") is None
    for _ in range(2):          # restarts with no new row in between: it had passed its trial, it stays deployed
        with Engine(data) as engine:
            assert engine.models.live(name)["model_id"] == model_id
            assert engine._get(name).deploy_error is None
            assert engine._get(name).config.get("deploy_trial") is None


def test_bounds_leave_real_models_alone():
    from sklearn.ensemble import RandomForestClassifier
    df = frame()
    model = RandomForestClassifier(n_estimators=50, random_state=0).fit(df[["a", "b"]], df["label"])
    back = safe.loads(sio.dumps(model))
    assert (back.predict(df[["a", "b"]]) == model.predict(df[["a", "b"]])).all()
