"""Trained models kept in <data dir>/models/<id>/: model.skops and card.json.

A model appears whole or not at all: both files are written into a hidden
temporary folder which is then renamed into place.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
import time
import uuid
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from ..errors import UserError
from . import safe

MODEL_FILE = "model.skops"
CARD_FILE = "card.json"
LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "skops", "pyarrow")


def libraries() -> dict:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_id(algorithm: str) -> str:
    """A folder name; `algorithm` may come from an uploaded card, so only plain characters are kept."""
    plain = re.sub(r"[^A-Za-z0-9_-]+", "-", str(algorithm))[:40].strip("-") or "model"
    return f"{plain}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


def json_safe(value):
    """numpy scalars and arrays -> plain JSON values."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def make_card(model, spec, report: dict, kinds: dict, training: dict, pipeline: dict | None,
              name: str | None = None, source_kinds: dict | None = None) -> dict:
    """Everything needed to trust, reuse and explain a model; the artefact's hash is added on save.

    kinds: of the columns after the pipeline; source_kinds: of the raw columns before it.
    """
    from .compiled import check, raw_kinds
    classes = getattr(model, "classes_", None)
    before = {**kinds, **(source_kinds or {})}
    reason = check(pipeline, spec.features, before)
    roles = {**{c: "numeric" for c in spec.numeric}, **{c: "categorical" for c in spec.categorical}}
    return json_safe({
        "name": name or spec.algorithm,
        "spec": spec.to_dict(),
        "features": [{"name": c, "kind": kinds.get(c, "number"), "role": "numeric"} for c in spec.numeric]
        + [{"name": c, "kind": kinds.get(c, "text"), "role": "categorical"} for c in spec.categorical],
        "classes": classes if classes is not None else None,
        "metrics": report,
        "training": training,
        "pipeline": pipeline or {"version": 0, "steps": []},
        # whether an exported model takes the raw columns (every step compiles to scikit-learn)
        "raw_columns": reason is None,
        "raw_columns_reason": reason,
        "raw_kinds": raw_kinds(pipeline, spec.features, roles, before) if reason is None else {},
        "libraries": libraries(),
    })


def write_atomic(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


STALE_SECONDS = 300     # a save or delete takes seconds; older leftovers come from a crash


class Registry:
    def __init__(self, data_dir: str):
        self.root = os.path.join(os.path.abspath(data_dir), "models")
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        """Delete what a crash mid-save (.tmp-*) or mid-delete (.del-*) left; never listed anyway."""
        if not os.path.isdir(self.root):
            return
        now = time.time()
        for entry in os.scandir(self.root):
            if entry.name.startswith((".tmp-", ".del-")) and now - entry.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(entry.path, ignore_errors=True)

    def _dir(self, model_id: str) -> str:
        if not model_id or "/" in model_id or model_id.startswith("."):
            raise UserError(f"bad model id {model_id!r}")
        return os.path.join(self.root, model_id)

    def save(self, model, card: dict, model_id: str | None = None) -> str:
        os.makedirs(self.root, exist_ok=True)
        model_id = model_id or new_id((card.get("spec") or {}).get("algorithm", "model"))
        data = safe.dumps(model)
        card = {**card, "id": model_id, "format": "skops", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                     time.gmtime()),
                "sha256": sha256(data)}
        tmp = tempfile.mkdtemp(dir=self.root, prefix=".tmp-")
        try:
            with open(os.path.join(tmp, MODEL_FILE), "wb") as f:
                f.write(data)
            with open(os.path.join(tmp, CARD_FILE), "w") as f:
                json.dump(card, f, indent=1)
            os.rename(tmp, self._dir(model_id))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return model_id

    def list(self) -> list[dict]:
        """Cards of every stored model, newest first."""
        if not os.path.isdir(self.root):
            return []
        cards = []
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name, CARD_FILE)
            if not name.startswith(".") and os.path.isfile(path):
                with open(path) as f:
                    cards.append(json.load(f))
        return sorted(cards, key=lambda c: c.get("created", ""), reverse=True)

    def card(self, model_id: str) -> dict:
        path = os.path.join(self._dir(model_id), CARD_FILE)
        if not os.path.isfile(path):
            known = ", ".join(c["id"] for c in self.list()[:10]) or "none"
            raise UserError(f"no model {model_id!r}; models: {known}")
        with open(path) as f:
            return json.load(f)

    EDITABLE = ("name", "note", "archived")

    def update(self, model_id: str, **changes) -> dict:
        """Change what describes a model (its name, a note, archived or not); the model file stays as it is."""
        unknown = set(changes) - set(self.EDITABLE)
        if unknown:
            raise UserError(f"a model's {', '.join(sorted(unknown))} cannot be changed; only {', '.join(self.EDITABLE)}")
        if "name" in changes:
            changes["name"] = str(changes["name"] or "").strip()
            if not changes["name"]:
                raise UserError("a model needs a name; type one")
            if len(changes["name"]) > 100:
                raise UserError("a model's name is at most 100 characters")
        if "note" in changes and len(str(changes["note"] or "")) > 2000:
            raise UserError("a note is at most 2,000 characters")
        card = {**self.card(model_id), **changes}
        write_atomic(os.path.join(self._dir(model_id), CARD_FILE), json.dumps(card, indent=1).encode())
        return card

    def artefact(self, model_id: str) -> bytes:
        card = self.card(model_id)
        with open(os.path.join(self._dir(model_id), MODEL_FILE), "rb") as f:
            data = f.read()
        if sha256(data) != card["sha256"]:
            raise UserError(f"model {model_id!r} does not match its card's SHA-256; it was changed on disk")
        return data

    def load(self, model_id: str):
        """(model, card); the stored file goes through the same allow-list as an upload."""
        card = self.card(model_id)
        return safe.loads(self.artefact(model_id), f"model {model_id}"), card

    def delete(self, model_id: str) -> None:
        path = self._dir(model_id)
        if not os.path.isdir(path):
            raise UserError(f"no model {model_id!r}")
        trash = os.path.join(self.root, f".del-{model_id}-{uuid.uuid4().hex[:6]}")
        os.rename(path, trash)          # gone from the listing at once, then removed
        shutil.rmtree(trash, ignore_errors=True)
