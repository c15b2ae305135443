"""The worked examples of the lecture notes (seed 003), reproduced by ``explain``.

Simple example: J = cos(sin(x**2) + 3*x**2), forward trace t, u1, u2, u and the adjoint
steps in the notes' order. Case 1: logistic regression, whose gradient is the textbook
x_j*(sigmoid(a) - y*). Plus the errors raised on unsupported input.
"""

from __future__ import annotations

import pytest
import sympy as sp

from symgrad import explain, grad
from symgrad.errors import NonScalarLossError, SymgradError, UnsupportedFunctionError
from symgrad.lang.ops import expand_ops, sigmoid

X = sp.Symbol("x", real=True)
J_SIMPLE = sp.cos(sp.sin(X**2) + 3 * X**2)
NAMES = {X**2: "t", sp.sin(X**2): "u1", 3 * X**2: "u2", sp.sin(X**2) + 3 * X**2: "u"}


def section(text: str, title: str) -> list[str]:
    """The stripped lines of one section of a printed Derivation."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title)) + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        out.append(line.strip())
    return out


@pytest.fixture(scope="module")
def simple():
    return explain(J_SIMPLE, X, names=NAMES)


def test_simple_forward_trace(simple):
    forward = section(str(simple), "Forward")
    for line in ("t = x**2", "u1 = sin(t)", "u2 = 3*t", "u = u1 + u2", "J = cos(u)"):
        assert line in forward
    assert len(forward) == 5
    assert forward[-1] == "J = cos(u)"
    # every node is defined before it is used
    assert forward.index("t = x**2") < min(forward.index("u1 = sin(t)"), forward.index("u2 = 3*t"))
    assert max(forward.index("u1 = sin(t)"), forward.index("u2 = 3*t")) < forward.index("u = u1 + u2")


def test_simple_backward_steps_in_order(simple):
    assert section(str(simple), "Backward") == [
        "∂J/∂u += -sin(u)",
        "∂J/∂u1 += ∂J/∂u * ∂u/∂u1,   ∂u/∂u1 = 1",
        "∂J/∂u2 += ∂J/∂u * ∂u/∂u2,   ∂u/∂u2 = 1",
        "∂J/∂t += ∂J/∂u1 * ∂u1/∂t,   ∂u1/∂t = cos(t)",
        "∂J/∂t += ∂J/∂u2 * ∂u2/∂t,   ∂u2/∂t = 3",
        "∂J/∂x += ∂J/∂t * ∂t/∂x,   ∂t/∂x = 2*x",
    ]


def test_simple_result(simple):
    assert section(str(simple), "Result") == ["∂J/∂x = -2*x*(cos(x**2) + 3)*sin(3*x**2 + sin(x**2))"]
    assert simple.gradients == [grad(J_SIMPLE, X)]
    assert "Conventions at kinks" not in str(simple)
    assert not simple.rules


def test_simple_latex(simple):
    tex = simple.latex()
    assert tex.startswith("\\begin{aligned}") and tex.endswith("\\end{aligned}")
    assert r"\frac{\partial J}{\partial u_{1}}" in tex
    assert r"\frac{\partial J}{\partial u_{2}}" in tex
    assert r"\frac{\partial u_{1}}{\partial t} = \cos{\left(t \right)}" in tex
    assert simple._repr_latex_() == "$$" + tex + "$$"


def test_simple_gradient_equals_sympy():
    assert sp.simplify(grad(J_SIMPLE, X) - sp.diff(J_SIMPLE, X)) == 0


def test_explain_with_non_real_symbols_and_names():
    x = sp.Symbol("x")  # not declared real: names are matched after realify
    d = explain(sp.cos(sp.sin(x**2) + 3 * x**2), x, names={x**2: "t", sp.sin(x**2): "u1"})
    forward = section(str(d), "Forward")
    assert "t = x**2" in forward and "u1 = sin(t)" in forward


# -- Case 1: logistic regression, D = 3 ---------------------------------------------------

D = 3
THETA = sp.symbols(f"theta0:{D}", real=True)
XS = sp.symbols(f"x0:{D}", real=True)
Y_STAR = sp.Symbol("y*", real=True)
A = sum(t * x for t, x in zip(THETA, XS, strict=True))
Y_HAT = 1 / (1 + sp.exp(-A))
NLL = -(Y_STAR * sp.log(Y_HAT) + (1 - Y_STAR) * sp.log(1 - Y_HAT))


@pytest.fixture(scope="module")
def logistic():
    return explain(NLL, list(THETA), names={A: "a"})


def test_logistic_result_is_textbook(logistic):
    for j in range(D):
        expected = XS[j] * (sigmoid(A) - Y_STAR)
        assert logistic.gradients[j] == expected
        assert grad(NLL, THETA[j]) == expected
    result = section(str(logistic), "Result")
    assert result == [f"∂J/∂theta{j} = x{j}*(-y* + sigmoid({A}))" for j in range(D)]


def test_logistic_steps(logistic):
    text = str(logistic)
    backward = section(text, "Backward")
    assert backward[0] == "∂J/∂a += -y* + sigmoid(a)"
    for j in range(D):
        assert f"∂J/∂theta{j} += ∂J/∂v{j + 1} * ∂v{j + 1}/∂theta{j},   ∂v{j + 1}/∂theta{j} = x{j}" in backward
    assert "a = v1 + v2 + v3" in section(text, "Forward")
    assert section(text, "Forward")[-1] == "J = bce_logits(a, y*)"
    assert {"sigmoid", "log-sigmoid", "bce-logits"} <= set(logistic.rules)
    assert text.startswith("Stabilised before differentiating (sigmoid, log-sigmoid, bce-logits):")


def test_logistic_gradient_equals_naive_derivative():
    at = {
        THETA[0]: sp.Rational(1, 3),
        THETA[1]: -2,
        THETA[2]: sp.Rational(5, 4),
        XS[0]: 2,
        XS[1]: sp.Rational(-1, 2),
        XS[2]: 3,
        Y_STAR: sp.Rational(1, 4),
    }
    for j in range(D):
        naive = sp.diff(NLL, THETA[j])
        got = grad(NLL, THETA[j]).xreplace(at)
        assert abs(expand_ops(got - naive.xreplace(at)).evalf(50)) < 1e-45


# -- errors ----------------------------------------------------------------------------


def test_unsupported_function_names_it():
    foo = sp.Function("foo")
    with pytest.raises(UnsupportedFunctionError, match="foo"):
        grad(foo(X), X)
    with pytest.raises(UnsupportedFunctionError, match="foo"):
        explain(sp.sin(foo(X)) + X, X)


def test_unsupported_function_is_a_symgrad_error():
    with pytest.raises(SymgradError):
        grad(sp.Function("foo")(X) * X, X)
    with pytest.raises(ValueError):  # also a ValueError, for callers that catch those
        grad(sp.Function("foo")(X) * X, X)


def test_matrix_expression_is_non_scalar():
    W = sp.MatrixSymbol("W", 2, 2)
    with pytest.raises(NonScalarLossError):
        grad(W * W, X)
    with pytest.raises(NonScalarLossError):
        grad(sp.Matrix([[X, X**2]]), X)


def test_one_by_one_matrix_is_a_scalar():
    assert grad(sp.Matrix([[X**3]]), X) == 3 * X**2


def test_differentiating_by_a_non_symbol_is_an_error():
    with pytest.raises(SymgradError):
        grad(X**2, X**2)


def test_gradient_of_non_real_symbol_is_in_the_callers_symbol():
    x = sp.Symbol("x")
    g = grad(x**2, x)
    assert g.subs(x, 3) == 6
