"""Formulas finite where their written form divides 0 by 0 (derive/removable.py).

Box-Cox's (t^λ − 1)/λ, the growth factor (e^{rt} − 1)/r, the diffraction pattern
(sin(k·x)/(k·x))² and two-rate kinetics k_a/(k_a − k_e)·(e^{−k_e t} − e^{−k_a t}) are smooth at
the point where the denominator vanishes. Written out, they are NaN there and lose digits near
it (Box-Cox's derivative at λ = 1e-9 came out 63 for 0.84, its Hessian −1.3e11 for 0.55).

The oracle shares no code with the generator: ``sympy.diff`` of the formula as written, evaluated
by mpmath at 600 digits, 1e-60 away from the point (where the written form's cancellation costs
~200 of them).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.derive.removable import isolate

lam, r, k, a, I0, ka, ke = sp.symbols("lam r k a I0 ka ke", real=True)
t, x, y = sp.symbols("t x y", real=True)

# (name, expr, params, data, the parameter that crosses the point, where, other params, data rows)
MODELS = {
    "box_cox": (((t**lam - 1) / lam - y) ** 2, [lam], [t, y], 0, 0.0, [],
                [np.array([0.5, 2.0, 30.0]), np.array([0.1, 0.7, 3.0])]),
    "growth": (a * (sp.exp(r * t) - 1) / r, [a, r], [t], 1, 0.0, [1.5], [np.array([0.25, 1.0, 4.0])]),
    "diffraction": (I0 * (sp.sin(k * x) / (k * x)) ** 2, [I0, k], [x], 1, 0.0, [2.0],
                    [np.array([-3.0, 0.0, 0.5, 2.0])]),
    "kinetics": (10 * ka / (ka - ke) * (sp.exp(-ke * t) - sp.exp(-ka * t)), [ka, ke], [t], 0, 0.3, [0.3],
                 [np.array([0.5, 2.0, 8.0])]),
}
OFFSETS = [0.0, 1e-300, 1e-14, -1e-11, 1e-8, -1e-6, 1e-4, -3e-3, 0.02, 0.3, -0.7]


@pytest.fixture(scope="module")
def compiled():
    return {(name, dt): sg.compile(m[0], m[1], m[2], reduction="sum", dtype=dt)
            for name, m in MODELS.items() for dt in ("float64", "float32")}


def truth(expr, params, data, theta, rows, nudged: int):
    """Value, gradient and Hessian summed over the rows, from sympy.diff in mpmath at 600 digits,
    with ``theta[nudged]`` and zero data moved 1e-60 off the point (the written form is 0/0 there;
    its Hessian's terms ~1/δ³ cancel there within ~200 of the digits)."""
    grads = [sp.diff(expr, p) for p in params]
    hess = [[sp.diff(g, q) for q in params] for g in grads]
    f = sp.lambdify([*params, *data], sp.Tuple(expr, sp.Tuple(*grads), sp.Tuple(*[sp.Tuple(*rr) for rr in hess])),
                    "mpmath")
    with mpmath.workdps(600):
        tiny = mpmath.mpf(10) ** -60
        at = [mpmath.mpf(float(u)) for u in theta]
        at[nudged] += tiny
        tot = None
        for row in zip(*rows):
            v, g, h = f(*at, *[mpmath.mpf(float(u)) or tiny for u in row])
            got = [v, *g, *[e for rr in h for e in rr]]
            tot = got if tot is None else [p + q for p, q in zip(tot, got)]
        m = len(params)
        return float(tot[0]), np.array([float(u) for u in tot[1:1 + m]]), \
            np.array([float(u) for u in tot[1 + m:]]).reshape(m, m)


def _point(model, off, nudge=0.0):
    _, params, _, crossing, where, others, _ = model
    theta = list(others)
    theta.insert(crossing, where + off + nudge)
    return theta


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_value_gradient_hessian_near_and_at_the_point(compiled, name, dt):
    model = MODELS[name]
    expr, params, data, *_, rows = model
    f = compiled[name, dt]
    rtol = 5e-13 if dt == "float64" else 2e-6
    for off in OFFSETS:
        if dt == "float32" and 0 < abs(off) < 1e-37:
            continue  # not a float32
        theta = np.array(_point(model, off), dtype=dt)
        args = [np.asarray(d, dtype=dt) for d in rows]
        want = truth(expr, params, data, theta, args, model[3])
        got = f.value(theta, *args), f.grad(theta, *args), f.hessian(theta, *args)
        for what, g, w in zip(("value", "gradient", "Hessian"), got, want):
            scale = max(1.0, float(np.max(np.abs(w))))
            err = float(np.max(np.abs(np.asarray(g, np.float64) - w))) / scale
            assert err <= rtol, f"{name} {dt} at {theta}: {what} {g}, truth {w} (error {err:.3g})"


def test_the_jacobian_of_residuals_at_equal_rates():
    """Least squares on the two-rate model, where a fit passes through k_a = k_e."""
    expr = MODELS["kinetics"][0]
    res = sg.compile_residuals(expr - y, [ka, ke], [t, y])
    tt, yy = np.array([0.5, 1.0, 2.0, 4.0, 8.0]), np.zeros(5)
    for theta in ([0.3, 0.3], [0.3 + 1e-9, 0.3], [0.3, 0.3 - 2e-6], [0.9, 0.2]):
        jac = res.jacobian(np.array(theta), tt, yy)
        for i, tv in enumerate(tt):
            _, g, _ = truth(expr, [ka, ke], [t], theta, [np.array([tv])], 0)
            np.testing.assert_allclose(jac[i], g, rtol=1e-13, atol=1e-15)
        assert np.all(np.isfinite(res.residuals(np.array(theta), tt, yy)))


def test_a_fit_through_the_point_converges():
    """Box-Cox λ fitted from a start at λ = 0 exactly (the log transform), with exact Newton steps."""
    from scipy.optimize import minimize
    rng = np.random.default_rng(0)
    tt = rng.uniform(0.5, 5.0, 40)
    yy = (tt**0.05 - 1) / 0.05
    f = sg.compile(((t**lam - 1) / lam - y) ** 2, [lam], [t, y])
    out = minimize(f.value, [0.0], args=(tt, yy), jac=f.grad, hess=f.hessian, method="trust-exact",
                   options={"gtol": 1e-12})
    assert out.success and abs(out.x[0] - 0.05) < 1e-9


def test_poles_and_plain_formulas_are_left_as_written():
    b = sp.Symbol("b", real=True)
    for expr in (a * x / (1 + b * x), sp.exp(r * t) / r, a * sp.exp(-b * x), (t**lam - 1) / lam**2,
                 sp.log(r) / r):
        _, found = isolate(expr, [a, b, r, lam, t, x])
        assert found == [], expr
    _, found = isolate((sp.exp(r * t) / r - 1 / r - y) ** 2, [r, t, y])  # a removable sum of poles
    assert [n.expr for n in found] == [sp.exp(r * t) / r - 1 / r - y]


def test_reviewed_forms_kinks_differences_finite_series_and_slow_expansions():
    """A reviewer's forms: SymPy's series is one-sided (d -> 0+), so a relu inside a node got its
    right-hand polynomial at a < 0 (2.47 for 1.97); Abs inside a node raised a DiracDelta printing
    error; coefficients (t − t0)^k multiplied out cancelled for timestamps (d²/dr² 0 for 3.1e10); a
    finite series ((1 + a·t)³ − 1)/a was never trusted (9% off at a = 4e-16); three-rate Bateman
    kinetics and e^{sin(a·t + b)} never finished expanding."""
    import time

    tt = np.array([0.5, 2.0])
    kinked = (sp.exp(a * t) - 1 + sg.ops.relu(a) * t) / a
    f = sg.compile(kinked, [a], [t], reduction="sum")
    for av in (-0.3, -1e-6, 1e-6, 0.3):
        want = float(np.sum((np.expm1(av * tt) + max(av, 0) * tt) / av))
        assert f.value([av], tt) == pytest.approx(want, rel=1e-12)
    g = sg.compile((sp.exp(a * t) - 1) * sp.Abs(a) / a, [a], [t], reduction="sum", backend="python")
    assert g.value([-0.5], tt) == pytest.approx(-sum(np.expm1(-0.5 * tt)), rel=1e-13)

    N0, t0 = sp.symbols("N0 t0", real=True)
    growth = N0 * (sp.exp(r * (t - t0)) - 1) / r
    h = sg.compile(growth, [r], [N0, t, t0], reduction="sum")
    data = [np.array([2.0]), np.array([1.7e9 + 3600]), np.array([1.7e9])]
    for rv in (0.0, 1e-9):
        want = truth(growth, [r], [N0, t, t0], [rv], data, 0)
        np.testing.assert_allclose(h.hessian([rv], *data)[0, 0], want[2][0, 0], rtol=1e-12)
        np.testing.assert_allclose(h.grad([rv], *data)[0], want[1][0], rtol=1e-12)

    cubic = sg.compile(((1 + a * t) ** 3 - 1) / a, [a], [t], reduction="sum")
    for av in (0.0, 4e-16, 1e-14, 1e-9):
        assert cubic.value([av], tt) == pytest.approx(sum(3 * tt + 3 * av * tt**2 + av**2 * tt**3), rel=1e-15)

    b, c = sp.symbols("b c", real=True)
    start = time.perf_counter()
    sg.compile(sp.exp(-a * x) / ((b - a) * (c - a)) + sp.exp(-b * x) / ((a - b) * (c - b))
               + sp.exp(-c * x) / ((a - c) * (b - c)), [a, b, c], [x], backend="python")
    sg.compile((sp.exp(sp.sin(a * t + b)) - sp.exp(sp.sin(b))) / a, [a, b], [t], backend="python")
    assert time.perf_counter() - start < 30  # they took minutes in SymPy's series and cancel


@pytest.mark.parametrize("theta, at", [([0.5, 25.0], 30.0), ([0.5, 25.0], 29.0), ([-10.0, 20.0], 40.0),
                                       ([1.0, 1.0], 24.0), ([1.0 + 1e-10, 1.0], 24.0), ([0.50000001, 0.5], 40.0)])
def test_kinetics_where_their_common_factor_is_tiny(compiled, theta, at):
    # far from k_a = k_e the series had "converged" where e^(−k_e·t) underflowed in some of its terms
    # (0 for 6.2e-9, and 6e-285 from value_and_grad only); at and near k_a = k_e with k_e·t > 18 a
    # bound on the series' cancellation that kept e^(−k_e·t) in one side chose the written 0/0
    # (NaN, and a Hessian of ±3084 for 1e-7)
    f = compiled[("kinetics", "float64")]
    expr, params, data = MODELS["kinetics"][:3]
    want_v, want_g, want_h = truth(expr, params, data, theta, [np.array([at])], nudged=0)
    theta = np.array(theta)
    rows = np.array([at])
    value, grad = f.value_and_grad(theta, rows)
    for got in (f.value(theta, rows), value):
        assert got == pytest.approx(want_v, rel=1e-13)
    np.testing.assert_allclose(grad, want_g, rtol=1e-12)
    np.testing.assert_allclose(f.hessian(theta, rows), want_h, rtol=1e-11)


@pytest.mark.parametrize("form", [sp.sin(a) * sg.ops.sigmoid(a) / a, sp.sin(a) * sg.ops.softplus(a) / a,
                                  (sp.exp(a) - 1) * sg.ops.sigmoid(a) / a], ids=["sin-sigmoid", "sin-softplus", "exp-sigmoid"])
def test_a_node_beside_an_op_is_still_expanded(form):
    # the whole product was refused (SymPy does not expand symgrad's ops), so sin(a)/a stayed as written:
    # the Hessian of sin(a)·σ(a)/a at a = 1.67e-9 came out −35.7 for −0.1667
    f = sg.compile(form, [a])
    for at in (0.0, 1.67e-9, -3e-6, 0.4):
        point = {a: mpmath.mpf(at) + mpmath.mpf(10) ** -60}
        with mpmath.workdps(400):
            want = [float(sp.lambdify([a], e_, "mpmath")(point[a])) for e_ in (form, sp.diff(form, a), sp.diff(form, a, 2))]
        got = [f.value([at]), f.grad([at])[0], f.hessian([at])[0, 0]]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=f"a = {at}")


