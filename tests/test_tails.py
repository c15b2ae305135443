"""σ' and tanh' in both tails (issue 19): computed as σ(1 − σ) or 1 − tanh² they lose all relative
precision where σ or tanh approaches 1 (σ'(40) came out 0, not 4.2e-18); the compiled code uses
σ(z)σ(−z) and 1/cosh², the printed formulas keep the textbook forms. Oracle: mpmath at 50 digits."""

from __future__ import annotations

import warnings

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.derive.tails import accurate_tails

a, b, x = sp.symbols("a b x", real=True)
Z = [-700.0, -100.0, -40.0, -20.0, -5.0, -0.5, 0.5, 5.0, 20.0, 40.0, 100.0, 700.0]
mp.mp.dps = 50


def _sig(z):
    return 1 / (1 + mp.exp(-z))


@pytest.fixture(scope="module", params=["numba", "python"])
def compiled(request):
    return {name: sg.compile(e, [a], [x], backend=request.param) for name, e in
            (("sigmoid", sg.ops.sigmoid(a * x)), ("tanh", sp.tanh(a * x)), ("both", sp.tanh(a * x) * sg.ops.sigmoid(b * a * x + 1).subs(b, 2)))}


@pytest.mark.parametrize("z", Z)
def test_gradients_keep_their_relative_precision_in_both_tails(compiled, z):
    zs = mp.mpf(z)
    truths = {"sigmoid": _sig(zs) * _sig(-zs), "tanh": mp.sech(zs) ** 2}
    for name, truth in truths.items():
        got = compiled[name].grad([1.0], np.array([z]))[0]  # d/da f(a x) at a = 1 is x f'(x)
        want = float(z * truth)
        if want == 0.0:  # below the smallest double: the true value underflows
            assert got == 0.0
        else:
            assert got == pytest.approx(want, rel=1e-13, abs=0), (name, z)
    s = mp.mpf(2) * zs + 1  # a product: d/da [tanh(a x) σ(2 a x + 1)] at a = 1
    want = float(zs * mp.sech(zs) ** 2 * _sig(s) + mp.tanh(zs) * 2 * zs * _sig(s) * _sig(-s))
    assert compiled["both"].grad([1.0], np.array([z]))[0] == pytest.approx(want, rel=1e-12, abs=1e-300)


def test_the_printed_gradient_keeps_the_textbook_form():
    assert str(sg.grad(sg.ops.sigmoid(a * x), a)) == "x*(1 - sigmoid(a*x))*sigmoid(a*x)"
    assert str(sg.grad(sp.tanh(a * x), a)) == "-x*tanh(a*x)**2 + x"


def test_hessian_vector_product_in_the_tail():
    f = sg.compile(sg.ops.sigmoid(a * x), [a], [x])
    z = mp.mpf(30)
    want = float(z**2 * _sig(z) * _sig(-z) * (1 - 2 * _sig(z)))  # σ'' = σ'(1 − 2σ)
    assert f.hvp([1.0], [1.0], np.array([30.0]))[0] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("backend", ["numba", "python"])
def test_second_derivatives_and_powers_keep_their_relative_precision(backend):
    # tanh'' = 2 tanh³ − 2 tanh and σ'' = σ − 3σ² + 2σ³ expand into sums no pair of terms covers:
    # the dense Hessian of tanh(x) at 19 was 77% off (hvp exact), at 25 it was 0; (tanh²)' and
    # log(cosh)'' (−sinh²/cosh² + 1) lost their digits the same way
    t = sp.Symbol("t", real=True)
    cases = {"tanh": (sp.tanh(t), lambda z: -2 * mp.tanh(z) * mp.sech(z) ** 2),
             "sigmoid": (sg.ops.sigmoid(t), lambda z: _sig(z) * _sig(-z) * (1 - 2 * _sig(z))),
             "tanh(2t)": (sp.tanh(2 * t), lambda z: -8 * mp.tanh(2 * z) * mp.sech(2 * z) ** 2),
             "log cosh": (sp.log(sp.cosh(t)), lambda z: mp.sech(z) ** 2)}
    for name, (e, second) in cases.items():
        f = sg.compile(e, [t], backend=backend)
        for z in (-30.0, -19.0, -5.0, -1e-12, 1e-8, 0.5, 12.0, 19.0, 25.0, 30.0):  # σ'' near 0: 1 − 2σ = −tanh(z/2)
            want = float(second(mp.mpf(z)))
            assert f.hessian([z])[0, 0] == pytest.approx(want, rel=1e-12, abs=1e-300), (name, z)
            assert f.hvp([z], [1.0])[0] == pytest.approx(want, rel=1e-12, abs=1e-300), (name, z)
    g = sg.compile(sp.tanh(t) ** 2, [t], backend=backend)
    for z in (19.0, 25.0):
        want = float(2 * mp.tanh(z) * mp.sech(z) ** 2)
        assert g.grad([z])[0] == pytest.approx(want, rel=1e-12)


