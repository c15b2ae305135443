"""Gradients of the convolution and pooling kinds (issue 15): the max-pooling tie rule, overlapping
windows and gaps against a NumPy adjoint, finite differences (sg.check_grads), torch's autograd
where installed, and a hand-written chain compiled with both backends.

A model ``x + s -> ...`` with a parameter ``s`` exposes the input's delta δ_X as ``∂ℓ/∂s``. One
Numba build (the chain) is shared by the module; the rest runs on the Python backend. The oracles
are in test_conv.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from test_conv import (
    CONV_CASES,
    MS,
    RELU,
    TOL,
    conv_case,
    conv_ref,
    linear_loss,
    maxpool_delta_ref,
    outputs,
    pair,
    pool_ref,
)

import symgrad as sg

# -- pooling gradients: the tie rule, overlapping windows, gaps ----------------------------------


def pool_grads(op, shape, size, stride, X, R):
    """δ_X of sum(r ⊙ pool(x + s)) at s = 0, one row of X per sample, mean over samples."""
    x, S = MS("x", int(np.prod(shape)), 1), MS("s", int(np.prod(shape)), 1)
    P = (sg.maxpool2d if op == "max" else sg.avgpool2d)(x + S, size, stride=stride, in_shape=shape)
    f = sg.compile(*linear_loss(P, [S], x), backend="python")
    value, (ds,) = f.value_and_grad([np.zeros((int(x.shape[0]), 1))], X.reshape(len(X), -1), R.reshape(len(R), -1))
    return value, ds.reshape(shape), f


def test_maxpool_ties_go_to_the_first_largest_in_row_major_order():
    X = np.array([[0, 7, 2, 0],
                  [7, 1, 2, 2],
                  [3, 3, 0, 5],
                  [3, 3, 5, 5]], float).reshape(1, 1, 4, 4)
    value, ds, _ = pool_grads("max", (1, 4, 4), 2, None, X, np.array([[1.0, 2, 3, 4]]))
    assert value == 7 + 2 * 2 + 3 * 3 + 4 * 5
    np.testing.assert_array_equal(ds[0], [[0, 1, 2, 0],
                                          [0, 0, 0, 0],
                                          [3, 0, 0, 4],
                                          [0, 0, 0, 0]])


def test_maxpool_ties_in_3x3_windows():
    """The general window loop (2×2 at stride 2 has its own unrolled one): a tie after the
    window's first entry, and a constant window."""
    X = np.array([[1, 5, 2, 4, 4, 4],
                  [5, 5, 0, 4, 4, 4],
                  [0, 5, 1, 4, 4, 4]], float).reshape(1, 1, 3, 6)
    value, ds, _ = pool_grads("max", (1, 3, 6), 3, None, X, np.array([[2.0, 3.0]]))
    assert value == 2 * 5 + 3 * 4
    np.testing.assert_array_equal(ds[0], [[0, 2, 0, 3, 0, 0], [0] * 6, [0] * 6])


