"""Safe model files: skops with a fixed allow-list; pickle and joblib are refused unread.

skops trusts plain scikit-learn estimators, numpy and scipy containers by
default; every other type a file names must be in `ALLOWED` below. The list is
ours and fixed: it is never built from what a file asks for.
"""
from __future__ import annotations

import io
import os
import zipfile

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
PICKLE_STARTS = (b"\x80", b"(", b"]", b"}", b"c", b"\x1f\x8b", b"x\x9c", b"x\x01", b"x\xda", b"BZh",
                 b"\xfd7zXZ", b"\x04\"M\x18", b"ZF")   # pickle protocols, zlib/gzip/bz2/xz/lz4 (joblib)


def dumps(model) -> bytes:
    return sio.dumps(model)


def loads(data: bytes, what: str = "the model file"):
    """Load skops bytes, after checking every type they name against `ALLOWED`."""
    kind = sniff(data)
    if kind != "skops":
        raise UserError(f"{what} is {kind}, which is never loaded (it could run code); "
                        f"export the model as .skops and upload that")
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as e:        # a broken archive: say so, never a traceback
        raise UserError(f"{what} is not a readable .skops file: {type(e).__name__}: {e}") from None
    refused = sorted(set(untrusted) - set(ALLOWED))
    if refused:
        raise UserError(f"{what} contains types that are not allowed: {', '.join(refused)}")
    try:
        return sio.loads(data, trusted=list(ALLOWED))
    except Exception as e:
        raise UserError(f"{what} could not be loaded: {type(e).__name__}: {e}") from None


def load(path: str):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    return loads(data, os.path.basename(path))


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
