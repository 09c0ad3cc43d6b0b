"""Safe arithmetic expressions over columns, for the pipeline's `derive` step.

The text is parsed with `ast` and every node is checked against a whitelist:
numbers, column names (`in backticks` when not a Python name), + - * / // % **, unary -, comparisons, and/or/not, and a
few numpy functions. Nothing is ever passed to `eval`; evaluation walks the
checked tree with numpy over whole columns (NaN = missing).

    >>> e = Expr.parse("abs(a - 2) ** 2", {"a": "number"})
    >>> e.evaluate({"a": np.array([1.0, 4.0])}).tolist()
    [1.0, 4.0]
"""
from __future__ import annotations

import ast
import operator
import re

import numpy as np

from ..errors import UserError

MAX_LENGTH = 500          # characters
MAX_NODES = 200
MAX_POWER = 64            # |exponent| of ** must be a literal no larger than this

_BINARY = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
           ast.FloorDiv: np.floor_divide, ast.Mod: np.mod, ast.Pow: np.power}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
# name -> (numpy function, number of arguments)
FUNCTIONS = {
    "abs": (np.abs, 1), "sqrt": (np.sqrt, 1), "log": (np.log, 1), "log10": (np.log10, 1),
    "log1p": (np.log1p, 1), "exp": (np.exp, 1), "floor": (np.floor, 1), "ceil": (np.ceil, 1),
    "round": (np.round, 1), "sign": (np.sign, 1),
    "min": (np.fmin, 2), "max": (np.fmax, 2),
    "clip": (lambda x, lo, hi: np.clip(x, lo, hi), 3),
    "where": (lambda c, a, b: np.where(c, a, b), 3),
}


def _where(text: str, e: SyntaxError) -> str:
    """Where the parser stopped, as the user typed it (Python reports the end of input as column 0)."""
    at = (e.offset or 0) - 1
    if e.lineno not in (None, 1) or not 0 <= at < len(text):
        tail = text if len(text) <= 40 else "…" + text[-30:]
        return f"it ends too early; something is missing after {tail!r}"
    return f"{e.msg} at character {at + 1} ({text[at:at + 12]!r})"


_QUOTED = r"`([^`]*)`"          # a column name in backticks


def parse_tree(text: str) -> ast.expr:
    """The expression's tree, with `backticks` around a column name that is not a Python name (`mean area`,
    `od280/od315`), as in pandas' eval. Each quoted name is parsed as a stand-in identifier of the same
    length (so error positions stay where the user typed them), then put back into the tree's Name nodes.
    Raises SyntaxError."""
    names: dict[str, str] = {}

    def stand_in(m: re.Match) -> str:
        name = m.group(1)
        if not name:
            raise SyntaxError("empty `` quotes", ("<expr>", 1, m.start() + 1, text))
        token = f"_q{len(names)}".ljust(len(m.group(0)), "_")
        while token in names or token in text:
            token += "_"
        names[token] = name
        return token

    tree = ast.parse(re.sub(_QUOTED, stand_in, text), mode="eval").body
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names:
            node.id = names[node.id]
    return tree


def _quote_hint(text: str, kinds: dict[str, str]) -> str:
    """When the text holds a column name with spaces or signs outside backticks (`mean area / mean radius`,
    as breast_cancer names them), the message says to quote it: the syntax error alone does not."""
    bare = re.sub(_QUOTED, " ", text)
    name = next((c for c in sorted(kinds, key=len, reverse=True) if not c.isidentifier() and c in bare), None)
    return f"; put a column name with spaces or signs in backticks: `{name}`" if name else ""


