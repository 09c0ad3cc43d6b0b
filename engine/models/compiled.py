"""A stream's frozen pipeline compiled into scikit-learn transformers, so an exported model takes raw columns.

Steps with a standard scikit-learn equivalent compile: fill missing with a value or a
frozen mean/median (SimpleImputer, constant), frozen z-score / min-max (StandardScaler
with fixed centre and scale), clip (MinMaxScaler with an identity scale and `clip`),
select, one-hot with frozen categories and unseen values as zeros (OneHotEncoder), and
`derive` over numbers with + - * / of columns and numbers, ** 2, unary minus and the
one-argument functions numpy has as ufuncs (abs sqrt log log10 log1p exp floor ceil sign).
A derived column is a small graph: FeatureUnions of its operands, then `numpy.dot` (a
weighted sum), `numpy.cumprod` (a product) or a ufunc in a FunctionTransformer; skops loads these with
`safe.ALLOWED`, so plain scikit-learn + skops + pandas run the model without Rivulet.
Every number column is cast to float64 first (a no-op StandardScaler), so pandas' int64,
bool and nullable columns work as float64 ones do. Every other step (filter, cast, drop
missing, forward fill, running statistics, comparisons in a derive) has no allow-listed
equivalent: the model then keeps needing the card's pipeline, and `trace` says why.
"""
from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, StandardScaler

from ..prep.expr import parse_tree

# expression function -> the numpy ufunc that the engine's `derive` also calls (skops trusts ufuncs)
UFUNCS = {"abs": np.abs, "sqrt": np.sqrt, "log": np.log, "log10": np.log10, "log1p": np.log1p, "exp": np.exp,
          "floor": np.floor, "ceil": np.ceil, "sign": np.sign}
COMPILED_DERIVE = "+ - * / of columns and numbers, ** 2, unary minus, and " + ", ".join(UFUNCS)


class NotCompiled(Exception):
    """A step with no scikit-learn equivalent; the message is the card's reason."""


@dataclass
class Chain:
    """One processed column: a raw column (or a derived expression) and the operations applied to it."""
    raw: str | None
    ops: list = field(default_factory=list)      # ("fill", v) | ("scale", centre, scale) | ("clip", lo, hi)
    categories: list | None = None               # set on the columns a one-hot step makes
    expr: tuple | None = None                    # set on derived columns: a node (see `_node`)

    def copy(self) -> "Chain":
        return Chain(self.raw, list(self.ops), self.categories, self.expr)


def trace(steps: list[dict], features: list[str], kinds: dict[str, str] | None = None) -> dict[str, Chain]:
    """feature name -> its Chain from raw columns; raises NotCompiled with the reason.

    `kinds` (column -> number/bool/text) tells a derive how a raw column counts: a
    missing yes/no value is false there, a missing number stays missing.
    """
    kinds = kinds or {}
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
        elif kind == "derive":
            try:
                tree = parse_tree(p["expr"].strip())
            except SyntaxError:
                raise NotCompiled(f"step {i + 1} (derive) has an expression that does not parse") from None
            leaf = _Leaves(lambda name: chain(name, i, kind).copy(), kinds, i)
            cols[p["name"]] = Chain(None, expr=_node(tree, leaf, i))
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
        if c is not None and c.expr is None:
            made = [f"{c.raw}_{cat}" for cat in c.categories] if c.categories is not None else [c.raw]
            if f not in made:
                raise NotCompiled(f"feature {f!r} is a renamed column; scikit-learn keeps the raw name")
        out[f] = c
    return out


# --- derive: an expression as a graph of scikit-learn transformers ------------------------------
# Nodes: ("leaf", Chain, kind) | ("lin", [(node, weight)]) | ("prod", [node]) |
#        ("recip", node) | ("ufunc", name, node) | ("scale", node, centre, scale)

