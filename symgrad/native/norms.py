"""Layer normalisation kernels for generated code (``symgrad/kinds/norm.py``).

Like the image kernels (images.py) they do not depend on the model, so they live here, compiled
once per machine and dtype into Numba's on-disk cache, and generated modules only import them.
A batch is a (B, n) array, one sample per row, normalised over its n entries, or, for a
sequence of T positions stored position by position (``rs`` of T columns), over each position's
d = n/T entries:

    x̂ = (x − mean(x)) / σ,   σ = √(var(x) + ε)   (the biased variance, as PyTorch's LayerNorm)

The statistics are computed in the arrays' dtype (float32 stays float32, as every sum of the
generated code does), the variance in a second pass over x − mean(x), which loses nothing to
cancellation when the entries are large and close together.

>>> import numpy as np
>>> x = np.array([[1.0, 2.0, 3.0]])
>>> out, rs = np.empty((1, 3)), np.empty((1, 1))
>>> layernorm_fwd(x, out, rs, 0.0)
>>> out.round(6)
array([[-1.224745,  0.      ,  1.224745]])
>>> x2, out2, rs2 = np.array([[1.0, 3.0, 10.0, 20.0]]), np.empty((1, 4)), np.empty((1, 2))
>>> layernorm_fwd(x2, out2, rs2, 0.0)  # T = 2 positions of d = 2
>>> out2
array([[-1.,  1., -1.,  1.]])
"""

from __future__ import annotations

import numba
import numpy as np

from .sums import dot, total

njit = numba.njit(cache=True, error_model="numpy")


@njit
def layernorm_fwd(x, out, rs, eps):
    # out[i] = (x[i] − m) · r block by block, with m the block's mean, r = 1/√(var + ε); rs[i, t]
    # = r of sample i's block t, which the backward pass needs (x̂ is out itself). A row of n
    # entries is rs.shape[1] = T blocks of d = n/T (a sequence's positions; T = 1: the whole row)
    B, n = x.shape
    T = rs.shape[1]
    d = n // T
    one, nf, e = x.dtype.type(1.0), x.dtype.type(d), x.dtype.type(eps)
    for i in range(B):
        for t in range(T):
            xi, oi = x[i, t * d:(t + 1) * d], out[i, t * d:(t + 1) * d]
            m = total(xi, 0, d) / nf
            for j in range(d):
                oi[j] = xi[j] - m
            r = one / np.sqrt(dot(oi, oi, 0, d) / nf + e)
            rs[i, t] = r
            for j in range(d):
                oi[j] *= r


@njit
def layernorm_bwd(xh, rs, dout, dx, assign):
    # dx += r · (δ − mean(δ) − x̂ ⊙ mean(δ ⊙ x̂)), block by block: the adjoint of x̂ = (x − m)·r
    # with m and r depending on x too; with ``assign``, dx = ... (the sole contribution to dx,
    # whose array then needs no zeros first). Blocks as in layernorm_fwd.
    B, n = xh.shape
    T = rs.shape[1]
    d = n // T
    nf = xh.dtype.type(d)
    for i in range(B):
        for t in range(T):
            lo, hi_ = t * d, (t + 1) * d
            di, hi, gi = dout[i, lo:hi_], xh[i, lo:hi_], dx[i, lo:hi_]
            m1, m2, r = total(di, 0, d) / nf, dot(di, hi, 0, d) / nf, rs[i, t]
            if assign:
                for j in range(d):
                    gi[j] = r * (di[j] - m1 - hi[j] * m2)
            else:
                for j in range(d):
                    gi[j] += r * (di[j] - m1 - hi[j] * m2)


# -- batch normalisation: statistics over the minibatch's rows (and a channel's S positions) -----
# x is (B, C·S), channel c's entries at c·S … c·S + S − 1; rs, rm, rv have C entries.

@njit
def batchnorm_fwd(x, out, rs, rm, rv, eps, momentum, train):
    # training: x̂ = (x − mean_B)·r, r = 1/√(var_B + ε) (var biased), rs = r, and the running
    # statistics move ``momentum`` of the way to the batch's (var unbiased, as PyTorch);
    # inference: x̂ = (x − rm)·r with r = 1/√(rv + ε). The statistics and x̂ are computed in float64
    # and stored in the data's dtype: float32 sums of a channel with mean 1000 put the gradients
    # 3e-2 off (sums over rows are float64 everywhere, docs/decisions.md).
    B, n = x.shape
    C = rs.shape[0]
    S = n // C
    cnt = B * S
    for c in range(C):
        lo, hi = c * S, (c + 1) * S
        if train:
            m = 0.0
            for i in range(B):
                for j in range(lo, hi):
                    m += x[i, j]
            m /= cnt
            v = 0.0
            for i in range(B):
                for j in range(lo, hi):
                    d = x[i, j] - m
                    v += d * d
            r = 1.0 / np.sqrt(v / cnt + eps)
            rm[c] = (1.0 - momentum) * rm[c] + momentum * m
            rv[c] = (1.0 - momentum) * rv[c] + momentum * (v / (cnt - 1) if cnt > 1 else v)
        else:
            m, r = np.float64(rm[c]), 1.0 / np.sqrt(np.float64(rv[c]) + eps)
        rs[c] = r
        for i in range(B):
            for j in range(lo, hi):
                out[i, j] = (x[i, j] - m) * r


@njit
def batchnorm_bwd(xh, rs, dout, dx, train, assign):
    # training: dx (+)= r·(δ − mean_B(δ) − x̂ ⊙ mean_B(δ ⊙ x̂)) per channel (the batch's mean and
    # variance depend on every row); inference: dx (+)= r·δ
    B, n = xh.shape
    C = rs.shape[0]
    S = n // C
    cnt = B * S
    for c in range(C):
        lo, hi, r = c * S, (c + 1) * S, np.float64(rs[c])
        m1 = m2 = 0.0  # float64 sums, as the forward's
        if train:
            for i in range(B):
                for j in range(lo, hi):
                    m1 += dout[i, j]
                    m2 += dout[i, j] * xh[i, j]
            m1, m2 = m1 / cnt, m2 / cnt
        for i in range(B):
            for j in range(lo, hi):
                g = r * (dout[i, j] - m1 - xh[i, j] * m2)
                if assign:
                    dx[i, j] = g
                else:
                    dx[i, j] += g


@njit
def batchnorm_stats_bwd(xh, rs, dout, drm, drv):
    # inference only (training's output does not depend on them): x̂ = (x − rm)·r, r = (rv + ε)^(−1/2)
    # gives ∂x̂/∂rm = −r and ∂x̂/∂rv = −x̂·r²/2, summed over the batch's rows and positions
    B, n = xh.shape
    C = rs.shape[0]
    S = n // C
    half = xh.dtype.type(0.5)
    for c in range(C):
        r = rs[c]
        for i in range(B):
            for j in range(c * S, (c + 1) * S):
                drm[c] -= r * dout[i, j]
                drv[c] -= half * r * r * xh[i, j] * dout[i, j]
