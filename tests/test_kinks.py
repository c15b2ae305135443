"""Derivatives at kinks follow fixed conventions (those of PyTorch and JAX), not SymPy's
Heaviside(0) = 1/2, and ``explain`` prints the convention it used."""

from __future__ import annotations

import numpy as np
import sympy as sp

import symgrad as sg
from symgrad import explain, grad
from symgrad.lang.ops import KINK_CONVENTIONS, elu, leaky_relu, relu

X = sp.Symbol("x", real=True)
ALPHA = sp.Symbol("alpha", positive=True)


def at(e: sp.Expr, value) -> sp.Expr:
    return e.subs(X, value)


def test_relu_derivative_at_zero_is_zero():
    g = grad(relu(X), X)
    assert at(g, 0) == 0
    assert at(g, sp.Rational(1, 10**9)) == 1
    assert at(g, -sp.Rational(1, 10**9)) == 0
    assert not g.has(sp.Heaviside, sp.DiracDelta)


def test_relu_derivative_at_zero_inside_a_chain():
    # relu(x**3 - x) has kinks at -1, 0 and 1; the adjoint through it is 0 there
    g = grad(relu(X**3 - X), X)
    for k in (-1, 0, 1):
        assert at(g, k) == 0
    assert at(g, 2) == 11


def test_abs_derivative_is_sign_with_sign0_zero():
    g = grad(sp.Abs(X), X)
    assert g == sp.sign(X)
    assert at(g, 0) == 0
    assert at(g, 3) == 1
    assert at(g, -3) == -1


def test_abs_of_non_real_symbol_is_sign():
    # symbols not declared real are made real, so no re/im terms and no x/Abs(x)
    x = sp.Symbol("x")
    g = grad(sp.Abs(x), x)
    assert not g.has(sp.re, sp.im)
    assert g.func == sp.sign


def test_max_x_0_derivative_at_zero_is_zero():
    assert at(grad(sp.Max(X, 0), X), 0) == 0


def test_max_derivative_away_from_tie():
    g = grad(sp.Max(X, 0), X)
    assert at(g, 2) == 1
    assert at(g, -2) == 0
    assert not g.has(sp.Heaviside)


def test_leaky_relu_derivative_at_zero_is_alpha():
    g = grad(leaky_relu(X, ALPHA), X)
    assert at(g, 0) == ALPHA
    assert at(g, 1) == 1
    assert at(g, -1) == ALPHA
    assert at(grad(leaky_relu(X, sp.Rational(1, 100)), X), 0) == sp.Rational(1, 100)


def test_elu_derivative_at_zero_is_alpha():
    g = grad(elu(X, ALPHA), X)
    assert at(g, 0) == ALPHA
    assert at(g, 1) == 1
    assert sp.simplify(at(g, -1) - ALPHA * sp.exp(-1)) == 0
    assert at(grad(elu(X, 1), X), 0) == 1


def test_explain_prints_relu_convention():
    text = str(explain(relu(X) * X, X))
    assert "relu'(0) = 0" in text
    assert KINK_CONVENTIONS["relu"] in text
    last = text.splitlines()[-1]
    assert last.startswith("Conventions at kinks:") and "relu'(0) = 0" in last


def test_explain_prints_abs_convention():
    text = str(explain(sp.Abs(X), X))
    assert "Conventions at kinks: " + KINK_CONVENTIONS["Abs"] in text


def test_explain_prints_leaky_relu_and_elu_conventions():
    text = str(explain(leaky_relu(X, ALPHA) + elu(X, ALPHA), X))
    assert KINK_CONVENTIONS["leaky_relu"] in text
    assert KINK_CONVENTIONS["elu"] in text


def test_explain_without_kinks_prints_no_convention():
    assert "Conventions at kinks" not in str(explain(sp.sin(X) * X, X))


def test_explain_prints_max_convention():
    assert KINK_CONVENTIONS["Max"] in str(explain(sp.Max(X, 0), X))


def test_max_of_several_arguments_ties_go_to_the_later_one():
    # arguments in sort order, constants last: a tie between x and y goes to y; with 0, to 0
    y = sp.Symbol("y", real=True)
    gx, gy = grad(sp.Max(X, y, 0), [X, y])
    assert (gx.subs({X: 1, y: 1}), gy.subs({X: 1, y: 1})) == (0, 1)
    assert (gx.subs({X: 2, y: 1}), gy.subs({X: 2, y: 1})) == (1, 0)
    assert (gx.subs({X: 0, y: -1}), gy.subs({X: 0, y: -1})) == (0, 0)
    gmin = grad(sp.Min(X, y), X)
    assert (gmin.subs({X: 1, y: 1}), gmin.subs({X: 0, y: 1}), gmin.subs({X: 2, y: 1})) == (0, 1, 0)


