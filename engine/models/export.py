"""Export a model as one file plus its card (<file>.card.json); import .skops only.

Formats:
- skops (default): safe to load; `safe.load` checks every type against our allow-list.
- joblib: a pickle. Loading one runs whatever code it holds, so its card says
  `"unsafe_to_load": true`; Rivulet itself never loads one.
- onnx: through skl2onnx, probabilities as a plain tensor (no ZipMap), numeric
  inputs as float32 (onnxruntime's imputer has no float64 kernel). Not every
  model converts (histogram gradient boosting fails with scikit-learn 1.9.1).
"""
from __future__ import annotations

import io
import json
import os

from ..errors import UserError
from . import safe
from .registry import json_safe, sha256, write_atomic

FORMATS = ("skops", "joblib", "onnx")
SUFFIX = {"skops": ".skops", "joblib": ".joblib", "onnx": ".onnx"}
JOBLIB_WARNING = ("joblib files are pickles: loading one runs any code it contains. "
                  "Load only files you made yourself; share .skops instead.")


def card_path(path: str) -> str:
    return path + ".card.json"


def to_bytes(model, card: dict, fmt: str) -> bytes:
    if fmt == "skops":
        return safe.dumps(model)
    if fmt == "joblib":
        import joblib
        buf = io.BytesIO()
        joblib.dump(model, buf)
        return buf.getvalue()
    if fmt == "onnx":
        return onnx_bytes(model, card)
    raise UserError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def export_bytes(model, card: dict, fmt: str, file_name: str) -> tuple[bytes, dict]:
    """The model file's bytes and the card that goes beside it (format, hash, warnings).

    When every pipeline step compiles (`card["raw_columns"]`), the exported model has
    them in front and takes the raw columns; its card then lists those.
    """
    from .compiled import raw_model
    model, card = raw_model(model, card)
    data = to_bytes(model, card, fmt)
    out = {**card, "format": fmt, "sha256": sha256(data), "file": file_name}
    if fmt == "skops":      # what `skops.io.load(file, trusted=...)` needs beyond skops' defaults
        out["skops_trusted"] = sorted(sio_untrusted(data))
    if fmt == "joblib":
        out["unsafe_to_load"] = True
        out["warning"] = JOBLIB_WARNING
    if fmt == "onnx":
        out["onnx"] = onnx_io(card)
    if card.get("raw_columns") is False:
        out["warning"] = " ".join(filter(None, [out.get("warning"), raw_warning(card)]))
    return data, json_safe(out)


def sio_untrusted(data: bytes) -> list[str]:
    import skops.io as sio
    return sio.get_untrusted_types(data=data)


def raw_warning(card: dict) -> str:
    return (f"this model takes the columns after the stream's pipeline, not the raw ones: "
            f"{card.get('raw_columns_reason')}; apply the card's pipeline first (python -m engine predict does)")


def export(model, card: dict, path: str, fmt: str | None = None) -> dict:
    """Write the model and its card atomically; returns the card as written."""
    fmt = fmt or _format_of(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"no such folder: {folder}")
    data, out = export_bytes(model, card, fmt, os.path.basename(path))
    try:
        write_atomic(path, data)
        write_atomic(card_path(path), json.dumps(out, indent=1).encode())
    except OSError as e:            # the previous file, if any, is still whole
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    return out


def _format_of(path: str) -> str:
    for fmt, suffix in SUFFIX.items():
        if path.endswith(suffix):
            return fmt
    return "skops"


def import_file(path: str) -> tuple[object, dict]:
    """(model, card) from a .skops file; the card comes from <file>.card.json or from the model.
    Its first predictions are tried in another process first (trial.py)."""
    from .trial import tried
    data, what = safe.read(path), os.path.basename(path)
    model = safe.loads(data, what)
    card = None
    if os.path.isfile(card_path(path)):
        try:
            with open(card_path(path)) as f:
                card = json.load(f)
        except (OSError, json.JSONDecodeError):
            card = None
    card = card or card_from_model(model)
    tried(data, card, what)
    return model, card


