"""Exactness regressions: each finding of the exactness review, checked against the independent
oracle (tests/oracle.py: sympy.diff of the original expression in mpmath) on both backends.

Every case here returned a wrong number, or failed to compile, before the printer was fixed.
"""

from __future__ import annotations

import builtins
import keyword
import warnings

import numpy as np
import pytest
import sympy as sp
from oracle import Oracle, close
from scipy.optimize import least_squares, minimize

import symgrad as sg
from symgrad.errors import ShapeError, UnsupportedModelError

a, b, b2, x, x0, g, A = sp.symbols("a b b2 x x0 g A", real=True)
X = np.array([0.3, 1.1, 2.0, 2.7])
Y = np.array([0.5, -0.2, 1.3, 0.8])

# (name, expression, params, data, theta)
CASES = [
    ("negative power of a symbol", x + b**-2, [b], [x], [2.0]),
    ("gaussian peak", A * sp.exp(-(x - x0) ** 2 / (2 * g**2)), [A, x0, g], [x], [1.3, 1.2, 0.7]),
    ("lorentzian", A / (1 + ((x - x0) / g) ** 2), [A, x0, g], [x], [1.3, 1.2, 0.7]),
    ("power law with a compound exponent", A * x ** (2 * b2), [A, b2], [x], [1.5, 0.8]),
    ("reciprocal of a sum", 1 / (a * x + b), [a, b], [x], [1.5, 0.7]),
    ("atan2", sp.atan2(a * x, b), [a, b], [x], [1.5, 0.7]),
    ("log base 10", sp.log(a * x, 10), [a, b], [x], [1.5, 0.7]),
    ("nested division", a / (b / (x + a) - 1 / (b * x)), [a, b], [x], [0.4, 1.3]),
    ("negative powers of compound bases", (a * x + b) ** -3 + (a + x) ** -4 * b, [a, b], [x], [1.5, 0.7]),
    ("rational and symbolic exponents", (x**2 + a) ** sp.Rational(-3, 2) + (b + 2) ** (a * x - 1),
     [a, b], [x], [0.6, 0.9]),
]


def _check_formula(expr, params, data, theta, backend, dtype="float64", rtol=1e-10):
    """value, value_and_grad, grad, hvp and hessian of the mean of ``expr`` over samples, against the oracle."""
    loss = expr
    arrays = [X.astype(dtype)] if data else []
    f = sg.compile(loss, wrt=params, data=data, backend=backend, dtype=dtype)
    want_v, want_g, want_h = Oracle(loss, params, data).reduced(theta, [X] if data else [])
    v, grad = f.value_and_grad(theta, *arrays)
    close(v, want_v, rtol, "value returned with the gradient")
    close(f.value(theta, *arrays), want_v, rtol, "value")
    close(grad, want_g, rtol, "gradient")
    close(f.grad(theta, *arrays), want_g, rtol, "grad")
    vec = np.linspace(-1.0, 1.5, len(params))
    close(f.hvp(theta, vec, *arrays), want_h @ vec, rtol, "hvp")
    close(f.hessian(theta, *arrays), want_h, rtol, "hessian")


@pytest.mark.parametrize("name,expr,params,data,theta", CASES, ids=[c[0] for c in CASES])
def test_formula_matches_oracle_python(name, expr, params, data, theta):
    _check_formula(expr, params, data, theta, "python")


@pytest.mark.numba
def test_formulas_match_oracle_numba_both_dtypes():
    # All cases in one module per dtype (one Numba build each): a sum with its own parameters per case.
    exprs, params, theta = [], [], []
    for k, (_, expr, ps, _, th) in enumerate(CASES[:5]):
        fresh = [sp.Symbol(f"{p.name}_{k}", real=True) for p in ps]
        exprs.append(expr.xreplace(dict(zip(ps, fresh))))
        params += fresh
        theta += th
    total = sp.Add(*exprs)
    _check_formula(total, params, [x], theta, "numba")
    _check_formula(total, params, [x], theta, "numba", dtype="float32", rtol=2e-4)


def test_issue_example_value_is_right():
    f = sg.compile(x + b**-2, wrt=[b], data=[x], reduction="sum", backend="python")
    v, grad = f.value_and_grad([2.0], np.array([1.0]))
    assert v == pytest.approx(1.25, rel=1e-15) and grad[0] == pytest.approx(-0.25, rel=1e-15)


# -- names: a user may call a symbol anything ------------------------------------------------------
GENERATED = ["acc", "n", "i", "v", "F", "math", "np", "vm", "numba", "vecmath", "huge", "out", "grad_out",
             "value_out", "theta", "data_x", "t0", "t1", "p_a", "d_x", "g_p_a", "h_p_a", "v_p_a", "h_0_0",
             "radd", "pow2", "sign", "sigmoid", "jit", "prange", "TRIG_MAX", "value", "hvp", "_JIT"]
NAMES = sorted(set(GENERATED) | set(keyword.kwlist) | {n for n in dir(builtins) if not n.startswith("__")})


