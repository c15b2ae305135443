"""Multi-head self-attention kernels for generated code (``symgrad/kinds/attention.py``).

Like the image kernels (images.py) they do not depend on the model: the geometry comes as one
small int64 array (T, d, heads, causal) and the dtype is the arrays', so they live here,
compiled once per machine and dtype into Numba's on-disk cache, and generated modules only
import them.

A batch of sequences is a (B, T·d) array, each row T positions of d features, position by
position, so ``x.reshape(B·T, d)`` is every position of the minibatch as one matrix: the four
projections are one BLAS product each over the whole minibatch. Q, K and V are saved head by
head, (B, heads, T, d_h), so that each head's block is contiguous for its products; P is saved
as (B, heads, T, T) and O as (B·T, d), position by position, for the output projection. The
softmax subtracts each row's largest score first (finite for any finite scores), and a causal
mask leaves P = 0 above the diagonal, so those entries get no gradient.

>>> import numpy as np
>>> x = np.arange(6.0).reshape(1, 6) / 6              # one sequence: T = 3 positions, d = 2
>>> w, g = np.eye(2), np.array([3, 2, 1, 1])           # identity weights, 1 head, causal
>>> out, q, k, v, o = np.empty((5, 1, 6))             # (B, T·d) each
>>> p = np.empty((1, 9))                               # (B, heads·T·T)
>>> attention_fwd(x, w, w, w, w, out, q, k, v, p, o, g)
>>> p.reshape(3, 3)[0]                                 # the first position sees only itself
array([1., 0., 0.])
"""

from __future__ import annotations

import numba
import numpy as np

from .blas import gemm
from .sums import dot, largest, total
from .vecmath import exp

njit = numba.njit(cache=True, error_model="numpy")


@njit
def _heads_in(src, dst, B, T, H, dh):
    # src (B·T, d), position by position -> dst (B, H, T, dh), head by head
    d4 = dst.reshape((B, H, T, dh))
    for i in range(B):
        for t in range(T):
            row = src[i * T + t]
            for h in range(H):
                for j in range(dh):
                    d4[i, h, t, j] = row[h * dh + j]


@njit
def _project(x2, w, tmp, dst, B, T, H, dh):
    # dst = x2·w, head by head
    gemm(x2, w, tmp, 0.0)
    _heads_in(tmp, dst, B, T, H, dh)


@njit
def _head_out(src, dst, i, h, T, dh):
    # one head's (T, dh) block into its columns of dst (B·T, d)
    for t in range(T):
        for j in range(dh):
            dst[i * T + t, h * dh + j] = src[t, j]


