"""log(1 − u) forms keep their digits in every compiled function (value, value_and_grad, hvp).

CSE shares the log's argument differently between the value and the gradient kernels: behind a
temporary and a factor (log(−t0) with t0 = p − 1, log(t2/2) with t2 = 1 + erf(u)) the accurate
forms were missed, so ``value_and_grad`` gave −log(1 − e^(−λt)) 1.1e-7 off at λt = 1e-11 where
``value`` was exact, and log(1 − cos a) −inf at a = 1e-9. The oracle is the expression as
written, in mpmath at 60 digits."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad as sg

a, b, t, y = sp.symbols("a b t y", real=True)

CASES = [  # (name, expression in a and b (b multiplies, so d/db is the log itself), points for a)
    ("log1mexp", -b * sp.log(1 - sp.exp(-a * t)), [1e-11, 1e-5, 0.5, 25.0, 700.0]),
    ("bernoulli", -b * (y * sp.log(a) + (1 - y) * sp.log(1 - a)), [1e-14, 1e-10, 1e-8, 0.3]),
    ("one_minus_square", b * sp.log(1 - a**2), [1e-12, 1e-7, 0.5]),
    ("one_minus_cos", b * sp.log(1 - sp.cos(a)), [1e-9, 1e-5, 2.0]),
    ("log_normal_cdf", b * sp.log((1 + sp.erf(a / sp.sqrt(2))) / 2), [-5.0, 0.0, 3.0, 8.0, 8.3]),
]


@pytest.fixture(scope="module")
def compiled():
    return {name: sg.compile(e, [a, b], [t, y], on_nonfinite="raise") for name, e, _ in CASES}


@pytest.mark.parametrize("name, expr, points", CASES, ids=[c[0] for c in CASES])
def test_every_kernel_keeps_the_digits_of_a_log_of_one_minus(compiled, name, expr, points):
    f = compiled[name]
    data = (np.array([1.0]), np.array([0.0]))
    fn = sp.lambdify((a, b, t, y), expr, "mpmath")
    dfn = sp.lambdify((a, b, t, y), sp.diff(expr, a), "mpmath")
    for pa in points:
        theta = np.array([pa, 1.0])
        with mpmath.workdps(60):
            want = float(fn(mpmath.mpf(pa), 1, 1, 0))
            want_da = float(dfn(mpmath.mpf(pa), 1, 1, 0))
        value, grad = f.value_and_grad(theta, *data)
        for got in (f.value(theta, *data), value, grad[1]):  # d/db is the value itself
            assert got == pytest.approx(want, rel=1e-14, abs=1e-300), (name, pa)
        assert grad[0] == pytest.approx(want_da, rel=1e-12), (name, pa)


@pytest.mark.parametrize("expr", [1 - sp.exp(-a - b * t), sp.exp(a + b * t) - 1, 2 - 2 * sp.exp(a - b * t)],
                         ids=["1-exp(-sum)", "exp(sum)-1", "2-2exp"])
def test_one_minus_an_exponential_of_a_sum_is_expm1_in_every_kernel(expr):
    # dividing a term by e^u left e^(−u)·e^u uncancelled for a sum u, so the pair was not found: value()
    # was 4.7e-6 off at a = 1e-12 while value_and_grad was exact
    f = sg.compile(expr, [a, b], [t])
    theta, data = np.array([1e-12, 3e-13]), np.array([1.5])
    with mpmath.workdps(60):
        want = float(sp.lambdify((a, b, t), expr, "mpmath")(mpmath.mpf(1e-12), mpmath.mpf(3e-13), mpmath.mpf(1.5)))
    for got in (f.value(theta, data), f.value_and_grad(theta, data)[0], f.python.value(theta, data)):
        assert got == pytest.approx(want, rel=1e-14)
