"""Formula models with many scalar parameters: code generation must scale linearly.

A cosine series ``sum(c_k*cos(k*w*t))`` fitted by squared error once took 464 s to compile with
200 parameters (~N^2.2, and ~N^3 in the derivation): each gradient holds the whole model, and
the seams were substituted one node at a time over every gradient, then each gradient was
tidied. Wall times are shown by benchmarks, not asserted here; these tests count the work
(Python function calls, with SymPy's cache cleared), which is deterministic: doubling N must
about double it, where the quadratic code quadrupled it or worse.

Also here: indexing the elements of a matrix product (``(w.T*X)[0, 0]``, which SymPy expands
into one term per element) is refused with a fix, ``sg.msum(w.T*X)``, that compiles at once.
"""

from __future__ import annotations

import cProfile
import pstats

import numpy as np
import pytest
import sympy as sp
from sympy.core.cache import clear_cache
from sympy.matrices.expressions.matexpr import MatrixElement

import symgrad as sg
import symgrad.derive.reverse as D
from symgrad.derive.reverse import sweep
from symgrad.derive.simplify import TIDY_LIMIT, tidy
from symgrad.errors import SymgradError, UnsupportedModelError
from symgrad.front.validate import MAX_MATRIX_ELEMENTS, check_matrix_elements

w, t, y = sp.symbols("w t y", real=True)


def cosine_series(n: int, prefix: str = "c"):
    """(loss, params, data): ``(sum_k c_k*cos(k*w*t) - y)**2``, params c_1..c_n and w."""
    cs = sp.symbols(f"{prefix}_1:{n + 1}", real=True)
    model = sum(c * sp.cos(k * w * t) for k, c in enumerate(cs, 1))
    return (model - y) ** 2, [*cs, w], [t, y]


def calls(fn) -> int:
    """Python function calls made by ``fn()``, from a cold SymPy cache."""
    clear_cache()
    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    return pstats.Stats(prof).total_calls


def derivation(n: int):
    """What the compiler derives: the gradient, and the Hessian-vector product's sweep over
    grad . v (one more reverse sweep, as symgrad.build.build_spec does)."""
    loss, params, _ = cosine_series(n)
    s = sweep(loss)
    grads = [s.gradient(p) for p in params]
    v = [sp.Dummy(f"v{k}", real=True) for k in range(len(params))]
    d = sweep(sp.Add(*[g * vk for g, vk in zip(grads, v)]))
    return grads, [d.gradient(p) for p in params]


# N = 60 and 120 are both past the sizes where gradients are tidied (simplify.TIDY_LIMIT) and
# substituted stepwise (derive.STEPWISE_MAX_NODES), so the two runs do the same kind of work.
N_SMALL, N_LARGE = 60, 120


def test_derivation_work_grows_linearly():
    small = calls(lambda: derivation(N_SMALL))
    large = calls(lambda: derivation(N_LARGE))
    # linear: ~2.2 (measured); the stepwise substitution and tidying of every gradient: >= 4
    assert large / small < 2.6, (small, large)


def test_compile_work_grows_about_linearly(tmp_path, monkeypatch):
    """The whole compile (derivation, CSE, printing), python backend, on a cache miss."""
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))

    def compile_series(n):
        loss, params, data = cosine_series(n, prefix=f"a{n}")
        return lambda: sg.compile(loss, wrt=params, data=data, backend="python")

    small = calls(compile_series(N_SMALL))
    large = calls(compile_series(N_LARGE))
    # measured 2.8 when written, 3.15 since the log1p pass after CSE (2026-12): the derivation is
    # linear, codegen still has ~N^2 parts (a tree walk of every expression for sin/cos arguments,
    # sympy.cse); the code before this test: >= 4.5
    assert large / small < 3.3, (small, large)


def test_adjoint_of_a_shared_leaf_is_one_sum():
    """w's adjoint collects one term per cosine: added once, not rebuilt per term."""
    loss, params, _ = cosine_series(30)
    s = sweep(loss)
    adj_w = s.adjoint[w]
    assert isinstance(adj_w, sp.Add) and len(adj_w.args) == 30


@pytest.fixture(scope="module")
def series_200():
    loss, params, data = cosine_series(200, prefix="b")
    f = sg.compile(loss, wrt=params, data=data, backend="python")
    rng = np.random.default_rng(7)
    t_ = rng.uniform(0.0, 1.0, 40)
    y_ = np.cos(3.0 * t_) + 0.1 * rng.normal(size=40)
    theta = np.concatenate([0.05 * rng.normal(size=200), [1.3]])
    return f, theta, t_, y_


def test_200_parameters_gradient_matches_central_differences(series_200):
    f, theta, t_, y_ = series_200
    v, g = f.value_and_grad(theta, t_, y_)
    assert v == pytest.approx(f.value(theta, t_, y_), rel=1e-14)
    h = 1e-6
    for k in (0, 1, 99, 199, 200):  # c_1, c_2, c_100, c_200 and w
        e = np.zeros_like(theta)
        e[k] = h
        fd = (f.value(theta + e, t_, y_) - f.value(theta - e, t_, y_)) / (2 * h)
        assert g[k] == pytest.approx(fd, rel=1e-6, abs=1e-9), k