COMPOUND = [a * sp.tanh(a), 2 * a * sg.ops.sigmoid(2 * a), a * sg.ops.sigmoid(a) + sg.ops.sigmoid(a) ** 3,
            -sg.ops.sigmoid(sp.log(1 + sp.exp(a))), -a * sg.ops.sigmoid(-1) + sp.tanh(2 * a) ** 2 + sg.ops.sigmoid(-a),
            sp.tanh(a) ** 8 - sg.ops.sigmoid(2 * a), sp.tanh(a) ** 2 + sp.tanh(2 * a) ** 2,
            a * sg.ops.sigmoid(a) + a * sg.ops.sigmoid(2 * a) - 2 * a - sp.tanh(a) ** 2 + sg.ops.sigmoid(-a),
            (a * sg.ops.sigmoid(-a) + a + sp.log(sg.ops.sigmoid(-a))) ** 2, 3 * a - sp.log(1 + sp.exp(a)),
            (sp.exp(a) - sp.exp(-a)) / (sp.exp(a) + sp.exp(-a)), 2 * (1 - sp.exp(-a)) / (1 + sp.exp(-a))]


@pytest.mark.parametrize("e", COMPOUND, ids=str)
def test_compound_derivatives_keep_their_relative_precision(e):
    # the pair 2 − 2·tanh(a)² was taken out of a·tanh(a)'s second derivative first, leaving
    # −2a·tanh + 2a·tanh³ to cancel: 1.4e-34 for −5.6e-33 at a = 40; silu(2a)'s at a = 20 had the
    # wrong sign; a polynomial in tanh or σ beside other terms was not factored (tanh⁸ − σ(2a): 0 at
    # a = 25 for −1.2e-20), nor σ(a) + σ(2a) − 2 (SymPy merges the pairs' −1s). Oracle: sympy.diff
    # of the expression with σ written out, mpmath at 700 digits. a + log σ(−a) is a − softplus(a),
    # which cancels for large a: the gradient of its square was 0 at a = 20 (rewritten softplus(−a)).
    # tanh written with exponentials had its derivative cancel: half of sech² from a = 19 on.
    spelled = e.replace(lambda n: isinstance(n, sg.ops.sigmoid), lambda n: 1 / (1 + sp.exp(-n.args[0])))
    first, second = (sp.lambdify(a, sp.diff(spelled, a, k), "mpmath") for k in (1, 2))
    f = sg.compile(e, [a], backend="python")
    with mp.workdps(700):
        for z in (-40.0, -25.0, -12.0, 0.5, 12.0, 25.0, 40.0):
            want1, want2 = float(first(mp.mpf(z))), float(second(mp.mpf(z)))
            assert f.grad([z])[0] == pytest.approx(want1, rel=1e-12, abs=1e-300), z
            assert f.hessian([z])[0, 0] == pytest.approx(want2, rel=1e-12, abs=1e-300), z


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["numba", "python"])
def test_roots_of_sums_of_squares_do_not_overflow(backend, dtype):
    """asinh'(x) = 1/sqrt(x**2 + 1) came out 0 for |x| > 1.3e154 (float32: 1.8e19), where it is
    1/|x|, and x/sqrt(x**2 + y**2) NaN: x*x overflowed. The roots are computed scaled (hypot).
    Oracle: sympy.diff of the expression, evaluated by mpmath at 50 digits."""
    y = sp.Symbol("y", real=True)
    big = [1e-300, 1e-160, 0.3, 1.0, 7.0, 1e17, 1e19, 1e25, 1e155, 1e300]
    vals = [v for v in big if dtype == "float64" or 1e-37 < v < 1e38]
    # beside exp(−x²), x² is a temporary shared by CSE, and √(t0 + 1) was not seen as a root (inf, gradient 0)
    cases = [(sp.asinh(x), [x]), (sp.sqrt(3 + x**2), [x]), (sp.sqrt(x**2 + y**2), [x, y]),
             (sp.sqrt(x**2 + 1) + sp.exp(-(x**2)), [x])]
    for e, wrt in cases:
        f = sg.compile(e, wrt, dtype=dtype, backend=backend, reduction="sum")
        for v in vals:
            for s in (1, -1):
                pt = {x: s * v, y: 2.5 * v}
                theta = np.array([pt[w] for w in wrt], dtype)
                at = {w: mp.mpf(float(t)) for w, t in zip(wrt, theta)}
                for got, w in zip(f.grad(theta), wrt):
                    want = float(sp.lambdify(wrt, sp.diff(e, w), "mpmath")(*(at[u] for u in wrt)))
                    tol = (1e-15 if dtype == "float64" else 1e-7) * (50 if e.has(sp.exp) else 1)  # x/√2 − 2/e at 1
                    assert float(got) == pytest.approx(want, rel=tol, abs=0), (e, w, s * v, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["numba", "python"])
