"""Layer normalisation kernels for generated code (``symgrad/kinds/norm.py``).

Like the image kernels (images.py) they do not depend on the model, so they live here, compiled
once per machine and dtype into Numba's on-disk cache, and generated modules only import them.
A batch is a (B, n) array, one sample per row, normalised over its n entries:

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
"""

from __future__ import annotations

import numba
import numpy as np

njit = numba.njit(cache=True, error_model="numpy")


@njit
def layernorm_fwd(x, out, rs, eps):
    # out[i] = (x[i] − m) · r with m the row's mean, r = 1/√(var + ε); rs[i, 0] = r, which the
    # backward pass needs (x̂ is out itself)
    B, n = x.shape
    one, nf, e = x.dtype.type(1.0), x.dtype.type(n), x.dtype.type(eps)
    for i in range(B):
        xi, oi = x[i], out[i]
        m = xi[0]
        for j in range(1, n):
            m += xi[j]
        m /= nf
        v = (xi[0] - m) * (xi[0] - m)
        for j in range(1, n):
            c = xi[j] - m
            oi[j] = c
            v += c * c
        oi[0] = xi[0] - m
        r = one / np.sqrt(v / nf + e)
        rs[i, 0] = r
        for j in range(n):
            oi[j] *= r


@njit
def layernorm_bwd(xh, rs, dout, dx, assign):
    # dx += r · (δ − mean(δ) − x̂ ⊙ mean(δ ⊙ x̂)), row by row: the adjoint of x̂ = (x − m)·r
    # with m and r depending on x too; with ``assign``, dx = ... (the sole contribution to dx,
    # whose array then needs no zeros first)
    B, n = xh.shape
    nf = xh.dtype.type(n)
    for i in range(B):
        di, hi, gi = dout[i], xh[i], dx[i]
        s1, s2 = di[0], di[0] * hi[0]
        for j in range(1, n):
            s1 += di[j]
            s2 += di[j] * hi[j]
        m1, m2, r = s1 / nf, s2 / nf, rs[i, 0]
        if assign:
            for j in range(n):
                gi[j] = r * (di[j] - m1 - hi[j] * m2)
        else:
            for j in range(n):
                gi[j] += r * (di[j] - m1 - hi[j] * m2)