def import_bytes(data: bytes, name: str, card_data: bytes | None = None) -> tuple[object, dict]:
    """(model, card) from uploaded .skops bytes and, optionally, its .card.json (see `checked_card`);
    its first predictions are tried in another process first (trial.py)."""
    from .trial import tried
    model = safe.loads(data, name)
    card = card_from_model(model, name=os.path.splitext(os.path.basename(name))[0] or "imported")
    card = checked_card(card, card_data) if card_data else card
    tried(data, card, name)
    return model, card


def checked_card(card: dict, card_data: bytes) -> dict:
    """An uploaded card in place of the minimal one read from the model (`card`).

    The card only describes the model: its features must be the model's own, and the
    classes are the model's, so a card cannot make a model look like something else.
    """
    try:
        given = json.loads(card_data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError("the model card is not JSON; upload the .card.json written beside the model") from None
    if not isinstance(given, dict) or not isinstance(given.get("features"), list):
        raise UserError("the model card has no feature list; upload the .card.json written beside the model")
    names = [f.get("name") for f in given["features"] if isinstance(f, dict)]
    if names != [f["name"] for f in card["features"]]:
        raise UserError("the model card's features do not match the model's; upload the card that came "
                        "with this model")
    return {**given, "classes": card["classes"]}


def card_from_model(model, name: str = "imported") -> dict:
    """A minimal card for a model that came without one: features, their roles and classes from the model."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise UserError("the model does not record its feature names; train it on a table with named columns")
    roles = _roles(model)
    classes = getattr(model, "classes_", None)
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    return json_safe({"name": name, "features": [{"name": n, "kind": None, "role": roles.get(n)} for n in names],
                      "classes": classes, "spec": {"task": "classification" if classes is not None else "regression"},
                      "estimator": type(final).__name__, "metrics": None})


def _roles(model) -> dict[str, str]:
    """numeric/categorical per column, read from a ColumnTransformer first step (as `spec.build` makes)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder
    first = model.steps[0][1] if hasattr(model, "steps") else None
    if not isinstance(first, ColumnTransformer):
        return {}
    roles = {}
    for _, step, columns in getattr(first, "transformers_", []):
        encodes = isinstance(step, OneHotEncoder) or (hasattr(step, "steps") and
                                                      isinstance(step.steps[-1][1], OneHotEncoder))
        if isinstance(columns, (list, tuple)):
            roles.update({c: "categorical" if encodes else "numeric" for c in columns if isinstance(c, str)})
    return roles


# --- ONNX --------------------------------------------------------------------------

def onnx_io(card: dict) -> dict:
    return {"inputs": [{"name": f["name"], "type": "float32" if f["role"] == "numeric" else "string",
                        "shape": [None, 1]} for f in card["features"]],
            "outputs": ["label", "probabilities"] if card.get("classes") is not None else ["variable"]}


def onnx_bytes(model, card: dict) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    inputs = [(f["name"], FloatTensorType([None, 1]) if f["role"] == "numeric" else StringTensorType([None, 1]))
              for f in card["features"]]
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else None
    try:
        onx = to_onnx(model, initial_types=inputs, options=options, target_opset={"": 18, "ai.onnx.ml": 3})
    except Exception as e:          # skl2onnx raises many kinds; the user needs the one line
        if card.get("pipeline_in_model"):     # skl2onnx cannot chain ColumnTransformers by column name
            raise UserError("this model's compiled pipeline steps cannot be exported to ONNX; export it as .skops "
                            "(it takes the raw columns)") from None
        raise UserError(f"this model cannot be exported to ONNX ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200]}); export it as .skops") from None
    return onx.SerializeToString()


def onnx_feed(session, frame) -> dict:
    """Inputs for an onnxruntime session from a features frame, in the model's input order.

    skl2onnx renames inputs whose names are not identifiers, so inputs are matched by position.
    """
    import numpy as np
    feed = {}
    for inp, col in zip(session.get_inputs(), frame.columns):
        values = frame[[col]].to_numpy()
        if inp.type == "tensor(string)":
            feed[inp.name] = np.where(frame[[col]].isna().to_numpy(), "", values.astype(str)).astype(object)
        else:
            feed[inp.name] = values.astype(np.float32)
    return feed