def test_quotients_by_sums_of_squares_do_not_overflow(backend, dtype):
    """atan2(y, x)'s gradient (−y, x)/(x² + y²) came out 0 at x = y = 1e160 (float32: 1e20), where it
    is ∓5e-161, without a warning: x² + y² overflowed (CSE also shared 1/(x² + y²), which is 0 there);
    x·y/(x² + y²) and log(x² + y²) were inf. Values and gradients of order 1/x and above are checked
    (1/x², beyond 1e154, is subnormal). Oracle: sympy.diff of the expression, mpmath at 50 digits."""
    y = sp.Symbol("y", real=True)
    vals = [1e-155, 0.3, 7.0, 1e19, 1e25, 1e160] if dtype == "float64" else [1e-18, 0.3, 7.0, 1e15, 1e20]
    cases = [sp.atan2(y, x), sp.log(x**2 + y**2), x * y / (x**2 + y**2), x**3 / (x**2 + y**2),
             x * sp.atan2(y, x), sp.atan2(y + sp.Rational(1, 2), x)]  # CSE's x/S computed alone: inf at 1e-155
    for e in cases:
        f = sg.compile(e, [x, y], dtype=dtype, backend=backend, reduction="sum")
        first = [sp.lambdify([x, y], sp.diff(e, w), "mpmath") for w in (x, y)]
        second = [[sp.lambdify([x, y], sp.diff(e, u, w), "mpmath") for w in (x, y)] for u in (x, y)]
        for v in vals:
            theta = np.array([v, -1.5 * v], dtype)
            at = [mp.mpf(float(t)) for t in theta]
            tol = 1e-14 if dtype == "float64" else 1e-5
            assert float(f.value(theta)) == pytest.approx(float(sp.lambdify([x, y], e, "mpmath")(*at)), rel=tol)
            for got, d in zip(f.grad(theta), first):
                assert float(got) == pytest.approx(float(d(*at)), rel=tol, abs=0), (e, v, dtype)
            if dtype == "float64" and 1e-100 < v < 1e100:  # the Hessian's entries are ~1/v²
                for row, drow in zip(f.hessian(theta), second):
                    for got, d in zip(row, drow):
                        assert float(got) == pytest.approx(float(d(*at)), rel=1e-13, abs=1e-300), (e, v)


