"""Model files edited the way an attacker would: real skops archives with their arrays changed."""
import io
import zipfile

import numpy as np
import pandas as pd
import skops.io as sio


def frame(n=200, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "label": np.where(a + b > 0, "yes", "no")})


def fitted(kind: str):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier
    model = {"dt": DecisionTreeClassifier(max_depth=4, random_state=0),
             "rf": RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0),
             "hgb": HistGradientBoostingClassifier(max_iter=3, max_depth=4, random_state=0)}[kind]
    df = frame()
    return model.fit(df[["a", "b"]], df["label"])


def edited(data: bytes, edit) -> bytes:
    """The archive with `edit(array)` applied to every .npy member it changes (it returns True)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename.endswith(".npy"):
                arr = np.load(io.BytesIO(body), allow_pickle=False)
                if edit(arr):
                    buf = io.BytesIO()
                    np.save(buf, arr, allow_pickle=False)
                    body = buf.getvalue()
            dst.writestr(info, body)
    return out.getvalue()


def first_split(arr: np.ndarray) -> int | None:
    """Index of the first inner node of a tree's node array (sklearn Tree or boosting predictor)."""
    names = arr.dtype.names or ()
    if "left_child" in names:
        inner = np.flatnonzero(arr["left_child"] != -1)
    elif "is_leaf" in names:
        inner = np.flatnonzero(arr["is_leaf"] == 0)
    else:
        return None
    return int(inner[0]) if len(inner) else None


FIELDS = {"left_child": ("left_child", "feature"), "is_leaf": ("left", "feature_idx")}


def crafted(kind: str, how: str) -> bytes:
    """A `kind` model whose trees' first split has its child ('child'), its feature ('feature') set
    far out of range, or its child pointing back at itself ('cycle')."""
    def edit(arr):
        i = first_split(arr)
        if i is None:
            return False
        child, feature = FIELDS["left_child" if "left_child" in arr.dtype.names else "is_leaf"]
        if how == "child":
            arr[child][i] = 50_000_000
        elif how == "feature":
            arr[feature][i] = 50_000_000
        else:
            arr[child][i] = i
        return True
    return edited(sio.dumps(fitted(kind)), edit)


def bomb(array_bytes: int, times: int = 1, declared: int | None = None) -> bytes:
    """A .skops archive (deflated) whose schema reads one array of zeros `times` times: skops inflates
    it on every read. `declared`: the bytes its header claims instead (a lying header, short body)."""
    import json
    data = sio.dumps(fitted("dt"))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        schema = json.loads(src.read("schema.json"))
        for info in src.infolist():
            if info.filename != "schema.json":
                dst.writestr(info.filename, src.read(info.filename))
        with dst.open("zeros.npy", "w", force_zip64=True) as f:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                          "shape": ((declared or array_bytes) // 8,)})
            f.write(header.getvalue())
            chunk = bytes(min(array_bytes, 1 << 24))
            for _ in range(array_bytes // len(chunk)):
                f.write(chunk)
        node = {"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode", "type": "numpy",
                "file": "zeros.npy"}
        schema["content"]["content"]["extra"] = {"__class__": "list", "__module__": "builtins",
                                                 "__loader__": "ListNode",
                                                 "content": [{**node, "__id__": i} for i in range(times)]}
        dst.writestr("schema.json", json.dumps(schema))
    return out.getvalue()
