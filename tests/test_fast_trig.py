"""Generated formula code uses vecmath's sin/cos and falls back to libm beyond TRIG_MAX.

vm.sin_fast/cos_fast are exact only for |x| <= 2^26; the generated loop counts arguments
beyond that and reruns with libm. These tests put such arguments in the data and check
the Numba results against NumPy and against the Python reference path.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.native import vecmath

pytestmark = pytest.mark.numba

a, t = sp.symbols("a t", real=True)
MODEL = sp.sin(a * t) + sp.cos(t * t)


@pytest.fixture(scope="module")
def reduced():
    return sg.compile(MODEL, wrt=[a], data=[t])


@pytest.fixture(scope="module")
def pointwise():
    return sg.compile(sp.cos(sp.sin(a**2) + 3 * a**2), wrt=[a], reduction="none")


def _expected(theta, T):
    value = np.mean(np.sin(theta * T) + np.cos(T * T))
    grad = np.mean(T * np.cos(theta * T))
    return value, grad


@pytest.mark.parametrize("scale", [1.0, 1e5, 1e12])
def test_reduced_matches_numpy_at_any_argument(reduced, scale):
    T = np.linspace(-1.0, 1.0, 257) * scale  # scale 1e5: t*t is beyond TRIG_MAX
    value, grad = reduced.value_and_grad(np.array([0.7]), T)
    ev, eg = _expected(0.7, T)
    assert value == pytest.approx(ev, rel=1e-12, abs=1e-12)
    assert grad[0] == pytest.approx(eg, rel=1e-11, abs=1e-11 * scale)
    pv, pg = reduced.python.value_and_grad(np.array([0.7]), T)
    assert value == pytest.approx(pv, rel=1e-12, abs=1e-12) and grad[0] == pytest.approx(pg[0], rel=1e-11, abs=1e-11 * scale)


def test_pointwise_falls_back_only_where_needed(pointwise):
    x = np.array([0.3, -2.0, 1e4, 3.0])  # 3*x**2 = 3e8 > TRIG_MAX
    v, g = pointwise.pointwise(x)
    u = np.sin(x**2) + 3 * x**2
    np.testing.assert_allclose(v, np.cos(u), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(g, -2 * x * (np.cos(x**2) + 3) * np.sin(u), rtol=1e-9)
    small = np.linspace(-3, 3, 101)
    np.testing.assert_allclose(pointwise.pointwise(small)[0], np.cos(np.sin(small**2) + 3 * small**2), rtol=0, atol=4e-15)


def test_source_counts_arguments_and_keeps_a_libm_loop(reduced):
    src = reduced.source
    assert "vm.sin_fast(" in src and "huge +=" in src and "math.sin(" in src
    assert f"TRIG_MAX = F({vecmath.TRIG_MAX!r})" in src