def test_float_coefficients_and_polynomials_beside_other_terms():
    # 0.001·σ(−x)³ + σ(−x): SymPy's Float arithmetic left the second derivative's polynomial a
    # remainder of 1e-17 at σ = 1, so it was not factored (7e-4 off at x = −30); in the gradient of
    # x·(tanh(y)³ + 1)·(y·tanh(y)² − 0.001·tanh(y)) the terms in y vanish at tanh = ±1 and the rest do
    # not (1.1e-6 off at y = 1e10); an hvp with y·σ(−x)⁴ − y·σ(−x)³ (11 for 9.00002 at (−50, 1e16)).
    # Oracle: sympy.diff of the expression with σ written out, mpmath at 80 digits.
    y = sp.Symbol("y", real=True)
    s = sg.ops.sigmoid(-x)
    cases = [(0.001 * s**3 + s, [x], [[-10.0], [-30.0]]),
             (x * (sp.tanh(y) ** 3 + 1) * (y * sp.tanh(y) ** 2 - 0.001 * sp.tanh(y)), [x, y], [[-1.37, 1e6], [-1.37, 1e10]]),
             (y * (x + 1.5 * y * s**3 + y * s - 0.5 * s**2), [x, y], [[-50.0, 1e16], [-40.0, 3e15]])]
    for e, wrt, points in cases:
        spelled = e.replace(lambda n: isinstance(n, sg.ops.sigmoid), lambda n: 1 / (1 + sp.exp(-n.args[0])))
        grad = [sp.lambdify(wrt, sp.diff(spelled, w), "mpmath") for w in wrt]
        hess = [[sp.lambdify(wrt, sp.diff(spelled, u, w), "mpmath") for w in wrt] for u in wrt]
        f = sg.compile(e, wrt, backend="python", reduction="sum")
        with mp.workdps(80):
            for pt in points:
                at = [mp.mpf(v) for v in pt]
                for got, d in zip(f.grad(pt), grad):
                    assert got == pytest.approx(float(d(*at)), rel=1e-12), (e, pt)
                v = np.array([-1.0, 2.0][: len(wrt)])
                want = [float(sum(h(*at) * vj for h, vj in zip(row, v))) for row in hess]
                for got, w in zip(f.hvp(pt, v), want):
                    assert got == pytest.approx(w, rel=1e-10), (e, pt)


def test_a_root_keeps_the_temporaries_its_sum_uses():
    # found by the corpus: atan(u)'s derivative u'/(1 + u²), u holding 3c/(2(T² + 1)): the root of
    # 1 + u² read the temporary T² + 1, whose own statement was dropped (NameError 't0')
    T, c = sp.symbols("T c", real=True)
    e = sp.atan(T * sp.sin(T) - 3 * c / (2 * (T**2 + 1)))
    r = sg.compile_residuals(e, [T], [c], backend="python")
    d = sp.lambdify([T, c], sp.diff(e, T), "mpmath")
    cs = np.array([1.0, -2.0, 1e170])
    with mp.workdps(50):
        want = [float(d(mp.mpf(0.4), mp.mpf(v))) for v in cs]
    np.testing.assert_allclose(r.jacobian([0.4], cs)[:, 0], want, rtol=1e-13)


