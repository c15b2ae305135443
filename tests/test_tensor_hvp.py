"""Hessian-vector products of tensor (matrix) models (``symgrad/tensor/tangent.py``).

Three oracles: central differences of the compiled gradient (every model of the tensor
suite), sympy.diff twice of the scalarised tiny network in 30-digit arithmetic (shares no
code with the generator), and the Numba, float32 and Python paths against each other.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import ShapeError, UnsupportedModelError
from symgrad.lang.functions import msum, softmax_ce
from symgrad.lang.ops import sigmoid, softplus
from symgrad.runtime.checks import split_flat
from tests.test_tensor import MODELS, _build, tiny_oracle_problem

MS = sp.MatrixSymbol
# relu models included: at these seeded points no pre-activation is within eps of the kink
# (a difference quotient across it would not be H v)


def _flat(ps):
    return np.concatenate([np.ravel(p) for p in ps])


@pytest.mark.parametrize("name", list(MODELS))
def test_hvp_matches_differences_of_the_gradient(name):
    rng = np.random.default_rng(sum(map(ord, name)) + 7)
    f, ps, ds = _build(name, rng)
    th = _flat(ps)
    v = rng.normal(size=th.size)
    eps = 1e-5
    fd = (f.grad(th + eps * v, *ds) - f.grad(th - eps * v, *ds)) / (2 * eps)
    hv = f.hvp(th, v, *ds)
    scale = max(np.max(np.abs(fd)), 1e-8)
    assert np.max(np.abs(hv - fd)) / scale < 1e-6, (hv, fd)
    # the list form gives the same numbers, shaped like the parameters
    hl = f.hvp(ps, split_flat(v, f.shapes), *ds)
    np.testing.assert_allclose(_flat(hl), hv, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("loss,act,n_out", [("mse", sigmoid, 1), ("ce", softplus, 2), ("mse", sp.tanh, 2)])
def test_hessian_equals_sympy_diff_twice(loss, act, n_out):
    """The dense Hessian (hvp per column) of a 2-3-n_out net equals the second derivatives of
    the explicit scalar expression, evaluated at 30 digits."""
    rng = np.random.default_rng(3)
    f, params, X, Y, explicit, total = tiny_oracle_problem(loss, act, n_out, 2, rng)
    syms = [s for m in explicit for s in m]
    ps = [0.8 * rng.normal(size=p.shape) for p in params]
    point = {s: sp.Float(v, 30) for s, v in zip(syms, _flat(ps), strict=True)}
    grads = [sp.diff(total, s) for s in syms]
    want = np.array([[float(sp.diff(g, s).xreplace(point).evalf(30)) for s in syms] for g in grads])
    H = f.hessian(ps, X, Y)
    np.testing.assert_allclose(H, want, rtol=1e-10, atol=1e-12)
    v = rng.normal(size=len(syms))
    np.testing.assert_allclose(f.hvp(_flat(ps), v, X, Y), want @ v, rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def mlp():
    net = sg.nn.MLP([4, 6, 3], activation="tanh")
    y = MS("y", 3, 1)
    return net, y, sg.losses.softmax_cross_entropy(net.expr, y)


def test_numba_float32_and_python_agree(mlp):
    net, y, loss = mlp
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(9, 4)), np.eye(3)[rng.integers(0, 3, 9)]
    ps = net.init_params(0)
    v = rng.normal(size=_flat(ps).size)
    want = sg.compile(loss, net.params, [net.x, y], backend="python").hvp(_flat(ps), v, X, Y)
    got = sg.compile(loss, net.params, [net.x, y]).hvp(_flat(ps), v, X, Y)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    f32 = sg.compile(loss, net.params, [net.x, y], dtype="float32")
    h32 = f32.hvp(_flat(ps).astype(np.float32), v.astype(np.float32), X.astype(np.float32), Y.astype(np.float32))
    assert h32.dtype == np.float32
    np.testing.assert_allclose(h32, want, rtol=2e-4, atol=2e-5)


def test_check_grads_checks_tensor_second_order(mlp):
    net, y, loss = mlp
    f = sg.compile(loss, net.params, [net.x, y], backend="python")
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(5, 4)), np.eye(3)[rng.integers(0, 3, 5)]
    res = sg.check_grads(f, net.init_params(1), X, Y)
    assert res.hvp_error is not None and res.hvp_error < 1e-6


def test_newton_cg_with_tensor_hessp():
    """scipy's Newton-CG with the exact hessp reaches the least-squares solution of a linear
    layer (a quadratic loss: one Newton step is exact)."""
    from scipy.optimize import minimize

    W, x, y = MS("W", 2, 3), MS("x", 3, 1), MS("y", 2, 1)
    f = sg.compile(msum((W * x - y).applyfunc(lambda u: u**2)), [W], [x, y], backend="python")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 3))
    Y = X @ rng.normal(size=(3, 2)) + 0.01 * rng.normal(size=(40, 2))
    r = minimize(f.value_and_grad, np.zeros(6), args=(X, Y), jac=True, hessp=f.hvp, method="Newton-CG")
    want = np.linalg.lstsq(X, Y, rcond=None)[0].T.ravel()
    np.testing.assert_allclose(r.x, want, rtol=1e-6, atol=1e-8)


def test_bad_direction_and_large_hessian_are_refused():
    W, x, y = MS("W", 40, 30), MS("x", 30, 1), MS("y", 40, 1)
    f = sg.compile(softmax_ce(W * x, y), [W], [x, y], backend="python")
    X, Y = np.ones((2, 30)), np.eye(40)[:2]
    with pytest.raises(ShapeError, match="v"):
        f.hvp(np.zeros(1200), np.zeros(5), X, Y)
    with pytest.raises(UnsupportedModelError, match="hvp"):
        f.hessian(np.zeros(1200), X, Y)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bce_hessian_at_confident_logits(dtype):
    # the BCE's second derivative σ(z)(1 − σ(z)) was 0 at z = 40 for 4.2e-18 (float32: 17% off at 15):
    # the map's factor 1 − σ(z) is computed as σ(−z). Oracle: mpmath.
    import mpmath

    x, W, y = sp.MatrixSymbol("x", 1, 1), sp.MatrixSymbol("W", 1, 1), sp.MatrixSymbol("y", 1, 1)
    f = sg.compile(sg.bce_sum(W * x, y), [W], [x, y], dtype=dtype, backend="python")
    for z in ((30.0, 40.0) if dtype == "float64" else (15.0, 30.0)):
        want = float(mpmath.exp(-z) / (1 + mpmath.exp(-z)) ** 2)
        H = f.hessian([np.array([[z]], dtype)], np.array([[1.0]], dtype), np.array([[0.0]], dtype))[0, 0]
        assert H == pytest.approx(want, rel=1e-14 if dtype == "float64" else 1e-6), z


def test_a_matrix_element_inside_an_elementwise_function_is_a_lane():
    # tanh(c[0, 0]·q + A[1, 0]) raised SymPy's TypeError (c of c[0, 0] was replaced by a lane symbol).
    # Oracle: central differences of a NumPy forward pass.
    W, x, c, M = MS("W", 4, 3), MS("x", 3, 1), MS("c", 1, 1), MS("M", 2, 2)
    f = sg.compile(sg.msum(sg.elementwise(lambda q: sp.tanh(c[0, 0] * q + M[1, 0]), W * x)), [W, c, M], [x],
                   backend="python")
    rng = np.random.default_rng(0)
    ps, X = [rng.normal(size=(4, 3)), np.array([[0.7]]), rng.normal(size=(2, 2))], rng.normal(size=(5, 3))

    def value(ps):
        return np.mean(np.tanh(ps[1][0, 0] * (X @ ps[0].T) + ps[2][1, 0]).sum(axis=1))

    v, g = f.value_and_grad(ps, X)
    assert v == pytest.approx(value(ps), rel=1e-13)
    for k, p in enumerate(ps):
        for idx in np.ndindex(p.shape):
            up, down = [q.copy() for q in ps], [q.copy() for q in ps]
            up[k][idx] += 1e-6
            down[k][idx] -= 1e-6
            assert g[k][idx] == pytest.approx((value(up) - value(down)) / 2e-6, rel=1e-6, abs=1e-9), (k, idx)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_written_out_log_sum_exp_is_computed_with_the_max_taken_out(dtype):
    # −Σ y ⊙ h + log Σ exp.(h), a softmax cross-entropy by hand, was inf from logits of 709 (float32: 88).
    # Oracle: torch's cross_entropy in float64.
    torch = pytest.importorskip("torch")
    W, x, y = MS("W", 3, 2), MS("x", 2, 1), MS("y", 3, 1)
    h = W * x
    f = sg.compile(-msum(sp.HadamardProduct(y, h)) + sp.log(msum(sg.elementwise(sp.exp, h))), [W], [x, y],
                   dtype=dtype, backend="python")
    Wv = np.array([[100.0, 1.0], [2.0, 3.0], [-50.0, 1.0]])
    X, Y = np.array([[9.0, 1.0], [-8.0, 2.0]]), np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    v, g = f.value_and_grad([Wv.astype(dtype)], X.astype(dtype), Y.astype(dtype))
    Wt = torch.tensor(Wv, requires_grad=True)
    want = torch.nn.functional.cross_entropy(torch.tensor(X) @ Wt.T, torch.tensor([1, 0]))
    want.backward()
    assert np.isfinite(v) and v == pytest.approx(want.item(), rel=1e-12 if dtype == "float64" else 1e-6)
    np.testing.assert_allclose(g[0], Wt.grad.numpy(), rtol=1e-10 if dtype == "float64" else 1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sech_squared_in_a_hessian_vector_product(dtype):
    # the log-cosh loss's second derivative 1 − tanh²(r) in a map's product was 7% off at r = 8.15 in
    # float32: it is computed as sech²(r). Oracle: mpmath.
    import mpmath

    x, y, W = MS("x", 2, 1), MS("y", 2, 1), MS("W", 2, 2)
    f = sg.compile(msum(sg.elementwise(lambda r: sp.log(sp.cosh(r)), W * x - y)), [W], [x, y], dtype=dtype,
                   reduction="sum", backend="python")
    for r in (8.15, 0.3, 30.0):
        X, Y = np.array([[r, 0.0]], dtype), np.zeros((1, 2), dtype)
        hv = f.hvp([np.eye(2, dtype=dtype)], [np.array([[1.0, 0.0], [0.0, 0.0]], dtype)], X, Y)
        r32 = float(np.asarray(r, dtype))
        want = float(r32**2 / mpmath.cosh(r32) ** 2)
        assert hv[0][0, 0] == pytest.approx(want, rel=1e-13 if dtype == "float64" else 2e-6), r