@pytest.mark.parametrize("chunk", range(0, len(NAMES), 12))
def test_any_name_matches_oracle(chunk):
    """Every name, as a parameter or as data, beside the name it could be confused with (name_)."""
    names = NAMES[chunk:chunk + 12]
    params = [sp.Symbol(n, real=True) for n in names[::2]]
    data = [sp.Symbol(n, real=True) for n in names[1::2]]
    data += [sp.Symbol(n + "_", real=True) for n in names]
    expr = sum((p * sp.exp(-q * d) - r) ** 2 + p**-2 for p, q, d, r in zip(params, data, data[1:], data[2:]))
    expr += sum(d * params[m % len(params)] ** 3 / (m + 1) for m, d in enumerate(data))  # every name used
    rng = np.random.default_rng(chunk)
    theta, rows = rng.uniform(0.5, 1.5, len(params)), [rng.uniform(0.1, 1.0, 3) for _ in data]
    f = sg.compile(expr, wrt=params, data=data, backend="python")
    want_v, want_g, want_h = Oracle(expr, params, data).reduced(theta, rows)
    v, grad = f.value_and_grad(theta, *rows)
    close([v, *grad], [want_v, *want_g], 1e-12, f"names {names}")
    vec = np.ones(len(params))
    close(f.hvp(theta, vec, *rows), want_h @ vec, 1e-12, f"names {names}")


@pytest.mark.numba
def test_clashing_and_unicode_names_under_numba():
    names = sp.symbols("acc n i v F math np vm lambda range huge out grad_out θ ℓ l", real=True)
    acc, n, i, v, F, math, np_, vm, lam, rng, huge, out, grad_out, th, ell, el = names
    expr = acc * sp.exp(-n * i) + v * F - math * np_ + vm / (lam + 3) + rng * huge + out**2 * grad_out + th * ell - el
    params = [acc, n, v, F, lam, th, ell, el]
    data = [i, math, np_, vm, rng, huge, out, grad_out]
    rows = [np.linspace(0.1, 1.0, 5) + k for k in range(len(data))]
    theta = np.linspace(0.2, 1.6, len(params))
    f = sg.compile(expr, wrt=params, data=data)
    want_v, want_g, want_h = Oracle(expr, params, data).reduced(theta, rows)
    v, grad = f.value_and_grad(theta, *rows)
    close([v, *grad], [want_v, *want_g], 1e-13, "clashing names")
    close(f.hvp(theta, np.ones(len(params)), *rows), want_h.sum(axis=1), 1e-13, "hvp")
    close(f.hessian(theta, *rows), want_h, 1e-13, "hessian")


# -- functions of parameters only ------------------------------------------------------------------
def test_rosenbrock_without_data_minimises_with_hvp():
    u, w = sp.symbols("u w", real=True)
    rosen = (1 - u) ** 2 + 100 * (w - u**2) ** 2
    f = sg.compile(rosen, wrt=[u, w], backend="python")
    assert f.value([1.0, 1.0]) == 0.0
    want_v, want_g, want_h = Oracle(rosen, [u, w], []).reduced([-1.2, 1.0], [])
    v, grad = f.value_and_grad([-1.2, 1.0])
    close([v, *grad], [want_v, *want_g], 1e-14, "rosenbrock")
    close(f.hessian([-1.2, 1.0]), want_h, 1e-14, "rosenbrock hessian")
    res = minimize(f.value, [-1.2, 1.0], jac=f.grad, hessp=f.hvp, method="Newton-CG", options={"xtol": 1e-12})
    assert res.success and np.allclose(res.x, [1.0, 1.0], atol=1e-8)
    with pytest.raises(ShapeError, match="expected 0 data"):
        f.value([1.0, 1.0], X)


# -- second order at any size ---------------------------------------------------------------------
def test_hvp_for_many_parameters_matches_oracle():
    cs = sp.symbols("c0:17", real=True)  # one more than dense Hessians are derived for
    model = sum(c * sp.cos((k + 1) * x) for k, c in enumerate(cs))
    loss = (sp.exp(model / 10) - x) ** 2
    f = sg.compile(loss, wrt=list(cs), data=[x], backend="python")
    theta = np.linspace(-0.5, 0.5, 17)
    vec = np.cos(np.arange(17))
    _, _, want_h = Oracle(loss, list(cs), [x]).reduced(theta, [X])
    close(f.hvp(theta, vec, X), want_h @ vec, 1e-12, "hvp with 17 parameters")
    with pytest.raises(UnsupportedModelError, match="f.hvp"):
        f.hessian(theta, X)


# -- residuals and their Jacobian -----------------------------------------------------------------
def test_residual_jacobian_matches_oracle_and_fits():
    model = A * sp.exp(-(x - x0) ** 2 / (2 * g**2))
    y = sp.Symbol("y", real=True)
    r = sg.compile_residuals(model - y, [A, x0, g], [x, y], backend="python")
    xs = np.linspace(-2, 4, 40)
    ys = 2.0 * np.exp(-((xs - 1.0) ** 2) / (2 * 0.8**2)) + 0.01 * np.sin(7 * xs)
    theta = [1.5, 0.7, 1.1]
    oracle = Oracle(model - y, [A, x0, g], [x, y])
    truth = [oracle.at(theta, xi, yi) for xi, yi in zip(xs, ys)]
    close(r.residuals(theta, xs, ys), [float(t[0]) for t in truth], 1e-13, "residuals")
    close(r.jacobian(theta, xs, ys), [[float(v) for v in t[1]] for t in truth], 1e-13, "jacobian")
    fit = least_squares(r.residuals, theta, jac=r.jacobian, args=(xs, ys), xtol=1e-15, ftol=1e-15, gtol=1e-15)
    assert np.allclose(fit.x, [2.0, 1.0, 0.8], atol=1e-2)
    assert np.allclose(r.jacobian(fit.x, xs, ys), fit.jac, rtol=1e-12)


