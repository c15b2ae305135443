"""Position-wise kernels for generated code (``symgrad/kinds/rowwise.py``).

A batch of sequences is a (B, T·d) array, each row T positions of d features, position by
position, so ``x.reshape(B·T, d)`` is every position of the minibatch as one matrix: a
position-wise product ``X·W`` is one BLAS product over the whole minibatch, as attention's
projections are (attention.py). A vector broadcast over the positions is copied T times;
its adjoint is the sum over the positions. Compiled once per machine and dtype.

>>> import numpy as np
>>> x, w = np.arange(6.0).reshape(1, 6), np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
>>> out = np.empty((1, 9))                       # T = 3 positions, d_in = 2, d_out = 3
>>> rowmatmul_fwd(x, w, out)
>>> out.reshape(3, 3)
array([[0., 1., 1.],
       [2., 3., 5.],
       [4., 5., 9.]])
>>> v, tiled, dv = np.array([1.0, 2.0]), np.empty(6), np.zeros(2)
>>> broadcast_fwd(v, tiled); broadcast_bwd(np.arange(6.0), dv)
>>> tiled, dv
(array([1., 2., 1., 2., 1., 2.]), array([6., 9.]))
"""

from __future__ import annotations

import numba

from .blas import gemm

njit = numba.njit(cache=True, error_model="numpy")


@njit
def rowmatmul_fwd(x, w, out):
    # out = X·W for every position of the minibatch: (B·T, d_in) @ (d_in, d_out)
    B, (d_in, d_out) = x.shape[0], w.shape
    T = x.shape[1] // d_in
    gemm(x.reshape((B * T, d_in)), w, out.reshape((B * T, d_out)), 0.0)


@njit
def rowmatmul_bwd(x, w, dout, dx, dw, assign):
    # ∂ℓ/∂W += Xᵀ·δ (over every position of the minibatch); δ_X (+)= δ·Wᵀ. An empty dx or dw is
    # an adjoint nobody needs; with ``assign`` dx is written, not added to
    B, (d_in, d_out) = x.shape[0], w.shape
    T = x.shape[1] // d_in
    d2 = dout.reshape((B * T, d_out))
    if dw.shape[0] > 0:
        gemm(x.reshape((B * T, d_in)).T, d2, dw, 1.0)
    if dx.shape[0] > 0:
        gemm(d2, w.T, dx.reshape((B * T, d_in)), 0.0 if assign else 1.0)


@njit
def broadcast_fwd(v, out):
    # out = v at each of the len(out)/len(v) positions
    d = v.shape[0]
    for t in range(out.shape[0] // d):
        for j in range(d):
            out[t * d + j] = v[j]


@njit
def broadcast_bwd(dout, dv):
    # dv += Σ_t dout at position t
    d = dv.shape[0]
    for t in range(dout.shape[0] // d):
        for j in range(d):
            dv[j] += dout[t * d + j]


@njit
def per_channel_fwd(v, out):
    # out = each v[c] at its channel's len(out)/len(v) positions, channel by channel
    S = out.shape[0] // v.shape[0]
    for c in range(v.shape[0]):
        for s in range(S):
            out[c * S + s] = v[c]


@njit
def per_channel_bwd(dout, dv):
    # dv[c] += Σ over channel c's positions of dout
    S = dout.shape[0] // dv.shape[0]
    for c in range(dv.shape[0]):
        for s in range(S):
            dv[c] += dout[c * S + s]