def test_nested_max_and_min_compile_quickly_and_exactly():
    """Found by the corpus (seed 821): as nested Piecewise, SymPy's evaluation of conditions that
    hold other Piecewises is exponential in the nesting, and this compile never finished."""
    import time

    import numpy as np

    import symgrad as sg

    f_, o, i = sp.symbols("from or is", real=True)
    e = sp.Max(0, elu(sp.Max(sp.Rational(1, 3), -3 * f_ / 2, -3 * o / 2), sp.Rational(1, 2)),
               sp.Min(sp.Rational(1, 3), f_, i - 2 * o))
    start = time.perf_counter()
    f = sg.compile(e, wrt=[f_, o], data=[i], backend="python")
    assert time.perf_counter() - start < 20  # ~0.1 s here; minutes (never finished) before
    rows, theta = np.array([0.41, 1.13, 1.62]), np.array([-0.5, -0.6])
    v, g = f.value_and_grad(theta, rows)
    # the inner Max is -3*or/2 = 0.9 (elu(0.9) = 0.9), above the Min (-0.5) and 0
    np.testing.assert_allclose([v, *g], [0.9, 0.0, -1.5], rtol=1e-14)
    h = 1e-6
    fd = [(f.value(theta + h * e, rows) - f.value(theta - h * e, rows)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(g, fd, atol=1e-6)


def test_the_last_branch_not_taken_contributes_zero():
    # SymPy differentiates a two-branch Piecewise into Piecewise((0, c), (1, True)) times the last
    # branch's derivative: sqrt(-x)·0 at x > 0 was NaN (a NaN gradient of |x|**(3/2) written
    # piecewise, everywhere in the first branch). Oracle: sympy.diff, evaluated exactly.
    y = sp.Symbol("y", real=True)
    cases = [sp.Piecewise((X, X > 0), (-X, True)) ** sp.Rational(3, 2) * y,
             sp.Piecewise((sp.sqrt(X), X > 0), (sp.sqrt(-X), True)) * y,
             sp.Piecewise((sp.log(X) * y, X > 0), (sp.log(-X) * y**2, True))]
    for e in cases:
        f = sg.compile(e, [X, y], reduction="sum", backend="python", on_nonfinite="raise")
        for xv in (4.0, -4.0):
            at_ = {X: xv, y: 2.0}
            want = [float(sp.diff(e, v).subs(at_)) for v in (X, y)]
            np.testing.assert_allclose(f.grad(np.array([xv, 2.0])), want, rtol=1e-14)
            hess = [[float(sp.diff(e, u, v).subs(at_)) for v in (X, y)] for u in (X, y)]
            np.testing.assert_allclose(f.hessian(np.array([xv, 2.0])), hess, rtol=1e-14, atol=1e-300)


def test_a_network_map_of_max_ties_as_the_formula_route_does():
    """Max/Min of two non-constant arguments inside an activation (a leaky ReLU written Max(z, z/100))
    take the tie convention's branch at the tie, as sg.compile's scalar route does; SymPy's
    Heaviside pair, made strict, gave 0 there (neither slope). Oracle: the one-sided slopes."""
    q = sp.Symbol("q", real=True)
    W, b, x = sp.MatrixSymbol("W", 1, 1), sp.MatrixSymbol("b", 1, 1), sp.MatrixSymbol("x", 1, 1)
    for body in (sp.Max(q, q / 100), sp.Max(q, 2 * q), sp.Min(q, 3 * q), sp.Max(q, -q, q / 2)):
        slopes = {float(sp.diff(body, q).subs(q, s)) for s in (sp.Rational(1, 10**6), -sp.Rational(1, 10**6))}
        L = sg.msum(sg.elementwise(sp.Lambda(q, body), W * x + b))
        f = sg.compile(L, [W, b], [x], backend="python")
        _, g = f.value_and_grad([np.zeros((1, 1)), np.zeros((1, 1))], np.ones((1, 1)))  # z = 0: the tie
        scalar = sg.compile(body, wrt=[q], reduction="none", backend="python").pointwise(np.array([0.0]))[1]
        assert g[1].item() in slopes and g[1].item() == scalar[0], body