def test_maxpool_ties_in_overlapping_windows():
    """A constant image, 2×2 windows at stride 1: each window's top-left value gets its delta."""
    value, ds, _ = pool_grads("max", (1, 3, 3), 2, 1, np.ones((1, 1, 3, 3)), np.array([[1.0, 2, 3, 4]]))
    assert value == 10
    np.testing.assert_array_equal(ds[0], [[1, 2, 0], [3, 4, 0], [0, 0, 0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_maxpool_2x2_keeps_the_tie_and_nan_rules(dtype):
    """The compiled 2×2 kernel (two passes for even sizes, one window at a time for odd ones)
    against a plain loop: small integers make many ties, and a NaN wins its window (the last
    NaN in row-major order, as the selects keep it)."""
    from symgrad.native import images

    rng = np.random.default_rng(11)
    for C, H, W, B in [(2, 4, 6, 2), (3, 8, 8, 1), (1, 5, 6, 2), (2, 6, 7, 1), (1, 7, 5, 3), (1, 2, 2, 1)]:
        x = rng.integers(-2, 3, (B, C * H * W)).astype(dtype)
        x[rng.random(x.shape) < 0.1] = np.nan
        Ho, Wo = H // 2, W // 2
        want, want_idx = np.empty((B, C * Ho * Wo), dtype), np.empty((B, C * Ho * Wo), np.int64)
        for i, c, oy, ox in np.ndindex(B, C, Ho, Wo):
            at = (c * H + 2 * oy) * W + 2 * ox
            best = at
            for j in (at + 1, at + W, at + W + 1):
                if x[i, j] > x[i, best] or np.isnan(x[i, j]):
                    best = j
            o = (c * Ho + oy) * Wo + ox
            want[i, o], want_idx[i, o] = x[i, best], best
        got = np.empty_like(want)
        got_idx = images.maxpool_fwd(x, got, np.array([C, H, W, 2, 2, 2, 2]))
        np.testing.assert_array_equal(got, want)  # NaN where NaN
        np.testing.assert_array_equal(got_idx, want_idx)


POOL_GRAD_CASES = [((2, 5, 6), 2, 1), ((1, 6, 7), (3, 2), (1, 2)), ((2, 7, 7), 2, 3), ((1, 5, 4), 3, None)]


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("shape, size, stride", POOL_GRAD_CASES)
def test_pool_gradients_equal_the_adjoint_and_finite_differences(op, shape, size, stride):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3, *shape))
    P = (sg.maxpool2d if op == "max" else sg.avgpool2d)(MS("x", int(np.prod(shape)), 1), size, stride=stride,
                                                        in_shape=shape)
    R = rng.normal(size=(3, *P.out_shape))
    value, ds, f = pool_grads(op, shape, size, stride, X, R)
    assert value == pytest.approx((pool_ref(X, size, stride, op) * R).sum() / 3, rel=1e-12)
    if op == "max":
        want = maxpool_delta_ref(X, R, size, stride).sum(0) / 3
    else:
        (kh, kw), (sh, sw) = pair(size), pair(size if stride is None else stride)
        want = np.zeros(shape)
        for i, c, p, q in np.ndindex(R.shape):
            want[c, p * sh:p * sh + kh, q * sw:q * sw + kw] += R[i, c, p, q] / (kh * kw) / 3
    np.testing.assert_allclose(ds, want, rtol=1e-12, atol=1e-14)
    assert sg.check_grads(f, [0.01 * rng.normal(size=(int(np.prod(shape)), 1))], X.reshape(3, -1),
                          R.reshape(3, -1)).ok


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CONV_CASES[1:5])
def test_conv_gradients_match_finite_differences(case, dtype):
    C, co, shape, kernel, stride, padding = case
    rng = np.random.default_rng(5)
    x, K, b, S, Z = conv_case(C, co, shape, kernel, stride, padding, s=True)
    loss = sg.msum(sp.HadamardPower(Z, 2)) / 2  # not linear in K: the check sees a curved loss
    f = sg.compile(loss, [K, b, S], [x], dtype=dtype, backend="python")
    values = [0.5 * rng.normal(size=sh) for sh in f.shapes]
    assert sg.check_grads(f, values, rng.normal(size=(2, C * shape[0] * shape[1])).astype(dtype)).ok


# -- torch's forward and autograd, where installed ---------------------------------------------