def test_nested_nodes_and_nodes_in_conditions_compile_and_are_exact():
    # a node inside another's written form reached the printer (PrintMethodNotImplementedError:
    # removable0_0); a node in a Piecewise condition or a power raised mpmath's NoConvergence (SymPy
    # folded the output's Piecewise out of the condition and solved the series for x); at a = 0 the
    # condition (e^a − 1)/a > 0 is its limit 1 > 0
    c, b = sp.symbols("c b", real=True)
    cases = [(sp.sin(2 * c) * sp.erf(sp.sin(x) / x) / (2 * c), [c], [(1e-9, 0.0), (0.0, 0.3), (0.7, 1e-8)]),
             (sp.erfc(sp.sin(x) / x) ** sp.log(a + 1), [a], [(0.5, 0.0), (2.0, 1e-7), (0.3, 1.2)]),
             (sp.Piecewise((b + x, (sp.exp(a) - 1) / a > 0), (sp.sqrt(b**2 + 1) - 1, True)), [a, b],
              [(1e-9, 0.4, 0.2), (-2.0, 0.4, 0.2), (0.0, 0.3, 0.1)])]
    for expr, params, points in cases:
        f = sg.compile(expr, params, [x])
        for point in points:
            theta, xv = list(point[:-1]), point[-1]
            with mpmath.workdps(100):
                nudge = mpmath.mpf(10) ** -60
                at = [mpmath.mpf(v) + nudge for v in (*theta, xv)]
                fn = sp.lambdify([*params, x], sp.Tuple(expr, *[sp.diff(expr, p) for p in params]), "mpmath")
                want = [float(v) for v in fn(*at)]
            value, grad = f.value_and_grad(theta, np.array([xv]))
            np.testing.assert_allclose([value, *grad], want, rtol=1e-12, atol=1e-15, err_msg=f"{expr} at {point}")
