"""Tensor (MatrixSymbol) models: gradients, an exact oracle, backends, scale and errors.

Most checks run on the Python reference backend (``backend="python"``), which executes
the very same generated module without Numba. Only a couple of representative models
are compiled with Numba (cold compiles cost seconds), shared via module-scoped fixtures.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct

import symgrad.api as A
from symgrad.build import generate
from symgrad.errors import (
    DataError,
    DtypeError,
    NonScalarLossError,
    ShapeError,
    SymgradError,
    UnboundSymbolError,
    UnsupportedModelError,
)
from symgrad.lang.functions import logsumexp, mean, msum, softmax_ce
from symgrad.lang.ops import bce_logits, elu, expand_ops, gelu, leaky_relu, relu, sigmoid, silu, softplus

MS = sp.MatrixSymbol

# -- helpers -------------------------------------------------------------------------


def _width(s: sp.Basic) -> int:
    return int(s.shape[0] * s.shape[1]) if isinstance(s, sp.MatrixSymbol) else 1


def random_params(f, rng, scale=0.7):
    return [scale * rng.normal(size=shape) for shape in f.shapes]


def random_data(data_syms, rng, n=5, onehot=()):
    out = []
    for s in data_syms:
        w = _width(s)
        if s in onehot:
            out.append(np.eye(w)[rng.integers(0, w, n)])
        elif isinstance(s, sp.MatrixSymbol):
            out.append(rng.normal(size=(n, w)))
        else:
            out.append(rng.normal(size=n))
    return out


def directional_fd(f, params, data, direction, eps=1e-5):
    plus = [p + eps * d for p, d in zip(params, direction, strict=True)]
    minus = [p - eps * d for p, d in zip(params, direction, strict=True)]
    return (f.value(plus, *data) - f.value(minus, *data)) / (2 * eps)


def assert_close_rel(a, b, rtol, floor=1e-9, what=""):
    err = abs(a - b)
    assert err <= rtol * max(abs(a), abs(b)) + floor, f"{what}: {a!r} vs {b!r} (abs err {err:.3g})"


def check_grads(f, params, data, rng, rtol=1e-6):
    """JAX ``check_grads`` style: the reverse-mode gradient against central differences
    along random directions (one per parameter block, plus one through all of them)."""
    value, grads = f.value_and_grad(params, *data)
    assert np.isfinite(value)
    assert value == pytest.approx(f.value(params, *data), rel=1e-13, abs=1e-13)
    assert [g.shape for g in grads] == [p.shape for p in params]
    directions = []
    for k in range(len(params)):  # each parameter block on its own
        directions.append([rng.normal(size=p.shape) if i == k else np.zeros_like(p)
                           for i, p in enumerate(params)])
    directions.append([rng.normal(size=p.shape) for p in params])
    for d in directions:
        fd = directional_fd(f, params, data, d)
        an = sum(float(np.vdot(g, u)) for g, u in zip(grads, d, strict=True))
        assert_close_rel(fd, an, rtol, what="directional derivative (finite difference vs gradient)")
    return value, grads


# -- the model zoo --------------------------------------------------------------------

x3, y2 = MS("x", 3, 1), MS("y", 2, 1)
W, b = MS("W", 2, 3), MS("b", 2, 1)
W1, b1, W2, b2 = MS("W1", 4, 3), MS("b1", 4, 1), MS("W2", 2, 4), MS("b2", 2, 1)
V = MS("V", 3, 2)
w_row, t11 = MS("w", 1, 3), MS("t", 1, 1)
U = MS("U", 2, 2)
scale_sym = sp.Symbol("s")
t_sym = sp.Symbol("tau")


def mlp_ce(act):
    return softmax_ce(W2 * (W1 * x3 + b1).applyfunc(act) + b2, y2), [W1, b1, W2, b2], [x3, y2], {y2}


def mlp_mse(act):
    out = W2 * (W1 * x3 + b1).applyfunc(act) + b2
    return msum(HadamardPower(out - y2, 2)), [W1, b1, W2, b2], [x3, y2], set()


ACTIVATIONS = {
    "sigmoid": sigmoid,
    "tanh": sp.tanh,
    "relu": relu,
    "softplus": softplus,
    "elu": lambda z: elu(z, 1),
    "leaky_relu": lambda z: leaky_relu(z, sp.Rational(1, 10)),
    "gelu": gelu,
    "silu": silu,
}

MODELS = {
    "mse_linear": lambda: (msum(HadamardPower(W * x3 + b - y2, 2)), [W, b], [x3, y2], set()),
    "mse_mean": lambda: (mean(HadamardPower(W * x3 + b - y2, 2)), [W, b], [x3, y2], set()),
    "softmax_ce_linear": lambda: (softmax_ce(W * x3 + b, y2), [W, b], [x3, y2], {y2}),
    "logsumexp": lambda: (logsumexp(W * x3 + b), [W, b], [x3], set()),
    "logsumexp_minus_target": lambda: (logsumexp(W * x3 + b) - msum(HadamardProduct(W * x3, y2)),
                                       [W, b], [x3, y2], {y2}),
    "hadamard_with_data": lambda: (msum(HadamardProduct(W * x3 + b, y2)), [W, b], [x3, y2], set()),
    "hadamard_gate": lambda: (
        msum(HadamardPower(HadamardProduct(W * x3, (V.T * x3).applyfunc(sigmoid)) - y2, 2)),
        [W, V], [x3, y2], set(),
    ),
    "transposed_weight": lambda: (msum(HadamardPower(V.T * x3 - y2, 2)), [V], [x3, y2], set()),
    "row_vector": lambda: (msum(HadamardPower(x3.T * V - y2.T, 2)), [V], [x3, y2], set()),
    "row_vector_ce": lambda: (softmax_ce((x3.T * V).T + b, y2), [V, b], [x3, y2], {y2}),
    "l2_penalty": lambda: (softmax_ce(W * x3 + b, y2) + sp.Rational(1, 100) * msum(HadamardPower(W, 2)),
                           [W, b], [x3, y2], {y2}),
    "matrix_element_target": lambda: (((w_row * x3 - t11)[0, 0]) ** 2, [w_row], [x3, t11], set()),
    "matrix_element_scalar_data": lambda: (((w_row * x3)[0, 0] - t_sym) ** 2, [w_row], [x3, t_sym], set()),
    "scalar_parameter_scale": lambda: (msum(HadamardPower(scale_sym * (W * x3) - y2, 2)),
                                       [scale_sym, W], [x3, y2], set()),
    "weight_chain": lambda: (msum(HadamardPower(U * W * x3 - y2, 2)), [U, W], [x3, y2], set()),
    "two_layer_l2": lambda: (
        msum(HadamardPower(W2 * (W1 * x3 + b1).applyfunc(softplus) + b2 - y2, 2))
        + sp.Rational(1, 10) * msum(HadamardPower(W1, 2)),
        [W1, b1, W2, b2], [x3, y2], set(),
    ),
    "bce_logits_element": lambda: (bce_logits((w_row * x3)[0, 0], t_sym), [w_row], [x3, t_sym], set()),
}
for _name, _act in ACTIVATIONS.items():
    MODELS[f"ce_{_name}"] = (lambda a: lambda: mlp_ce(a))(_act)
    MODELS[f"mse_{_name}"] = (lambda a: lambda: mlp_mse(a))(_act)
# Partials that print as sums (tanh: 1 - y**2, gelu, z**2 + z, 2*s0 + cos(s0)): regression
# tests for the unparenthesised `d += g * <partial>` once emitted by the map backward kernels.
MODELS["scalar_map_sum_partial"] = lambda: (msum(W * x3) ** 2 + sp.sin(msum(W * x3)), [W], [x3], set())
# A batched node with two consumers (its adjoint is added to twice), and a one-per-sample node
# broadcast into a wider map (its adjoint is a sum over the row): regression tests for the
# adjoints that a sole consumer writes whole, without zeros first (Program._written_whole).
MODELS["two_consumers"] = lambda: (
    msum(HadamardPower(U * (W * x3).applyfunc(sigmoid) + (W * x3).applyfunc(sp.tanh) - y2, 2)),
    [U, W], [x3, y2], set())
MODELS["row_scalar_broadcast"] = lambda: (
    msum(HadamardPower(sp.sin((w_row * x3)[0, 0]) * (W * x3) - y2, 2)), [w_row, W], [x3, y2], set())
MODELS["poly_activation"] = lambda: (msum((W * x3).applyfunc(lambda z: z**2 + z)), [W], [x3], set())


def _build(name, rng, dtype="float64"):
    loss, params, data, onehot = MODELS[name]()
    f = A.compile(loss, params, data, backend="python", dtype=dtype)
    ps = random_params(f, rng)
    ds = random_data(data, rng, onehot=onehot)
    return f, ps, ds


# -- (a) gradients against finite differences --------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_gradient_matches_finite_differences(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    f, ps, ds = _build(name, rng)
    check_grads(f, ps, ds, rng)


@pytest.mark.parametrize("name", list(MODELS))
def test_inner_product_identity(name):
    """<vjp(u), v> == <u, jvp(v)> with a random cotangent u (the loss is scalar), jvp by
    central differences; and the adjoint of the batch reduction: the gradient of the mean
    over a batch is the mean of the per-sample gradients, in list and flat form alike."""
    rng = np.random.default_rng(1 + sum(map(ord, name)))
    f, ps, ds = _build(name, rng)
    _, grads = f.value_and_grad(ps, *ds)
    u = rng.normal()
    v = [rng.normal(size=p.shape) for p in ps]
    lhs = sum(float(np.vdot(u * g, d)) for g, d in zip(grads, v, strict=True))
    rhs = u * directional_fd(f, ps, ds, v)
    assert_close_rel(lhs, rhs, 1e-6, what="<vjp(u), v> vs u * jvp(v)")

    n = len(ds[0])
    per_sample = [f.grad(ps, *[d[i:i + 1] for d in ds]) for i in range(n)]
    for k, g in enumerate(grads):
        np.testing.assert_allclose(g, sum(s[k] for s in per_sample) / n, rtol=1e-10, atol=1e-12)

    flat = np.concatenate([p.ravel() for p in ps])
    v_flat, g_flat = f.value_and_grad(flat, *ds)
    assert g_flat.shape == flat.shape
    np.testing.assert_allclose(g_flat, np.concatenate([g.ravel() for g in grads]), rtol=1e-13, atol=0)
    assert v_flat == pytest.approx(f.value(ps, *ds), rel=1e-13)


@pytest.mark.parametrize("name", ["ce_sigmoid", "bce_logits_element"])  # the second: a loss map that returns its sum
def test_sum_reduction_is_n_times_mean(name):
    rng = np.random.default_rng(7)
    loss, params, data, onehot = MODELS[name]()
    fm = A.compile(loss, params, data, backend="python", reduction="mean")
    fs = A.compile(loss, params, data, backend="python", reduction="sum")
    ps, ds = random_params(fm, rng), random_data(data, rng, n=6, onehot=onehot)
    vm, gm = fm.value_and_grad(ps, *ds)
    vs, gs = fs.value_and_grad(ps, *ds)
    assert vs == pytest.approx(6 * vm, rel=1e-12)
    for a, c in zip(gs, gm, strict=True):
        np.testing.assert_allclose(a, 6 * c, rtol=1e-12)


# -- (b) an exact oracle: sympy.diff of the scalarised tiny model ------------------------


def _tiny(x, Wa, ba, Wb, bb, y, act, loss):
    h = (Wa * x + ba).applyfunc(act)
    out = Wb * h + bb
    if loss == "mse":
        return msum(HadamardPower(out - y, 2))
    return softmax_ce(out, y)


def _explicit_symbols(name, rows, cols):
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}{j}", real=True))


def tiny_oracle_problem(loss, act, n_out, n, rng):
    """A 2-3-n_out network compiled (Python backend), ``n`` random samples, and the explicit
    scalar mean loss over them in 30-digit data: (f, params, X, Y, explicit symbols, total)."""
    x, y = MS("x", 2, 1), MS("y", n_out, 1)
    params = [MS("Wa", 3, 2), MS("ba", 3, 1), MS("Wb", n_out, 3), MS("bb", n_out, 1)]
    f = A.compile(_tiny(x, *params, y, act, loss), params, [x, y], backend="python")
    X = rng.normal(size=(n, 2))
    Y = np.eye(n_out)[rng.integers(0, n_out, n)] if loss == "ce" else rng.normal(size=(n, n_out))
    explicit = [_explicit_symbols(str(p), *p.shape) for p in params]
    total = sp.S.Zero
    for i in range(n):
        xi = sp.Matrix(2, 1, [sp.Float(v, 30) for v in X[i]])
        yi = sp.Matrix(n_out, 1, [sp.Float(v, 30) for v in Y[i]])
        e = _tiny(xi, *explicit, yi, act, loss)
        e = e.doit() if isinstance(e, sp.Basic) else e
        assert not e.atoms(sp.MatrixSymbol, msum, softmax_ce), "the explicit model must scalarise"
        total += e
    return f, params, X, Y, explicit, expand_ops(total / n)


ORACLE_CASES = [
    ("mse", sigmoid, 1),
    ("mse", softplus, 1),
    ("ce", sigmoid, 2),
    ("mse", sp.tanh, 1),
]


@pytest.mark.parametrize("loss,act,n_out", ORACLE_CASES)
def test_exact_oracle_against_sympy_diff(loss, act, n_out):
    """A 2-3-n_out network: the compiled gradient equals sympy.diff of the explicit
    scalar expression (data substituted as explicit matrices), at a random point."""
    rng = np.random.default_rng(42)
    f, params, X, Y, explicit, total = tiny_oracle_problem(loss, act, n_out, 3, rng)
    ps = [0.8 * rng.normal(size=p.shape) for p in params]
    point = {s: sp.Float(v, 30)
             for m, p in zip(explicit, ps, strict=True) for s, v in zip(m, p.ravel(), strict=True)}
    value, grads = f.value_and_grad(ps, X, Y)
    assert value == pytest.approx(float(total.xreplace(point).evalf(30)), rel=1e-12)
    for m, g in zip(explicit, grads, strict=True):
        want = np.array([float(sp.diff(total, s).xreplace(point).evalf(30)) for s in m]).reshape(g.shape)
        np.testing.assert_allclose(g, want, rtol=1e-11, atol=1e-13)


# -- (c) Python vs Numba, float32 vs float64 ----------------------------------------------

NET = dict(x=MS("x", 4, 1), y=MS("y", 3, 1), W1=MS("W1", 5, 4), b1=MS("b1", 5, 1),
           W2=MS("W2", 3, 5), b2=MS("b2", 3, 1))


def _net_loss():
    n = NET
    return softmax_ce(n["W2"] * (n["W1"] * n["x"] + n["b1"]).applyfunc(sigmoid) + n["b2"], n["y"])


NET_PARAMS = [NET["W1"], NET["b1"], NET["W2"], NET["b2"]]
NET_DATA = [NET["x"], NET["y"]]


@pytest.fixture(scope="module")
def net64():
    return A.compile(_net_loss(), NET_PARAMS, NET_DATA, backend="numba", dtype="float64")


@pytest.fixture(scope="module")
def net32():
    return A.compile(_net_loss(), NET_PARAMS, NET_DATA, backend="numba", dtype="float32")


@pytest.fixture(scope="module")
def net_inputs():
    rng = np.random.default_rng(3)
    ps = [0.8 * rng.normal(size=(int(p.shape[0]), int(p.shape[1]))) for p in NET_PARAMS]
    X = rng.normal(size=(32, 4))
    Y = np.eye(3)[rng.integers(0, 3, 32)]
    return ps, X, Y


@pytest.mark.numba
def test_numba_matches_python_backend(net64, net_inputs):
    ps, X, Y = net_inputs
    v_nb, g_nb = net64.value_and_grad(ps, X, Y)
    v_py, g_py = net64.python.value_and_grad(ps, X, Y)
    assert net64.backend == "numba" and net64.python.backend == "python"
    assert v_nb == pytest.approx(v_py, rel=1e-10)
    for a, c in zip(g_nb, g_py, strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-14)


@pytest.mark.numba
def test_float32_numba_matches_float64(net32, net64, net_inputs):
    ps, X, Y = net_inputs
    ps32 = [p.astype(np.float32) for p in ps]
    v32, g32 = net32.value_and_grad(ps32, X.astype(np.float32), Y.astype(np.float32))
    v64, g64 = net64.value_and_grad(ps, X, Y)
    assert all(g.dtype == np.float32 for g in g32)
    assert v32 == pytest.approx(v64, rel=1e-4)
    for a, c in zip(g32, g64, strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-3, atol=1e-4 * np.abs(c).max())
    # the Python reference path honours float32 too
    _, gp = net32.python.value_and_grad(ps32, X.astype(np.float32), Y.astype(np.float32))
    assert all(g.dtype == np.float32 for g in gp)


# -- (d) the design requirement: source size is independent of layer width ---------------


def _relu_net(n_in, n_hidden, n_out):
    x, y = MS("x", n_in, 1), MS("y", n_out, 1)
    Wa, ba = MS("W1", n_hidden, n_in), MS("b1", n_hidden, 1)
    Wb, bb = MS("W2", n_out, n_hidden), MS("b2", n_out, 1)
    loss = softmax_ce(Wb * (Wa * x + ba).applyfunc(relu) + bb, y)
    return loss, [Wa, ba, Wb, bb], [x, y]


def test_generated_source_does_not_scale_with_width():
    small, small_dims = generate(*_relu_net(4, 8, 3), "mean", "float64")
    t0 = time.perf_counter()
    big, dims = generate(*_relu_net(64, 128, 10), "mean", "float64")
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0, f"deriving + generating the 64-128-10 network took {elapsed:.1f} s"
    assert big == small and len(big) < 20000  # the sizes are run-time arguments (issue 21)
    assert 128 in dims and 128 not in small_dims
    # no scalarisation: weights are whole arrays, never per-entry names or subscripts
    assert re.search(r"W1_\d|W1\[\d|W2_\d|W2\[\d", big) is None
    # products are whole-matrix BLAS calls
    assert re.search(r"^    mm\(x_x, p_W1\.T, v\d+\)$", big, re.M) and "blas.gemm(a, b, out" in big


def test_wide_relu_network_gradients():
    loss, params, data = _relu_net(64, 128, 10)
    f = A.compile(loss, params, data, backend="python")
    rng = np.random.default_rng(5)
    ps = [0.1 * rng.normal(size=s) for s in f.shapes]
    X, Y = rng.normal(size=(3, 64)), np.eye(10)[rng.integers(0, 10, 3)]
    _, grads = f.value_and_grad(ps, X, Y)
    d = [rng.normal(size=p.shape) for p in ps]
    an = sum(float(np.vdot(g, u)) for g, u in zip(grads, d, strict=True))
    assert_close_rel(directional_fd(f, ps, [X, Y], d), an, 1e-6, what="64-128-10 relu net")


# -- (e) stabilised losses at extreme logits ------------------------------------------------


@pytest.mark.numba
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_ce_finite_at_extreme_logits_numba(dtype, net64, net32):
    f = net64 if dtype == "float64" else net32
    dt = np.dtype(dtype)
    ps = [np.ones((5, 4), dt), np.zeros((5, 1), dt), np.zeros((3, 5), dt),
          np.array([[1000.0], [-1000.0], [0.0]], dt)]  # logits z = [1000, -1000, 0] for every sample
    X = np.ones((3, 4), dt)
    Y = np.eye(3, dtype=dt)  # one sample per class
    for g_f in (f, f.python):
        v, (gW1, gb1, gW2, gb2) = g_f.value_and_grad(ps, X, Y)
        assert np.isfinite(v) and all(np.isfinite(g).all() for g in (gW1, gb1, gW2, gb2))
        # losses per sample: 0, 2000, 1000
        assert v == pytest.approx(1000.0, rel=1e-6)
        # d/db2 = mean over samples of softmax(z) - y = [1, 0, 0] - mean(onehots)
        np.testing.assert_allclose(gb2.ravel(), [1 - 1 / 3, -1 / 3, -1 / 3], rtol=1e-6)
        assert gb2.dtype == dt


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_logsumexp_and_bce_finite_at_extreme_logits_python(dtype):
    dt = np.dtype(dtype)
    x, w = MS("x", 3, 1), MS("w", 1, 3)
    Wm = MS("W", 3, 3)
    f = A.compile(logsumexp(Wm * x), [Wm], [x], backend="python", dtype=dtype)
    Wv = np.diag([1000.0, -1000.0, 0.0]).astype(dt)
    v, (g,) = f.value_and_grad([Wv], np.ones((2, 3), dt))
    assert v == pytest.approx(1000.0) and np.isfinite(g).all()
    np.testing.assert_allclose(g, np.outer([1.0, 0.0, 0.0], np.ones(3)), atol=1e-6)

    t = sp.Symbol("t")
    fb = A.compile(bce_logits((w * x)[0, 0], t), [w], [x, t], backend="python", dtype=dtype)
    X = np.array([[1.0, 0, 0], [-1.0, 0, 0], [1.0, 0, 0], [-1.0, 0, 0]], dt)
    T = np.array([1.0, 0.0, 0.0, 1.0], dt)
    for sgn in (1.0, -1.0):
        wv = np.array([[sgn * 1000.0, 0.0, 0.0]], dt)
        v, (gw,) = fb.value_and_grad([wv], X, T)
        a = X[:, 0] * wv[0, 0]
        want_v = np.mean(np.maximum(a, 0) - T * a)
        want_g = np.mean((np.where(a > 0, 1.0, 0.0) - T) * X[:, 0])
        assert np.isfinite(v) and np.isfinite(gw).all()
        assert v == pytest.approx(want_v, rel=1e-6)
        assert gw[0, 0] == pytest.approx(want_g, abs=1e-6)
        assert gw.dtype == dt


@pytest.mark.numba
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bce_logits_pointwise_finite_at_extreme_logits(dtype):
    a, y = sp.symbols("a y", real=True)
    f = A.compile(bce_logits(a, y), wrt=[a], data=[y], reduction="none", dtype=dtype, backend="numba")
    dt = np.dtype(dtype)
    av = np.array([1000.0, 1000.0, -1000.0, -1000.0, 0.0, 30.0, -30.0], dt)
    yv = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0], dt)
    vals, grads = f.pointwise(av, yv)
    assert vals.dtype == dt and grads.dtype == dt
    assert np.isfinite(vals).all() and np.isfinite(grads).all()
    want_v = np.maximum(av, 0) + np.log1p(np.exp(-np.abs(av.astype(np.float64)))) - yv * av
    np.testing.assert_allclose(vals, want_v, rtol=1e-6, atol=1e-6)
    sig = 0.5 * (1 + np.tanh(av.astype(np.float64) / 2))
    np.testing.assert_allclose(grads, sig - yv, rtol=1e-6, atol=1e-6)


# -- (f) errors ------------------------------------------------------------------------------


def _simple():
    x, y, Wm, c = MS("x", 3, 1), MS("y", 2, 1), MS("W", 2, 3), MS("c", 2, 1)
    return x, y, Wm, c


def test_unbound_matrix_symbol():
    x, y, Wm, c = _simple()
    with pytest.raises(UnboundSymbolError, match=r"\bc\b.*Fix") as exc:
        A.compile(msum(HadamardPower(Wm * x + c - y, 2)), [Wm], [x, y], backend="python")
    assert isinstance(exc.value, SymgradError)


def test_mismatched_parameter_shapes():
    x, y, Wm, _ = _simple()
    f = A.compile(msum(HadamardPower(Wm * x - y, 2)), [Wm], [x, y], backend="python")
    X, Y = np.zeros((4, 3)), np.zeros((4, 2))
    with pytest.raises(ShapeError, match=r"'W'.*\(3, 2\).*\(2, 3\)"):
        f.value_and_grad([np.zeros((3, 2))], X, Y)
    with pytest.raises(ShapeError, match="expected 1 parameter array"):
        f.value_and_grad([np.zeros((2, 3)), np.zeros(2)], X, Y)
    with pytest.raises(ShapeError, match=r"data 'x'.*\(n, 3\)"):
        f.value_and_grad([np.zeros((2, 3))], np.zeros((4, 5)), Y)


def test_data_errors():
    x, y, Wm, _ = _simple()
    f = A.compile(msum(HadamardPower(Wm * x - y, 2)), [Wm], [x, y], backend="python")
    with pytest.raises(DataError, match="different lengths.*Fix"):
        f.value_and_grad([np.zeros((2, 3))], np.zeros((4, 3)), np.zeros((5, 2)))
    X = np.zeros((4, 3))
    X[2, 1] = np.nan
    with pytest.raises(DataError, match=r"data 'x'.*non-finite.*\(2, 1\).*Fix"):
        f.value_and_grad([np.zeros((2, 3))], X, np.zeros((4, 2)))


def test_float64_data_into_float32_model():
    x, y, Wm, _ = _simple()
    f = A.compile(msum(HadamardPower(Wm * x - y, 2)), [Wm], [x, y], backend="python", dtype="float32")
    with pytest.raises(DtypeError, match=r"data 'x' has dtype float64.*float32.*Fix"):
        f.value_and_grad([np.zeros((2, 3), np.float32)], np.zeros((4, 3)), np.zeros((4, 2), np.float32))


def test_matrix_valued_loss():
    x, y, Wm, _ = _simple()
    with pytest.raises(NonScalarLossError, match=r"shape \(2, 1\).*Fix"):
        A.compile(Wm * x - y, [Wm], [x, y], backend="python")


def test_product_of_two_batched_operands():
    x, _, Wm, _ = _simple()
    with pytest.raises(UnsupportedModelError, match="unsupported product.*Supported"):
        A.compile(msum(x * x.T), [Wm], [x], backend="python")
    with pytest.raises(UnsupportedModelError):
        A.compile(msum(HadamardProduct(x * x.T, Wm.T * Wm)), [Wm], [x], backend="python")


def test_repeated_product_is_computed_once():
    loss, params, data, _ = MODELS["two_consumers"]()
    src = A.compile(loss, params, data, backend="python").source
    grad_fn = src[src.index("def loss_grad"):].split("\n\n\n")[0]
    assert len(re.findall(r"mm\(x_x, p_W\.T, ", grad_fn)) == 1
    # its adjoint has two contributions: zeros first, then both added
    assert re.search(r"d_(v\d+) = np\.zeros.*\n(.*\n)*.*map\d+_bwd\(.*d_\1\)\n(.*\n)*.*map\d+_bwd\(.*d_\1\)", grad_fn)


@pytest.mark.parametrize("name", ["j", "beta", "s0"])
def test_a_scalar_inside_an_elementwise_function_is_an_input(name):
    # tanh(s*z) printed s as a bare name into the map kernel: named j it read the column loop
    # index (value -0.109 for -0.437, d/dj = 0), named beta it raised NameError, named s0 it was the
    # map's own lane symbol (1.706). Oracle: NumPy.
    import symgrad as sg

    z, s = sp.Symbol("z", real=True), sp.Symbol(name, real=True)
    W, x = sp.MatrixSymbol("W", 3, 4), sp.MatrixSymbol("x", 4, 1)
    rng = np.random.default_rng(0)
    Wv, X, c = rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), 0.7
    pre = X @ Wv.T
    f = sg.compile(msum(sg.elementwise(sp.Lambda(z, sp.tanh(s * z)), W * x)), [W, s], [x], backend="python")
    v, (gW, gs) = f.value_and_grad([Wv, np.array([[c]])], X)
    assert v == pytest.approx(np.tanh(c * pre).sum(1).mean(), rel=1e-13)
    np.testing.assert_allclose(gW, (c * (1 - np.tanh(c * pre) ** 2)).T @ X / 5, rtol=1e-12)
    assert gs.item() == pytest.approx(((1 - np.tanh(c * pre) ** 2) * pre).sum(1).mean(), rel=1e-12)
    g = sg.compile(msum(HadamardPower(sg.elementwise(sp.exp, W * x), s)), [W, s], [x], backend="python")
    assert g.value([Wv, np.array([[c]])], X) == pytest.approx(np.exp(c * pre).sum(1).mean(), rel=1e-13)


def test_shared_logits_or_targets_and_bad_flat_vectors_are_refused():
    # a parameter target of softmax_ce was read row by row out of bounds (heap corruption); a
    # complex flat theta or v lost its imaginary part; targets that are no distribution were
    # computed as lse - t·z where fit refuses them
    import symgrad as sg

    W, x, t = sp.MatrixSymbol("W", 3, 2), sp.MatrixSymbol("x", 2, 1), sp.MatrixSymbol("t", 3, 1)
    b, y = sp.MatrixSymbol("b", 3, 1), sp.MatrixSymbol("y", 3, 1)
    with pytest.raises(UnsupportedModelError, match=r"the target must be one per sample.*Fix"):
        sg.compile(softmax_ce(W * x, t), [W, t], [x], backend="python")
    with pytest.raises(UnsupportedModelError, match=r"the logits must be one per sample.*Fix"):
        sg.compile(logsumexp(b), [b], [], backend="python")
    f = sg.compile(softmax_ce(W * x, y), [W], [x, y], backend="python")
    X = np.ones((2, 2))
    with pytest.raises(sg.errors.TargetError, match=r"y\[0\] .* is not a distribution.*Fix"):
        f.value(np.zeros(6), X, np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))
    assert f.value(np.zeros(6), X, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])) == pytest.approx(np.log(3))
    for bad in (np.zeros(6) + 1j, np.array(["0"] * 6)):
        with pytest.raises(sg.errors.DtypeError, match="theta holds"):
            f.value(bad, X, np.eye(3)[:2])
    with pytest.raises(sg.errors.DtypeError, match="v holds complex"):
        f.hvp(np.zeros(6), np.zeros(6) + 1j, X, np.eye(3)[:2])


def test_parameter_arrays_are_converted_and_their_messages_name_them():
    # a NaN in theta or in hvp's v got the advice for data rows (X[np.isfinite(X).all(axis=1)]) and v was
    # named "parameter 'w'"; a float32 model took a flat float64 theta but refused [a float64 array]
    from symgrad.lang.losses import mse

    w, x, y = MS("w", 3, 1), MS("x", 3, 1), MS("y", 1, 1)
    X = np.random.default_rng(0).normal(size=(20, 3))
    Y = X @ np.ones((3, 1))
    f = A.compile(mse(w.T * x, y), wrt=[w], data=[x, y], backend="python")
    with pytest.raises(DataError, match="parameter 'w' holds a non-finite.*optimizer diverged"):
        f.value([np.full((3, 1), np.nan)], X, Y)
    with pytest.raises(DataError, match="v's entry for 'w' holds a non-finite.*a finite direction v"):
        f.hvp([np.ones((3, 1))], [np.full((3, 1), np.nan)], X, Y)
    f32 = A.compile(mse(w.T * x, y), wrt=[w], data=[x, y], dtype="float32", backend="python")
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    assert f32.value([np.ones((3, 1))], X32, Y32) == f32.value(np.ones(3), X32, Y32)


@pytest.mark.parametrize("backend", ["python", "numba"])
@pytest.mark.parametrize("names", [("A", "A_f"), ("A_f", "A"), ("W 1", "W_1"), ("s.1", "2x"), ("ℓ", "l"), ("A", "A_v")])
def test_parameter_names_never_share_a_generated_name(backend, names):
    # a parameter A_f beside A: A's flat view p_A_f overwrote A_f's array, a wrong loss (0.865 for 6.725)
    # and gradient, silently; 'W 1' was printed as p_W 1 (a CacheError, then a raw SyntaxError)
    X = MS("X", 3, 1)
    P, Q = MS(names[0], 3, 1), MS(names[1], 3, 1)
    loss = msum(HadamardProduct(P, X)) + msum(HadamardProduct(Q, Q))
    xs = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    p, q = np.array([[0.1], [-0.2], [0.3]]), np.array([[1.0], [2.0], [-1.0]])
    f = A.compile(loss, wrt=[P, Q], data=[X], backend=backend)
    value, grad = f.value_and_grad([p, q], xs)
    assert value == pytest.approx(np.mean(xs @ p[:, 0]) + (q**2).sum(), rel=1e-14)
    np.testing.assert_allclose(np.ravel(grad), np.concatenate([xs.mean(0), 2 * q[:, 0]]), rtol=1e-14)
    np.testing.assert_allclose(np.ravel(f.hvp([p, q], [np.ones((3, 1)), np.ones((3, 1))], xs)),
                               np.concatenate([np.zeros(3), 2 * np.ones(3)]), atol=1e-14)


@pytest.mark.parametrize("backend", ["python", "numba"])
def test_a_parameter_named_like_a_directions_flat_view_keeps_its_array(backend):
    # A's Hessian-vector direction A_v has its flat view p_A_v_f, which rebound a user's parameter A_v_f
    # (a raw ValueError, or Numba's gemm typing error)
    rng = np.random.default_rng(0)
    xs, a0, q0 = rng.normal(size=(4, 3)), rng.normal(size=(3, 1)), rng.normal(size=(3, 3))
    va, vq = rng.normal(size=(3, 1)), rng.normal(size=(3, 3))
    P, Q, X = MS("A", 3, 1), MS("A_v_f", 3, 3), MS("X", 3, 1)
    f = A.compile(msum(HadamardPower(Q * X + HadamardProduct(P, P), 2)), wrt=[P, Q], data=[X], backend=backend)
    # by hand: J = mean_i Σ_r (q_r·x_i + a_r²)², H v = mean_i 2 Σ_r [∂u_r ∂u_rᵀ + u_r ∂²u_r] v
    u = xs @ q0.T + (a0**2).ravel()  # (n, 3)
    du = xs @ vq.T + 2 * (a0 * va).ravel()  # the directional derivative of u
    hv_a = np.mean(2 * (du * 2 * a0.ravel() + u * 2 * va.ravel()), axis=0)
    hv_q = np.mean([2 * np.outer(du[i], xs[i]) for i in range(len(xs))], axis=0)
    got = f.hvp([a0, q0], [va, vq], xs)
    np.testing.assert_allclose(np.ravel(got[0]), hv_a, rtol=1e-12)
    np.testing.assert_allclose(np.ravel(got[1]), hv_q.ravel(), rtol=1e-12)