def test_covariance_of_a_line_is_the_textbook_one():
    c0, c1, y = sp.symbols("c0 c1 y", real=True)
    r = sg.compile_residuals(c0 + c1 * x - y, [c0, c1], [x, y], backend="python")
    xs = np.arange(10.0)
    ys = 1.0 + 2.0 * xs + np.sin(xs)
    design = np.stack([np.ones_like(xs), xs], axis=1)
    beta = np.linalg.lstsq(design, ys, rcond=None)[0]
    resid = ys - design @ beta
    want = resid @ resid / (10 - 2) * np.linalg.inv(design.T @ design)
    np.testing.assert_allclose(r.covariance(beta, xs, ys), want, rtol=1e-12)
    with pytest.raises(ShapeError, match="more samples"):
        r.covariance(beta, xs[:2], ys[:2])


@pytest.mark.numba
def test_residuals_under_numba_float32_and_no_data():
    y = sp.Symbol("y", real=True)
    r = sg.compile_residuals(A / (1 + ((x - x0) / g) ** 2) - y, [A, x0, g], [x, y], dtype="float32")
    xs, ys = X.astype(np.float32), Y.astype(np.float32)
    jac = r.jacobian([1.3, 1.2, 0.7], xs, ys)
    assert jac.dtype == np.float32 and jac.shape == (4, 3)
    oracle = Oracle(A / (1 + ((x - x0) / g) ** 2) - y, [A, x0, g], [x, y])
    close(jac, [[float(v) for v in oracle.at([1.3, 1.2, 0.7], xi, yi)[1]] for xi, yi in zip(X, Y)], 1e-5, "f32")
    u = sp.Symbol("u", real=True)
    single = sg.compile_residuals(sp.Matrix([u**-2])[0], [u], [])
    assert single.residuals([2.0]).tolist() == [0.25] and single.jacobian([2.0]).tolist() == [[-0.25]]


def test_parameter_only_statements_run_once_before_the_sample_loop():
    """Statements that do not depend on the sample are computed before the loop over samples.
    Left in the loop, this hvp (found by the corpus) took ~100 s to compile: LLVM's loop
    vectoriser walked each operand DAG of the uniform values without memoising (~1 s now). The
    values are the same operations on the same inputs; the oracle checks them."""
    import re

    from oracle import Oracle

    a, b, x = sp.symbols("a b x", real=True)
    expr = sp.atanh(sp.tanh(sp.asin(sp.tanh(sp.Min(0, -3 * b / 2, b)) / 2)) / 2) + sp.tan(a) + a * x
    f = sg.compile(expr, wrt=[a, b], data=[x])
    hvp_src = f.source.split("def hvp(")[1].split("\n@")[0]
    head = hvp_src.split("for i in range(n):")[0]
    assert re.search(r"^    t\d+ = ", head, re.M), "parameter-only statements stay in the loop"
    theta, rows, v = [0.4, -0.3], np.array([0.5, 1.5, -2.0]), np.array([0.7, -1.2])
    want_v, want_g, want_h = Oracle(expr, [a, b], [x]).reduced(theta, [rows])
    close(f.hvp(theta, v, rows), want_h @ v, 1e-12, "hvp")
    close(f.value_and_grad(theta, rows)[1], want_g, 1e-12, "gradient")


def test_a_parameter_absent_from_the_formula_named_like_the_output_or_a_seam():
    """A parameter that the formula does not contain, named J (the sweep's output) or v1 (a
    seam), had the output's or the seam's adjoint as its gradient: found by the corpus as a
    Hessian entry of 1 for the formula J (its gradient, the constant 1, was swept with output J)."""
    J, E, v1, x = sp.symbols("J ArithmeticError v1 x", real=True)
    f = sg.compile(J, wrt=[J, E], data=[x], backend="python")
    assert not f.hessian([0.83, 1.27], np.array([0.4, 1.1])).any()
    g = sg.compile(sp.sin(x) * E + E**2, wrt=[J, E, v1], data=[x], backend="python")
    _, grad = g.value_and_grad([1.0, 2.0, 3.0], np.array([0.5]))
    close(grad, [0.0, float(sp.sin(0.5)) + 4.0, 0.0], 1e-14, "gradient")
    assert sg.grad(x**2, [J, v1, x]) == [0, 0, 2 * x]