class _Leaves:
    def __init__(self, chain_of, kinds: dict[str, str], step: int):
        self.chain_of, self.kinds, self.step = chain_of, kinds, step

    def __call__(self, name: str) -> tuple:
        c = self.chain_of(name)
        if c.expr is not None:
            return ("leaf", c, "number")
        kind = self.kinds.get(c.raw)
        if kind not in ("number", "bool"):
            raise NotCompiled(f"step {self.step + 1} (derive) reads {name!r}, whose kind the model does not record")
        return ("leaf", c, kind)


def _node(tree: ast.AST, leaf: _Leaves, i: int) -> tuple:
    def refuse(what: str):
        return NotCompiled(f"step {i + 1} (derive) uses {what}, which does not compile to scikit-learn "
                           f"(what does: {COMPILED_DERIVE})")

    def const(n: ast.AST) -> float | None:
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool):
            return float(n.value)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            v = const(n.operand)
            return None if v is None else (-v if isinstance(n.op, ast.USub) else v)
        return None

    def walk(n: ast.AST) -> tuple:
        if const(n) is not None:
            raise refuse("a number on its own")
        if isinstance(n, ast.Name):
            return leaf(n.id)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return ("lin", [(walk(n.operand), -1.0)])
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.UAdd):
            return walk(n.operand)
        if isinstance(n, ast.BinOp):
            a, b = const(n.left), const(n.right)
            op = type(n.op)
            if op in (ast.Add, ast.Sub):
                sign = 1.0 if op is ast.Add else -1.0
                if b is not None:                       # x ± c
                    return ("scale", walk(n.left), -sign * b, 1.0)
                if a is not None:                       # c ± x
                    return ("scale", ("lin", [(walk(n.right), sign)]), -a, 1.0)
                return ("lin", [(walk(n.left), 1.0), (walk(n.right), sign)])
            if op is ast.Mult:
                if a is not None or b is not None:      # c * x: one exact product in numpy.dot
                    return ("lin", [(walk(n.right if a is not None else n.left), a if a is not None else b)])
                return ("prod", [walk(n.left), walk(n.right)])
            if op is ast.Div:
                if b is not None:                       # x / c: exact, as a scale
                    if b == 0:
                        raise refuse("a division by zero")
                    return ("scale", walk(n.left), 0.0, b)
                right = ("recip", walk(n.right))
                if a is not None:
                    return ("lin", [(right, a)])
                return ("prod", [walk(n.left), right])
            if op is ast.Pow and b == 2:
                return ("ufunc", "square", walk(n.left))
            raise refuse(ast.unparse(n))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in UFUNCS and len(n.args) == 1:
            return ("ufunc", n.func.id, walk(n.args[0]))
        raise refuse(ast.unparse(n))
    return walk(tree)


def _children(node: tuple) -> list[tuple]:
    if node[0] == "lin":
        return [k for k, _ in node[1]]
    if node[0] == "prod":
        return list(node[1])
    return [node[2]] if node[0] == "ufunc" else [node[1]] if node[0] in ("recip", "scale") else []


def _raw_of(node: tuple) -> list[str]:
    """Raw columns a node reads, in first-use order."""
    if node[0] == "leaf":
        c = node[1]
        return _raw_of(c.expr) if c.expr is not None else [c.raw]
    return list(dict.fromkeys(r for k in _children(node) for r in _raw_of(k)))


