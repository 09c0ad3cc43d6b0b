"""Data the model tests share: scikit-learn's breast-cancer set as CSV, and small synthetic tables."""
import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer


def breast_cancer_csv(tmp_path) -> str:
    path = tmp_path / "breast_cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(path, index=False)
    return str(path)


def mixed_frame(n=300, seed=0) -> pd.DataFrame:
    """Two informative numbers, a category that matters, noise, and both kinds of target."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    site = rng.choice(["north", "south", "east"], n)
    shift = np.select([site == "north", site == "south"], [1.0, -1.0], 0.0)
    score = 2 * a - b + shift + 0.3 * rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "noise": rng.normal(size=n), "site": site,
                         "label": np.where(score > 0, "yes", "no"), "value": score})


class Payload:
    """Unpickling this creates the file `sentinel`: proof that a load ran code."""
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (open, (self.sentinel, "w"))