NESTED = ("3*R*(2*((2*s/(R**2/(4*s**2 + 1) + 1) - 1/(Abs(R) + 2))/(4*s**2/((2*s/(R**2/(4*s**2 + 1) + 1)"
          " - 1/(Abs(R) + 2))**2 + 1) + 1) - 1/(2*Abs(s) + 2))**2*cosh(3*R*U)**2/((((2*s/(R**2/(4*s**2 + 1)"
          " + 1) - 1/(Abs(R) + 2))/(4*s**2/((2*s/(R**2/(4*s**2 + 1) + 1) - 1/(Abs(R) + 2))**2 + 1) + 1)"
          " - 1/(2*Abs(s) + 2))**2/(cosh(3*R*U)**2 + 1) + 1)**2*(cosh(3*R*U)**2 + 1)**2) + 1/(((2*s/(R**2/"
          "(4*s**2 + 1) + 1) - 1/(Abs(R) + 2))/(4*s**2/((2*s/(R**2/(4*s**2 + 1) + 1) - 1/(Abs(R) + 2))**2"
          " + 1) + 1) - 1/(2*Abs(s) + 2))**2/(cosh(3*R*U)**2 + 1) + 1))*sinh(3*R*U)")


def test_tidy_does_not_multiply_out_nested_squares_of_sums():
    """Found by the corpus: tidying this Hessian-vector entry (nested squares of sums of
    fractions) ran expand, which did not finish in minutes; compile hung with it. tidy now
    leaves such nests as they are (exact either way: tidy only picks among equal forms)."""
    from symgrad.derive.simplify import tidy

    R, s, U = sp.symbols("R s U", real=True)
    e = sp.sympify(NESTED, locals={"R": R, "s": s, "U": U})
    out = tidy(e)
    at = {R: 0.7, s: -1.3, U: 0.4}
    assert abs(float(out.xreplace(at)) - float(e.xreplace(at))) < 1e-12


def test_covariance_of_parameters_in_different_units():
    # an Arrhenius fit with A ~ 1e-11 beside Ea ~ 1.2e4 was called rank-deficient: J's condition
    # number is 3e15 as it stands and 21 with its columns scaled. Oracle: s²(J'ᵀJ')⁻¹ of the same
    # model in ln A, with J' written out by hand, mapped back by (JᵀJ)⁻¹ = D(J'ᵀJ')⁻¹D, D = diag(A, 1).
    A, Ea, T, k = sp.symbols("A Ea T k", real=True)
    R = 8.314
    Ts = np.linspace(250, 400, 40)
    ks = 1e-11 * np.exp(-1.2e4 / (R * Ts)) * (1 + 0.02 * np.sin(3 * Ts))
    r = sg.compile_residuals(A * sp.exp(-Ea / (R * T)) - k, wrt=[A, Ea], data=[T, k], backend="python")
    theta = np.array([1.02e-11, 1.205e4])
    model = theta[0] * np.exp(-theta[1] / (R * Ts))
    J_ln = np.stack([model, -model / (R * Ts)], axis=1)  # d/d(ln A), d/dEa
    resid = model - ks
    want = resid @ resid / (40 - 2) * np.diag([theta[0], 1.0]) @ np.linalg.inv(J_ln.T @ J_ln) @ np.diag([theta[0], 1.0])
    np.testing.assert_allclose(r.covariance(theta, Ts, ks), want, rtol=1e-9)


def test_covariance_with_absolute_sigma_is_scipys():
    # residuals (model − y)/σ with known σ: scipy's curve_fit(absolute_sigma=True) reports (JᵀJ)⁻¹,
    # unscaled by s². Oracles: J written out by hand, and curve_fit itself at its own optimum.
    from scipy.optimize import curve_fit

    a, k, c, t, y, s = sp.symbols("a k c t y s", real=True)
    ts = np.linspace(0, 4, 30)
    sig = 0.05 + 0.02 * ts
    ys = 2.5 * np.exp(-0.8 * ts) + 0.3 + sig * np.sin(5 * ts)
    r = sg.compile_residuals((a * sp.exp(-k * t) + c - y) / s, wrt=[a, k, c], data=[t, y, s], backend="python")
    popt, pcov = curve_fit(lambda t_, a_, k_, c_: a_ * np.exp(-k_ * t_) + c_, ts, ys, p0=[2, 1, 0], sigma=sig,
                           absolute_sigma=True, xtol=1e-14, ftol=1e-14, gtol=1e-14)
    e = np.exp(-popt[1] * ts)
    J = np.stack([e, -popt[0] * ts * e, np.ones_like(ts)], axis=1) / sig[:, None]
    got = r.covariance(popt, ts, ys, sig, absolute_sigma=True)
    np.testing.assert_allclose(got, np.linalg.inv(J.T @ J), rtol=1e-10)
    np.testing.assert_allclose(got, pcov, rtol=1e-5)
    res = r.residuals(popt, ts, ys, sig)
    np.testing.assert_allclose(r.covariance(popt, ts, ys, sig), got * (res @ res) / (30 - 3), rtol=1e-12)
    with pytest.raises(sg.errors.OptionError, match="absolute_sigma"):
        r.covariance(popt, ts, ys, sig, absolute_sigma="yes")


@pytest.mark.numba
def test_float32_covariance_reaches_nists_certified_standard_deviations():
    # Misra1a in float32 (condition 40 with scaled columns) was refused as rank-deficient
    from bench import nist_strd as nist

    problem = nist.load("Misra1a")
    params, preds = nist.symbols_of(problem)
    r = sg.compile_residuals(nist.MODELS["Misra1a"] - nist.y_sym, params, [*preds, nist.y_sym], dtype="float32")
    cov = r.covariance(problem.certified, *(v.astype(np.float32) for v in problem.x), problem.y.astype(np.float32))
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), problem.certified_sd, rtol=2e-5)


