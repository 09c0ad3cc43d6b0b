"""A stream's frozen pipeline compiled into scikit-learn transformers, so an exported model takes raw columns.

Steps with a standard scikit-learn equivalent compile: fill missing with a value or a
frozen mean/median (SimpleImputer, constant), frozen z-score / min-max (StandardScaler
with fixed centre and scale), clip (MinMaxScaler with an identity scale and `clip`),
select, and one-hot with frozen categories and unseen values as zeros (OneHotEncoder).
Every other step (derive, filter, cast, drop missing, forward fill, running statistics)
has no allow-listed equivalent: the model then keeps needing the card's pipeline, and
`trace` says why.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler


class NotCompiled(Exception):
    """A step with no scikit-learn equivalent; the message is the card's reason."""


@dataclass
class Chain:
    """One processed column: the raw column it comes from and the operations applied to it."""
    raw: str
    ops: list = field(default_factory=list)      # ("fill", v) | ("scale", centre, scale) | ("clip", lo, hi)
    categories: list | None = None               # set on the columns a one-hot step makes


def trace(steps: list[dict], features: list[str]) -> dict[str, Chain]:
    """feature name -> its Chain from a raw column; raises NotCompiled with the reason."""
    cols: dict[str, Chain] = {}
    selected = False

    def chain(name: str, i: int, kind: str) -> Chain:
        if name not in cols:
            if selected:        # the pipeline was checked: this cannot happen, but never guess a raw column
                raise NotCompiled(f"step {i + 1} ({kind}) uses {name!r}, which no longer exists")
            cols[name] = Chain(name)
        c = cols[name]
        if c.categories is not None:
            raise NotCompiled(f"step {i + 1} ({kind}) changes a one-hot column ({name!r})")
        return c

    for i, step in enumerate(steps):
        kind, p = step["kind"], step.get("params", {})
        if kind == "fill_missing":
            method = p.get("method", "value")
            if method == "ffill" or p.get("stats") == "running":
                raise NotCompiled(f"step {i + 1} (fill_missing, {'forward fill' if method == 'ffill' else 'running mean'}) "
                                  f"depends on earlier rows")
            values = p["values"] if method != "value" else (
                p["value"] if isinstance(p["value"], dict) else {c: p["value"] for c in p["columns"]})
            for c, v in values.items():
                chain(c, i, kind).ops.append(("fill", v))
        elif kind == "normalise":
            if p.get("stats", "running") != "frozen":
                raise NotCompiled(f"step {i + 1} (normalise with running statistics) depends on earlier rows")
            for c, v in p["values"].items():
                centre, scale = (v["mean"], v["std"]) if p.get("method", "zscore") == "zscore" \
                    else (v["min"], v["max"] - v["min"])
                chain(c, i, kind).ops.append(("scale", centre, scale))
        elif kind == "clip":
            lo = -np.inf if p.get("lower") is None else float(p["lower"])
            hi = np.inf if p.get("upper") is None else float(p["upper"])
            if not lo < hi:
                raise NotCompiled(f"step {i + 1} (clip to one value) has no scikit-learn equivalent")
            for c in p["columns"] if isinstance(p["columns"], list) else [p["columns"]]:
                chain(c, i, kind).ops.append(("clip", lo, hi))
        elif kind == "select":
            names = p["columns"] if isinstance(p["columns"], list) else [p["columns"]]
            cols = {c: cols.get(c) or Chain(c) for c in names} if not selected else {c: cols[c] for c in names}
            selected = True
        elif kind == "rename":
            for old, new in p["columns"].items():
                c = cols.pop(old, None) or (None if selected else Chain(old))
                if c is not None:
                    cols[new] = c
        elif kind == "onehot":
            if p.get("unseen", "zeros") != "zeros":
                raise NotCompiled(f"step {i + 1} (onehot with an 'other' column) has no scikit-learn equivalent")
            source = chain(p["column"], i, kind)
            if source.raw != p["column"]:
                raise NotCompiled(f"step {i + 1} (onehot) encodes a renamed column; scikit-learn keeps the raw name")
            for cat in p["categories"]:
                cols[f"{p['column']}_{cat}"] = Chain(source.raw, list(source.ops), list(p["categories"]))
            if not p.get("keep"):
                del cols[p["column"]]
        else:
            raise NotCompiled(f"step {i + 1} ({kind}) has no scikit-learn equivalent")
    out = {}
    for f in features:
        c = cols.get(f) or (None if selected else Chain(f))
        made = [f"{c.raw}_{cat}" for cat in c.categories] if c and c.categories is not None else [c and c.raw]
        if f not in made:
            raise NotCompiled(f"feature {f!r} is a renamed column; scikit-learn keeps the raw name")
        out[f] = c
    return out


