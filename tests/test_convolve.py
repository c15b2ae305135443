"""The convolution kernels a chunk of images at a time (symgrad/native/convolve.py).

The models in the other conv tests are small, so their minibatches are one chunk; here the
kernels are called directly with every chunk size (one image, a few, a remainder, the whole
minibatch, with and without the forward pass's windows kept) and checked against scipy's
correlate2d and the NumPy adjoint of test_conv.py, which share no code with them.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_conv import TOL, conv_grads_ref, conv_ref

from symgrad.native import convolve

# (C, H, W, co, kernel, stride, pad): LeNet's layers (smaller images), a strided one, padded ones
# with rectangular kernels; from 8 output channels ∂ℓ/∂K is computed transposed (flip)
GEOMS = [(1, 12, 12, 6, 5, 1, 2), (6, 7, 7, 16, 5, 1, 0), (2, 9, 8, 3, 3, 2, 1), (3, 6, 5, 8, (2, 3), (1, 2), (1, 0)),
         (4, 5, 6, 9, 3, 1, 1)]


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def _run(geom, B, n, dtype, keep, seed=0):
    C, H, W, co, kern, stride, pad = geom
    (kh, kw), (sh, sw), (ph, pw) = _pair(kern), _pair(stride), _pair(pad)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, C, H, W))
    w = rng.normal(size=(co, C, kh, kw))
    b = rng.normal(size=co)
    g = np.array([C, H, W, kh, kw, sh, sw, ph, pw], np.int64)
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    r = rng.normal(size=(B, co, Ho, Wo))
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    k, xf = cast(w.reshape(co, -1)), cast(x.reshape(B, -1))
    out = np.full((B, co * Ho * Wo), np.nan, dtype)
    col = convolve.conv2d_fwd_chunks(k, xf, cast(b), out, g, n)
    if not keep:
        col = np.empty((0, 0), dtype)
    dk, db, dx = np.zeros_like(k), np.zeros(co, dtype), np.zeros_like(xf)
    convolve.conv2d_bwd_chunks(k, xf, col, cast(r.reshape(B, -1) / B), dk, db, dx, g, n)
    want_out = conv_ref(x, w, b, stride, pad)
    want = conv_grads_ref(x, w, r, stride, pad)
    return (out, dk, db, dx), (want_out.reshape(B, -1), want[0].reshape(co, -1), want[1], want[2].reshape(B, -1))


def _check(got, want, dtype):
    tol = TOL[dtype]
    for name, a, e in zip(("out", "dK", "db", "dX"), got, want):
        scale = max(1.0, float(np.abs(e).max()))
        np.testing.assert_allclose(a, e, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=name)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("n, keep", [(1, False), (2, False), (3, False), (7, True), (7, False), (50, True)])
def test_chunks_match_the_oracles(geom, n, keep, dtype):
    # 7 images: chunks of 1, 2 (and a remainder of 1), 3 (remainder 1), all 7 with and without
    # the forward pass's windows, and a chunk size larger than the minibatch
    got, want = _run(geom, 7, n, dtype, keep)
    _check(got, want, dtype)


@settings(max_examples=40, deadline=None)
@given(C=st.integers(1, 3), H=st.integers(3, 9), W=st.integers(3, 9), co=st.integers(1, 10),
       kern=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 1), B=st.integers(1, 6),
       n=st.integers(1, 7), keep=st.booleans())
def test_any_chunk_size_hypothesis(C, H, W, co, kern, stride, pad, B, n, keep):
    got, want = _run((C, H, W, co, kern, stride, pad), B, n, "float64", keep)
    _check(got, want, "float64")


def test_the_chunk_rule():
    # the digits CNN's minibatch of 64 is one chunk (its windows are kept for backward); LeNet's
    # first layer (25 × 784 windows per image, 5 MB for 64 images) one image at a time; its second
    # (150 × 100) two; an image whose windows alone pass CHUNK_BYTES still one
    assert convolve.chunk_images(64, 144, 16, 4) == 64
    assert convolve.chunk_images(64, 25, 784, 4) == 1
    assert convolve.chunk_images(64, 150, 100, 4) == 2
    assert convolve.chunk_images(64, 576, 1024, 8) == 1
    assert convolve.chunk_images(0, 25, 784, 4) == 1


def test_the_chosen_chunks_match_the_whole_minibatch():
    # through the public entry points, a minibatch large enough to be cut into chunks gives what
    # one chunk of all its images gives
    C, H, W, co, kern = 1, 28, 28, 6, 5
    B = 24
    assert convolve.chunk_images(B, kern * kern, H * W, 8) < B
    rng = np.random.default_rng(3)
    k, x, b = rng.normal(size=(co, kern * kern)), rng.normal(size=(B, C * H * W)), rng.normal(size=co)
    g = np.array([C, H, W, kern, kern, 1, 1, 2, 2], np.int64)
    out1, out2 = np.empty((B, co * H * W)), np.empty((B, co * H * W))
    col = convolve.conv2d_fwd(k, x, b, out1, g)
    assert col.shape == (0, 0)  # chunks: backward builds the windows again
    convolve.conv2d_fwd_chunks(k, x, b, out2, g, B)
    np.testing.assert_allclose(out1, out2, rtol=1e-12, atol=1e-12)
    r = rng.normal(size=out1.shape)
    grads = []
    for run in (lambda *a: convolve.conv2d_bwd(*a, g), lambda *a: convolve.conv2d_bwd_chunks(*a, g, B)):
        dk, db, dx = np.zeros_like(k), np.zeros(co), np.zeros_like(x)
        run(k, x, col, r, dk, db, dx)
        grads.append((dk, db, dx))
    for a, e in zip(*grads):
        np.testing.assert_allclose(a, e, rtol=1e-11, atol=1e-11)
