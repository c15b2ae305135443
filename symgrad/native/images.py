"""Convolution and pooling kernels for generated code (``symgrad/kinds/conv.py``, ``pool.py``).

They do not depend on the model: a node's geometry comes as one small int64 array
(C, H, W, kh, kw, stride_h, stride_w[, pad_h, pad_w]), and the dtype is the arrays'. So they
live here, compiled once per machine and dtype into Numba's on-disk cache, instead of in each
generated module: there, Numba compiled them for every model (7 s of the digits CNN's 11 s cold
build) and again for its predict, and passing the geometry as integer constants compiled them
anew for every layer shape (docs/decisions.md).

Images are (B, C·H·W) arrays, channel by channel (NCHW order). The copy loops index flat
arrays with unsigned integers (``U``): Numba then emits no check for negative indices in the
inner loop, which ran 3-4x faster for im2col.

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

from .blas import gemm

njit = numba.njit(cache=True, error_model="numpy")
U = np.uint64  # unsigned indices: no negative-index check in the copy loops


@njit
def pad_images(x, C, H, W, ph, pw):
    # x (B, C*H*W) as (B, C, H + 2ph, W + 2pw) with a border of zeros
    B = x.shape[0]
    Hp, Wp = H + 2 * ph, W + 2 * pw
    xp = np.zeros((B, C, Hp, Wp), dtype=x.dtype)
    x4 = x.reshape((B, C, H, W))
    for i in range(B):
        for c in range(C):
            for y in range(H):
                for xx in range(W):
                    xp[i, c, y + ph, xx + pw] = x4[i, c, y, xx]
    return xp


@njit
def im2col(x, col, g):
    C, H, W, kh, kw, sh, sw, ph, pw = g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8]
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    # col[(c, u, v), (i, oy, ox)] = x[i, c, oy*sh - ph + u, ox*sw - pw + v], zero outside the image
    B, L = x.shape[0], Ho * Wo
    Hp, Wp = H + 2 * ph, W + 2 * pw
    # no padding: x itself (LeNet's layers: a copy of the minibatch saved per layer)
    xf = pad_images(x, C, H, W, ph, pw).reshape(-1) if ph or pw else x.reshape(-1)
    cf = col.reshape(-1)
    # rows shorter than 8: one loop over each window's L positions, from a table of their
    # offsets (the digits CNN's 4×4 maps: 92 -> 56 µs; from 8 columns, equal or slower)
    off = np.empty(L if Wo < 8 else 0, dtype=U)
    for q in range(off.shape[0]):
        off[q] = U((q // Wo) * sh * Wp + (q % Wo) * sw)
    for c in range(C):
        for u in range(kh):
            for v in range(kw):
                r = (c * kh + u) * kw + v
                for i in range(B):
                    d0, s0 = U((r * B + i) * L), U(((i * C + c) * Hp + u) * Wp + v)
                    for q in range(off.shape[0]):
                        cf[d0 + U(q)] = xf[s0 + off[q]]
                    for oy in range(Ho if Wo >= 8 else 0):
                        d, s = d0 + U(oy * Wo), s0 + U(oy * sh * Wp)
                        for ox in range(Wo):
                            cf[d + U(ox)] = xf[s + U(ox * sw)]


@njit
def _span(n_out, n_in, k, s, p):
    # the outputs o whose input o*s - p + k lies inside [0, n_in): o in [lo, hi)
    lo, hi = 0, n_out
    while lo < n_out and lo * s - p + k < 0:
        lo += 1
    while hi > lo and (hi - 1) * s - p + k >= n_in:
        hi -= 1
    return lo, hi


@njit
def col2im(dcol, dx, g):
    C, H, W, kh, kw, sh, sw, ph, pw = g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8]
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    # the adjoint of im2col: every window's delta added back where the window read the image,
    # straight into dx: a window's positions in the padding are skipped (each kernel offset's
    # valid output rows and columns, _span), not added into a padded copy that is then cropped
    # (12% faster for the digits CNN's padded second layer)
    B, L = dx.shape[0], Ho * Wo
    pf, cf = dx.reshape(-1), dcol.reshape(-1)
    for c in range(C):
        for u in range(kh):
            ylo, yhi = _span(Ho, H, u, sh, ph)
            for v in range(kw):
                xlo, xhi = _span(Wo, W, v, sw, pw)
                r = (c * kh + u) * kw + v
                for i in range(B):
                    d0, s0 = U((r * B + i) * L), (i * C + c) * H * W
                    for oy in range(ylo, yhi):
                        d, s = d0 + U(oy * Wo), U(s0 + (oy * sh - ph + u) * W - pw + v)
                        for ox in range(xlo, xhi):
                            pf[s + U(ox * sw)] += cf[d + U(ox)]


@njit
def conv2d_fwd(k, x, b, out, g):
    C, H, W, kh, kw, sh, sw, ph, pw = g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8]
    # out[i, (o, oy, ox)] = b[o] + sum over (c, u, v) of k[o, (c, u, v)] * window; returns the
    # windows (im2col), which the backward pass reuses
    B, Co = x.shape[0], k.shape[0]
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    L = Ho * Wo
    col = np.empty((C * kh * kw, B * L), dtype=x.dtype)
    im2col(x, col, g)
    z = np.empty((Co, B * L), dtype=x.dtype)
    gemm(k, col, z, 0.0)
    for i in range(B):
        for o in range(Co):
            bo = b[o]
            for q in range(L):
                out[i, o * L + q] = z[o, i * L + q] + bo
    return col


@njit
def conv2d_bwd(k, col, dout, dk, db, dx, g):
    C, H, W, kh, kw, sh, sw, ph, pw = g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8]
    # dk += dz · colᵀ, db += the sum of dz per channel, dx += col2im(kᵀ · dz); an empty
    # dk, db or dx is an adjoint nobody needs
    B, Co = dout.shape[0], k.shape[0]
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    L = Ho * Wo
    dz = np.empty((Co, B * L), dtype=dout.dtype)
    for i in range(B):
        for o in range(Co):
            for q in range(L):
                dz[o, i * L + q] = dout[i, o * L + q]
    if db.shape[0] > 0 and B > 0:
        # δ summed over the samples first, a row at a time (contiguous adds that vectorise), then
        # over each channel's positions: one running sum along dz's rows was a chain of B·L
        # dependent adds, 70 of the 107 µs of the digits CNN's first backward (no δ_X)
        acc = dout[0].copy()  # of dout's dtype: float32 sums stay float32, as elsewhere
        for i in range(1, B):
            for j in range(Co * L):
                acc[j] += dout[i, j]
        for o in range(Co):
            s = acc[o * L]
            for q in range(1, L):
                s += acc[o * L + q]
            db[o] += s
    if dk.shape[0] > 0:
        gemm(dz, col.T, dk, 1.0)
    if dx.shape[0] > 0:
        dcol = np.empty((C * kh * kw, B * L), dtype=dout.dtype)
        gemm(k.T, dz, dcol, 0.0)
        col2im(dcol, dx, g)


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
