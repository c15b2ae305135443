"""Convolution and pooling kinds (issue 15), forward: values against scipy's ``correlate2d`` and
NumPy windows for many shapes, strides, paddings, channel counts and kernel sizes, both dtypes, and
hypothesis properties over random geometries (forward, and the exact gradient of a convolution).

This module also holds the oracles the other conv tests import: test_conv_grads.py (gradients,
tie rule, torch), test_conv_train.py (fused training steps, image layouts), test_conv_errors.py.
Images are (n, C, H, W) in the oracles and flat NCHW rows for symgrad. Models are compiled for
the Python backend (cheap to build; the image kernels are symgrad.native.images either way).
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import correlate2d

import symgrad as sg

MS = sp.MatrixSymbol
RELU = sp.Lambda(sp.Symbol("q", real=True), sg.ops.relu(sp.Symbol("q", real=True)))
TOL = {"float64": dict(rtol=1e-11, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-4)}

# -- oracles: scipy and NumPy, sharing no code with symgrad's kernels -------------------------


def pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def conv_ref(x, w, b, stride=1, pad=0):
    """x (n, C, H, W), w (co, C, kh, kw), b (co,) or None: sum over channels of scipy's valid
    correlate2d of the zero-padded image, every stride-th row and column, plus the bias."""
    (sh, sw), (ph, pw) = pair(stride), (w.shape[2] // 2, w.shape[3] // 2) if pad == "same" else pair(pad)
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.array([[sum(correlate2d(xp[i, c], w[o, c], mode="valid") for c in range(x.shape[1]))
                     for o in range(w.shape[0])] for i in range(len(x))])[:, :, ::sh, ::sw]
    return out if b is None else out + np.reshape(b, (1, -1, 1, 1))


def pool_ref(x, size, stride=None, op="max"):
    (kh, kw), (sh, sw) = pair(size), pair(size if stride is None else stride)
    win = sliding_window_view(np.asarray(x, np.float64), (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return win.max(axis=(-2, -1)) if op == "max" else win.mean(axis=(-2, -1))


def conv_grads_ref(x, w, r, stride=1, pad=0):
    """The gradient of mean_i <r_i, conv(x_i)> with respect to w, the bias and x (the adjoint:
    each output's r added back onto the window it read)."""
    (sh, sw), (ph, pw) = pair(stride), (w.shape[2] // 2, w.shape[3] // 2) if pad == "same" else pair(pad)
    n, (kh, kw), (H, W) = len(x), w.shape[2:], x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    dw = np.einsum("iopq,icpquv->ocuv", r, win) / n
    dxp = np.zeros_like(xp)
    for p in range(r.shape[2]):
        for q in range(r.shape[3]):
            dxp[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw] += np.einsum("io,ocuv->icuv", r[:, :, p, q], w)
    return dw, r.sum(axis=(0, 2, 3)) / n, dxp[:, :, ph:ph + H, pw:pw + W] / n


def maxpool_delta_ref(x, r, size, stride=None):
    """δ_X of sum(r ⊙ maxpool(x)): each window's r to its first largest value (row-major)."""
    (kh, kw), (sh, sw) = pair(size), pair(size if stride is None else stride)
    dx = np.zeros_like(x, dtype=np.float64)
    for i, c, p, q in np.ndindex(r.shape):
        window = x[i, c, p * sh:p * sh + kh, q * sw:q * sw + kw]
        u, v = np.unravel_index(np.argmax(window), window.shape)  # argmax: the first of ties
        dx[i, c, p * sh + u, q * sw + v] += r[i, c, p, q]
    return dx


# -- symgrad side: hand-written models, forward by predict, gradients by compile ---------------


def outputs(x, expr, params, values, X, dtype="float64", backend="python"):
    """The model's outputs for rows X (fit with no epochs, then predict)."""
    net = types.SimpleNamespace(x=x, expr=expr, params=params)
    m = sg.fit(net, "mse", X, np.zeros((len(X), int(expr.shape[0]))), epochs=0, params=values,
               dtype=dtype, backend=backend)
    return m.predict(X).reshape(len(X), -1)


def conv_case(C, co, shape, kernel, stride, padding, bias=True, s=False):
    """conv2d(K, x [+ s], b) by hand: (x, K, b, s, Z)."""
    kh, kw = pair(kernel)
    x, K = MS("x", C * shape[0] * shape[1], 1), MS("K", co, C * kh * kw)
    b, S = (MS("b", co, 1) if bias else None), MS("s", C * shape[0] * shape[1], 1)
    Z = sg.conv2d(K, x + S if s else x, b, stride=stride, padding=padding, in_shape=(C, *shape),
                  kernel_size=(kh, kw))
    return x, K, b, S, Z


def linear_loss(Z, wrt, x):
    """sum(r ⊙ Z) for data r: its gradient is the adjoint of Z applied to r."""
    r = MS("r", int(Z.shape[0]), 1)
    return sg.msum(sp.HadamardProduct(Z, r)), wrt, [x, r]


# -- forward -----------------------------------------------------------------------------------

CONV_CASES = [  # (C, co, (H, W), kernel, stride, padding)
    (1, 1, (5, 5), 3, 1, 0),
    (2, 3, (6, 7), 3, 1, "same"),
    (3, 2, (7, 6), (2, 3), (2, 1), (1, 2)),
    (2, 2, (8, 5), (3, 1), (1, 3), 1),
    (1, 4, (5, 9), 5, (3, 2), (2, 0)),
    (2, 1, (4, 4), 1, 2, 2),  # windows wholly in the padding: the bias alone
    (3, 2, (6, 6), (1, 5), 1, "same"),
    (1, 2, (3, 3), 3, 1, 0),  # one output position
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward_matches_correlate2d(case, dtype):
    C, co, shape, kernel, stride, padding = case
    rng = np.random.default_rng(sum(shape))
    x, K, b, _, Z = conv_case(C, co, shape, kernel, stride, padding)
    w, bias = rng.normal(size=(co, C, *pair(kernel))), rng.normal(size=co)
    X = rng.normal(size=(3, C, *shape)).astype(dtype)
    got = outputs(x, Z, [K, b], [w.reshape(co, -1), bias.reshape(co, 1)], X, dtype)
    want = conv_ref(X, w.astype(dtype), bias.astype(dtype), stride, padding)
    assert Z.out_shape == want.shape[1:] and got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want.reshape(3, -1), **TOL[dtype])


POOL_CASES = [(2, None), ((2, 3), None), (3, 1), ((3, 2), (1, 2)), (2, 3), (1, (2, 1))]  # (size, stride)


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("size, stride", POOL_CASES)
def test_pool_forward_matches_numpy_windows(op, size, stride):
    """Overlapping windows (stride < size), gaps (stride > size), non-square ones; the input a
    convolution of x so the model has a parameter."""
    rng = np.random.default_rng(7)
    x, K, b, _, Z = conv_case(2, 2, (7, 8), 1, 1, 0)
    P = (sg.maxpool2d if op == "max" else sg.avgpool2d)(Z, size, stride=stride)
    w, bias = rng.normal(size=(2, 2, 1, 1)), rng.normal(size=2)
    X = rng.normal(size=(2, 2, 7, 8))
    got = outputs(x, P, [K, b], [w.reshape(2, -1), bias.reshape(2, 1)], X)
    want = pool_ref(conv_ref(X, w, bias), size, stride, op)
    assert P.out_shape == want.shape[1:]
    np.testing.assert_allclose(got, want.reshape(2, -1), **TOL["float64"])


@st.composite
def geometries(draw):
    kind = draw(st.sampled_from(["int", "pair", "same"]))
    kh, kw = (draw(st.sampled_from([1, 3])) for _ in "hw") if kind == "same" else (
        draw(st.integers(1, 4)) for _ in "hw")
    sh, sw = (1, 1) if kind == "same" else (draw(st.integers(1, 3)) for _ in "hw")
    if kind == "int":
        padding = ph = pw = draw(st.integers(0, 2))
    else:
        ph, pw = (kh // 2, kw // 2) if kind == "same" else (draw(st.integers(0, 2)) for _ in "hw")
        padding = "same" if kind == "same" else (ph, pw)
    H, W = (max(k - 2 * p, 1) + draw(st.integers(0, 4)) for k, p in ((kh, ph), (kw, pw)))
    stride = sh if sh == sw and draw(st.booleans()) else (sh, sw)
    kernel = kh if kh == kw and draw(st.booleans()) else (kh, kw)
    return dict(C=draw(st.integers(1, 3)), co=draw(st.integers(1, 3)), shape=(H, W), kernel=kernel,
                stride=stride, padding=padding, bias=draw(st.booleans()))


@settings(max_examples=25, deadline=None)
@given(g=geometries(), dtype=st.sampled_from(["float64", "float32"]), pool=st.sampled_from([None, "max", "avg"]),
       seed=st.integers(0, 2**16))
def test_property_conv_and_pool_forward(g, dtype, pool, seed):
    rng = np.random.default_rng(seed)
    x, K, b, _, Z = conv_case(**g)
    size = min(2, *Z.out_shape[1:])
    expr = Z if pool is None else (sg.maxpool2d if pool == "max" else sg.avgpool2d)(Z, size, stride=1)
    w, bias = rng.normal(size=(g["co"], g["C"], *pair(g["kernel"]))), rng.normal(size=g["co"])
    X = rng.normal(size=(2, g["C"], *g["shape"])).astype(dtype)
    params, values = [K], [w.reshape(g["co"], -1)]
    if g["bias"]:
        params, values = [K, b], [*values, bias.reshape(-1, 1)]
    got = outputs(x, expr, params, values, X, dtype)
    want = conv_ref(X, w.astype(dtype), bias.astype(dtype) if g["bias"] else None, g["stride"], g["padding"])
    want = want if pool is None else pool_ref(want, size, 1, pool)
    np.testing.assert_allclose(got, want.reshape(2, -1), **TOL[dtype])


@settings(max_examples=25, deadline=None)
@given(g=geometries(), seed=st.integers(0, 2**16))
def test_property_conv_gradients_equal_the_adjoint(g, seed):
    """∂ℓ/∂K, ∂ℓ/∂b and δ_X (through s) of sum(r ⊙ conv) against the NumPy adjoint, exactly."""
    rng = np.random.default_rng(seed)
    x, K, b, S, Z = conv_case(**g, s=True)
    wrt = [K, b, S] if g["bias"] else [K, S]
    f = sg.compile(*linear_loss(Z, wrt, x), backend="python")
    w, s = rng.normal(size=(g["co"], g["C"], *pair(g["kernel"]))), rng.normal(size=(int(x.shape[0]), 1))
    X, R = rng.normal(size=(3, g["C"], *g["shape"])), rng.normal(size=(3, *Z.out_shape))
    values = [w.reshape(g["co"], -1)] + ([rng.normal(size=(g["co"], 1))] if g["bias"] else []) + [s]
    _, grads = f.value_and_grad(values, X.reshape(3, -1), R.reshape(3, -1))
    dw, db, dx = conv_grads_ref(X + s.reshape(1, *X.shape[1:]), w, R, g["stride"], g["padding"])
    want = [dw.reshape(g["co"], -1)] + ([db.reshape(-1, 1)] if g["bias"] else []) + [dx.sum(0).reshape(-1, 1)]
    for got, ref in zip(grads, want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-12)
