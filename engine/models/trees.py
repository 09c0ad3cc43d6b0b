"""Tree models whose nodes point where they should, checked before a loaded model is used.

scikit-learn's compiled tree code (`sklearn.tree._tree.Tree`, the histogram gradient
boosting `TreePredictor`) follows a node's child and feature indices without bounds
checks: a file that sets them out of range loads fine and crashes the process at its
first prediction. Both builders add a node's children after it, so a valid tree has
every child index above its parent's (which also rules out cycles), leaves marked
(-1 children, or `is_leaf`), and features below the number of columns predict gets.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError


def check(model, what: str) -> None:
    """Refuse `model` (with a one-line reason) when any tree in it could read outside its arrays."""
    try:
        for obj in _objects(model):
            _check_one(obj)
    except _Bad as e:
        raise UserError(f"{what} is refused: {e}; a model like this would crash the process that uses it") from None


class _Bad(Exception):
    pass


def _objects(root):
    """Every object reachable from `root` through attributes, containers and object arrays, once."""
    seen, todo = set(), [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None))):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, dict):
            todo.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            todo.extend(obj)
        elif isinstance(obj, np.ndarray):
            if obj.dtype == object:
                todo.extend(obj.ravel())
        elif hasattr(obj, "__dict__"):
            todo.extend(vars(obj).values())


def _check_one(obj) -> None:
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree
    if isinstance(obj, Tree):
        check_tree(obj)
    elif isinstance(obj, TreePredictor):
        check_predictor(obj)
    n_features = getattr(obj, "n_features_in_", None)
    if n_features is None:
        return
    tree = getattr(obj, "tree_", None)
    if isinstance(tree, Tree) and tree.n_features != n_features:
        raise _Bad(f"a tree built for {tree.n_features} features sits in a model of {n_features}")
    # a forest hands its own validated rows to its trees unchecked (bagging slices columns first)
    members = getattr(obj, "estimators_", None)
    if members is not None and not hasattr(obj, "estimators_features_"):
        for member in np.asarray(members, dtype=object).ravel():
            if getattr(member, "n_features_in_", n_features) != n_features:
                raise _Bad(f"a member built for {member.n_features_in_} features sits in a model of {n_features}")
    predictors = getattr(obj, "_predictors", None)
    if predictors is not None:
        categorical = getattr(getattr(obj, "_bin_mapper", None), "is_categorical_", None)
        categorical = np.zeros(n_features, bool) if categorical is None else np.asarray(categorical, bool)
        if categorical.shape != (n_features,):
            raise _Bad(f"the categorical mask has {categorical.size} entries for {n_features} features")
        for row in predictors:
            for p in row:
                check_predictor(p, categorical)


def _children(left: np.ndarray, right: np.ndarray, inner: np.ndarray, what: str) -> None:
    n = len(left)
    at = np.arange(n)[inner]
    for side, child in (("left", left[inner].astype(np.int64)), ("right", right[inner].astype(np.int64))):
        wrong = (child <= at) | (child >= n)
        if wrong.any():
            i = int(np.argmax(wrong))
            raise _Bad(f"{what} node {at[i]} has {side} child {child[i]} (nodes: {n}; a child comes after "
                       f"its parent)")


def _features(feature: np.ndarray, n_features: int, what: str) -> None:
    wrong = (feature < 0) | (feature >= n_features)
    if wrong.any():
        raise _Bad(f"{what} splits on feature {int(feature[np.argmax(wrong)])} of {n_features}")


def check_tree(tree) -> None:
    """A scikit-learn `Tree` (decision trees, forests, gradient boosting)."""
    n = tree.node_count
    if n < 1:
        raise _Bad("a tree has no nodes")
    left, right = tree.children_left, tree.children_right
    leaf = left == -1
    if (right[leaf] != -1).any():
        raise _Bad("a tree leaf has a right child")
    _children(left, right, ~leaf, "a tree")
    _features(tree.feature[~leaf], tree.n_features, "a tree")
    if tree.value.shape != (n, tree.n_outputs, tree.max_n_classes):
        raise _Bad(f"a tree's values have shape {tree.value.shape} for {n} nodes")


def check_predictor(p, categorical: np.ndarray | None = None) -> None:
    """A histogram gradient boosting `TreePredictor`; `categorical`: which features are (known with
    the model's feature count)."""
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
    nodes = p.nodes
    if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE or nodes.ndim != 1 \
            or not len(nodes):
        raise _Bad("a boosting tree's nodes are not a list of scikit-learn predictor nodes")
    inner = nodes["is_leaf"] == 0
    _children(nodes["left"], nodes["right"], inner, "a boosting tree")
    if categorical is not None:
        _features(nodes["feature_idx"][inner], len(categorical), "a boosting tree")
    split = inner & (nodes["is_categorical"] != 0)
    if not split.any():
        return
    if categorical is not None and not categorical[nodes["feature_idx"][split]].all():
        raise _Bad("a boosting tree splits on categories of a feature that is not categorical")
    for bitsets in (p.raw_left_cat_bitsets, p.binned_left_cat_bitsets):
        if not isinstance(bitsets, np.ndarray) or bitsets.ndim != 2 or bitsets.shape[1] != 8 \
                or (nodes["bitset_idx"][split] >= bitsets.shape[0]).any():
            raise _Bad("a boosting tree's category split points outside its category sets")
