"""NaN and Inf from a compiled formula are reported, not returned silently (issue 19):
``compile(..., on_nonfinite='warn' | 'raise' | 'ignore')``, naming the sample and the
sub-expression where the value stopped being finite."""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest
import scipy.optimize
import scipy.special
import sympy as sp

import symgrad as sg
from symgrad.errors import NonFiniteError, OptionError

a, b, x, y = sp.symbols("a b x y", real=True)


@pytest.mark.parametrize("backend", ["python", "numba"])
def test_log_of_negative_data_warns_naming_the_sample_and_the_step(backend):
    f = sg.compile(a * sp.log(x) + b, [a, b], [x], backend=backend)
    with pytest.warns(sg.NonFiniteWarning, match=r"sample 2 \(x = -3\) gives nan, first at log\(x\) = nan, where "
                                                 r"x = -3\. Fix:"):
        v = f.value([2.0, 1.0], np.array([1.0, 2.0, -3.0]))
    assert np.isnan(v)  # the value itself is returned as computed
    with pytest.warns(sg.NonFiniteWarning, match="value is not finite"):
        _, g = f.value_and_grad([2.0, 1.0], np.array([1.0, -3.0]))
    assert np.isnan(g[0])


def test_raise_and_ignore():
    f = sg.compile(a * sp.exp(a * x), [a], [x], on_nonfinite="raise")
    with pytest.raises(NonFiniteError, match=r"gives inf, first at exp\(a\*x\) = inf, where a = 800, x = 1"):
        f.value([800.0], np.array([1.0]))
    assert f.value([1.0], np.array([1.0])) == pytest.approx(np.e)  # finite calls are untouched
    quiet = sg.compile(a * sp.log(x), [a], [x], on_nonfinite="ignore", backend="python")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(quiet.value([1.0], np.array([-1.0])))
    with pytest.raises(OptionError, match="'warn'.*'raise'.*'ignore'"):
        sg.compile(a * x, [a], [x], on_nonfinite="loud")


def test_a_gradient_that_is_not_finite_where_the_value_is():
    f = sg.compile(a * sp.sqrt(x - b), [a, b], [x], on_nonfinite="raise", backend="python")
    with pytest.raises(NonFiniteError, match=r"gradient is not finite: its derivative with respect to b, at sample 1 "
                                             r"\(x = 2\) gives -inf"):
        f.value_and_grad([1.0, 2.0], np.array([3.0, 2.0]))


