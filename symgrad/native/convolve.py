"""Convolution kernels for generated code (``symgrad/kinds/conv.py``): im2col and BLAS products.

Like the pooling kernels (``images.py``) they do not depend on the model: a node's geometry
comes as one small int64 array (C, H, W, kh, kw, stride_h, stride_w, pad_h, pad_w), and the dtype
is the arrays'. Images are (B, C·H·W) arrays, channel by channel (NCHW order).

A minibatch is convolved a chunk of images at a time (``chunk_images``): the windows of one
chunk (im2col) are the columns of a matrix small enough to stay in the core's cache while the
product reads it, and backward builds them again instead of keeping the whole minibatch's. One
matrix for the whole minibatch is used, and kept for backward, while it is small (the digits
CNN's). Measured on LeNet-5's first layer, batch 64, float32, one thread: the minibatch's
25 × 50,176 window matrix (5 MB) took 1,071 µs forward and 2,041 µs forward and backward; one
image at a time 320 and 744 µs (docs/decisions.md, "Convolutions a chunk of images at a time").

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 16)                    # one 1×4×4 image
>>> k, out = np.ones((1, 4)), np.empty((1, 9))            # a 2×2 kernel of ones
>>> col = conv2d_fwd(k, x, np.zeros(1), out, np.array([1, 4, 4, 2, 2, 1, 1, 0, 0]))
>>> out                                                   # each 2×2 window's sum
array([[10., 14., 18., 26., 30., 34., 42., 46., 50.]])
"""

from __future__ import annotations

import numba
import numpy as np

from .blas import gemm