def test_covariance_refuses_what_it_cannot_compute():
    # float32: proportional Jacobian columns (only a*b is identified) differ by rounding, and the
    # float64 tolerance let made-up standard errors through; a NaN residual gave LinAlgError
    a, b, y = sp.symbols("a b y", real=True)
    xs = np.linspace(0.5, 3, 50)
    ys = 0.91 * xs + 0.01 * np.sin(7 * xs)
    for dt in ("float64", "float32"):
        r = sg.compile_residuals(a * b * x - y, [a, b], [x, y], dtype=dt)
        for theta in ([1.3, 0.7], [1.4, 0.65]):
            with pytest.raises(sg.errors.UnsupportedModelError, match="rank-deficient"):
                r.covariance(theta, xs.astype(dt), ys.astype(dt))
    r32 = sg.compile_residuals(a * x + b - y, [a, b], [x, y], dtype="float32")
    c32 = r32.covariance([0.9, 0.0], xs.astype("float32"), ys.astype("float32"))  # well-posed: computed
    c64 = sg.compile_residuals(a * x + b - y, [a, b], [x, y]).covariance([0.9, 0.0], xs, ys)
    np.testing.assert_allclose(c32, c64, rtol=1e-4)
    r = sg.compile_residuals(b * sp.log(a * x) - y, [a, b], [x, y], on_nonfinite="ignore")
    with pytest.raises(sg.errors.NonFiniteError, match="covariance is undefined"):
        r.covariance([1.0, 1.0], np.where(xs > 2, -xs, xs), ys)


@pytest.mark.parametrize("backend", ["numba", "python"])
def test_forms_that_cancel_are_computed_in_ones_that_do_not(backend):
    # 1 − x·x near x = ±1 (asin', acos', atanh': 2.5e-11 off at x = −0.9999999999) and e^z − 1
    # near 0 (elu's ∂/∂α: 2.2e-5 off at z = −1e-12, 0 at −1e-300) are computed as (1 − x)(1 + x)
    # and expm1, also where CSE made their pieces temporaries. Oracle: mpmath at 60 digits.
    import mpmath

    u, al = sp.symbols("u alpha", real=True)
    elu = sg.ops.elu
    cases = [(sp.asin(u), lambda v: mpmath.asin(v)), (sp.acos(u), lambda v: mpmath.acos(v)),
             (sp.atanh(u), lambda v: mpmath.atanh(v))]
    with mpmath.workdps(60):
        for e, ref in cases:
            f = sg.compile(e, [u], backend=backend)
            for v in (0.999999, -0.9999999999, 0.3):
                d1 = mpmath.diff(ref, mpmath.mpf(v))
                d2 = mpmath.diff(ref, mpmath.mpf(v), 2)
                assert f.grad([v])[0] == pytest.approx(float(d1), rel=1e-14), (e, v)
                assert f.hessian([v])[0, 0] == pytest.approx(float(d2), rel=1e-13), (e, v)
        g = sg.compile(elu(u, al), [u, al], backend=backend)
        for z in (-1e-10, -1e-12, -1e-300, -0.5):
            assert g.grad([z, 1.5])[1] == pytest.approx(float(mpmath.expm1(mpmath.mpf(z))), rel=1e-15), z


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_minus_cos_is_computed_as_a_square_of_sin(dtype):
    # c − c·cos(u) (also cos(u) − 1, and inside a log) as 2c·sin²(u/2): as written, 1 − cos(1e-5)
    # kept 8 digits in float64 and none in float32. Oracle: mpmath at 50 digits on SymPy's diff.
    import mpmath

    a, x = sp.symbols("a x", real=True)
    for e in [1 - sp.cos(a * x), sp.cos(a * x) - 1, 3 - 3 * sp.cos(a * x), sp.log(2 - 2 * sp.cos(a * x))]:
        f = sg.compile(e, [a], [x], dtype=dtype, backend="python")
        val, der = sp.lambdify([a, x], e, "mpmath"), sp.lambdify([a, x], sp.diff(e, a), "mpmath")
        for v in (1e-5, 1e-3, 0.7, 3.0):
            v = float(np.asarray(v, dtype))  # the point as the dtype holds it
            value, g = f.value_and_grad(np.array([v], dtype), np.array([1.0], dtype))
            with mpmath.workdps(50):
                want, dwant = val(mpmath.mpf(v), 1), der(mpmath.mpf(v), 1)
            rel = 1e-15 if dtype == "float64" else 3e-7
            assert value == pytest.approx(float(want), rel=rel), (e, v)
            assert g[0] == pytest.approx(float(dwant), rel=rel), (e, v)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_acosh_of_one_plus_a_small_square_keeps_its_digits(dtype):
    # acosh(1 + a²x²) is √2·|a·x| for small a·x: as written 1 + w rounds w away (0 for 1.4e-9 at a·x = 1e-9,
    # as NumPy and torch). Oracle: mpmath at 50 digits on SymPy's diff of the formula as written.
    import mpmath

    a, x = sp.symbols("a x", real=True)
    e = sp.acosh(1 + a**2 * x**2)
    f = sg.compile(e, [a], [x], dtype=dtype)
    val, der = sp.lambdify([a, x], e, "mpmath"), sp.lambdify([a, x], sp.diff(e, a), "mpmath")
    # 1e-170 (float32 1e-25): a temporary x² underflows where √(x²) = |x| does not; 1e154 (1e19): 2w overflows
    points = ((1e-170, 1e-9, 1e-6, 1e-3, 0.5, 3.0, 1e5, 1e100, 1e151, 1e154) if dtype == "float64" else
              (1e-25, 1e-21, 1e-9, 1e-4, 0.5, 3.0, 1e15, 1e19))
    for v in points:
        v = float(np.asarray(v, dtype))
        value, g = f.value_and_grad(np.array([v], dtype), np.array([1.0], dtype))
        with mpmath.workdps(50):
            want, dwant = val(mpmath.mpf(v), 1), der(mpmath.mpf(v), 1)
        rel = 4e-16 if dtype == "float64" else 3e-7
        assert value == pytest.approx(float(want), rel=rel), (v, value, float(want))
        assert f.value(np.array([v], dtype), np.array([1.0], dtype)) == pytest.approx(float(want), rel=rel), v
        assert g[0] == pytest.approx(float(dwant), rel=rel), v
    # its Hessian held 1/|a| − sign(a)/a, 0 computed after the small term (0 for −7.1e-10 at 1e-9)
    hess = sp.lambdify([a, x], sp.diff(e, a, 2), "mpmath")
    for v in (1e-9, 1e-6, -1e-6, 0.5) if dtype == "float64" else (1e-4, 0.5):
        with mpmath.workdps(50):
            want = float(hess(mpmath.mpf(v), 1))
        assert f.hessian(np.array([v], dtype), np.array([1.0], dtype))[0, 0] == pytest.approx(want, rel=rel * 4), v
    g = sg.compile(sp.acosh(1 + sp.exp(a * x)), [a], [x], dtype=dtype)  # a temporary e^u, whose root is e^(u/2)
    for v in ((-745.0, -800.0) if dtype == "float64" else (-120.0,)):
        with mpmath.workdps(50):
            want = mpmath.acosh(1 + mpmath.exp(mpmath.mpf(v)))
        assert g.value_and_grad(np.array([v], dtype), np.array([1.0], dtype))[0] == pytest.approx(float(want), rel=rel)


