"""Pooling kernels for generated code (``symgrad/kinds/pool.py``; the convolutions' are in
``convolve.py``).

They do not depend on the model: a node's geometry comes as one small int64 array
(C, H, W, kh, kw, stride_h, stride_w[, pad_h, pad_w]), and the dtype is the arrays'. So they
live here, compiled once per machine and dtype into Numba's on-disk cache, instead of in each
generated module: there, Numba compiled them for every model (7 s of the digits CNN's 11 s cold
build) and again for its predict, and passing the geometry as integer constants compiled them
anew for every layer shape (docs/decisions.md).

Images are (B, C·H·W) arrays, channel by channel (NCHW order).

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 16)                  # one 1×4×4 image
>>> out = np.empty((1, 4))
>>> idx = maxpool_fwd(x, out, np.array([1, 4, 4, 2, 2, 2, 2]))
>>> out
array([[ 5.,  7., 13., 15.]])
"""

from __future__ import annotations

import numba
import numpy as np

njit = numba.njit(cache=True, error_model="numpy")


@njit
def maxpool_fwd(x, out, g):
    C, H, W, kh, kw, sh, sw = g[0], g[1], g[2], g[3], g[4], g[5], g[6]
    # each window's largest value, and where it is (the first largest in row-major order; a
    # NaN wins, as in PyTorch, so it propagates): the backward pass routes δ there
    B = x.shape[0]
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    idx = np.empty((B, C * Ho * Wo), dtype=np.int64)
    if kh == 2 and kw == 2 and sh == 2 and sw == 2:
        maxpool_fwd22(x, out, idx, C, H, W)
        return idx
    for i in range(B):
        xi, oi, ii = x[i], out[i], idx[i]
        for c in range(C):
            for oy in range(Ho):
                for ox in range(Wo):
                    at = (c * H + oy * sh) * W + ox * sw
                    m, best = xi[at], at
                    for u in range(kh):
                        for v in range(kw):
                            j = at + u * W + v
                            val = xi[j]
                            # selects, not branches: which value wins is data, and a
                            # mispredicted branch per element cost more than the comparisons
                            take = (val > m) | (val != val)
                            best = j if take else best
                            m = val if take else m
                    o = (c * Ho + oy) * Wo + ox
                    oi[o], ii[o] = m, best
    return idx


@njit
def maxpool_fwd22(x, out, idx, C, H, W):
    # the common 2×2 window of stride 2, unrolled: 4-5x faster than the loops over the window
    if H % 2 == 0 and W % 2 == 0:
        maxpool_fwd22_even(x, out, idx, C, H, W)
        return
    Ho, Wo = H // 2, W // 2
    for i in range(x.shape[0]):
        xi, oi, ii = x[i], out[i], idx[i]
        for c in range(C):
            for oy in range(Ho):
                for ox in range(Wo):
                    at = (c * H + 2 * oy) * W + 2 * ox
                    m, best = xi[at], at
                    for j in (at + 1, at + W, at + W + 1):
                        val = xi[j]
                        take = (val > m) | (val != val)
                        best = j if take else best
                        m = val if take else m
                    o = (c * Ho + oy) * Wo + ox
                    oi[o], ii[o] = m, best


@njit
def maxpool_fwd22_even(x, out, idx, C, H, W):
    # even sizes in two passes: the larger of each horizontal pair over the whole image as one
    # loop of stride-2 loads, which vectorises (6x faster on 24×24 images), then the larger of
    # each vertical pair of those. Ties keep the first and a NaN wins, as above. The first pass
    # records which of its pair won in a byte, not the input's index: its int64 stores took
    # half the time of the pooling (the digits CNN's first layer 44 → 25 µs per batch of 64).
    Wo, n = W // 2, C * H * W // 2
    h = np.empty(n, dtype=x.dtype)
    right = np.empty(n, dtype=np.uint8)
    for i in range(x.shape[0]):
        xi, oi, ii = x[i], out[i], idx[i]
        for j in range(n):
            a, b = xi[2 * j], xi[2 * j + 1]
            take = (b > a) | (b != b)
            h[j] = b if take else a
            right[j] = take
        for p in range(n // (2 * Wo)):  # output rows: input rows 2p and 2p + 1 of h
            for ox in range(Wo):
                t, b = 2 * p * Wo + ox, (2 * p + 1) * Wo + ox
                ht, hb = h[t], h[b]
                # both indices loaded before the select: with a load in each arm, LLVM made it a
                # branch, mispredicted on half the windows (Intel: 87 -> 30 µs per batch of 64)
                jt, jb = 2 * t + right[t], 2 * b + right[b]
                take = (hb > ht) | (hb != hb)
                oi[p * Wo + ox] = hb if take else ht
                ii[p * Wo + ox] = jb if take else jt


@njit
def maxpool_bwd(idx, dout, dx):
    for i in range(dout.shape[0]):
        for o in range(dout.shape[1]):
            dx[i, idx[i, o]] += dout[i, o]


@njit
def avgpool_fwd(x, out, g):
    C, H, W, kh, kw, sh, sw = g[0], g[1], g[2], g[3], g[4], g[5], g[6]
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    scale = 1.0 / (kh * kw)
    for i in range(x.shape[0]):
        xi = x[i]
        for c in range(C):
            for oy in range(Ho):
                for ox in range(Wo):
                    at = (c * H + oy * sh) * W + ox * sw
                    s = xi[at]  # x's dtype (and an infinite first value stays infinite)
                    for u in range(kh):
                        for v in range(kw):
                            if u + v > 0:
                                s += xi[at + u * W + v]
                    out[i, (c * Ho + oy) * Wo + ox] = s * scale


@njit
def avgpool_bwd(dout, dx, g):
    C, H, W, kh, kw, sh, sw = g[0], g[1], g[2], g[3], g[4], g[5], g[6]
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    scale = 1.0 / (kh * kw)
    for i in range(dout.shape[0]):
        di = dx[i]
        for c in range(C):
            for oy in range(Ho):
                for ox in range(Wo):
                    share, at = dout[i, (c * Ho + oy) * Wo + ox] * scale, (c * H + oy * sh) * W + ox * sw
                    for u in range(kh):
                        for v in range(kw):
                            di[at + u * W + v] += share