njit = numba.njit(cache=True, error_model="numpy")
U = np.uint64  # unsigned indices: no negative-index check in the copy loops (3-4x faster im2col)
#: A minibatch whose window matrix has at most this many bytes is one chunk; a larger one is
#: cut into chunks of about CHUNK_BYTES (at least one image each).
WHOLE_BYTES = 1 << 20
CHUNK_BYTES = 1 << 17


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
def chunk_images(B, rows, L, itemsize):
    """How many images one product takes: the whole minibatch while its window matrix (rows ×
    B·L) fits in WHOLE_BYTES, else as many as fit in CHUNK_BYTES, at least one."""
    per_image = rows * L * itemsize
    if per_image * B <= WHOLE_BYTES:
        return max(B, 1)
    return max(1, min(B, CHUNK_BYTES // max(per_image, 1)))


@njit
def _sizes(k, x, g):
    C, H, W, kh, kw, sh, sw, ph, pw = g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8]
    L = ((H + 2 * ph - kh) // sh + 1) * ((W + 2 * pw - kw) // sw + 1)
    return k.shape[0], C * kh * kw, L


@njit
def conv2d_fwd(k, x, b, out, g):
    # out[i, (o, oy, ox)] = b[o] + sum over (c, u, v) of k[o, (c, u, v)] * window. Returns the
    # windows when the minibatch is one chunk, for the backward pass (empty otherwise: backward
    # builds each chunk's again)
    Co, R, L = _sizes(k, x, g)
    return conv2d_fwd_chunks(k, x, b, out, g, chunk_images(x.shape[0], R, L, x.itemsize))


@njit
def conv2d_fwd_chunks(k, x, b, out, g, n):
    Co, R, L = _sizes(k, x, g)
    B = x.shape[0]
    n = max(1, min(n, B))
    colf = np.empty(R * n * L, dtype=x.dtype)
    zf = np.empty(Co * n * L if n > 1 else 0, dtype=x.dtype)
    for i0 in range(0, B, n):
        m = min(n, B - i0)
        col = colf[:R * m * L].reshape((R, m * L))
        im2col(x[i0:i0 + m], col, g)
        if m == 1:  # one image: the product is its output, channel by channel, as it is stored
            oi = out[i0].reshape((Co, L))
            gemm(k, col, oi, 0.0)
            for o in range(Co):
                bo = b[o]
                for q in range(L):
                    oi[o, q] += bo
            continue
        z = zf[:Co * m * L].reshape((Co, m * L))
        gemm(k, col, z, 0.0)
        for i in range(m):
            for o in range(Co):
                bo = b[o]
                for q in range(L):
                    out[i0 + i, o * L + q] = z[o, i * L + q] + bo
    return colf.reshape((R, n * L)) if n >= B else colf[:0].reshape((0, 0))


@njit
def conv2d_bwd(k, x, col, dout, dk, db, dx, g):
    # dk += dz · colᵀ, db += the sum of dz per channel, dx += col2im(kᵀ · dz); an empty dk, db or
    # dx is an adjoint nobody needs. col: the forward pass's windows, or empty
    Co, R, L = _sizes(k, x, g)
    conv2d_bwd_chunks(k, x, col, dout, dk, db, dx, g, chunk_images(dout.shape[0], R, L, x.itemsize))


@njit
def conv2d_bwd_chunks(k, x, col, dout, dk, db, dx, g, n):
    Co, R, L = _sizes(k, x, g)
    B = dout.shape[0]
    n = max(1, min(n, B))
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
    want_k, want_x = dk.shape[0] > 0, dx.shape[0] > 0
    kept = col.shape[0] > 0 and n >= B  # the forward pass's windows of the whole minibatch
    # ∂ℓ/∂Kᵀ = cols · δᵀ, with δᵀ gathered per chunk: both operands as stored, where δ · colsᵀ
    # reads one transposed, which OpenBLAS ran 2.4x slower on LeNet's second layer (16 × 200 ·
    # 200 × 150 per chunk: 694 against 260 µs a step). Not below 8 output channels, which
    # leaves most of a BLAS register tile empty (LeNet's first layer: 195 against 131 µs)
    flip = want_k and not kept and k.shape[0] >= 8
    dkT = np.zeros((R if flip else 0, Co), dtype=dk.dtype)
    colf = np.empty(R * n * L if want_k and not kept else 0, dtype=x.dtype)
    dcolf = np.empty(R * n * L if want_x else 0, dtype=x.dtype)
    zf = np.empty(Co * n * L if n > 1 or flip else 0, dtype=x.dtype)
    for i0 in range(0, B, n):
        m = min(n, B - i0)
        dz = zf[:0].reshape((0, 0))
        if flip:  # the chunk's δ with its positions as rows
            dz = zf[:Co * m * L].reshape((m * L, Co))
            for i in range(m):
                for o in range(Co):
                    for q in range(L):
                        dz[i * L + q, o] = dout[i0 + i, o * L + q]
        cols = col  # kept: the forward pass's windows of the whole minibatch
        if want_k and not kept:
            cols = colf[:R * m * L].reshape((R, m * L))
            im2col(x[i0:i0 + m], cols, g)  # again: cheaper than keeping the minibatch's
            if flip:
                gemm(cols, dz, dkT, 1.0)
        if not (want_x or (want_k and not flip)):
            continue
        if m == 1:
            dz = dout[i0].reshape((Co, L))
        else:  # the chunk's δ with its channels as rows, as the forward product made it (in the
            # buffer the transposed δ used: ∂ℓ/∂Kᵀ is done with it)
            dz = zf[:Co * m * L].reshape((Co, m * L))
            for i in range(m):
                for o in range(Co):
                    for q in range(L):
                        dz[o, i * L + q] = dout[i0 + i, o * L + q]
        if want_k and not flip:
            gemm(dz, cols.T, dk, 1.0)
        if want_x:
            dcol = dcolf[:R * m * L].reshape((R, m * L))
            gemm(k.T, dz, dcol, 0.0)
            col2im(dcol, dx[i0:i0 + m], g)
    for o in range(dkT.shape[1]):
        for r in range(dkT.shape[0]):
            dk[o, r] += dkT[r, o]