@njit
def _softmax_rows(s, scale, causal):
    # s = softmax(scale · s) row by row, in place; with ``causal``, row r keeps columns 0..r and
    # the rest is 0 (their scores are −∞). The row's largest score is subtracted first.
    T = s.shape[1]
    zero = s.dtype.type(0.0)
    for r in range(s.shape[0]):
        row = s[r]
        n = r + 1 if causal else T
        m = largest(row, 0, n)
        # exp alone in its loop vectorises (2x faster than with the sum in it); up to a multiple
        # of 8 columns (masked ones are overwritten below), as a causal row's r + 1 columns
        # otherwise leave up to 7 exps to a scalar tail: 1.0 -> 0.65 ms a layer of the transformer
        for j in range(min(T, (n + 7) // 8 * 8)):
            row[j] = exp(scale * (row[j] - m))
        inv = s.dtype.type(1.0) / total(row, 0, n)
        for j in range(n):
            row[j] *= inv
        for j in range(n, T):
            row[j] = zero


@njit
def attention_fwd(x, wq, wk, wv, wo, out, q, k, v, p, o, g):
    # out = O·Wo, O the heads' softmax(Q_h·K_hᵀ/√d_h)·V_h side by side; saves q, k, v (head by
    # head), p and o for the backward pass
    T, d, H, causal = g[0], g[1], g[2], g[3] != 0
    B, dh = x.shape[0], d // H
    scale = x.dtype.type(1.0 / np.sqrt(dh))
    x2 = x.reshape((B * T, d))
    tmp = np.empty((B * T, d), dtype=x.dtype)
    _project(x2, wq, tmp, q, B, T, H, dh)
    _project(x2, wk, tmp, k, B, T, H, dh)
    _project(x2, wv, tmp, v, B, T, H, dh)
    q4, k4, v4 = q.reshape((B, H, T, dh)), k.reshape((B, H, T, dh)), v.reshape((B, H, T, dh))
    p4, o2 = p.reshape((B, H, T, T)), o.reshape((B * T, d))
    oh = np.empty((T, dh), dtype=x.dtype)
    for i in range(B):
        for h in range(H):
            ph = p4[i, h]
            gemm(q4[i, h], k4[i, h].T, ph, 0.0)
            _softmax_rows(ph, scale, causal)
            gemm(ph, v4[i, h], oh, 0.0)
            _head_out(oh, o2, i, h, T, dh)
    gemm(o2, wo, out.reshape((B * T, d)), 0.0)


@njit
def attention_bwd(x, wq, wk, wv, wo, q, k, v, p, o, dout, dx, dwq, dwk, dwv, dwo, g, assign):
    # δ_O = δ·Woᵀ; per head δ_V = Pᵀ·δ_O, δ_P = δ_O·Vᵀ, δ_S = P ⊙ (δ_P − rowsum(δ_P ⊙ P)),
    # δ_Q = δ_S·K/√d_h, δ_K = δ_Sᵀ·Q/√d_h; then ∂W = Xᵀ·δ (O for Wo) and δ_X = Σ δ·Wᵀ. An empty
    # dx or dw is an adjoint nobody needs; with ``assign`` dx is written, not added to
    T, d, H, causal = g[0], g[1], g[2], g[3] != 0
    B, dh = x.shape[0], d // H
    F = x.dtype.type
    scale = F(1.0 / np.sqrt(dh))
    d2, o2 = dout.reshape((B * T, d)), o.reshape((B * T, d))
    if dwo.shape[0] > 0:
        gemm(o2.T, d2, dwo, 1.0)
    if dx.shape[0] == 0 and dwq.shape[0] == 0 and dwk.shape[0] == 0 and dwv.shape[0] == 0:
        return
    dO = np.empty((B * T, d), dtype=x.dtype)
    gemm(d2, wo.T, dO, 0.0)
    q4, k4, v4, p4 = q.reshape((B, H, T, dh)), k.reshape((B, H, T, dh)), v.reshape((B, H, T, dh)), p.reshape((B, H, T, T))
    dq, dk, dv = np.empty((B * T, d), x.dtype), np.empty((B * T, d), x.dtype), np.empty((B * T, d), x.dtype)
    doh, dps = np.empty((T, dh), x.dtype), np.empty((T, T), x.dtype)
    dqh, dkh, dvh = np.empty((T, dh), x.dtype), np.empty((T, dh), x.dtype), np.empty((T, dh), x.dtype)
    for i in range(B):
        for h in range(H):
            for t in range(T):
                for j in range(dh):
                    doh[t, j] = dO[i * T + t, h * dh + j]
            ph = p4[i, h]
            gemm(ph.T, doh, dvh, 0.0)
            gemm(doh, v4[i, h].T, dps, 0.0)
            for r in range(T):
                n = r + 1 if causal else T
                s = dot(dps[r], ph[r], 0, n)
                for j in range(n):
                    dps[r, j] = scale * ph[r, j] * (dps[r, j] - s)  # δ_S/√d_h
                for j in range(n, T):
                    dps[r, j] = F(0.0)  # masked: no gradient, even where δ_P is not finite
            gemm(dps, k4[i, h], dqh, 0.0)
            gemm(dps.T, q4[i, h], dkh, 0.0)
            _head_out(dqh, dq, i, h, T, dh)
            _head_out(dkh, dk, i, h, T, dh)
            _head_out(dvh, dv, i, h, T, dh)
    x2 = x.reshape((B * T, d))
    if dwq.shape[0] > 0:
        gemm(x2.T, dq, dwq, 1.0)
    if dwk.shape[0] > 0:
        gemm(x2.T, dk, dwk, 1.0)
    if dwv.shape[0] > 0:
        gemm(x2.T, dv, dwv, 1.0)
    if dx.shape[0] > 0:
        dx2 = dx.reshape((B * T, d))
        gemm(dq, wq.T, dx2, 0.0 if assign else 1.0)
        gemm(dk, wk.T, dx2, 1.0)
        gemm(dv, wv.T, dx2, 1.0)
