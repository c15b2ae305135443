"""Derivatives at kinks follow fixed conventions (those of PyTorch and JAX), not SymPy's
Heaviside(0) = 1/2, and ``explain`` prints the convention it used."""

from __future__ import annotations

import sympy as sp

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
