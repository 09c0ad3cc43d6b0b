"""Safe expressions: what they compute (against numpy) and what they refuse (anything reaching Python)."""
import re

import numpy as np
import pandas as pd
import pytest

from engine.errors import UserError
from engine.prep.expr import Expr

KINDS = {"a": "number", "b": "number", "flag": "bool", "name": "text"}


def cols(n=200, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(3, 2, n)
    a[::17] = np.nan
    return {"a": a, "b": rng.normal(size=n), "flag": rng.random(n) < 0.5}


@pytest.mark.parametrize("text, want", [
    ("a + b * 2", lambda d: d.a + d.b * 2),
    ("(a - b) / 2 // 1 % 3", lambda d: (d.a - d.b) / 2 // 1 % 3),
    ("-a ** 2", lambda d: -d.a ** 2),
    ("abs(b) ** 0.5 + sqrt(abs(a)) - log1p(abs(b)) + exp(-abs(b))", lambda d: d.b.abs() ** 0.5 + np.sqrt(d.a.abs())
                                                                     - np.log1p(d.b.abs()) + np.exp(-d.b.abs())),
    ("max(a, b) - min(a, 0)", lambda d: np.fmax(d.a, d.b) - np.fmin(d.a, 0)),
    ("clip(a, 0, 4) + round(b) + floor(a) * ceil(b) + sign(b)",
     lambda d: d.a.clip(0, 4) + np.round(d.b) + np.floor(d.a) * np.ceil(d.b) + np.sign(d.b)),
    ("where(flag and a > 3, a, b)", lambda d: np.where(d.flag & (d.a > 3), d.a, d.b)),
    ("flag * 1 + (0 < b <= 1)", lambda d: d.flag.astype(float) + ((d.b > 0) & (d.b <= 1))),
])
def test_values_match_numpy(text, want):
    c = cols()
    expected = np.asarray(want(pd.DataFrame(c)), dtype=np.float64)
    got = Expr.parse(text, KINDS).evaluate(c)
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("text, message", [
    ("a.__class__", "attribute access"),
    ("a.real", "attribute access"),
    ("__import__('os').system('true')", "not allowed"),
    ("__builtins__", "the name '__builtins__' is not allowed"),
    ("open('/etc/passwd')", "the function 'open' is not allowed"),
    ("eval('1')", "the function 'eval' is not allowed"),
    ("getattr(a, 'x')", "the function 'getattr' is not allowed"),
    ("(lambda: 1)()", "calling"),
    ("lambda x: x", "lambdas are not allowed"),
    ("a ** 1000000", "the exponent 1000000 is too large"),
    ("9 ** 9 ** 9", "must be a plain number"),
    ("2 ** a", "must be a plain number"),
    ("[x for x in a]", "comprehensions are not allowed"),
    ("a[0]", "subscripts"),
    ("'text'", "not allowed"),
    ("f'{a}'", "not allowed"),
    ("(b := 1)", "not allowed"),
    ("a if b else 1", "not allowed"),
    ("name + 1", "column 'name' is text"),
    ("zz + 1", "unknown column 'zz'"),
    ("abs(a, b)", r"abs\(\) takes 1 argument, got 2"),
    ("max(a, b=1)", "no keyword arguments"),
    ("a; import os", "not valid"),
    ("GOOG / AAPL +", r"ends too early; something is missing after 'GOOG / AAPL \+'"),
    ("a +* b", r"invalid syntax at character 4 \('\* b'\)"),
    ("a +" * 300, "characters long"),
    ("+".join(["a"] * 150), "more than 200 parts"),
])
def test_hostile_and_bad_expressions_are_refused(text, message):
    with pytest.raises(UserError, match=message):
        Expr.parse(text, KINDS)


def test_no_eval_or_compile_in_the_expression_module():
    import inspect

    import engine.prep.expr as mod
    source = inspect.getsource(mod)
    assert "eval(" not in source.replace("_eval(", "").replace(".evaluate(", "")
    assert "compile(" not in source and "exec(" not in source


def test_backticks_name_columns_that_are_not_python_names():
    """breast_cancer's `worst area`, wine's `od280/od315_of_diluted_wines`: `worst area` / `mean area` was
    refused as invalid syntax, and a column with a space could not be derived from at all."""
    kinds = {"worst area": "number", "mean area": "number", "od280/od315": "number", "a": "number", "x`y": "number"}
    c = cols()
    data = {"worst area": c["a"], "mean area": c["b"], "od280/od315": c["b"] * 3, "a": c["a"]}
    e = Expr.parse("`worst area` / `mean area` + log1p(abs(`od280/od315`)) - a", kinds)
    assert e.columns == {"worst area", "mean area", "od280/od315", "a"}
    want = c["a"] / c["b"] + np.log1p(np.abs(c["b"] * 3)) - c["a"]
    np.testing.assert_allclose(e.evaluate(data), want, rtol=1e-12, equal_nan=True)
    assert Expr.parse("`a` * 2", kinds).columns == {"a"}
    for text, message in [("`nope` + 1", "unknown column 'nope'"), ("`` + a", "not valid"),
                          ("`worst area` +* a", r"invalid syntax at character 15 \('\* a'\)"),
                          ("`__class__`", "the name '__class__' is not allowed"),
                          ("`a`.real", "attribute access")]:
        with pytest.raises(UserError, match=message):
            Expr.parse(text, kinds)


def test_a_name_with_spaces_typed_without_backticks_is_told_to_quote_it():
    """`mean area / mean radius` (breast_cancer's names) said only 'invalid syntax at character 6'."""
    kinds = {"mean area": "number", "mean radius": "number", "od280/od315": "number", "a": "number"}
    for text, name in [("mean area / mean radius", "mean radius"), ("od280/od315 * 2", "od280/od315"),
                       ("`mean area` / mean radius", "mean radius")]:
        with pytest.raises(UserError, match=f"backticks: `{re.escape(name)}`"):
            Expr.parse(text, kinds)
    with pytest.raises(UserError) as e:            # nothing to quote: no hint
        Expr.parse("a +* 2", kinds)
    assert "backticks" not in str(e.value)