def is_number(v) -> bool:
    """A number that fits a float64 (a 400-digit integer or 1e400 does not); booleans are not numbers."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return bool(np.isfinite(float(v)))
    except OverflowError:
        return False


class Expr:
    """A checked expression; `kind` is "number" or "bool", `columns` the names it reads."""

    def __init__(self, text: str, tree: ast.expr, kind: str, columns: set[str]):
        self.text = text
        self.tree = tree
        self.kind = kind
        self.columns = columns

    @classmethod
    def parse(cls, text: str, kinds: dict[str, str]) -> "Expr":
        """Check `text` against the whitelist and the columns' kinds ("number", "bool", "text", "time")."""
        if not isinstance(text, str) or not text.strip():
            raise UserError("the expression is empty")
        if len(text) > MAX_LENGTH:
            raise UserError(f"the expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
        try:
            tree = parse_tree(text.strip())
        except SyntaxError as e:
            raise UserError(f"the expression is not valid: {_where(text.strip(), e)}{_quote_hint(text, kinds)}") \
                from None
        if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
            raise UserError(f"the expression has more than {MAX_NODES} parts; split it into several derive steps")
        checker = _Checker(kinds, text)
        kind = checker.kind(tree)
        return cls(text, tree, kind, checker.columns)

    def evaluate(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Vectorised over the columns (float64 arrays, NaN = missing; bool arrays)."""
        with np.errstate(all="ignore"):
            out = _eval(self.tree, columns)
        n = len(next(iter(columns.values()))) if columns else 1
        return np.broadcast_to(np.asarray(out, dtype=bool if self.kind == "bool" else np.float64), (n,)).copy()


class _Checker:
    def __init__(self, kinds: dict[str, str], text: str = ""):
        self.kinds = kinds
        self.text = text
        self.columns: set[str] = set()

    def kind(self, node: ast.AST) -> str:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                return "bool"
            if isinstance(node.value, (int, float)):
                if not is_number(node.value):
                    raise UserError(f"the number {_show(node)} is too large (at most about 1.8e308)")
                return "number"
            raise UserError(f"{_show(node)} is not allowed: only numbers, columns and the listed functions are")
        if isinstance(node, ast.Name):
            if node.id.startswith("__"):
                raise UserError(f"the name {node.id!r} is not allowed")
            if node.id in ("True", "False"):
                return "bool"
            if node.id not in self.kinds:
                hint = " (it is a function; call it)" if node.id in FUNCTIONS else ""
                hint = hint or _quote_hint(self.text, self.kinds)
                raise UserError(f"unknown column {node.id!r}{hint}; columns: {', '.join(self.kinds)}")
            kind = self.kinds[node.id]
            if kind not in ("number", "bool"):
                raise UserError(f"column {node.id!r} is {kind}; expressions work on numbers and booleans "
                                f"(cast it first)")
            self.columns.add(node.id)
            return kind
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            self.number(node.left)
            if isinstance(node.op, ast.Pow):
                self.power(node.right)
            else:
                self.number(node.right)
            return "number"
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, (ast.USub, ast.UAdd)):
                self.number(node.operand)
                return "number"
            if isinstance(node.op, ast.Not):
                self.boolean(node.operand)
                return "bool"
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                self.boolean(v)
            return "bool"
        if isinstance(node, ast.Compare):
            if not all(type(op) in _COMPARE for op in node.ops):
                raise UserError(f"{_show(node)}: only == != < <= > >= compare values")
            for v in [node.left, *node.comparators]:
                self.number(v)
            return "bool"
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Attribute):
            raise UserError(f"attribute access ({_show(node)}) is not allowed")
        if isinstance(node, ast.Subscript):
            raise UserError(f"subscripts ({_show(node)}) are not allowed")
        if isinstance(node, ast.Lambda):
            raise UserError("lambdas are not allowed")
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            raise UserError("comprehensions are not allowed")
        raise UserError(f"{_show(node)} is not allowed: only numbers, columns, + - * / // % **, comparisons, "
                        f"and/or/not and the functions {', '.join(FUNCTIONS)}")

    def number(self, node: ast.AST) -> None:
        self.kind(node)          # booleans count as 0/1 in arithmetic, as in pandas

    def boolean(self, node: ast.AST) -> None:
        if self.kind(node) != "bool":
            raise UserError(f"{_show(node)} is a number where true/false is needed (compare it)")

    def power(self, node: ast.AST) -> None:
        value = node.operand if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) else node
        if not (isinstance(value, ast.Constant) and isinstance(value.value, (int, float))
                and not isinstance(value.value, bool)):
            raise UserError(f"the exponent {_show(node)} must be a plain number (at most {MAX_POWER})")
        if abs(value.value) > MAX_POWER:
            raise UserError(f"the exponent {_show(node)} is too large; the limit is {MAX_POWER}")

    def call(self, node: ast.Call) -> str:
        if not isinstance(node.func, ast.Name):
            raise UserError(f"calling {_show(node.func)} is not allowed; functions: {', '.join(FUNCTIONS)}")
        name = node.func.id
        if name not in FUNCTIONS:
            raise UserError(f"the function {name!r} is not allowed; functions: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise UserError(f"{name}() takes no keyword arguments")
        want = FUNCTIONS[name][1]
        if len(node.args) != want:
            raise UserError(f"{name}() takes {want} argument{'s' * (want > 1)}, got {len(node.args)}")
        if name == "where":
            self.boolean(node.args[0])
            a, b = self.kind(node.args[1]), self.kind(node.args[2])
            return "bool" if a == b == "bool" else "number"
        for a in node.args:
            self.number(a)
        return "number"


def _eval(node: ast.AST, cols: dict[str, np.ndarray]):
    if isinstance(node, ast.Constant):
        return float(node.value) if not isinstance(node.value, bool) else node.value
    if isinstance(node, ast.Name):
        if node.id in ("True", "False"):
            return node.id == "True"
        return cols[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_num(_eval(node.left, cols)), _num(_eval(node.right, cols)))
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, cols)
        return np.logical_not(v) if isinstance(node.op, ast.Not) else (-_num(v) if isinstance(node.op, ast.USub)
                                                                        else _num(v))
    if isinstance(node, ast.BoolOp):
        f = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        out = _eval(node.values[0], cols)
        for v in node.values[1:]:
            out = f(out, _eval(v, cols))
        return out
    if isinstance(node, ast.Compare):
        left, out = _num(_eval(node.left, cols)), True
        for op, right in zip(node.ops, node.comparators):
            right = _num(_eval(right, cols))
            out = np.logical_and(out, _COMPARE[type(op)](left, right))
            left = right
        return out
    if isinstance(node, ast.Call):
        fn = FUNCTIONS[node.func.id][0]
        args = [_eval(a, cols) for a in node.args]
        if node.func.id != "where":
            args = [_num(a) for a in args]
        return fn(*args)
    raise AssertionError(f"unchecked node {type(node).__name__}")     # _Checker refuses these


def _num(v):
    """Booleans take part in arithmetic as 0/1, as in pandas."""
    if isinstance(v, np.ndarray) and v.dtype == bool:
        return v.astype(np.float64)
    return float(v) if isinstance(v, bool) else v


def _show(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 40 else text[:37] + "..."
