import hashlib
import json
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from engine.errors import UserError
from engine.models import safe
from engine.models.data import column_kinds, training_rows
from engine.models.export import export, import_file, onnx_feed
from engine.models.registry import Registry, make_card
from engine.models.spec import ModelSpec
from engine.models.train import train
from models_data import Payload, mixed_frame


@pytest.fixture(scope="module")
def trained():
    df = mixed_frame(300)
    table = pa.Table.from_pandas(df, preserve_index=False)
    spec = ModelSpec("classification", "label", ("a", "b", "noise"), ("site",), "logreg", cv=3)
    rows = training_rows(table, "label", list(spec.numeric), list(spec.categorical), spec.task)
    result = train(rows, spec)
    card = make_card(result.model, spec, result.report, column_kinds(table), {"rows": len(rows.y)}, None)
    return result.model, card, rows.X


def test_registry_save_list_load_delete(tmp_path, trained):
    model, card, X = trained
    reg = Registry(str(tmp_path))
    mid = reg.save(model, card)
    listed = reg.list()
    assert [c["id"] for c in listed] == [mid]
    c = listed[0]
    assert c["classes"] == ["no", "yes"]
    assert [f["name"] for f in c["features"]] == ["a", "b", "noise", "site"]
    assert c["features"][3]["kind"] == "text"
    assert c["libraries"]["scikit-learn"] and c["created"]
    with open(os.path.join(reg.root, mid, "model.skops"), "rb") as f:
        assert c["sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert c["metrics"]["holdout"]["accuracy"] > 0.8
    loaded, _ = reg.load(mid)
    assert (loaded.predict(X) == model.predict(X)).all()
    reg.delete(mid)
    assert reg.list() == [] and os.listdir(reg.root) == []


def test_registry_removes_what_a_crash_mid_save_left(tmp_path, trained):
    model, card, _ = trained
    mid = Registry(str(tmp_path)).save(model, card)
    root = os.path.join(str(tmp_path), "models")
    for name in (".tmp-old", ".del-old", ".tmp-now"):            # a killed save, a killed delete, a live save
        os.makedirs(os.path.join(root, name))
        with open(os.path.join(root, name, "model.skops"), "wb") as f:
            f.write(b"half")
    hour_ago = time.time() - 3600
    for name in (".tmp-old", ".del-old"):
        os.utime(os.path.join(root, name), (hour_ago, hour_ago))
    reg = Registry(str(tmp_path))
    assert sorted(os.listdir(root)) == sorted([".tmp-now", mid])
    assert [c["id"] for c in reg.list()] == [mid]


def test_registry_refuses_a_changed_artefact(tmp_path, trained):
    model, card, _ = trained
    reg = Registry(str(tmp_path))
    mid = reg.save(model, card)
    with open(os.path.join(reg.root, mid, "model.skops"), "ab") as f:
        f.write(b"x")
    with pytest.raises(UserError, match="SHA-256"):
        reg.load(mid)


def test_skops_export_loads_in_a_fresh_python_with_only_sklearn_and_skops(tmp_path, trained):
    model, card, X = trained
    path = str(tmp_path / "model.skops")
    written = export(model, card, path)
    assert written["format"] == "skops"
    assert json.load(open(path + ".card.json"))["sha256"] == written["sha256"]
    X.to_csv(tmp_path / "x.csv", index=False)
    script = f"""
import sys, json, pandas as pd, skops.io as sio
assert not any(m == 'engine' or m.startswith('engine.') for m in sys.modules)
path = {path!r}
model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
X = pd.read_csv({str(tmp_path / 'x.csv')!r}).astype({{'site': object}})
print(json.dumps({{"pred": model.predict(X).tolist(), "proba": model.predict_proba(X).tolist()}}))
"""
    r = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["pred"] == model.predict(X).tolist()
    np.testing.assert_allclose(out["proba"], model.predict_proba(X), rtol=0, atol=1e-12)


def test_onnx_export_matches_sklearn(tmp_path, trained):
    import onnxruntime as ort
    model, card, X = trained
    path = str(tmp_path / "model.onnx")
    written = export(model, card, path)
    assert written["format"] == "onnx" and written["onnx"]["outputs"] == ["label", "probabilities"]
    session = ort.InferenceSession(path)
    labels, proba = session.run(None, onnx_feed(session, X))
    assert proba.shape == (len(X), 2)               # a tensor, not a zipmap
    assert (labels == model.predict(X)).all()
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=0, atol=1e-5)


def test_joblib_export_is_marked_unsafe_and_never_imported(tmp_path, trained):
    model, card, _ = trained
    path = str(tmp_path / "model.joblib")
    written = export(model, card, path)
    assert written["unsafe_to_load"] is True and "pickle" in written["warning"]
    with pytest.raises(UserError, match="pickle/joblib file, which is never loaded"):
        import_file(path)


def test_crafted_pickle_never_runs(tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(str(control))))
    assert control.exists()          # the payload works when unpickled: its absence below means something
    sentinel = tmp_path / "pwned"
    for i, data in enumerate([pickle.dumps(Payload(str(sentinel)), protocol=p) for p in (0, 2, 5)]):
        path = tmp_path / f"evil{i}.skops"          # the name lies; the bytes do not
        path.write_bytes(data)
        with pytest.raises(UserError, match="never loaded"):
            import_file(str(path))
    import joblib
    joblib.dump(Payload(str(sentinel)), tmp_path / "evil.pkl", compress=3)
    assert not sentinel.exists()     # joblib.dump pickles without running __reduce__'s result
    with pytest.raises(UserError, match="never loaded"):
        safe.load(str(tmp_path / "evil.pkl"))
    assert not sentinel.exists()


def test_skops_with_a_type_outside_the_allow_list_is_refused(tmp_path):
    evil = Pipeline([("run", FunctionTransformer(os.system))])
    path = tmp_path / "evil.skops"
    sio.dump(evil, path)
    with pytest.raises(UserError, match="not allowed: .*system"):
        import_file(str(path))


def test_import_reads_the_card_and_checks_features(tmp_path, trained):
    model, card, _ = trained
    path = str(tmp_path / "m.skops")
    export(model, card, path)
    loaded, c = import_file(path)
    assert c["classes"] == ["no", "yes"]
    from engine.models.commands import model_frame
    table = pa.table({"a": [1.0], "b": [2.0], "site": ["x"]})
    with pytest.raises(UserError, match="features missing from the data: noise"):
        model_frame(table, c)


def test_a_failed_export_leaves_the_previous_file_and_no_temporary(tmp_path, trained, monkeypatch):
    model, card, X = trained
    path = tmp_path / "model.skops"
    export(model, card, str(path))
    before = path.read_bytes()
    from engine.models import registry

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(registry.os, "replace", broken_replace)
    with pytest.raises(UserError, match="cannot write .*No space left"):
        export(model, card, str(path))
    assert path.read_bytes() == before and import_file(str(path))[0].predict(X).tolist() == model.predict(X).tolist()
    assert sorted(os.listdir(tmp_path)) == ["model.skops", "model.skops.card.json"]