def torch_conv_padding(padding):
    return padding if isinstance(padding, str) else pair(padding)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_torch_forward_and_autograd(case, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    C, co, shape, kernel, stride, padding = case
    rng = np.random.default_rng(11)
    x, K, b, S, Z = conv_case(C, co, shape, kernel, stride, padding, s=True)
    w, bias = rng.normal(size=(co, C, *pair(kernel))).astype(dtype), rng.normal(size=co).astype(dtype)
    s, X = rng.normal(size=(C, *shape)).astype(dtype), rng.normal(size=(2, C, *shape)).astype(dtype)
    R = rng.normal(size=(2, *Z.out_shape)).astype(dtype)
    tw, tb, ts = (torch.tensor(a, requires_grad=True) for a in (w, bias, s))
    tz = F.conv2d(torch.tensor(X) + ts, tw, tb, stride=pair(stride), padding=torch_conv_padding(padding))
    ((tz * torch.tensor(R)).sum() / 2).backward()
    x0, K0, b0, _, Z0 = conv_case(C, co, shape, kernel, stride, padding)
    got = outputs(x0, Z0, [K0, b0], [w.reshape(co, -1), bias.reshape(co, 1)], X + s, dtype)
    np.testing.assert_allclose(got, tz.detach().numpy().reshape(2, -1), **TOL[dtype])
    f = sg.compile(*linear_loss(Z, [K, b, S], x), dtype=dtype, backend="python")
    _, (dk, db, ds) = f.value_and_grad([w.reshape(co, -1), bias.reshape(co, 1), s.reshape(-1, 1)],
                                       X.reshape(2, -1), R.reshape(2, -1))
    for got, t in ((dk, tw), (db, tb), (ds, ts)):
        np.testing.assert_allclose(got.ravel(), t.grad.numpy().ravel(), **TOL[dtype])


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("shape, size, stride", POOL_GRAD_CASES)
def test_pool_matches_torch_forward_and_autograd(op, shape, size, stride):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    X = rng.normal(size=(2, *shape))
    tx = torch.tensor(X, requires_grad=True)
    pool = torch.nn.functional.max_pool2d if op == "max" else torch.nn.functional.avg_pool2d
    tp = pool(tx, pair(size), stride=None if stride is None else pair(stride))
    R = rng.normal(size=tp.shape)
    ((tp * torch.tensor(R)).sum() / 2).backward()
    value, ds, _ = pool_grads(op, shape, size, stride, X, R)
    assert value == pytest.approx(float((tp.detach() * torch.tensor(R)).sum()) / 2, rel=1e-12)
    np.testing.assert_allclose(ds, tx.grad.numpy().sum(0), rtol=1e-12, atol=1e-14)


def test_maxpool_tie_rule_is_torchs():
    torch = pytest.importorskip("torch")
    X = np.array([[3, 3, 1], [3, 3, 3], [0, 3, 3]], float).reshape(1, 1, 3, 3)
    tx = torch.tensor(X, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, 2, stride=1).backward(torch.tensor([[[[1.0, 2], [3, 4]]]], dtype=tx.dtype))
    _, ds, _ = pool_grads("max", (1, 3, 3), 2, 1, X, np.array([[1.0, 2, 3, 4]]))
    np.testing.assert_array_equal(ds, tx.grad.numpy()[0])


# -- a hand-written chain, Python and Numba: conv -> relu -> maxpool -> conv -> tanh -> avgpool -> dense


def chain_model():
    x, S = MS("x", 2 * 7 * 6, 1), MS("s", 2 * 7 * 6, 1)
    K1, b1, K2, b2 = MS("K1", 3, 2 * 3 * 2), MS("b1", 3, 1), MS("K2", 2, 3 * 9), MS("b2", 2, 1)
    W3, b3, y = MS("W3", 3, 12), MS("b3", 3, 1), MS("y", 3, 1)
    z1 = sg.conv2d(K1, x + S, b1, stride=(2, 1), padding=(1, 2), kernel_size=(3, 2), in_shape=(2, 7, 6))
    p1 = sg.maxpool2d(sg.elementwise(RELU, z1), (2, 3), stride=(1, 2))
    p2 = sg.avgpool2d(sg.elementwise(sp.tanh, sg.conv2d(K2, p1, b2, padding="same")), 2, stride=1)
    assert (z1.out_shape, p1.out_shape, p2.out_shape) == ((3, 4, 9), (3, 3, 4), (2, 2, 3))
    return sg.softmax_ce(W3 * p2 + b3, y), [S, K1, b1, K2, b2, W3, b3], [x, y]


def chain_ref(values, X):
    """The chain's logits in NumPy; values are the parameters in chain_model's order."""
    s, k1, b1, k2, b2, w3, b3 = values
    a1 = np.maximum(conv_ref(X + s.reshape(2, 7, 6), k1.reshape(3, 2, 3, 2), b1, (2, 1), (1, 2)), 0)
    a2 = np.tanh(conv_ref(pool_ref(a1, (2, 3), (1, 2)), k2.reshape(2, 3, 3, 3), b2, 1, "same"))
    return pool_ref(a2, 2, 1, "avg").reshape(len(X), -1) @ w3.T + b3.T


@pytest.fixture(scope="module")
def chain():
    rng = np.random.default_rng(2)
    loss, wrt, data = chain_model()
    py = sg.compile(loss, wrt, data, backend="python")
    values = [0.6 * rng.normal(size=sh) for sh in py.shapes]
    X, Y = rng.normal(size=(5, 2, 7, 6)), np.eye(3)[rng.integers(0, 3, 5)]
    return py, sg.compile(loss, wrt, data), values, X, Y


def test_chain_value_matches_numpy_and_gradients_match_finite_differences(chain):
    py, nb, values, X, Y = chain
    z = chain_ref(values, X)
    want = np.mean(np.logaddexp.reduce(z, axis=1) - (z * Y).sum(axis=1))
    assert py.value(values, X.reshape(5, -1), Y) == pytest.approx(want, rel=1e-12)
    assert sg.check_grads(py, values, X.reshape(5, -1), Y).ok


@pytest.mark.numba
def test_chain_numba_equals_python(chain):
    py, nb, values, X, Y = chain
    v_nb, g_nb = nb.value_and_grad(values, X.reshape(5, -1), Y)
    v_py, g_py = py.value_and_grad(values, X.reshape(5, -1), Y)
    assert v_nb == pytest.approx(v_py, rel=1e-12)
    for a, b in zip(g_nb, g_py, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_chain_gradients_match_torch_autograd(chain):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    py, _, values, X, Y = chain
    s, k1, b1, k2, b2, w3, b3 = ts = [torch.tensor(v, requires_grad=True) for v in values]
    a1 = F.relu(F.conv2d(torch.tensor(X) + s.reshape(2, 7, 6), k1.reshape(3, 2, 3, 2), b1.ravel(), (2, 1), (1, 2)))
    a2 = torch.tanh(F.conv2d(F.max_pool2d(a1, (2, 3), (1, 2)), k2.reshape(2, 3, 3, 3), b2.ravel(), padding="same"))
    z = F.avg_pool2d(a2, 2, 1).reshape(5, -1) @ w3.T + b3.T
    F.cross_entropy(z, torch.tensor(Y.argmax(1))).backward()
    _, grads = py.value_and_grad(values, X.reshape(5, -1), Y)
    for got, t in zip(grads, ts, strict=True):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-13)


def sequential(first, dtype):
    head = {"conv": [], "maxpool": [sg.nn.MaxPool2D(2, stride=1)],
            "avgpool": [sg.nn.AvgPool2D((2, 1), stride=1)]}[first]
    body = [*head, sg.nn.Conv2D(2, 3, 3, padding=1, activation="relu"), sg.nn.MaxPool2D(2),
            sg.nn.Conv2D(3, 2, (2, 3), stride=(1, 2), padding=(0, 1)), sg.nn.Flatten()]
    n = int(sg.nn.Sequential(body, input_shape=(2, 6, 8)).expr.shape[0])
    net = sg.nn.Sequential([*body, sg.nn.Dense(n, 3)], input_shape=(2, 6, 8))
    y = MS("y", 3, 1)
    return net, sg.compile(sg.losses.softmax_cross_entropy(net.expr, y), net.params, [net.x, y], dtype=dtype,
                           backend="python")


@pytest.mark.parametrize("first", ["conv", "maxpool", "avgpool"])
def test_sequential_conv_relu_pool_conv_flatten_dense_gradients(first):
    """Finite differences through the whole Sequential network (also when it pools the input first),
    and float32 gradients against float64 ones (float32 differences would cross relu and max kinks)."""
    (net, f64), (_, f32) = sequential(first, "float64"), sequential(first, "float32")
    rng = np.random.default_rng(4)
    X, Y, p = rng.normal(size=(4, 2 * 6 * 8)), np.eye(3)[rng.integers(0, 3, 4)], net.init_params(3)
    assert sg.check_grads(f64, p, X, Y).ok
    g32 = f32.grad([q.astype(np.float32) for q in p], X.astype(np.float32), Y.astype(np.float32))
    for a, b in zip(g32, f64.grad(p, X, Y), strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())
