"""Training convolutional networks (issue 15): one fused step equals ``value_and_grad`` and the
optimizer's formula (Python and Numba, float32 and float64), image input as (n, C, H, W), (n, H, W)
or flat rows, and float32 data training a float32 model.

Two Numba training builds are shared by the module (float64 and float32 of one network); the
rest runs on the Python backend.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import sympy as sp
from optim_oracle import reference_step
from test_conv import conv_ref, pool_ref

import symgrad as sg
from symgrad.lang import optim
from symgrad.lang.losses import LOSSES

MS = sp.MatrixSymbol
nn = sg.nn
LR = 0.1
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-4, atol=2e-5)}


def cnn():
    """conv 1→4 3×3 same, relu, maxpool 2, conv 4→3 2×2 stride (1, 2) padding 1, tanh,
    overlapping avgpool 2 stride 1, dense 24→3: (1, 8, 8) → (4, 8, 8) → (4, 4, 4) → (3, 5, 3)
    → (3, 4, 2) → 3."""
    return nn.Sequential([nn.Conv2D(1, 4, 3, padding="same", activation="relu"), nn.MaxPool2D(2),
                          nn.Conv2D(4, 3, 2, stride=(1, 2), padding=1, activation="tanh"),
                          nn.AvgPool2D(2, stride=1), nn.Flatten(), nn.Dense(24, 3)], input_shape=(1, 8, 8))


def cnn_ref(params, X):
    """The network's logits in NumPy and scipy."""
    k1, b1, k2, b2, w, b = (np.asarray(p, np.float64) for p in params)
    a1 = np.maximum(conv_ref(X, k1.reshape(4, 1, 3, 3), b1, 1, "same"), 0)
    a2 = np.tanh(conv_ref(pool_ref(a1, 2), k2.reshape(3, 4, 2, 2), b2, (1, 2), 1))
    return pool_ref(a2, 2, 1, "avg").reshape(len(X), -1) @ w.T + b.T


def data(n=12, seed=0):
    """(n, 1, 8, 8) images whose class is the quadrant holding a bright 3×3 blob (0, 1, 2)."""
    rng = np.random.default_rng(seed)
    X, labels = 0.3 * rng.normal(size=(n, 1, 8, 8)), rng.integers(0, 3, n)
    for i, k in enumerate(labels):
        r, c = (0, 0) if k == 0 else (0, 5) if k == 1 else (5, 2)
        X[i, 0, r:r + 3, c:c + 3] += 2.0
    return X, labels


def compiled_loss(net, dtype, backend="python"):
    y = MS("y", int(net.expr.shape[0]), 1)
    return sg.compile(LOSSES["softmax_cross_entropy"](net.expr, y), net.params, [net.x, y], dtype=dtype,
                      backend=backend)


def sgd_fit(net, X, labels, p0, dtype, backend="python", epochs=1):
    return sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=optim.SGD(LR), epochs=epochs,
                  batch_size=len(X), shuffle=False, params=[p.copy() for p in p0], dtype=dtype, backend=backend)


def gd_steps(f, p0, X, Y, steps=1):
    ps = [p.copy() for p in p0]
    for _ in range(steps):
        _, g = f.value_and_grad(ps, X.reshape(len(X), -1), Y.astype(X.dtype))
        ps = [p - np.asarray(LR, p.dtype) * gi for p, gi in zip(ps, g, strict=True)]
    return ps


# -- one fused step == value_and_grad + the optimizer formula ---------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_sgd_steps_equal_value_and_grad_python(dtype):
    net, (X, labels) = cnn(), data()
    p0 = net.init_params(1, dtype=dtype)
    f = compiled_loss(net, dtype)
    for epochs in (1, 3):
        m = sgd_fit(net, X.astype(dtype), labels, p0, dtype, epochs=epochs)
        for got, want in zip(m.params, gd_steps(f, p0, X.astype(dtype), np.eye(3)[labels], epochs), strict=True):
            assert got.dtype == np.dtype(dtype)
            np.testing.assert_allclose(got, want, **TOL[dtype])
    first = f.value(p0, X.reshape(len(X), -1).astype(dtype), np.eye(3, dtype=dtype)[labels])
    assert m.history["loss"][0] == pytest.approx(first, rel=1e-12 if dtype == "float64" else 1e-5)