class _Builder:
    """Builds transformers; steps with fixed parameters get unique names, set after the dummy fit."""

    def __init__(self):
        self.fixed: dict[str, tuple] = {}
        self.count = itertools.count()

    def op(self, op: tuple) -> tuple:
        name = f"{op[0]}{next(self.count)}"
        self.fixed[name] = op
        if op[0] == "fill":
            return (name, SimpleImputer(strategy="constant", fill_value=op[1], keep_empty_features=True))
        if op[0] == "scale":
            return (name, StandardScaler())
        return (name, MinMaxScaler(feature_range=(op[1], op[2]), clip=True))

    def number_chain(self, c: Chain, kind: str = "number") -> list:
        """Steps of a raw number column: cast to float64 (int, bool, nullable), then its operations."""
        steps = [("float", StandardScaler(with_mean=False, with_std=False))]
        steps += [self.op(op) for op in c.ops]
        if kind == "bool":          # the engine's derive reads a missing yes/no as false
            steps.append(self.op(("fill", 0.0)))
        return steps

    def node(self, n: tuple):
        """A transformer from the raw-column frame to one float64 column (a numpy array)."""
        kind = n[0]
        if kind == "leaf":
            c = n[1]
            if c.expr is not None:
                return Pipeline([("value", self.node(c.expr)), *(self.op(op) for op in c.ops)])
            if c.categories is not None:
                raise NotCompiled(f"a derive reads a one-hot column of {c.raw!r}")
            return ColumnTransformer([("v", Pipeline(self.number_chain(c, n[2])), [c.raw])])
        if kind == "lin":           # a weighted sum: numpy.dot with the weights in the first column
            weights = np.zeros((len(n[1]), len(n[1])))
            weights[:, 0] = [w for _, w in n[1]]
            return self.pick(Pipeline([("terms", self.union([k for k, _ in n[1]])),
                                       ("sum", _ufunc(np.dot, b=weights))]), 0)
        if kind == "prod":          # a product: the last column of numpy.cumprod
            return self.pick(Pipeline([("terms", self.union(n[1])), ("product", _ufunc(np.cumprod, axis=1))]),
                             len(n[1]) - 1)
        if kind == "recip":
            return Pipeline([("value", self.node(n[1])), ("reciprocal", _ufunc(np.reciprocal))])
        if kind == "ufunc":
            return Pipeline([("value", self.node(n[2])), (n[1], _ufunc(np.square if n[1] == "square" else UFUNCS[n[1]]))])
        return Pipeline([("value", self.node(n[1])), self.op(("scale", n[2], n[3]))])

    @staticmethod
    def pick(est, column: int) -> Pipeline:
        return Pipeline([("all", est), ("pick", ColumnTransformer([("r", "passthrough", [column])]))])

    def union(self, nodes: list[tuple]) -> FeatureUnion:
        return FeatureUnion([(f"t{k}", self.node(x)) for k, x in enumerate(nodes)])


def _ufunc(fn, **kw) -> FunctionTransformer:
    """A numpy function over the whole array; as many columns out as in, so feature names flow."""
    return FunctionTransformer(fn, kw_args=kw or None, feature_names_out="one-to-one")


def check(pipeline: dict | None, features: list[str], kinds: dict[str, str] | None = None) -> str | None:
    """None when every step compiles for these features, else the reason."""
    try:
        trace((pipeline or {}).get("steps", []), features, kinds)
    except NotCompiled as e:
        return str(e)
    return None


def raw_features(chains: dict[str, Chain], roles: dict[str, str]) -> list[tuple[str, str]]:
    """(raw column, role) the compiled model takes, in first-use order."""
    out: dict[str, str] = {}
    for f, c in chains.items():
        if c.expr is not None:
            for r in _raw_of(c.expr):
                out.setdefault(r, "numeric")
            continue
        text = c.categories is not None or any(op[0] == "fill" and isinstance(op[1], str) for op in c.ops)
        role = "categorical" if text else ("numeric" if c.ops else roles[f])
        out.setdefault(c.raw, role)
    return list(out.items())


def raw_kinds(pipeline: dict | None, features: list[str], roles: dict[str, str], kinds: dict[str, str]) -> dict:
    """Kind of each raw column the compiled model takes (for its card); {} when it does not compile."""
    try:
        chains = trace((pipeline or {}).get("steps", []), features, kinds)
    except NotCompiled:
        return {}
    return {c: ("text" if role == "categorical" else kinds.get(c, "number"))
            for c, role in raw_features(chains, roles)}