SQUARED_PRODUCTS = ["asinh(a*x)", "sqrt(a**2*x**2 + 1)", "atan2(b, a*x)", "log(a**2 + b**2*x**2)",
                    "sqrt(a**2*x**2 + b**2)", "x/sqrt(a**2*x**2 + b**2*x**4)", "log(1 + a**2*x**2)",
                    "4*a**2*x**2/(4*a**2*x**2 + b**2)"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_squares_of_products_are_scaled_like_squares(dtype):
    # (a·x)² is a²·x² to SymPy: sums of such squares, their roots, logs and quotients are computed
    # scaled (hypot; log1p below 4, 2·log of the root above), as sums of plain squares are: asinh(a·x)'s
    # derivative was 0 at a·x = 2e200 and log(1 + a²x²) inf. Oracle: SymPy's diff in mpmath.
    import mpmath

    a, b, x = sp.symbols("a b x", real=True)
    big, small = (1e200, 1e-200) if dtype == "float64" else (1e25, 1e-25)
    points = [(big, 1.0, 2.0), (small, 1.0, 3.0), (0.3, 0.7, 1.5), (big, big, 1.0), (2e-3, 5e-4, 0.25)]
    for text in SQUARED_PRODUCTS:
        e = sp.sympify(text, locals={"a": a, "b": b, "x": x})
        with warnings.catch_warnings():  # b is not in every formula
            warnings.simplefilter("ignore", UserWarning)
            f = sg.compile(e, [a, b], [x], dtype=dtype, backend="python")
        exact = [sp.lambdify([a, b, x], d, "mpmath") for d in (e, sp.diff(e, a), sp.diff(e, b))]
        for point in points:
            point = [float(np.asarray(v, dtype)) for v in point]
            v, g = f.value_and_grad(np.array(point[:2], dtype), np.array(point[2:], dtype))
            with mpmath.workdps(900):  # 1 + (1e-200)² holds its second term
                want = [float(fn(*map(mpmath.mpf, point))) for fn in exact]
            rel = 1e-14 if dtype == "float64" else 2e-6
            for got, w in zip([v, *g], want):
                assert got == pytest.approx(w, rel=rel, abs=1e-300), (text, point)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_log_cosh_is_computed_stably(dtype):
    # log(cosh(r)) becomes the op logcosh: as written it was inf from |r| = 710 (float32: 89), which
    # stopped a fit with one outlier as diverged, and 0 for 5e-17 at r = 1e-8. Oracle: mpmath.
    import mpmath

    a, x, y = sp.symbols("a x y", real=True)
    f = sg.compile(sp.log(sp.cosh(a * x - y)), [a], [x, y], dtype=dtype, backend="python")
    for r in (1e-8, -1e-3, 0.5, 0.99999, 1.0, -1.00001, 3.0, 50.0, -800.0, 1e30):
        r = float(np.asarray(r, dtype))
        v, g = f.value_and_grad(np.array([r], dtype), np.array([1.0], dtype), np.array([0.0], dtype))
        with mpmath.workdps(60):
            want, dwant = mpmath.log(mpmath.cosh(r)), mpmath.tanh(r)
        rel = 1e-15 if dtype == "float64" else 3e-7
        assert v == pytest.approx(float(want), rel=rel) and g[0] == pytest.approx(float(dwant), rel=rel), r
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    Y = (X @ np.array([1.0, 2.0, 3.0]))[:, None]
    Y[5] = 5000.0  # an outlier: cosh(r) overflows
    net = sg.nn.MLP([3, 4, 1], activation="tanh")
    loss = lambda p, t: sg.msum(sg.elementwise(lambda z: sp.log(sp.cosh(z)), p - t))  # noqa: E731
    p0 = [p.astype(dtype) for p in net.init_params(0)]
    m = sg.fit(net, loss, X.astype(dtype), Y.astype(dtype), optimizer=sg.optim.SGD(0.01), epochs=1, batch_size=40,
               shuffle=False, params=[p.copy() for p in p0])
    ps = [torch.tensor(p.astype(np.float64), requires_grad=True) for p in p0]
    r = torch.tanh(torch.tensor(X) @ ps[0].T + ps[1].T) @ ps[2].T + ps[3].T - torch.tensor(Y)
    L = (r.abs() + torch.nn.functional.softplus(-2 * r.abs()) - np.log(2)).mean()  # log cosh, stably
    L.backward()
    assert m.history["loss"][0] == pytest.approx(L.item(), rel=1e-12 if dtype == "float64" else 1e-6)
    for p, q, t in zip(p0, m.params, ps):  # one SGD step of 0.01
        np.testing.assert_allclose((p - q) / 0.01, t.grad.numpy(), rtol=1e-9 if dtype == "float64" else 1e-3,
                                   atol=1e-12 if dtype == "float64" else 1e-4)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pairs_p_minus_p_cos_or_exp_anywhere_in_a_sum(dtype):
    # p − p·cos(u) and p − p·e^u for any term p, also beside other terms (SymPy's derivative of
    # 3a·cos(a)/4 − 3a/4 is 3cos(a)/4 − 3/4 − 3a·sin(a)/4): each was 0 near u = 0. Oracle: mpmath.
    import mpmath

    a, b = sp.symbols("a b", real=True)
    cases = [(a - a * sp.cos(b), (2.0, 1e-9)), (1 - sp.exp(5 * b / 2) + a, (0.0, 1e-17)),
             (3 * a * sp.cos(a) / 4 - 3 * a / 4 + b, (1e-9, 0.0)), (a * sp.exp(b) - a, (1.5, -3e-12)),
             (a - a * sp.exp(b), (2.0, 1e-17)), (a**2 - a**2 * sp.exp(b), (1e-6, 2.0))]  # CSE holds −t2, t2 = a·t1
    for e, point in cases:
        f = sg.compile(e, [a, b], dtype=dtype, backend="python")
        point = [float(np.asarray(v, dtype)) for v in point]
        v, g = f.value_and_grad(np.array(point, dtype))
        with mpmath.workdps(80):
            exact = [sp.lambdify([a, b], d, "mpmath")(*map(mpmath.mpf, point))
                     for d in (e, sp.diff(e, a), sp.diff(e, b))]
        rel = 1e-14 if dtype == "float64" else 2e-6
        for got, want in zip([v, *g], exact):
            assert got == pytest.approx(float(want), rel=rel, abs=1e-300), (e, point)
    a_, c_ = 2.0, 1e-6  # the Hessian of a² − a²·e^c: ∂²/∂a² = 2 − 2e^c, 2e-6 (it was 1e-4 off)
    h = sg.compile(a**2 - a**2 * sp.exp(b), [a, b], dtype=dtype, backend="python").hessian(np.array([a_, c_], dtype))
    assert h[0, 0] == pytest.approx(-2 * float(mpmath.expm1(float(np.asarray(c_, dtype)))), rel=rel)


def test_a_temporary_of_plus_minus_one_is_not_divided_apart():
    # a/|a| (a temporary, ±1) divided into a·(1/|a|/h)·(t/h) underflowed: H[b, b] of
    # a/2 + tanh(ab/√(a²b² + a²)) was −3e-200 for −5e-200 at a = b = 1e-200. Oracle: SymPy at 900 digits.
    a, b = sp.symbols("a b", real=True)
    e = a / 2 + sp.tanh(a * b / sp.sqrt(a**2 * b**2 + a**2))
    f = sg.compile(e, [a, b], reduction="sum", backend="python")
    with warnings.catch_warnings():  # H[a, ·] underflows inherently (1e-3836): NaN, warned
        warnings.simplefilter("ignore")
        got = f.hessian(np.array([1e-200, 1e-200]))[1, 1]
    point = {a: sp.Float(1e-200, 900), b: sp.Float(1e-200, 900)}
    assert got == pytest.approx(float(sp.diff(e, b, 2).evalf(900, subs=point)), rel=1e-14)


def test_small_rational_derivatives_are_cancelled_and_factored():
    # log(1 + a²b²)'s ∂²/∂a∂b is derived as 4ab/S − 4a³b³/S², which cancels (3% off at ab = 1e7); as
    # 4ab/S² it does not. Also 1/(1 − x²)'s second derivative near x = 1, and a Michaelis–Menten Hessian.
    # Oracle: SymPy's diff of the expression as written, at 60 digits.
    a, b, x = sp.symbols("a b x", real=True)
    cases = [(sp.log(1 + a**2 * b**2), [a, b], [], (1e7, 1.0)), (1 / (1 - a**2) + b, [a, b], [], (0.99999, 0.5)),
             (a * x / (b + x), [a, b], [x], (3.0, 1e-9, 5.0))]
    for e, wrt, data, point in cases:
        f = sg.compile(e, wrt, data, reduction="sum", backend="python")
        h = f.hessian(np.array(point[:len(wrt)]), *[np.array([v]) for v in point[len(wrt):]])
        subs = {s: sp.Float(v, 60) for s, v in zip([*wrt, *data], point)}
        for i, p in enumerate(wrt):
            for j, q in enumerate(wrt):
                want = float(sp.diff(e, p, q).evalf(60, subs=subs))
                assert h[i, j] == pytest.approx(want, rel=1e-12, abs=1e-300), (e, p, q)


def test_log_one_plus_squared_product_hessian_in_float32():
    # ∂²/∂a² of log(1 + a²b²) at ab = 3e11 had the wrong sign in float32 (the derived form's two terms,
    # each divided by the root, cancelled); factored, −2b²(ab − 1)(ab + 1)/S², each factor is divided.
    a, b = sp.symbols("a b", real=True)
    f = sg.compile(sp.log(1 + a**2 * b**2), [a, b], dtype="float32", reduction="sum", backend="python")
    h = f.hessian(np.array([3e11, 1.0], "float32"))
    A = float(np.float32(3e11))
    want = [[2 * (1 - A**2) / (1 + A**2) ** 2, 4 * A / (1 + A**2) ** 2], [4 * A / (1 + A**2) ** 2, -2.0]]
    np.testing.assert_allclose(h, want, rtol=2e-6)


@pytest.mark.parametrize("n", [6, 12])
def test_a_polynomials_adjoint_is_not_multiplied_out(n):
    """(T + y)² + (T − y − 1)² with T an expanded Chebyshev polynomial: dF/dx = (4T − 2)·T′. The
    number c_k of each term c_k·x^k was distributed over the adjoint 4T − 2, a polynomial of
    coefficients c_k·c_j whose sum cancels as the square of T's (7.5e-6 off at n = 14; torch 4e-12).
    Oracle: sympy.diff in mpmath at 50 digits; the bound is what evaluating T and T′ in float64
    allows (their condition numbers times ε)."""
    x, y = sp.symbols("x y", real=True)
    T = sp.expand(sp.chebyshevt(n, 2 * x - 1))
    F = (T + y) ** 2 + (T - y - 1) ** 2
    f = sg.compile(F, wrt=[x, y])
    oracle = Oracle(F, [x, y], [])
    for point in ([0.3, 0.2], [0.91, -0.4]):
        _, g, h = oracle.at(point)
        cond = sum(abs(c) * point[0] ** k for (k,), c in sp.Poly(T, x).terms())  # Σ|c_k x^k|
        got, hess = f.grad(np.array(point)), f.hessian(np.array(point))
        hvp = f.hvp(np.array(point), np.array([1.0, 0.0]))
        assert abs(got[0] - float(g[0])) <= 64 * 2.2e-16 * cond * (1 + abs(float(g[0]))), (point, got, g)
        # d²F/dx² = 4T'² + (4T − 2)·T'': was multiplied out too in the Hessian's and hvp's sweeps
        # (370x its value at n = 14; torch 8e-7)
        for d2 in (hess[0, 0], hvp[0]):
            assert abs(d2 - float(h[0][0])) <= 64 * 2.2e-16 * cond * (1 + abs(float(h[0][0]))), \
                (point, d2, h[0][0])
        close(hess[1], [float(h[1][0]), float(h[1][1])], 1e-13, "d²F/dy dx, d²F/dy²")


def test_a_written_out_products_gradient_is_not_multiplied_out():
    """∏ (x − k), k = 1..10: tidy's expanded candidate, (2x − 11)·(5x⁸ − 220x⁷ + ...), was chosen for
    its fewer operations and cancelled: float32 gradient 9% off at x = 9.7 (torch 3e-6)."""
    x = sp.Symbol("x", real=True)
    P = sp.Mul(*[x - k for k in range(1, 11)])
    oracle = Oracle(P, [x], [])
    for dt, rtol in (("float64", 1e-13), ("float32", 3e-5)):
        f = sg.compile(P, wrt=[x], dtype=dt)
        for x0 in (5.51, 9.7):
            x0 = float(np.float32(x0))
            _, g, h = oracle.at([x0])
            close(f.grad(np.array([x0], dtype=dt)), [float(g[0])], rtol, f"{dt} gradient at {x0}")