def test_residuals_and_jacobian():
    r = sg.compile_residuals(a * x - 1 / y, [a], [x, y], on_nonfinite="raise", backend="python")
    with pytest.raises(NonFiniteError, match=r"residual is not finite: sample 1 \(x = 2, y = 0\).*1/y = inf"):
        r.residuals([1.0], np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    j = sg.compile_residuals(sp.log(a * x), [a], [x], on_nonfinite="raise", backend="python")
    with pytest.raises(NonFiniteError, match="Jacobian is not finite"):
        j.jacobian([0.0], np.array([1.0]))


def test_a_power_with_a_symbolic_exponent_is_differentiated_at_base_zero():
    # d/dx x**y came as x**y*y/x, 0/0 at x = 0 where the derivative is y*x**(y - 1): 0 for y = 2, 1 for y = 1
    x, y = sp.symbols("x y", real=True)
    f = sg.compile(x**y, wrt=[x], data=[y], on_nonfinite="raise")
    assert f.grad([0.0], np.array([2.0]))[0] == 0.0 and f.grad([0.0], np.array([1.0]))[0] == 1.0
    assert f.grad([2.0], np.array([3.0]))[0] == pytest.approx(12.0)
    assert f.hessian([0.0], np.array([3.0]))[0, 0] == 0.0 and f.hessian([2.0], np.array([3.0]))[0, 0] == pytest.approx(12.0)
    g = sg.compile(x**y, wrt=[x, y])  # d/dy = x**y*log(x): 0 at x = 0 for y > 0 (0**y = 0 there), as torch has it
    assert list(g.value_and_grad([0.0, 2.0])[1]) == [0.0, 0.0]
    with pytest.warns(sg.NonFiniteWarning, match=r"derivative with respect to x, at x = 0, y = 0 gives nan"):
        g.value_and_grad([0.0, 0.0])  # 0**y jumps from 1 to 0 at y = 0: no derivative there


def test_a_hessian_that_is_not_finite_is_reported_too():
    # on_nonfinite='raise' covered the value and the gradient; x**1.5 has both finite at 0
    x = sp.Symbol("x", real=True)
    f = sg.compile(x ** sp.Rational(3, 2), wrt=[x], on_nonfinite="raise")
    assert f.value_and_grad([0.0])[1][0] == 0.0
    for call, what in ((lambda: f.hessian([0.0]), "Hessian"), (lambda: f.hvp([0.0], [1.0]), "Hessian-vector product")):
        with pytest.raises(NonFiniteError, match=rf"the {what} is not finite: its derivative with respect to x and x, "
                                                 r"at x = 0 gives inf, first at 1/sqrt\(x\)"):
            call()
    assert f.hessian([4.0])[0, 0] == pytest.approx(0.375)


@pytest.mark.parametrize("backend", ["numba", "python"])
def test_a_branch_not_taken_gives_no_nan_to_the_derivatives(backend):
    # the sweep multiplied a Piecewise branch's derivative by its indicator: 0·log(0) = NaN in the
    # gradient, Jacobian, Hessian and hvp where the derivative is 0
    a, x, y = sp.symbols("a x y", real=True)
    m = sp.Piecewise((a * sp.log(x), x > 0), (0, True))
    xs, ys = np.array([0.0, 2.0]), np.array([0.0, 0.0])
    r = sg.compile_residuals(m - y, wrt=[a], data=[x, y], backend=backend, on_nonfinite="raise")
    np.testing.assert_allclose(r.jacobian([1.0], xs, ys), [[0.0], [np.log(2)]])
    f = sg.compile((m - y) ** 2, wrt=[a], data=[x, y], backend=backend, on_nonfinite="raise")
    h = np.log(2) ** 2  # mean over 2 samples of 2·log(2)²
    assert f.hessian([1.0], xs, ys)[0, 0] == pytest.approx(h) and f.hvp([1.0], [1.0], xs, ys)[0] == pytest.approx(h)
    assert f.grad([1.0], xs, ys)[0] == pytest.approx(h)
    g = sg.compile(sp.Piecewise((sp.sqrt(x - a), x > a), (0, True)), wrt=[a], data=[x], backend=backend,
                   on_nonfinite="raise")
    assert g.grad([0.0], np.array([-1.0, 2.0]))[0] == pytest.approx(-0.25 / np.sqrt(2))


def test_a_matrix_model_reports_its_first_bad_sample_as_on_nonfinite_says():
    w, x = sp.MatrixSymbol("w", 3, 1), sp.MatrixSymbol("x", 3, 1)
    X = np.ones((9, 3))
    X[6] = [1.0, -2.0, -1.0]  # w·x = -2 there: log of a negative number
    loss = sp.log(sg.msum(w.T * x))
    f = sg.compile(loss, wrt=[w], data=[x], backend="python")
    with pytest.warns(sg.NonFiniteWarning, match=r"the value is not finite: first at sample 6 \(x = \[ 1\. -2\. -1\.\]\)"):
        v, g = f.value_and_grad(np.ones(3), X)
    assert np.isnan(v) and np.isfinite(g).all()  # returned as computed
    with pytest.raises(sg.errors.NonFiniteError, match="Fix: keep the data"):
        sg.compile(loss, wrt=[w], data=[x], backend="python", on_nonfinite="raise").value(np.ones(3), X)
    quiet = sg.compile(loss, wrt=[w], data=[x], backend="python", on_nonfinite="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(quiet.value(np.ones(3), X))
    # a gradient that overflows where the value does not: exp(w·x) * x with w·x = 709.5
    e = sg.compile(sp.exp(sg.msum(w.T * x)) * 1e-300, wrt=[w], data=[x], backend="python", on_nonfinite="raise")
    with pytest.raises(sg.errors.NonFiniteError, match="the value is not finite: first at sample 0"):
        e.value_and_grad(np.full(3, 800.0), X[:1])
    with pytest.raises(sg.errors.NonFiniteError, match="the Hessian-vector product is not finite: first at sample 0"):
        f2 = sg.compile(sg.msum(w.T * x) ** 3, wrt=[w], data=[x], backend="python", on_nonfinite="raise")
        f2.hvp(np.full(3, 1e200), np.ones(3), X[:1])


def test_float32_sums_over_many_rows_keep_float32_accuracy():
    # a float32 running sum over 10^6 rows lost 3 digits; an oracle in float64 with math.fsum
    n = 10**6 + 123
    ys = np.full(n, 0.1, np.float32)
    c, y = sp.symbols("c y", real=True)
    f = sg.compile((c - y) ** 2, wrt=[c], data=[y], dtype="float32")
    v, g = f.value_and_grad([0.0], ys)
    exact = float(np.float32(0.1)) ** 2
    assert abs(v - exact) < 1e-6 * exact and abs(g[0] + 2 * float(np.float32(0.1))) < 2e-6 * 0.2
    # a matrix model: BLAS's float32 Xᵀ·δ over a million rows was 1e-3 off (NumPy's X.T @ d is)
    w, x = sp.MatrixSymbol("w", 2, 1), sp.MatrixSymbol("x", 2, 1)
    ft = sg.compile(sg.msum(sp.HadamardPower(w.T * x, 2)), wrt=[w], data=[x], dtype="float32")
    X = np.full((n, 2), 0.1, np.float32)  # equal terms: the worst case of a running sum
    v, g = ft.value_and_grad(np.ones(2, np.float32), X)
    x32 = float(np.float32(0.1))
    assert v.dtype == np.float32 and g.dtype == np.float32
    np.testing.assert_allclose([v, *g], [4 * x32**2, 4 * x32**2, 4 * x32**2], rtol=3e-5)
    np.testing.assert_allclose(ft.hessian(np.ones(2, np.float32), X), np.full((2, 2), 2 * x32**2), rtol=3e-5)
    Xr = np.random.default_rng(0).uniform(0, 1, (n, 2)).astype(np.float32)
    X64 = Xr.astype(np.float64)
    exact = (2 * X64.sum(axis=1, keepdims=True) * X64).mean(axis=0)
    np.testing.assert_allclose(ft.grad(np.ones(2, np.float32), Xr), exact, rtol=2e-6)


def test_pointwise_follows_on_nonfinite():
    # reduction='none' returned NaN without a word, also under on_nonfinite='raise'
    a, x, y = sp.symbols("a x y", real=True)
    xs, ys = np.array([1.0, 2.0, -1.0, 3.0]), np.zeros(4)
    f = sg.compile((sp.log(a * x) - y) ** 2, wrt=[a], data=[x, y], reduction="none", backend="python")
    with pytest.warns(sg.NonFiniteWarning, match=r"the value is not finite: sample 2 \(a = 1, x = -1, y = 0\)"):
        vals, _ = f.pointwise(np.ones(4), xs, ys)
    assert np.isnan(vals[2]) and np.isfinite(vals[[0, 1, 3]]).all()
    g = sg.compile((sp.log(a * x) - y) ** 2, wrt=[a], data=[x, y], reduction="none", backend="python",
                   on_nonfinite="raise")
    with pytest.raises(sg.errors.NonFiniteError, match="sample 2"):
        g.pointwise(np.ones(4), xs, ys)


@pytest.mark.parametrize("name", ["sign", "abs", "exp"])
def test_the_search_handles_piecewise_and_symbols_named_as_functions(name):
    # the search for the step raised instead of warning: a Piecewise's (branch, condition) pairs
    # reached NumPy's printer (PrintMethodNotImplementedError), and a symbol named sign shadowed
    # np.sign in lambdify's namespace (TypeError: 'Symbol' object is not callable)
    x, v, s = sp.Symbol("x", real=True), sp.Symbol("value", real=True), sp.Symbol(name, real=True)
    f = sg.compile(sp.Piecewise((1, x < 1), (sp.exp(x), True)) + sp.acosh(v) + s * sp.sign(s), wrt=[x, v, s],
                   backend="python")
    with pytest.warns(sg.NonFiniteWarning, match=r"first at acosh\(value\) = nan, where value = 0.3"):
        assert np.isnan(f.value([0.5, 0.3, 0.7]))


def test_a_float32_overflow_is_found_where_float32_overflows():
    """exp(2ax) = 7e76 at x = 88 is inf in float32 only: the search reads NumPy's float64 values with
    float32's range, and names the exp, not 'the compiled form'."""
    a, x = sp.symbols("a x", real=True)
    f = sg.compile(sp.exp(2 * a * x), wrt=[a], data=[x], dtype="float32", backend="python")
    with pytest.warns(sg.NonFiniteWarning, match=r"sample 0 \(x = 88\) gives inf, first at exp\(2\*a\*x\) = inf"):
        assert f.value(np.array([1.0], np.float32), np.array([88.0], np.float32)) == np.inf


def _power_law_oracle(theta, xs, ys):
    """Mean of (a·x^b − y)², its gradient and Hessian from sympy.diff in mpmath, a sample at x = 0
    taken at x = 1e-300 (its limit: a·x^b and every derivative of it in b vanish there)."""
    a, b, x, y = sp.symbols("a b x y", real=True)
    e = (a * x**b - y) ** 2
    parts = [e, *(sp.diff(e, v) for v in (a, b)), *(sp.diff(e, u, v) for u in (a, b) for v in (a, b))]
    fns = [sp.lambdify((a, b, x, y), p, "mpmath") for p in parts]
    with mpmath.workdps(50):
        sums = [sum(fn(*map(mpmath.mpf, theta), mpmath.mpf(xv or 1e-300), mpmath.mpf(yv)) for xv, yv in zip(xs, ys))
                for fn in fns]
        return [float(s_ / len(xs)) for s_ in sums]


def test_a_power_law_fits_data_at_zero():
    # d/db a·x^b = a·x^b·log(x) was 0·(−inf) = NaN at a data point x = 0, so the whole gradient of a power
    # law was NaN (warned) where the limit, and 0**b's derivative in b, is 0 (torch's gradient too)
    a, b, x, y = sp.symbols("a b x y", real=True)
    f = sg.compile((a * x**b - y) ** 2, [a, b], [x, y], on_nonfinite="raise")
    xs = np.array([0.0, 0.5, 1.0, 2.0, 3.0])
    ys = 1.5 * xs**0.7 + np.array([0.0, 0.1, -0.2, 0.05, 0.0])
    theta = np.array([1.2, 0.8])
    want = _power_law_oracle(theta, xs, ys)
    value, grad = f.value_and_grad(theta, xs, ys)
    np.testing.assert_allclose([value, *grad, *f.hessian(theta, xs, ys).ravel()], want, rtol=1e-13)
    np.testing.assert_allclose(f.hvp(theta, np.array([0.3, -1.0]), xs, ys),
                               np.reshape(want[3:], (2, 2)) @ [0.3, -1.0], rtol=1e-13)
    fit = scipy.optimize.minimize(f.value_and_grad, [1.0, 1.0], args=(xs, ys), jac=True, method="BFGS")
    assert fit.success and np.all(np.isfinite(fit.x))
    for call in (f.grad, lambda t, *d: f.hvp(t, [1.0, 1.0], *d)):  # x**(-0.5) at 0 is infinite: still said
        with pytest.raises(NonFiniteError, match=r"sample 0 \(x = 0, y = 0\) gives inf, first at x\*\*b = inf"):
            call([1.2, -0.5], xs, ys)


def test_x_log_x_is_its_limit_only_where_that_is_zero():
    # an entropy's p·log(p) at p = 0 is 0 (scipy's entr); x^k·log(x) with k ≤ 0 is not finite at 0
    p, k, a = sp.symbols("p k a", real=True)
    h = sg.compile(-a * p * sp.log(p), [a], [p], reduction="sum", on_nonfinite="ignore")
    probs = np.array([0.0, 0.25, 0.75, 0.0])
    assert h.value([1.0], probs) == pytest.approx(scipy.special.entr(probs).sum(), rel=1e-15)
    g = sg.compile(a * sp.log(p) * p**k / p, [a, k], [p], on_nonfinite="ignore")  # p**(k − 1)·log p
    assert g.value([1.0, 1.5], np.array([0.0]))[()] == 0.0
    assert not np.isfinite(g.value([1.0, 0.5], np.array([0.0]))) and not np.isfinite(g.value([1.0, 1.0], np.array([0.0])))


def test_the_warning_names_the_sample_where_a_removable_form_is_not_finite():
    # (t^λ − 1)/λ is 0/0 at λ = 0 for every t, but the code computes it from its series there: the
    # warning named sample 0 (finite there) instead of t = 0, where (0^λ − 1)/λ = −1/λ has no limit
    lam, t = sp.symbols("lam t", real=True)
    f = sg.compile((t**lam - 1) / lam, [lam], [t])
    with pytest.warns(sg.NonFiniteWarning, match=r"sample 2 \(t = 0\)"):
        f.value([0.0], np.array([1.0, 2.0, 0.0]))


@pytest.mark.parametrize("backend", ["numba", "python"])
def test_a_nan_inside_max_min_or_relu_is_not_dropped(backend):
    # Python's max(0.0, nan) is 0.0 and relu was 'z if z > 0 else 0': log of negative data inside
    # Max(0, ·) counted as 0 in the loss, without a warning (np.maximum and torch.relu give NaN)
    w, x = sp.symbols("w x", real=True)
    xs = np.array([1.0, -1.0, 3.0])
    for body in (sp.Max(0, sp.log(w * x)), sg.ops.relu(sp.log(w * x)), sp.Min(1, sp.sqrt(w * x)),
                 sp.Max(-1, sp.asin(w * x / 8), sp.log(w * x))):
        f = sg.compile(body, [w], [x], backend=backend)
        with pytest.warns(sg.NonFiniteWarning, match=r"sample 1 \(x = -1\)"):
            assert np.isnan(f.value([2.0], xs))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            want = float(sp.Add(*[body.subs({w: 2, x: v}) for v in (1.0, 3.0)]) / 2)
            assert f.value([2.0], xs[[0, 2]]) == pytest.approx(want, rel=1e-15)


@pytest.mark.parametrize("base, at", [(1 - sp.exp(-x), 1e-17), (1 - sp.cos(x), 1e-8), (sp.exp(x) - 1, 1e-17)],
                         ids=["1-exp", "1-cos", "exp-1"])
def test_a_power_whose_base_is_tiny_but_not_zero_keeps_its_derivatives(base, at):
    # the x**k·log x rule's guard was Eq(base, 0), which SymPy wrote as Eq(exp(-t), 1): true in floats
    # for t < 1.1e-16, where the base (computed as -expm1(-t)) is not 0, so dJ/db and H_bb came back 0
    f = sg.compile((a * base**b - y) ** 2, wrt=[a, b], data=[x, y], on_nonfinite="raise")
    theta, data = np.array([1.2, 0.1]), (np.array([at]), np.array([0.1]))
    e = (a * base**b - y) ** 2
    with mpmath.workdps(400):
        point = {a: mpmath.mpf("1.2"), b: mpmath.mpf("0.1"), x: mpmath.mpf(at), y: mpmath.mpf("0.1")}
        want = [float(sp.lambdify(list(point), d, "mpmath")(*point.values()))
                for d in (sp.diff(e, b), sp.diff(e, b, 2), sp.diff(e, a, b), sp.diff(e, a, 2))]
    grad, hess = f.grad(theta, *data), f.hessian(theta, *data)
    np.testing.assert_allclose([grad[1], hess[1, 1], hess[0, 1], hess[0, 0]], want, rtol=1e-9)
    np.testing.assert_allclose(f.hvp(theta, np.array([1.0, 0.0]), *data), [want[3], want[2]], rtol=1e-9)


def test_a_gamma_variate_fits_data_at_time_zero():
    # a·t^b·e^(−c·t) (pharmacokinetics' gamma variate) holds t in a factor besides t^b·log t: its
    # gradient in b was NaN at a sample t = 0 where it is 0, as its Hessian (whose t^(b+1) and t^b
    # both vanish there for b > 0)
    c, t = sp.symbols("c t", real=True)
    e = (a * t**b * sp.exp(-c * t) - y) ** 2
    f = sg.compile(e, [a, b, c], [t, y], on_nonfinite="raise")
    ts = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0])
    ys = 3 * ts**1.5 * np.exp(-0.7 * ts)
    theta = np.array([2.5, 1.2, 0.6])
    vs = (a, b, c)
    parts = [sp.diff(e, v) for v in vs] + [sp.diff(e, u, v) for u in vs for v in vs]
    fns = [sp.lambdify((a, b, c, t, y), p_, "mpmath") for p_ in parts]
    with mpmath.workdps(50):
        want = [float(sum(fn(*map(mpmath.mpf, theta), mpmath.mpf(tv or 1e-300), mpmath.mpf(yv))
                          for tv, yv in zip(ts, ys)) / len(ts)) for fn in fns]
    got = [*f.grad(theta, ts, ys), *f.hessian(theta, ts, ys).ravel()]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # a t that is not a finite factor at 0 keeps the form as written: t^b·log(t)/(t − d) at t = d = 0
    d = sp.Symbol("d", real=True)
    g = sg.compile(a * t**b * sp.log(t) / (t - d), [a, b], [t, d], on_nonfinite="ignore")
    assert np.isnan(g.value([1.0, 0.5], np.array([0.0]), np.array([0.0])))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_poisson_deviance_takes_counts_of_zero(dtype):
    # y·log(y/μ) at a count y = 0 was NaN (warned): its limit is 0, scipy's xlogy convention, as y·log(y)'s
    c0, c1, u, y = sp.symbols("c0 c1 u y", real=True)
    mu = c0 * sp.exp(c1 * u)
    f = sg.compile(2 * (y * sp.log(y / mu) - (y - mu)), [c0, c1], [u, y], dtype=dtype, on_nonfinite="raise")
    us, ys = np.array([0.0, 0.5, 1.0, 1.5]), np.array([0.0, 2.0, 3.0, 5.0])
    theta = np.array([1.0, 0.8])
    m = theta[0] * np.exp(theta[1] * us)
    tol = 1e-14 if dtype == "float64" else 2e-6
    assert f.value(theta, us.astype(dtype), ys.astype(dtype)) == pytest.approx(
        np.mean(2 * (scipy.special.xlogy(ys, ys / m) - (ys - m))), rel=tol)
    grad = f.grad(theta, us.astype(dtype), ys.astype(dtype))  # 2(1 − y/μ)·∂μ: no log in it
    np.testing.assert_allclose(grad, [np.mean(2 * (1 - ys / m) * m / theta[0]), np.mean(2 * (1 - ys / m) * m * us)],
                               rtol=tol)
    # y > 0 with y/μ underflowing to 0 is not a zero count: not 0 (computed as written, -inf: warned)
    g = sg.compile(y * sp.log(y / c0), [c0], [y], on_nonfinite="ignore")
    assert g.value([1e300], np.array([1e-100])) < -1e-98
    assert g.value([2.0], np.array([0.0])) == 0.0


@pytest.mark.parametrize("dtype, expo, at", [("float64", sp.pi, 1e-110), ("float64", sp.sqrt(2), 1e-160),
                                             ("float32", sp.pi, 1e-15), ("float64", sp.pi, 0.7)])
def test_a_power_rule_with_an_irrational_exponent_does_not_underflow(dtype, expo, at):
    # d/dx x**π came as π·x**π/x: x**π underflows to 0 where π·x**(π − 1) does not (0 for 8.4e-236 at
    # 1e-110, and the Hessian 0 for 1.8e-125), silently; torch's pow rule gets them
    x = sp.Symbol("x", real=True)
    f = sg.compile(x**expo, wrt=[x], dtype=dtype)
    th = np.array([at], dtype=dtype)
    with mpmath.workdps(50):
        a, v = mpmath.mpf(sp.N(expo, 50)), mpmath.mpf(float(th[0]))
        want = [float(a * v ** (a - 1)), float(a * (a - 1) * v ** (a - 2))]
    rel = 1e-13 if dtype == "float64" else 1e-5  # float32: π itself rounds, and x**(π − 1) feels it by |log x|
    np.testing.assert_allclose([f.grad(th)[0], f.hessian(th)[0, 0]], want, rtol=rel)