def test_200_parameters_gradient_matches_closed_form(series_200):
    """d/dc_k mean((m - y)^2) = mean(2 (m - y) cos(k w t)), and the w component likewise."""
    f, theta, t_, y_ = series_200
    c, w_ = theta[:200], theta[200]
    k = np.arange(1, 201)
    cos = np.cos(np.outer(t_, k) * w_)
    r = cos @ c - y_
    want_c = 2 * (r[:, None] * cos).mean(axis=0)
    want_w = np.mean(2 * r * (-(np.sin(np.outer(t_, k) * w_) * (k * t_[:, None])) @ c))
    g = f.grad(theta, t_, y_)
    np.testing.assert_allclose(g[:200], want_c, rtol=1e-10, atol=1e-12)
    assert g[200] == pytest.approx(want_w, rel=1e-10)


def test_200_parameters_hvp_matches_differences_of_the_gradient(series_200):
    """The Hessian-vector product's sweep (over grad . v, 400 lanes) goes the same cached way."""
    f, theta, t_, y_ = series_200
    vec = np.cos(np.arange(201.0))
    try:
        hv = f.hvp(theta, vec, t_, y_)
    except UnsupportedModelError:
        pytest.skip("this version derives Hessian-vector products only for few parameters")
    h = 1e-6
    fd = (f.grad(theta + h * vec, t_, y_) - f.grad(theta - h * vec, t_, y_)) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


# -- the cached one-pass substitution used for large sweeps ------------------------------------
x, a, b = sp.symbols("x a b", real=True)
FORMULAS = [
    sp.cos(sp.sin(x**2) + 3 * x**2),
    sp.log(sp.exp(sp.asin(sp.tanh(a * x) / 2) / 2)) / sp.log(10),  # prints differently there
    (sp.exp(-a * x) * sp.sin(b * x) - 1) ** 2 + sp.Max(a * x, 0),
    sp.Piecewise((a * x**2, x > b), (b * sp.sqrt(1 + a**2), True)),
    1 / (a * x + b) + (a + x) ** -3 * b,
]


@pytest.mark.parametrize("expr", FORMULAS, ids=range(len(FORMULAS)))
def test_one_pass_substitution_equals_stepwise(expr, monkeypatch):
    """Both ways give the same function (they may print differently, see derive.py)."""
    stepwise = sg.grad(expr, [x, a, b])
    monkeypatch.setattr(D, "STEPWISE_MAX_NODES", 0)
    one_pass = sg.grad(expr, [x, a, b])
    rng = np.random.default_rng(3)
    for _ in range(5):
        at = dict(zip((x, a, b), rng.uniform(0.2, 1.4, 3)))
        for g1, g2, v in zip(stepwise, one_pass, (x, a, b)):
            want = float(sp.diff(expr, v).subs(at).evalf(30))
            assert float(g1.subs(at)) == pytest.approx(want, rel=1e-12, abs=1e-12)
            assert float(g2.subs(at)) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_tidy_leaves_large_expressions_alone():
    small = x * y + x * (1 - y)
    assert tidy(small) == x
    big = sp.Add(*[sp.Symbol(f"q{k}", real=True) * (x * y + x * (1 - y)) for k in range(TIDY_LIMIT)])
    assert tidy(big) is big


# -- element indexing of matrix products --------------------------------------------------------
def _inner_product_loss(n: int):
    wm, Xm = sp.MatrixSymbol("w", n, 1), sp.MatrixSymbol("X", n, 1)
    return wm, Xm, ((wm.T * Xm)[0, 0] - y) ** 2


def test_check_matrix_elements_refuses_a_large_indexed_product():
    _, _, loss = _inner_product_loss(250)  # SymPy has already expanded it: 500 elements
    with pytest.raises(UnsupportedModelError, match=r"sg\.msum\(w\.T\*X\)") as err:
        check_matrix_elements(loss)
    assert isinstance(err.value, SymgradError)
    check_matrix_elements(_inner_product_loss(3)[2])  # 6 elements, as tests/test_tensor.py uses
    n = MAX_MATRIX_ELEMENTS // 2
    check_matrix_elements(_inner_product_loss(n)[2])  # exactly the limit


def test_check_matrix_elements_does_not_expand_an_unevaluated_element():
    """An element of an unevaluated product is counted once; the check never expands it."""
    wm, Xm = sp.MatrixSymbol("w", 500, 1), sp.MatrixSymbol("X", 500, 1)
    elem = MatrixElement(sp.MatMul(wm.T, Xm, evaluate=False), 0, 0)
    check_matrix_elements((elem - y) ** 2)
    assert elem.args[0].is_MatMul  # still unevaluated


def test_compile_refuses_indexed_elements_of_a_product():
    wm, Xm, loss = _inner_product_loss(20)
    with pytest.raises(UnsupportedModelError, match=r"sg\.msum"):
        sg.compile(loss, wrt=[wm], data=[Xm, y], backend="python")


def test_msum_of_the_product_is_the_fix():
    wm, Xm, _ = _inner_product_loss(250)
    f = sg.compile((sg.msum(wm.T * Xm) - y) ** 2, wrt=[wm], data=[Xm, y], backend="python")
    rng = np.random.default_rng(0)
    wv, Xv, yv = rng.normal(size=(250, 1)), rng.normal(size=(9, 250)), rng.normal(size=9)
    v, (g,) = f.value_and_grad([wv], Xv, yv)
    r = Xv @ wv[:, 0] - yv
    assert v == pytest.approx(np.mean(r**2), rel=1e-12)
    np.testing.assert_allclose(g[:, 0], 2 * Xv.T @ r / 9, rtol=1e-10, atol=1e-12)