def test_a_pair_whose_common_factor_sympy_distributed():
    # 2x + 2y − 2(x + y)·σ(y): SymPy multiplied the 2 into x + y in the sum's own terms but not in
    # the product, so t − t·σ(y) was not found (the sum cancels for large y). Oracle: mpmath.
    y = sp.Symbol("y", real=True)
    e = 2 * x + 2 * y - 2 * (x + y) * sg.ops.sigmoid(y)
    plain = {"sigmoid_e": lambda u, e: 1 / (1 + e) if u >= 0 else e / (1 + e)}  # σ(u) from e^−|u|
    f = sp.lambdify([x, y], accurate_tails(e), [plain, "numpy"])
    with mp.workdps(60):
        for yv in (20.0, 40.0, -5.0):
            want = 2 * (mp.mpf(0.3) + yv) * _sig(-mp.mpf(yv))
            assert f(0.3, yv) == pytest.approx(float(want), rel=1e-14, abs=0), yv


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_logistic_gradient_for_confident_labels(dtype):
    # the BCE's gradient x·(σ(θx) − y) for y = 1 computed σ(40) − 1: −7.7e-53 for −1.4e-18 in float64,
    # 0 in float32 (and 3.7e-4 off at θ = 10). Oracle: the textbook formula in mpmath.
    t, y = sp.symbols("theta y", real=True)
    nll = -(y * sp.log(1 / (1 + sp.exp(-t * x))) + (1 - y) * sp.log(1 - 1 / (1 + sp.exp(-t * x))))
    f = sg.compile(nll, [t], [x, y], dtype=dtype)
    X, Y = np.array([1.0, 2.0, -3.0, -0.5], dtype=dtype), np.array([1.0, 1.0, 0.0, 0.0], dtype=dtype)
    rel = 1e-13 if dtype == "float64" else 2e-6
    for th in (10.0, 40.0):  # every sample on its label's side
        want = sum(xi * (_sig(th * mp.mpf(float(xi))) - int(yi)) for xi, yi in zip(X, Y)) / len(X)
        assert f.grad([th], X, Y)[0] == pytest.approx(float(want), rel=rel, abs=0), th


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spelling", ["erf", "erfc"])
def test_probit_and_gelu_in_the_lower_tail(dtype, spelling):
    # Φ(u) = (1 + erf(u/√2))/2 cancels for u < −5: a probit model's log-likelihood was inf at u = −9
    # (with a warning), its gradient inf; GELU(−10) came out 0 for −7.6e-23. erfc(−u/√2)/2, which
    # SymPy writes 1 − erfc(u/√2)/2, the same. Oracle: mpmath's ncdf and sympy.diff in mpmath.
    b, y = sp.symbols("b y", real=True)
    cdf = ((lambda u: (1 + sp.erf(u / sp.sqrt(2))) / 2) if spelling == "erf"
           else (lambda u: sp.erfc(-u / sp.sqrt(2)) / 2))
    nll = -(y * sp.log(cdf(b * x)) + (1 - y) * sp.log(1 - cdf(b * x)))
    gelu = b * x * cdf(b * x)
    f, g = (sg.compile(e, [b], [x, y], dtype=dtype, reduction="sum") for e in (nll, gelu * y))
    rel, cases = (1e-12, [-20.0, -9.0, 9.0, -3.0]) if dtype == "float64" else (2e-5, [-9.0, 9.0, -3.0])
    with mp.workdps(50):
        for xv in cases:
            yv = 1.0 if xv < 0 else 0.0  # the sample far on the wrong side: the loss is large
            X, Y = np.array([xv], dtype=dtype), np.array([yv], dtype=dtype)
            u = mp.mpf(xv)
            want = -(yv * mp.log(mp.ncdf(u)) + (1 - yv) * mp.log(1 - mp.ncdf(u)))
            dwant = -(yv - mp.ncdf(u)) * mp.npdf(u) * u / (mp.ncdf(u) * (1 - mp.ncdf(u)))
            v, d = f.value_and_grad([1.0], X, Y)
            assert v == pytest.approx(float(want), rel=rel) and d[0] == pytest.approx(float(dwant), rel=rel), xv
        X, Y = np.array([-10.0], dtype=dtype), np.array([1.0], dtype=dtype)
        u = mp.mpf(-10)
        v, d = g.value_and_grad([1.0], X, Y)  # GELU(−10) and its derivative in b
        assert v == pytest.approx(float(u * mp.ncdf(u)), rel=rel, abs=0)
        assert d[0] == pytest.approx(float(u * mp.ncdf(u) + u * u * mp.npdf(u)), rel=rel, abs=0)


