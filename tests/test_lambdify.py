"""``sympy.lambdify`` computes symgrad's ops right inside any expression, in every module.

An op prints as its stable formula (``_Op.stable``), a sum or a product, where the printer around
it expects a call: unparenthesized, ``softplus(a)**2`` printed as ``log1p(...) + max(0, a)**2`` and
every result was silently wrong. The ops are read off the ops module, so a new op is covered; the
reference is the expression with its ops expanded to their definitions, evaluated by SymPy's
evalf at 30 digits: no code printer is involved in it.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symgrad.lang import ops
from symgrad.lang.numba_helpers import AfterExp
from symgrad.lang.opbase import _Op

X = sp.Symbol("x", real=True)

#: Every op class the ops module defines or exports.
OP_CLASSES = sorted({c for c in vars(ops).values() if inspect.isclass(c) and issubclass(c, _Op) and c is not _Op},
                    key=lambda c: c.__name__)
AFTER_EXP = sorted({c for c in vars(ops).values() if inspect.isclass(c) and issubclass(c, AfterExp) and c is not AfterExp},
                   key=lambda c: c.__name__)

#: Arguments after the first (bce_logits' y, the α of leaky_relu and elu); any other op gets 3/10s.
EXTRA = {"bce_logits": (sp.Rational(3, 10),), "leaky_relu": (sp.Rational(1, 100),), "elu": (sp.Rational(3, 2),)}

MODULES = (None, "numpy", "math", "mpmath", "sympy")  # None: lambdify's default
INPUTS = (-30.0, -3.5, -1.0, -1e-8, -1e-300, 0.0, 1e-300, 1e-8, 0.5, 2.0, 30.0)

SHAPES = {
    "alone": lambda o: o(X),
    "square": lambda o: o(X) ** 2,
    "in_sqrt": lambda o: sp.sqrt(o(X) ** 2 + 1),
    "quotient": lambda o: o(X) / sp.sqrt(o(X) ** 2 + 1),  # the fuzz test's finding
    "in_exp": lambda o: sp.exp(o(X)),
    "sum": lambda o: o(X) + X,
    "product": lambda o: 3 * o(X) * X,
    "negated": lambda o: -o(X) / 2,
    "power": lambda o: (1 + o(X) ** 2) ** sp.Rational(-3, 2),
    "nested": lambda o: o(o(X)),
    "two": lambda o: o(X) * o(-X) - o(X / 2),
}


def apply(op: type[_Op]):
    extra = EXTRA.get(op.__name__, (sp.Rational(3, 10),) * (min(op.nargs) - 1))
    return lambda z: op(z, *extra)


def expanded(expr: sp.Expr) -> sp.Expr:
    """``expr`` in elementary functions: expand_ops until no op is left (an op of an op rebuilt
    from its expanded argument can come back as another op, sigmoid(-z) as 1 - sigmoid(z))."""
    for _ in range(10):
        if not expr.atoms(_Op):
            return expr
        expr = ops.expand_ops(expr)
    raise AssertionError(f"ops left after expansion: {expr}")


def reference(expr: sp.Expr, x: float) -> float:
    """``expr`` at x through its definitions, by SymPy's own arithmetic: x is a Float of 1000
    digits (exactly the float x), so every cancellation (e^x - 1 at x = -1e-300, once more in
    elu(elu(x))) keeps hundreds of digits and each Piecewise condition has a number to compare."""
    value = expanded(expr).subs(X, sp.Float(x, 1000)).evalf(30)
    assert value.is_real, value
    return float(value)


def value(f, x: float, module) -> float:
    got = f(x)
    if module == "sympy":  # an expression of SymPy numbers, ops among them: its value
        got = sp.N(got, 30)
    return float(got)


def close(got: float, want: float, scale: float = 0.0) -> bool:
    return math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-300 + 1e-15 * scale)


def lambdify(expr, module):
    return sp.lambdify([X], expr) if module is None else sp.lambdify([X], expr, modules=module)


def test_every_op_is_enumerated():
    assert {c.__name__ for c in OP_CLASSES} >= set(ops.OPS)


@pytest.mark.parametrize("module", MODULES, ids=str)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", OP_CLASSES, ids=lambda c: c.__name__)
def test_op_in_expression(op, shape, module):
    expr = SHAPES[shape](apply(op))
    f = lambdify(expr, module)
    bad = [(x, got, want) for x in INPUTS
           if not close(got := value(f, x, module), want := reference(expr, x))]
    assert not bad, f"{expr} with modules={module!r}: (x, got, want) {bad}\n{inspect.getsource(f)}"


@pytest.mark.parametrize("module", (None, "numpy"), ids=str)
@pytest.mark.parametrize("op", OP_CLASSES, ids=lambda c: c.__name__)
def test_op_on_arrays(op, module):
    expr = SHAPES["quotient"](apply(op)) + SHAPES["nested"](apply(op))
    got = lambdify(expr, module)(np.array(INPUTS))
    np.testing.assert_allclose(got, [reference(expr, x) for x in INPUTS], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("module", ("numpy", "math", "mpmath"))
@pytest.mark.parametrize("form", AFTER_EXP, ids=lambda c: c.__name__)
def test_after_exp_forms_fail_loudly(form, module):
    """The codegen-only forms that take e^-|a| have no formula of their own: a call to them
    fails by name, it never returns a number."""
    args = (X, *[sp.Rational(3, 10)] * (min(form.nargs) - 2), sp.exp(-sp.Abs(X)))
    f = sp.lambdify([X], 1 + form(*args) ** 2, modules=module)
    with pytest.raises(NameError, match=form.__name__):
        f(0.5)


# Random small expressions of the ops and elementary functions that stay real and finite.
UNARY = [*(apply(op) for op in OP_CLASSES), sp.sin, sp.cos, sp.tanh, sp.atan, sp.Abs, sp.erf,
         lambda e: sp.exp(-e ** 2), lambda e: sp.sqrt(1 + e ** 2), lambda e: sp.log(1 + e ** 2)]
BINARY = [sp.Add, sp.Mul, lambda a, b: a / (1 + b ** 2), lambda a, b: sp.Max(a, b), lambda a, b: a - b,
          lambda a, b: a ** 2 * b]
LEAVES = st.one_of(st.just(X), st.sampled_from([sp.Integer(-2), sp.Rational(1, 3), sp.Integer(3)]),
                   st.just(-X), st.just(2 * X))
EXPRS = st.recursive(
    LEAVES,
    lambda kids: st.one_of(st.builds(lambda f, e: f(e), st.sampled_from(UNARY), kids),
                           st.builds(lambda f, a, b: f(a, b), st.sampled_from(BINARY), kids, kids)),
    max_leaves=5,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=EXPRS, x=st.sampled_from(INPUTS[1:-1]) | st.floats(-8, 8),
       module=st.sampled_from(MODULES))
def test_random_expressions(expr, x, module):
    assume(expr.has(X))
    want = reference(expr, x)
    # the size of the largest intermediate: float64 may lose ~1e-16 of it when terms cancel
    scale = max(abs(reference(e, x)) for e in sp.preorder_traversal(expr) if e.is_Atom or e.has(X))
    assume(math.isfinite(want) and scale < 1e100)
    f = lambdify(expr, module)
    got = value(f, x, module)
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12 * (1 + scale)), (
        f"{expr} at x={x!r}, modules={module!r}: got {got}, want {want}\n{inspect.getsource(f)}")