def test_fused_adam_and_momentum_minibatches_equal_the_unfused_loop():
    """Shuffled minibatches of 5 (5, 5, 2), two epochs: fit's permutation, value_and_grad per
    batch, and the hand-written optimizer steps of tests/optim_oracle.py."""
    net, (X, labels) = cnn(), data()
    p0, f, Y = net.init_params(2), compiled_loss(net, "float64"), np.eye(3)[labels]
    for opt in (optim.Adam(0.01), optim.Momentum(0.05)):
        m = sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=opt, epochs=2, batch_size=5, seed=4,
                   params=[p.copy() for p in p0], backend="python")
        ps, states, rng, t = [p.copy() for p in p0], [opt.init_state(p.shape) for p in p0], np.random.default_rng(4), 0
        for _ in range(2):
            perm = rng.permutation(len(X))
            for s in range(0, len(X), 5):
                idx = perm[s:s + 5]
                _, gs = f.value_and_grad(ps, X[idx].reshape(len(idx), -1), Y[idx])
                t += 1
                for p, g, st in zip(ps, gs, states, strict=True):
                    reference_step(copy.copy(opt), p, g, st, t)
        for got, want in zip(m.params, ps, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def numba_fits():
    """dtype -> (net, p0, Trained after one full-batch SGD step with Numba on float32/float64 data,
    given without dtype=: the data's dtype chooses the model's)."""
    out = {}
    for dtype in ("float64", "float32"):
        net, (X, labels) = cnn(), data()
        p0 = net.init_params(1, dtype=dtype)
        out[dtype] = net, p0, sgd_fit(net, X.astype(dtype), labels, p0, None, backend="numba")
    return out


@pytest.mark.numba
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_sgd_step_numba_equals_value_and_grad(numba_fits, dtype):
    net, p0, m = numba_fits[dtype]
    X, labels = data()
    assert m.dtype == np.dtype(dtype) and all(p.dtype == np.dtype(dtype) for p in m.params)
    want = gd_steps(compiled_loss(net, dtype), p0, X.astype(dtype), np.eye(3)[labels])
    for got, w in zip(m.params, want, strict=True):
        np.testing.assert_allclose(got, w, **TOL[dtype])


@pytest.mark.numba
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numba_predict_matches_numpy_for_every_image_layout(numba_fits, dtype):
    net, _, m = numba_fits[dtype]
    X, _ = data(7, seed=1)
    want = cnn_ref(m.params, X.astype(dtype))
    outs = [m.predict(a.astype(dtype)) for a in (X, X.reshape(7, 8, 8), X.reshape(7, 64))]
    outs.append(m.predict(X))  # float64 images for a float32 model are converted
    for out in outs:
        assert out.dtype == np.dtype(dtype) and out.shape == (7, 3)
        np.testing.assert_allclose(out, want, **TOL[dtype])


@pytest.mark.numba
def test_numba_image_and_flat_input_train_identically_and_learn(numba_fits):
    net, p0, _ = numba_fits["float32"]
    X, labels = data(60, seed=3)
    X = X.astype(np.float32)
    kw = dict(optimizer=optim.SGD(LR), epochs=15, batch_size=10, seed=1, backend="numba")
    runs = [sg.fit(net, "softmax_cross_entropy", a, labels, params=[p.copy() for p in p0], **kw)
            for a in (X, X.reshape(60, 8, 8), X.reshape(60, -1))]
    for r in runs[1:]:
        assert r.history["loss"] == runs[0].history["loss"]
        assert all(np.array_equal(p, q) for p, q in zip(r.params, runs[0].params, strict=True))
    assert runs[0].history["loss"][-1] < 0.5 * runs[0].history["loss"][0]
    Xt, lt = data(60, seed=4)
    assert (runs[0].predict_class(Xt) == lt).mean() >= 0.9


def test_python_image_and_flat_input_train_identically():
    net, (X, labels) = cnn(), data()
    kw = dict(optimizer=optim.Adam(0.01), epochs=2, batch_size=5, seed=2, backend="python")
    a = sg.fit(net, "softmax_cross_entropy", X, labels, **kw)
    b = sg.fit(net, "softmax_cross_entropy", X.reshape(len(X), -1), labels, **kw)
    assert a.history["loss"] == b.history["loss"]
    assert all(np.array_equal(p, q) for p, q in zip(a.params, b.params, strict=True))
    np.testing.assert_array_equal(a.predict(X), b.predict(X.reshape(len(X), -1)))