def transformer(pipeline: dict, features: list[str], roles: dict[str, str],
                kinds: dict[str, str] | None = None) -> tuple[ColumnTransformer, list]:
    """A fitted ColumnTransformer: raw columns in, the model's processed feature columns out (a DataFrame)."""
    chains = trace(pipeline.get("steps", []), features, kinds)
    raw = raw_features(chains, roles)
    build = _Builder()
    parts, derived = [], []
    for f, c in _unique(chains):
        if c.expr is not None:
            # one column named f: the nested ColumnTransformer's name format is the literal name
            value = build.node(c.expr)
            derived.append(value)
            ops = [build.op(op) for op in c.ops]
            inner = Pipeline([("value", value), *ops]) if ops else value
            literal = f.replace("{", "{{").replace("}", "}}")
            parts.append((f"c{len(parts)}", ColumnTransformer([("expr", inner, _raw_of(c.expr))],
                                                              verbose_feature_names_out=literal), _raw_of(c.expr)))
            continue
        numeric = dict(raw).get(c.raw) == "numeric"
        steps = build.number_chain(c) if numeric else [build.op(op) for op in c.ops]
        if c.categories is not None:
            steps.append(("onehot", OneHotEncoder(categories=[list(c.categories)], handle_unknown="ignore",
                                                  sparse_output=False, dtype=np.float64)))
        parts.append((f"c{len(parts)}", Pipeline(steps or [("keep", "passthrough")]), [c.raw]))
    ct = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False).set_output(transform="pandas")
    for value in derived:           # inside an expression, plain arrays (pandas' cumprod would skip NaN)
        value.set_output(transform="default")
    with np.errstate(all="ignore"):        # an open clip bound makes the dummy fit's own scale infinite
        ct.fit(_dummy(raw))
    for name, est in _steps(ct):
        if name in build.fixed:
            _fix(est, build.fixed[name])
    return ct, raw


def _unique(chains: dict[str, Chain]) -> list[tuple[str, Chain]]:
    """One part per processed column; one encoder gives all of a column's one-hot columns."""
    seen, out = set(), []
    for f, c in chains.items():
        key = (f,) if c.expr is not None else (c.raw, tuple(c.categories or ()), repr(c.ops))
        if key not in seen:
            seen.add(key)
            out.append((f, c))
    return out


def _steps(est):
    """(name, estimator) of every step inside fitted pipelines, unions and column transformers."""
    if isinstance(est, Pipeline):
        for name, step in est.steps:
            yield name, step
            yield from _steps(step)
    elif isinstance(est, FeatureUnion):
        for _, part in est.transformer_list:
            yield from _steps(part)
    elif isinstance(est, ColumnTransformer):
        for _, part, _ in est.transformers_:
            yield from _steps(part)


def _fix(est, op) -> None:
    """Fixed parameters in place of those fitted on the dummy frame."""
    if op[0] == "scale":
        est.mean_, est.scale_, est.var_ = np.array([op[1]]), np.array([op[2]]), np.array([op[2] ** 2])
    elif op[0] == "clip":
        est.scale_, est.min_ = np.array([1.0]), np.array([0.0])


def _dummy(raw: list[tuple[str, str]]) -> pd.DataFrame:
    # distinct positive numbers, so no expression divides by zero while fitting
    return pd.DataFrame({c: pd.Series(["x", "y"], dtype=object) if role == "categorical"
                         else [1.0 + np.sqrt(k + 2), 2.0 + np.sqrt(k + 3)] for k, (c, role) in enumerate(raw)})


def raw_model(model, card: dict):
    """(the model with the card's pipeline compiled in front, the card for it), or (model, card) unchanged."""
    steps = (card.get("pipeline") or {}).get("steps")
    if not steps or not card.get("raw_columns") or card.get("pipeline_in_model"):
        return model, card
    features = [f["name"] for f in card["features"]]
    roles = {f["name"]: f.get("role") or "numeric" for f in card["features"]}
    kinds = {**{f["name"]: f.get("kind") for f in card["features"]}, **(card.get("raw_kinds") or {})}
    ct, raw = transformer(card["pipeline"], features, roles, kinds)
    out = Pipeline([("pipeline", ct), *model.steps])
    return out, {**card, "pipeline_in_model": True,
                 "processed_features": card["features"],
                 "features": [{"name": c, "kind": "text" if role == "categorical" else kinds.get(c) or "number",
                               "role": role} for c, role in raw]}