def check(pipeline: dict | None, features: list[str]) -> str | None:
    """None when every step compiles for these features, else the reason."""
    try:
        trace((pipeline or {}).get("steps", []), features)
    except NotCompiled as e:
        return str(e)
    return None


def raw_features(chains: dict[str, Chain], roles: dict[str, str]) -> list[tuple[str, str]]:
    """(raw column, role) the compiled model takes, in first-use order."""
    out: dict[str, str] = {}
    for f, c in chains.items():
        text = c.categories is not None or any(op[0] == "fill" and isinstance(op[1], str) for op in c.ops)
        role = "categorical" if text else ("numeric" if c.ops else roles[f])
        out.setdefault(c.raw, role)
    return list(out.items())


def transformer(pipeline: dict, features: list[str], roles: dict[str, str]) -> tuple[ColumnTransformer, list]:
    """A fitted ColumnTransformer: raw columns in, the model's processed feature columns out (a DataFrame)."""
    chains = trace(pipeline.get("steps", []), features)
    raw = raw_features(chains, roles)
    chains_used = _unique(chains)          # one encoder gives all of a column's one-hot columns
    parts = []
    for c in chains_used:
        steps = [_op(op, k) for k, op in enumerate(c.ops)]
        if c.categories is not None:
            steps.append(("onehot", OneHotEncoder(categories=[list(c.categories)], handle_unknown="ignore",
                                                  sparse_output=False, dtype=np.float64)))
        parts.append((f"c{len(parts)}", Pipeline(steps or [("keep", "passthrough")]), [c.raw]))
    ct = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False).set_output(transform="pandas")
    with np.errstate(all="ignore"):        # an open clip bound makes the dummy fit's own scale infinite
        ct.fit(_dummy(raw))
    for (name, _, _), c in zip(parts, chains_used):
        for k, op in enumerate(c.ops):
            _fix(ct.named_transformers_[name].steps[k][1], op)
    return ct, raw


def _unique(chains: dict[str, Chain]) -> list[Chain]:
    seen, out = set(), []
    for c in chains.values():
        key = (c.raw, tuple(c.categories or ()), repr(c.ops))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _op(op, k: int):
    if op[0] == "fill":
        return (f"fill{k}", SimpleImputer(strategy="constant", fill_value=op[1], keep_empty_features=True))
    if op[0] == "scale":
        return (f"scale{k}", StandardScaler())
    return (f"clip{k}", MinMaxScaler(feature_range=(op[1], op[2]), clip=True))


def _fix(est, op) -> None:
    """Fixed parameters in place of those fitted on the dummy frame."""
    if op[0] == "scale":
        est.mean_, est.scale_, est.var_ = np.array([op[1]]), np.array([op[2]]), np.array([op[2] ** 2])
    elif op[0] == "clip":
        est.scale_, est.min_ = np.array([1.0]), np.array([0.0])


def _dummy(raw: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(["x", "y"], dtype=object) if role == "categorical" else [0.0, 1.0]
                         for c, role in raw})


def raw_model(model, card: dict):
    """(the model with the card's pipeline compiled in front, the card for it), or (model, card) unchanged."""
    steps = (card.get("pipeline") or {}).get("steps")
    if not steps or not card.get("raw_columns") or card.get("pipeline_in_model"):
        return model, card
    features = [f["name"] for f in card["features"]]
    roles = {f["name"]: f.get("role") or "numeric" for f in card["features"]}
    ct, raw = transformer(card["pipeline"], features, roles)
    kinds = {f["name"]: f.get("kind") for f in card["features"]}
    out = Pipeline([("pipeline", ct), *model.steps])
    return out, {**card, "pipeline_in_model": True,
                 "processed_features": card["features"],
                 "features": [{"name": c, "kind": "text" if role == "categorical" else kinds.get(c, "number"),
                               "role": role} for c, role in raw]}
