"""Safe model files: skops with a fixed allow-list; pickle and joblib are refused unread.

skops trusts plain scikit-learn estimators, numpy and scipy containers by
default; every other type a file names must be in `ALLOWED` below. The list is
ours and fixed: it is never built from what a file asks for.

Before skops reads anything, `check_sizes` bounds what the archive would inflate
to (skops inflates an array once per reference to it, before the allow-list
answers); after loading, `trees.check` refuses tree nodes that point outside
their arrays (scikit-learn's compiled tree code trusts them and would crash).
"""
from __future__ import annotations

import io
from collections import Counter
import json
import os
import zipfile

import numpy as np
import skops.io as sio

from ..errors import UserError

# Types our pipelines contain beyond skops' own defaults (see spec.ALGORITHMS).
ALLOWED = (
    "numpy.dtype",
    "numpy.dot",                # a derived column's weighted sum (compiled.py)
    "numpy.cumprod",            # a derived column's product (compiled.py)
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
    "sklearn.feature_selection._mutual_info.mutual_info_classif",
    "sklearn.feature_selection._mutual_info.mutual_info_regression",
    "sklearn.tree._tree.Tree",
)
MAX_INFLATED = 1 << 30         # bytes skops may inflate in all, counting each reference to an array
MAX_RATIO = 100                # inflated / file size, once past RATIO_FROM (stored .skops files are ~1)
RATIO_FROM = 64 << 20
MAX_SCHEMA = 64 << 20          # schema.json, inflated
MAX_ITEMS = 1_000_000          # values in schema.json (its commas, counted before parsing); a forest of
                               # 300 trees has 85,000
PICKLE_STARTS = (b"\x80", b"(", b"]", b"}", b"c", b"\x1f\x8b", b"x\x9c", b"x\x01", b"x\xda", b"BZh",
                 b"\xfd7zXZ", b"\x04\"M\x18", b"ZF")   # pickle protocols, zlib/gzip/bz2/xz/lz4 (joblib)


def dumps(model) -> bytes:
    return sio.dumps(model)


def loads(data: bytes, what: str = "the model file", check_trees: bool = True):
    """Load skops bytes, after bounding their size and checking every type they name against
    `ALLOWED`; then check the trees in the model (`check_trees=False`: the caller did)."""
    kind = sniff(data)
    if kind != "skops":
        raise UserError(f"{what} is {kind}, which is never loaded (it could run code); "
                        f"export the model as .skops and upload that")
    check_sizes(data, what)
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as e:        # a broken archive: say so, never a traceback
        raise UserError(f"{what} is not a readable .skops file: {type(e).__name__}: {e}") from None
    refused = sorted(set(untrusted) - set(ALLOWED))
    if refused:
        raise UserError(f"{what} contains types that are not allowed: {', '.join(refused)}")
    try:
        model = sio.loads(data, trusted=list(ALLOWED))
    except Exception as e:
        raise UserError(f"{what} could not be loaded: {type(e).__name__}: {e}") from None
    if check_trees:
        from . import trees
        trees.check(model, what)
    return model


def check_sizes(data: bytes, what: str) -> None:
    """Refuse an archive that would inflate past our bounds (a decompression bomb), reading only
    its directory, schema.json and the headers of its arrays."""
    def refuse(why: str):
        raise UserError(f"{what} is refused: {why}; export the model again with skops and upload that")

    def mb(n: int) -> str:
        return f"{n / 2**20:,.1f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} KB"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            sizes = {i.filename: i.file_size for i in z.infolist()}
            if sizes.get("schema.json", 0) > MAX_SCHEMA:
                refuse(f"its schema.json inflates to {mb(sizes['schema.json'])}")
            raw = z.read("schema.json")
            if raw.count(b",") > MAX_ITEMS:
                refuse(f"its schema.json lists over {MAX_ITEMS:,} values")
            refs = files_referenced(json.loads(raw))
            counts = {name: n for name, n in Counter(refs).items() if name in sizes}

            def bound(total: int) -> None:
                if total > MAX_INFLATED or total > RATIO_FROM and total > MAX_RATIO * len(data):
                    refuse(f"it inflates to {mb(total)} from {mb(len(data))}")
            total = sizes["schema.json"] + sum(sizes[name] * n for name, n in counts.items())
            bound(total)
            for name, n in counts.items():
                with z.open(name) as f:
                    start = f.read(6)
                    if start.startswith(b"PK"):          # a scipy matrix: an .npz archive of arrays
                        with zipfile.ZipFile(io.BytesIO(start + f.read())) as inner:
                            total += n * sum(i.file_size for i in inner.infolist())
                        bound(total)
                    elif start == b"\x93NUMPY":
                        f.seek(0)
                        declared = npy_bytes(f)
                        if declared > sizes[name]:
                            refuse(f"its array {name} declares {mb(declared)} in {mb(sizes[name])}")
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError, EOFError) as e:
        raise UserError(f"{what} is not a readable .skops file: {type(e).__name__}: {e}") from None


def files_referenced(schema) -> list[str]:
    """The archive members schema.json reads, once per reference (skops reads them so)."""
    refs, todo = [], [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                refs.append(node["file"])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return refs


def npy_bytes(f) -> int:
    """The bytes a .npy stream's header says its array holds; only the header is read."""
    version = np.lib.format.read_magic(f)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = header(f)
    return int(np.prod(shape, dtype=object)) * dtype.itemsize


def read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None


def load(path: str):
    return loads(read(path), os.path.basename(path))


def sniff(data: bytes) -> str:
    """'skops', 'a pickle/joblib file', or 'not a model file', from the bytes alone."""
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                if "schema.json" in z.namelist():
                    return "skops"
        except zipfile.BadZipFile:
            pass
        return "a zip archive but not a .skops model"
    if data.startswith(PICKLE_STARTS):
        return "a pickle/joblib file"
    return "not a model file"
