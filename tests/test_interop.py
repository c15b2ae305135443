"""Every expression symgrad returns works in plain SymPy: lambdify (numpy, math, scipy, mpmath
and the default modules), evalf, rewrite, diff and latex, for every op in ``ops.OPS``.

Values are checked against the op's primitive definition (``expand_ops``) evaluated by mpmath.
That reference is computed with guard digits: at |z| = 800 the definitions cancel (keeping
e^-800 in 1 + e^-800 takes ~350 digits, and the logistic loss is tried at a·x = ±1600), and a
reference must be right to the digits compared.
"""

from __future__ import annotations

import itertools
import math
import sys
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp
from sympy.printing.latex import LatexPrinter

import symgrad as sg
from symgrad.codegen.printer import NumbaPrinter
from symgrad.front.prepare import prepare
from symgrad.lang.ops import OPS, _Op, bce_logits, expand_ops, sigmoid

GUARD_DPS = 1000  # digits of the reference
MP_DPS = 50  # digits of the mpmath results checked
MP_REL = mpmath.mpf("1e-45")
F64_REL = 1e-15
F64_TINY = sys.float_info.min  # below it a result may underflow: an absolute error of ~1e-15·TINY is allowed

Z_VALUES = (-800.0, -40.0, -3.5, -1e-8, 0.0, 1e-8, 0.7, 3.5, 40.0, 800.0)
OTHER_VALUES = (0.0, 0.3, 1.0)  # y of bce_logits, α of leaky_relu and elu
ARGS = sp.symbols("z w v u", real=True)

FLOAT_MODULES = ("numpy", "scipy", "math", None)  # None: lambdify's default (scipy and numpy)
ARRAY_MODULES = ("numpy", "scipy", None)


def nargs(op: type[_Op]) -> int:
    return min(op.nargs)


def applied(op: type[_Op]) -> tuple[sp.Expr, tuple[sp.Symbol, ...]]:
    syms = ARGS[: nargs(op)]
    return op(*syms), syms


def points(op: type[_Op], first=Z_VALUES, other=OTHER_VALUES) -> list[tuple[float, ...]]:
    return list(itertools.product(first, *[other] * (nargs(op) - 1)))


def lambdify(syms, expr, module):
    return sp.lambdify(syms, expr) if module is None else sp.lambdify(syms, expr, module)


def reference(syms, expr: sp.Expr, vals) -> mpmath.mpf:
    """``expr`` through its primitive definitions, at GUARD_DPS digits."""
    prim = expand_ops(expr)
    assert not prim.atoms(_Op)
    f = sp.lambdify(syms, prim, "mpmath")
    with mpmath.workdps(GUARD_DPS):
        return mpmath.mpf(f(*[mpmath.mpf(v) for v in vals]))


def assert_close(got, ref: mpmath.mpf, rel, floor, what) -> None:
    with mpmath.workdps(GUARD_DPS):
        err = abs(mpmath.mpf(got) - ref)
        assert err <= rel * max(abs(ref), floor), f"{what}: got {got}, want {mpmath.nstr(ref, 20)}"


def assert_float_close(got, ref: mpmath.mpf, what, rel=F64_REL, floor=F64_TINY) -> None:
    got = float(got)
    assert math.isfinite(got), f"{what}: got {got}"
    assert_close(got, ref, rel, floor, what)


OP_IDS = list(OPS)


@pytest.fixture(params=OP_IDS)
def op(request) -> type[_Op]:
    return OPS[request.param]


# lambdify ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", FLOAT_MODULES, ids=str)
def test_lambdify_float_scalars(op, module):
    expr, syms = applied(op)
    f = lambdify(syms, expr, module)
    for vals in points(op):
        assert_float_close(f(*vals), reference(syms, expr, vals), f"{module} {op.__name__}{vals}")


