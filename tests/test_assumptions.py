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
    with pytest.raises(AssumptionError):
        f.value_and_grad([2.0], x=np.array([0.0]))  # 0 is not positive; by keyword too


@pytest.mark.parametrize("kind,good,bad", [
    ("nonnegative", [0.0, 2.0], [-1e-300]), ("negative", [-1.0], [0.0]), ("nonpositive", [0.0, -1.0], [0.5]),
    ("nonzero", [-1.0, 2.0], [0.0]), ("integer", [-2.0, 3.0], [0.5]),
])
def test_each_declared_assumption(kind, good, bad):
    x = sp.Symbol("x", **{kind: True})
    f = compiled(a * x + a**2, [a], [x])
    f.value([1.0], np.array(good))
    with pytest.raises(AssumptionError, match=f"{kind}=True"):
        f.value([1.0], np.array(bad))


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
