"""Declared assumptions are checked at call time (issue 19): SymPy simplifies with them, so a
value that breaks one would otherwise give a wrong number without a word."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import AssumptionError, DataError

a = sp.Symbol("a", real=True)


def compiled(expr, wrt, data):
    return sg.compile(expr, wrt=wrt, data=data, backend="python")


def test_positive_data_folded_by_sympy_is_refused_not_wrong():
    x = sp.Symbol("x", positive=True)
    f = compiled(a * sp.sqrt(x**2), [a], [x])  # SymPy folds sqrt(x**2) to x
    assert f.value([2.0], np.array([3.0, 1.0])) == pytest.approx(4.0)
    with pytest.raises(AssumptionError, match=r"x is declared positive=True .* holds -3 \(at index 1\)") as err:
        f.value([2.0], np.array([1.0, -3.0]))
    assert isinstance(err.value, DataError) and "Fix" in str(err.value)
    with pytest.raises(AssumptionError, match="nonnegative=True if 0 is allowed"):
        f.value_and_grad([2.0], x=np.array([0.0]))  # 0 is not positive (an optimizer's bound tries it); by keyword too


@pytest.mark.parametrize("kind,good,bad", [
    ("nonnegative", [0.0, 2.0], [-1e-300]), ("negative", [-1.0], [0.0]), ("nonpositive", [0.0, -1.0], [0.5]),
    ("nonzero", [-1.0, 2.0], [0.0]), ("integer", [-2.0, 3.0], [0.5]), ("even", [-2.0, 0.0, 4.0], [3.0]),
    ("odd", [-3.0, 1.0], [2.0]), ("zero", [0.0], [1e-300]), ("extended_positive", [1.0], [0.0]),
    ("extended_nonnegative", [0.0], [-1.0]), ("extended_negative", [-1.0], [0.0]),
    ("extended_nonpositive", [0.0], [1.0]), ("extended_nonzero", [-1.0], [0.0]),
    # SymPy simplifies with these too (Abs(k - 2) = k - 2 for a prime k): they went unchecked
    ("prime", [2.0, 3.0, 7919.0], [1.0]), ("prime", [5.0], [9.0]), ("composite", [4.0, 9.0], [5.0]),
    ("composite", [4.0], [1.0]), ("noninteger", [2.5, -0.1], [2.0]),
])
def test_each_declared_assumption(kind, good, bad):
    x = sp.Symbol("x", **{kind: True})
    f = compiled(a * x + a**2, [a], [x])
    f.value([1.0], np.array(good))
    # an extended_ symbol (±inf allowed) is compiled as a real one: extended_positive as positive
    with pytest.raises(AssumptionError, match=f"{kind.removeprefix('extended_')}=True"):
        f.value([1.0], np.array(bad))


def test_what_sympy_derives_from_a_declaration_is_checked_too():
    # even, odd and extended_positive were declared but not checked, and SymPy folded with them:
    # Abs(x)**k is x**k for an even k, (-1)**m is -1 for an odd m, sqrt(p**2) is p for p > 0
    x = sp.Symbol("x", real=True)
    k, m = sp.Symbol("k", even=True), sp.Symbol("m", odd=True)
    f = compiled(sp.Abs(x)**k, [x], [k])
    assert f.value([-3.0], np.array([2.0])) == pytest.approx(9.0)
    with pytest.raises(AssumptionError, match="k is declared even=True .*holds 3"):
        f.value_and_grad([-3.0], np.array([3.0]))
    g = compiled((-1)**m * x, [x], [m])
    with pytest.raises(AssumptionError, match="m is declared odd=True, so SymPy takes it to be nonzero.*holds 0"):
        g.grad([1.0], np.array([0.0]))
    with pytest.raises(AssumptionError, match="m is declared odd=True .*holds 2"):
        g.grad([1.0], np.array([2.0]))
    p = sp.Symbol("p", extended_positive=True)
    h = compiled(sp.sqrt(p**2) * x, [x, p], [])
    with pytest.raises(AssumptionError, match="parameter p holds -2"):
        h.value_and_grad([1.0, -2.0])


def test_pointwise_and_explain_check_the_declarations():
    p, x = sp.Symbol("p", positive=True), sp.Symbol("x", real=True)
    f = sg.compile(sp.sqrt(p**2) * x, wrt=[x, p], reduction="none", backend="python")
    vals, grads = f.pointwise(np.array([1.0]), np.array([2.0]))
    assert vals[0] == pytest.approx(2.0) and grads[0] == pytest.approx([2.0, 1.0])
    with pytest.raises(AssumptionError, match="parameter p holds -2"):
        f.pointwise(np.array([1.0]), np.array([-2.0]))
    with pytest.raises(AssumptionError, match="point at= p holds -2"):
        sg.explain(sp.sqrt(p**2) * x, [x, p], at={x: 1.0, p: -2.0})
    assert "∂J/∂x = p = 2" in str(sg.explain(sp.sqrt(p**2) * x, [x, p], at={x: 1.0, p: 2.0}))


def test_explain_prints_a_value_that_is_not_real_rounded_and_says_so():
    x, y = sp.symbols("x y", real=True)
    text = str(sg.explain(sp.log(x) * y, [x, y], at={x: -1.0, y: 2.0}))
    assert "∂J/∂y = log(x) ≈ 3.14159*I (not real)" in text and "∂J/∂x = y/x = -2" in text


def test_nan_data_breaks_a_sign_assumption():
    x = sp.Symbol("x", positive=True)
    with pytest.raises(DataError):
        compiled(a * x, [a], [x]).value([1.0], np.array([np.nan]))


def test_parameters_are_checked_too():
    s = sp.Symbol("s", positive=True)
    x = sp.Symbol("x", real=True)
    f = compiled(sp.log(s**2) * x + s**2, [s], [x])  # log(s**2) = 2 log(s) only for s > 0
    assert f.value([np.e], np.array([1.0])) == pytest.approx(2 + np.e**2)
    with pytest.raises(AssumptionError, match="parameter s holds -1"):
        f.grad([-1.0], np.array([1.0]))


def test_undeclared_symbols_cost_nothing_and_accept_anything():
    x = sp.Symbol("x", real=True)
    f = compiled(a * sp.sqrt(x**2), [a], [x])
    assert f._data_checks == [] and f._theta_checks == []
    assert f.value([2.0], np.array([-3.0, 1.0])) == pytest.approx(4.0)


@pytest.mark.parametrize("facts", [{"polar": True}, {"imaginary": True}, {"infinite": True},
                                   {"antihermitian": True, "nonzero": True}])
def test_symbols_that_are_no_real_number_are_refused(facts):
    """SymPy simplifies with them (sqrt(s**2) is s for a polar s, re(z) is 0 for an imaginary z): a
    real value gave numbers that are not the formula's (value 3.75 for 8.75), silently."""
    s = sp.Symbol("s", **facts)
    with pytest.raises(AssumptionError, match=r"^the symbol s is declared .*=True, but symgrad computes with "
                                              r"real numbers.*Fix: declare it real"):
        sg.compile(sp.sqrt(s**2) + 3 * sp.re(s) + s**2, wrt=[s], backend="python")
    with pytest.raises(AssumptionError):
        sg.grad(s**2, s)
