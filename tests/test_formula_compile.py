"""Scalar formula models compiled with ``symgrad.api.compile``.

Derivatives are checked on the Python reference backend against finite differences and
``sympy.hessian``; the Numba backend is exercised by the pointwise model, the on-disk
cache tests and the subprocess tests (a private SYMGRAD_CACHE_DIR per test there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from scipy.optimize import minimize

import symgrad
import symgrad.api as A
from symgrad import jit
from symgrad.errors import (
    DataError,
    DtypeError,
    NonScalarLossError,
    ShapeError,
    SymgradError,
    UnboundSymbolError,
    UnsupportedFunctionError,
    UnsupportedModelError,
)

a, b, w, phi, t, y = sp.symbols("a b w phi t y", real=True)
PARAMS = [a, b, w, phi]
MODEL = a * sp.exp(-b * t) * sp.cos(w * t + phi)
LOSS = (MODEL - y) ** 2
TRUE = np.array([2.0, 0.5, 3.0, 0.4])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    T = np.linspace(0.0, 6.0, 150)
    Y = TRUE[0] * np.exp(-TRUE[1] * T) * np.cos(TRUE[2] * T + TRUE[3]) + 0.05 * rng.normal(size=T.size)
    return T, Y


@pytest.fixture(scope="module")
def osc():
    return A.compile(LOSS, PARAMS, [t, y], backend="python")


THETA = np.array([1.7, 0.35, 2.7, 0.1])


def test_value_and_grad_match_finite_differences(osc, data):
    T, Y = data
    v, g = osc.value_and_grad(THETA, T, Y)
    assert g.shape == (4,) and g.dtype == np.float64
    want = np.mean((THETA[0] * np.exp(-THETA[1] * T) * np.cos(THETA[2] * T + THETA[3]) - Y) ** 2)
    assert v == pytest.approx(want, rel=1e-13)
    assert osc.value(THETA, T, Y) == pytest.approx(v, rel=1e-14)
    assert osc.value(THETA, t=T, y=Y) == pytest.approx(v, rel=1e-14)  # data by keyword
    eps = 1e-6
    for k in range(4):
        e = np.zeros(4)
        e[k] = eps
        fd = (osc.value(THETA + e, T, Y) - osc.value(THETA - e, T, Y)) / (2 * eps)
        assert fd == pytest.approx(g[k], rel=1e-6, abs=1e-9)
    rng = np.random.default_rng(0)
    d = rng.normal(size=4)
    fd = (osc.value(THETA + eps * d, T, Y) - osc.value(THETA - eps * d, T, Y)) / (2 * eps)
    assert fd == pytest.approx(g @ d, rel=1e-6)


def test_hvp_matches_fd_of_gradient_and_dense_hessian(osc, data):
    T, Y = data
    rng = np.random.default_rng(1)
    H = osc.hessian(THETA, T, Y)
    eps = 1e-6
    for _ in range(3):
        v = rng.normal(size=4)
        hv = osc.hvp(THETA, v, T, Y)
        fd = (osc.grad(THETA + eps * v, T, Y) - osc.grad(THETA - eps * v, T, Y)) / (2 * eps)
        np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8 * np.abs(hv).max())
        np.testing.assert_allclose(hv, H @ v, rtol=1e-12, atol=1e-14)


def test_hessian_symmetric_and_equals_sympy_hessian(osc, data):
    T, Y = data
    H = osc.hessian(THETA, T, Y)
    assert H.shape == (4, 4)
    np.testing.assert_array_equal(H, H.T)
    Hs = sp.hessian(LOSS, PARAMS)
    fn = sp.lambdify((*PARAMS, t, y), Hs, "numpy")
    entries = fn(*THETA, T, Y)
    want = np.array([[np.mean(np.broadcast_to(e, T.shape)) for e in row] for row in entries])
    np.testing.assert_allclose(H, want, rtol=1e-11, atol=1e-13)


def test_sum_versus_mean_reduction(osc, data):
    T, Y = data
    fs = A.compile(LOSS, PARAMS, [t, y], backend="python", reduction="sum")
    n = len(T)
    vm, gm = osc.value_and_grad(THETA, T, Y)
    vs, gs = fs.value_and_grad(THETA, T, Y)
    assert vs == pytest.approx(n * vm, rel=1e-12)
    np.testing.assert_allclose(gs, n * gm, rtol=1e-12)
    np.testing.assert_allclose(fs.hessian(THETA, T, Y), n * osc.hessian(THETA, T, Y), rtol=1e-12, atol=1e-12)
    v = np.array([0.3, -1.0, 0.5, 2.0])
    np.testing.assert_allclose(fs.hvp(THETA, v, T, Y), n * osc.hvp(THETA, v, T, Y), rtol=1e-12, atol=1e-12)


@pytest.mark.numba
def test_pointwise_matches_closed_form_numba():
    x = sp.Symbol("x", real=True)
    f = A.compile(sp.cos(sp.sin(x**2) + 3 * x**2), [x], reduction="none", backend="numba")
    X = np.linspace(-3.0, 3.0, 10_000)
    vals, grads = f.pointwise(X)
    assert vals.shape == grads.shape == (10_000,)
    np.testing.assert_allclose(vals, np.cos(np.sin(X**2) + 3 * X**2), rtol=1e-12, atol=1e-12)
    want = -(2 * X * np.cos(X**2) + 6 * X) * np.sin(np.sin(X**2) + 3 * X**2)
    np.testing.assert_allclose(grads, want, rtol=1e-10, atol=1e-10)
    pv, pg = f.python.pointwise(X[:50])
    np.testing.assert_allclose(pv, vals[:50], rtol=1e-14)
    np.testing.assert_allclose(pg, grads[:50], rtol=1e-14)
    with pytest.raises(UnsupportedModelError, match="pointwise"):
        f.value([0.0])


X0 = np.array([1.5, 0.3, 2.8, 0.0])


def _check_fit(theta):
    np.testing.assert_allclose(theta, TRUE, atol=0.05)


def test_fit_damped_oscillation_lbfgs(osc, data):
    T, Y = data
    res = minimize(osc.value_and_grad, X0, args=(T, Y), jac=True, method="L-BFGS-B")
    assert res.success, res.message
    _check_fit(res.x)
    assert np.linalg.norm(osc.grad(res.x, T, Y)) < 1e-4


def test_fit_damped_oscillation_newton_cg(osc, data):
    T, Y = data
    res = minimize(osc.value, X0, args=(T, Y), jac=osc.grad, hessp=osc.hvp, method="Newton-CG")
    assert res.success, res.message
    _check_fit(res.x)
    ref = minimize(osc.value_and_grad, X0, args=(T, Y), jac=True, method="L-BFGS-B")
    np.testing.assert_allclose(res.x, ref.x, atol=1e-4)


# -- errors ------------------------------------------------------------------------------


def test_unbound_symbol():
    with pytest.raises(UnboundSymbolError, match=r"\bt\b.*Fix"):
        A.compile((a * t - y) ** 2, [a], [y], backend="python")
    with pytest.raises(UnboundSymbolError, match="both"):
        A.compile((a * t - y) ** 2, [a, t], [t, y], backend="python")


def test_wrong_dtype(osc, data):
    T, Y = data
    with pytest.raises(DtypeError, match=r"data 't' has dtype float32.*Fix"):
        osc.value(THETA, T.astype(np.float32), Y)
    with pytest.raises(DtypeError, match="not a real floating type"):
        osc.value(THETA, np.arange(len(T)).astype("datetime64[s]"), Y)
    # whole numbers are numbers (as a list of ints is): converted where exact, refused where rounded
    ints = np.arange(len(T))
    assert osc.value(THETA, ints, Y) == osc.value(THETA, ints.astype(np.float64), Y)
    assert osc.value(THETA, ints.astype(np.uint8) % 2 == 1, Y) == osc.value(THETA, (ints % 2).astype(float), Y)
    with pytest.raises(DtypeError, match=r"integers beyond ±2\^53.*up to 9007199254740993\)\. Fix: scale or shift them first[^,]*\.$"):
        osc.value(THETA, np.full(len(T), 2**53 + 1), Y)  # the fix said "compile with dtype='float64'": it is
    # the same as a list (rounded silently before), beyond int64, and as parameters
    for big, where in (([2**53 + 1] * len(T), "2\\^53"), ([2**70] * len(T), "2\\^63")):
        with pytest.raises(DtypeError, match=rf"data 't' holds integers beyond ±{where}"):
            osc.value(THETA, big, Y)
    with pytest.raises(DtypeError, match=r"theta holds integers beyond ±2\^53"):
        osc.value(np.array([2**53 + 1, 0, 1, 2]), T, Y)
    f32 = A.compile(LOSS, PARAMS, [t, y], backend="python", dtype="float32")
    with pytest.raises(DtypeError, match="float64"):
        f32.value(THETA, T, Y.astype(np.float32))
    with pytest.raises(DtypeError, match=r"beyond ±2\^24.*or compile with dtype='float64'"):
        f32.value(THETA, [2**24 + 1] * len(T), Y.astype(np.float32))
    # a finite number beyond float32's range was told "non-finite ... the optimizer diverged"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and NumPy's overflow warning came first
        for call, name in ((lambda: f32.value([1e39, 0, 1, 2], T.astype(np.float32), Y.astype(np.float32)), "theta"),
                           (lambda: f32.value(THETA, [1e39] * len(T), Y.astype(np.float32)), "data 't'")):
            with pytest.raises(DtypeError, match=rf"{name} holds 1e\+39, beyond float32's range"):
                call()
    v, g = f32.value_and_grad(THETA, T.astype(np.float32), Y.astype(np.float32))
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, osc.grad(THETA, T, Y), rtol=1e-3, atol=1e-4)
    with pytest.raises(DtypeError, match="float16"):
        A.compile(LOSS, PARAMS, [t, y], dtype="float16")


def test_nan_and_length_errors(osc, data):
    T, Y = data
    Tn = T.copy()
    Tn[7] = np.nan
    with pytest.raises(DataError, match=r"data 't'.*non-finite.*index 7.*Fix"):
        osc.value_and_grad(THETA, Tn, Y)
    with pytest.raises(DataError, match="different lengths.*Fix"):
        osc.value_and_grad(THETA, T, Y[:-1])
    with pytest.raises(ShapeError, match="expected 2 data array"):
        osc.value_and_grad(THETA, T)
    with pytest.raises(ShapeError, match="theta has 3 entries; expected 4"):
        osc.value_and_grad(THETA[:3], T, Y)


def test_unsupported_function():
    x = sp.Symbol("x", real=True)
    with pytest.raises(UnsupportedFunctionError, match=r"unsupported function f\(\).*Fix"):
        A.compile((sp.Function("f")(x) - y) ** 2, [x], [y], backend="python")


def test_non_scalar():
    with pytest.raises(NonScalarLossError, match=r"shape \(2, 1\)"):
        A.compile(sp.Matrix([a * t, a]), [a], [t], backend="python")


def test_errors_are_symgrad_errors():
    for cls in (DataError, DtypeError, NonScalarLossError, ShapeError, UnboundSymbolError,
                UnsupportedFunctionError, UnsupportedModelError):
        assert issubclass(cls, SymgradError)


# -- the on-disk cache ---------------------------------------------------------------------


def _forget(path: Path) -> None:
    for name in [m for m in sys.modules if m.startswith(path.stem)]:
        del sys.modules[name]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_cache_file_is_rebuilt(damage, data):
    T, Y = data
    c = sp.Symbol("c", real=True)
    loss = (a * sp.exp(-c * t) - y) ** 2 + (a**2 if damage == "garbage" else c**2) / 10
    f = A.compile(loss, [a, c], [t, y], backend="python")
    v0, g0 = f.value_and_grad([1.2, 0.3], T, Y)
    path = f.path
    assert jit._valid(path)
    text = path.read_text()
    path.write_text("garbage" if damage == "garbage" else text[: len(text) // 2])
    assert not jit._valid(path)
    _forget(path)
    with pytest.warns(UserWarning, match="corrupt"):
        f2 = A.compile(loss, [a, c], [t, y], backend="python")
    assert f2.path == path and jit._valid(path)
    v1, g1 = f2.value_and_grad([1.2, 0.3], T, Y)
    assert v1 == v0
    np.testing.assert_array_equal(g1, g0)


_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, sympy as sp
    import symgrad.api as A
    a, t, y = sp.symbols("a t y", real=True)
    f = A.compile((sp.exp(-a * t) - y) ** 2 + sp.sin(a) / 7, [a], [t, y])
    T = np.linspace(0.0, 1.0, 64)
    v, g = f.value_and_grad([0.3], T, np.exp(-0.5 * T))
    st = f._mod.value_and_grad.stats
    print(json.dumps(dict(v=float(v), g=float(g[0]), path=str(f.path),
                          hits=sum(st.cache_hits.values()), misses=sum(st.cache_misses.values()))))
    """
)


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SYMGRAD_CACHE_DIR"] = str(cache)
    root = str(Path(symgrad.__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _spawn(cache: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _SCRIPT], env=_env(cache), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _result(p: subprocess.Popen) -> dict:
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _expected():
    f = A.compile((sp.exp(-a * t) - y) ** 2 + sp.sin(a) / 7, [a], [t, y], backend="python")
    T = np.linspace(0.0, 1.0, 64)
    return f.value_and_grad([0.3], T, np.exp(-0.5 * T))


@pytest.mark.numba
def test_two_processes_compile_concurrently(tmp_path):
    procs = [_spawn(tmp_path), _spawn(tmp_path)]
    results = [_result(p) for p in procs]
    v, g = _expected()
    for r in results:
        assert r["v"] == pytest.approx(v, rel=1e-12) and r["g"] == pytest.approx(g[0], rel=1e-12)
    path = Path(results[0]["path"])
    assert results[1]["path"] == str(path) and path.parent == tmp_path
    assert jit._valid(path)
    assert not list(tmp_path.glob("*.tmp")), "temporary files were left behind"


@pytest.mark.numba
def test_second_process_hits_numba_cache(tmp_path):
    first = _result(_spawn(tmp_path))
    assert first["misses"] >= 1
    path = Path(first["path"])
    index = list((path.parent / "__pycache__").glob(f"{path.stem}.*.nbi"))
    assert index, "Numba wrote no cache index next to the generated module"
    second = _result(_spawn(tmp_path))
    assert (second["v"], second["g"]) == (first["v"], first["g"])
    assert second["hits"] >= 1 and second["misses"] == 0


def test_data_named_like_a_method_argument_can_be_given_by_keyword():
    # theta=, self= and (for hvp) v= collided with the methods' own arguments: Python's TypeError
    a, y = sp.symbols("a y", real=True)
    v, t, s = sp.Symbol("v", real=True), sp.Symbol("theta", real=True), sp.Symbol("self", real=True)
    xs, ys = np.array([1.0, 2.0]), np.array([2.0, 4.1])
    f = symgrad.compile((a * v - y) ** 2, wrt=[a], data=[v, y], backend="python")
    assert f.hvp([1.0], [1.0], v=xs, y=ys)[0] == pytest.approx(5.0)
    g = symgrad.compile((a * t - y) ** 2, wrt=[a], data=[t, y], backend="python")
    assert g.value([1.0], theta=xs, y=ys) == pytest.approx(g.value([1.0], xs, ys))
    r = symgrad.compile_residuals(a * s - y, wrt=[a], data=[s, y], backend="python")
    np.testing.assert_allclose(r.jacobian([1.0], self=xs, y=ys), [[1.0], [2.0]])


def test_value_and_grad_keeps_log1p_as_value_does():
    # CSE made 1 + a**2 a temporary of the value and its gradient; its log printed as log, not
    # log1p: value_and_grad gave log(1 + 1e-30) = 0 where value gave 1e-30
    a = sp.Symbol("a", real=True)
    for backend in ("python", "numba"):
        f = symgrad.compile(sp.log(1 + a**2), wrt=[a], reduction="sum", backend=backend)
        v, g = f.value_and_grad([1e-15])
        assert v == f.value([1e-15]) == pytest.approx(1e-30, rel=1e-14)
        assert g[0] == pytest.approx(2e-15, rel=1e-14)


def test_a_parameter_the_formula_does_not_contain_is_warned_about():
    # a typo (exp(-0.5*t) for exp(-b*t)) left b with gradient 0, and least_squares "fitted" it to its start
    with pytest.warns(UserWarning, match="wrt= holds b, which the formula does not contain") as got:
        A.compile_residuals(a * sp.exp(-0.5 * t) - y, [a, b], [t, y], backend="python")
    assert got[0].filename == __file__


def test_a_standard_error_below_float32s_spacing_is_warned_about():
    # a float32 peak centre at 1e5 moves in steps of 0.0078: the fit was 5 standard errors (2.1e-4)
    # from float64's, silently. float64 resolves it.
    A0, x0, g0, xx, yy = sp.symbols("A0 x0 g0 xx yy", real=True)
    e = A0 * sp.exp(-((xx - x0) ** 2) / (2 * g0**2)) - yy
    xs = np.linspace(1e5 - 5, 1e5 + 5, 20000)
    ys = 2 * np.exp(-((xs - 1e5 - 0.003) ** 2) / (2 * 0.7**2)) + 0.01 * np.random.default_rng(1).normal(size=xs.size)
    theta = np.array([2.0, 1e5 + 0.003, 0.7])
    r32 = A.compile_residuals(e, [A0, x0, g0], [xx, yy], dtype="float32", backend="python")
    with pytest.warns(UserWarning, match=r"standard error of x0 \(.*\) is below float32's spacing at x0 = 100000.*0.0078"):
        r32.covariance(theta, xs.astype(np.float32), ys.astype(np.float32))
    r64 = A.compile_residuals(e, [A0, x0, g0], [xx, yy], backend="python")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.sqrt(r64.covariance(theta, xs, ys)[1, 1]) < 1e-3