def test_a_polynomial_that_misses_by_a_users_constant_keeps_it():
    # 1e15·tanh(a)² − 999999999999999 does not vanish at tanh² = 1 (it leaves 1), but at 53 bits that
    # 1 passed for the Floats' rounding and was dropped: −0.017 for 0.983 at a = 20 (in the value and
    # in ∂/∂x of x times it). Kept, the sum cancels as written (to 2%), with the right sign.
    y = sp.Symbol("y", real=True)
    e = y * (sp.Float(1e15) * sp.tanh(a) ** 2 - 999999999999999)
    f = sg.compile(e, [y, a], backend="python")
    with mp.workdps(50):
        want = float(1e15 * mp.tanh(20) ** 2 - 999999999999999)
    assert f.value([1.0, 20.0]) == pytest.approx(want, rel=0.03)
    assert f.grad([1.0, 20.0])[0] == pytest.approx(want, rel=0.03)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_powers_of_sums_are_not_multiplied_out(dtype):
    # tidy kept the cheapest of its candidates, and one was 1/(1 − x²)'s derivative expanded,
    # 2x/(x⁴ − 2x² + 1): 10% off at x = 0.99999999, 33% in float32 at 0.9999. Oracle: sympy.diff in mpmath.
    e = sp.sqrt(1 - x**2) + 1 / (1 - x**2)
    assert "x**4" not in str(sg.grad(e, x))
    f = sg.compile(e, [x], dtype=dtype)
    d = sp.lambdify(x, sp.diff(e, x), "mpmath")
    points, rel = ([0.99999999, -0.9999999, 0.9999], 1e-7) if dtype == "float64" else ([0.9999, -0.999], 1e-3)
    with mp.workdps(50):
        for v in points:
            # the condition number (~1/(1 − |x|)) bounds what any float formula can do at x itself
            want = float(d(mp.mpf(float(np.asarray(v, dtype=dtype)))))
            assert f.grad([v])[0] == pytest.approx(want, rel=rel), v


def test_log_of_one_plus_erf_keeps_log1p_near_zero_and_erfc_in_the_tail():
    # with 1 + erf(u) written as erfc(−u), log(1 + erf(1e-20)) came out 0 (log1p had kept it), and in
    # value_and_grad log1p(erf(u)) took the temporary first: −inf at u = −9 with a warning. A number
    # Erfc(−2) inside Max raised "not comparable". Oracle: mpmath.
    b, t = sp.symbols("b t", real=True)
    f = sg.compile(sp.log(1 + sp.erf(b * t)), [b], [t], backend="python")
    with mp.workdps(50):
        for u in (1e-20, 3e-9, -9.0, -12.0, 2.0):
            want = float(mp.log(mp.erfc(-mp.mpf(u))))
            dwant = float(2 / mp.sqrt(mp.pi) * mp.exp(-mp.mpf(u) ** 2) / mp.erfc(-mp.mpf(u)))
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                v, g = f.value_and_grad([u], np.array([1.0]))
            assert v == pytest.approx(want, rel=1e-14, abs=0) and g[0] == pytest.approx(dwant, rel=1e-13), u
    m = sg.compile(sp.Max(b, 1 + sp.erf(2)) ** 2, [b], backend="python")
    assert m.value([0.5]) == pytest.approx(float((1 + mp.erf(2)) ** 2), rel=1e-15)


def test_the_entropy_of_a_sigmoid_keeps_its_digits_in_both_tails():
    # −(p log p + (1 − p) log(1 − p)) with p = σ(a·x) became bce_logits(a·x, σ(a·x)), max(z, 0) − z·σ(z) + ...:
    # 4.2e-18 for 1.74e-16 at z = 40 (scipy's entr(expit(z)) + entr(expit(−z)) is right)
    a, x = sp.symbols("a x", real=True)
    p = 1 / (1 + sp.exp(-a * x))
    h = -(p * sp.log(p) + (1 - p) * sp.log(1 - p))
    f = sg.compile(h, wrt=[a], data=[x], on_nonfinite="raise")
    fns = [sp.lambdify((a, x), e, "mpmath") for e in (h, sp.diff(h, a), sp.diff(h, a, 2))]
    for z in (-300.0, -40.0, -1.5, 0.0, 0.25, 20.0, 40.0, 300.0):
        data = np.array([z])
        got = [f.value([1.0], data), f.grad([1.0], data)[0], f.hessian([1.0], data)[0, 0]]
        with mp.workdps(400):
            want = [float(fn(1, mp.mpf(z))) for fn in fns]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300, err_msg=f"z = {z}")