@pytest.mark.parametrize("module", ARRAY_MODULES, ids=str)
def test_lambdify_numpy_arrays_never_overflow(op, module):
    # NumPy computes every branch of a Piecewise: none may overflow or make a NaN, even unused.
    expr, syms = applied(op)
    f = lambdify(syms, expr, module)
    pts = points(op)
    columns = [np.array(c) for c in zip(*pts)]
    with np.errstate(over="raise", invalid="raise", divide="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        out = np.broadcast_to(f(*columns), (len(pts),))
    for got, vals in zip(out, pts):
        assert_float_close(got, reference(syms, expr, vals), f"{module} {op.__name__}{vals}")


def test_lambdify_mpmath_at_50_digits(op):
    expr, syms = applied(op)
    f = sp.lambdify(syms, expr, "mpmath")
    for vals in points(op):
        with mpmath.workdps(MP_DPS):
            got = f(*[mpmath.mpf(v) for v in vals])
        assert_close(got, reference(syms, expr, vals), MP_REL, 0, f"mpmath {op.__name__}{vals}")


def test_lambdify_sympy_module_gives_the_op(op):
    expr, syms = applied(op)
    vals = [sp.Rational(7, 2)] * len(syms)
    assert sp.lambdify(syms, expr, "sympy")(*vals) == op(*vals)


def test_math_lambdify_of_sigmoid_never_calls_exp_of_a_large_number():
    f = sp.lambdify([ARGS[0]], sigmoid(ARGS[0]), "math")
    assert f(800.0) == 1.0
    assert f(-800.0) == 0.0
    assert f(-700.0) == pytest.approx(math.exp(-700.0), rel=F64_REL)


def test_numba_printer_still_prints_the_helpers(op):
    # "_pythoncode" is NumbaPrinter's printmethod too: it must keep printing calls to its helpers.
    expr, _ = applied(op)
    printer = NumbaPrinter()
    assert printer.doprint(expr) == f"{op.__name__}({', '.join(s.name for s in expr.args)})"
    assert op.__name__ in printer.helpers


# evalf, rewrite, diff, latex --------------------------------------------------------------------


def test_evalf_at_50_digits(op):
    expr, syms = applied(op)
    for vals in points(op):
        # exact arguments: with Float arguments SymPy evaluates the op on construction, at their precision
        got = op(*[sp.Rational(v) for v in vals]).evalf(MP_DPS)
        assert got.is_Number, got
        assert_close(str(got), reference(syms, expr, vals), MP_REL, 0, f"evalf {op.__name__}{vals}")


def test_rewrite_gives_the_definition(op):
    # sigmoid, softplus and bce_logits rewrite as exp; relu, leaky_relu and elu as Piecewise
    expr, _ = applied(op)
    assert expand_ops(expr) in (expr.rewrite(sp.exp), expr.rewrite(sp.Piecewise))


@pytest.mark.parametrize(("name", "target"), [
    ("sigmoid", sp.exp), ("softplus", sp.exp), ("bce_logits", sp.exp),
    ("relu", sp.Piecewise), ("leaky_relu", sp.Piecewise), ("elu", sp.Piecewise),
])
def test_rewrite_targets(name, target):
    expr, _ = applied(OPS[name])
    assert expr.rewrite(target) == expand_ops(expr)


def test_rewrite_reaches_nested_ops_and_their_arguments():
    z, w = ARGS[:2]
    expr = bce_logits(OPS["softplus"](-z), sigmoid(w))
    out = expr.rewrite(sp.exp)
    assert not out.atoms(_Op)
    assert out == expand_ops(expr)


def test_diff_of_derived_gradients(op):
    # sympy.diff through fdiff, twice, against sympy.diff of the primitive definitions
    expr, syms = applied(op)
    pts = points(op, first=(-3.5, -0.7, 0.7, 3.5), other=(0.3, 1.0))
    for v1, v2 in itertools.product(syms, repeat=2):
        gradient = sp.diff(expr, v1)
        cases = {
            "first": (gradient, sp.diff(expand_ops(expr), v1)),
            "second": (sp.diff(gradient, v2), sp.diff(expand_ops(gradient), v2)),
        }
        for kind, (ours, primitive) in cases.items():
            f = sp.lambdify(syms, ours, "mpmath")
            for vals in pts:
                with mpmath.workdps(MP_DPS):
                    got = f(*[mpmath.mpf(v) for v in vals])
                assert_close(got, reference(syms, primitive, vals), MP_REL, 1,
                             f"{kind} d/d{v1} d/d{v2} {op.__name__}{vals}")


def test_latex_uses_the_ops_own_form(op):
    expr, _ = applied(op)
    assert "_latex" in vars(op)
    assert sp.latex(expr) == expr._latex(LatexPrinter())


# a gradient symgrad derived -------------------------------------------------------------------

A, X, Y = sp.symbols("a x y", real=True)
LOGISTIC_LOSS = -(Y * sp.log(1 / (1 + sp.exp(-A * X))) + (1 - Y) * sp.log(1 - 1 / (1 + sp.exp(-A * X))))
LOGISTIC_POINTS = list(itertools.product((-800.0, -3.5, 0.7, 800.0), (1.0, -2.0), OTHER_VALUES))


def logistic_cases():
    """(name, what symgrad returns, the same in primitives)"""
    (gradient,) = sg.grad(LOGISTIC_LOSS, [A])
    stable_loss = prepare(LOGISTIC_LOSS, [A])[0]
    assert stable_loss.has(bce_logits)
    assert gradient.has(sigmoid)
    return [("gradient", gradient, sp.diff(LOGISTIC_LOSS, A)), ("loss", stable_loss, LOGISTIC_LOSS)]


def _scale(x: float, y: float) -> float:
    # x·(σ(a·x) − y) subtracts numbers of size |x|(1 + |y|): its error is relative to that
    return abs(x) * (1 + abs(y))


@pytest.mark.parametrize("module", FLOAT_MODULES, ids=str)
def test_lambdify_logistic_regression(module):
    for name, ours, primitive in logistic_cases():
        f = lambdify([A, X, Y], ours, module)
        for vals in LOGISTIC_POINTS:
            ref = reference([A, X, Y], primitive, vals)
            assert_float_close(f(*vals), ref, f"{module} {name}{vals}", floor=_scale(*vals[1:]))


def test_lambdify_logistic_regression_mpmath():
    for name, ours, primitive in logistic_cases():
        f = sp.lambdify([A, X, Y], ours, "mpmath")
        for vals in LOGISTIC_POINTS:
            with mpmath.workdps(MP_DPS):
                got = f(*[mpmath.mpf(v) for v in vals])
            ref = reference([A, X, Y], primitive, vals)
            assert_close(got, ref, MP_REL, _scale(*vals[1:]), f"mpmath {name}{vals}")


def test_diff_of_the_logistic_gradient():
    (gradient,) = sg.grad(LOGISTIC_LOSS, [A])
    ours = sp.lambdify([A, X, Y], sp.diff(gradient, A), "mpmath")
    for vals in itertools.product((-3.5, 0.7), (1.0, -2.0), OTHER_VALUES):
        with mpmath.workdps(MP_DPS):
            got = ours(*[mpmath.mpf(v) for v in vals])
        for primitive in (sp.diff(expand_ops(gradient), A), sp.diff(LOGISTIC_LOSS, A, 2)):
            assert_close(got, reference([A, X, Y], primitive, vals), MP_REL, 1, f"d2/da2 {vals}")
