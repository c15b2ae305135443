"""Next-token cross-entropy kernels for generated code (``symgrad/kinds/tokens.py``).

The logits come as (B, T·V), position by position, the target ids as (B, T) numbers of the
model's dtype, the geometry as the int64 array (T, V). The forward pass writes each sample's
mean over positions of ``logsumexp(z_t) − z_t[y_t]`` (each position's largest logit subtracted
first, so any logits stay finite) and keeps each position's softmax for the backward pass, which
adds ``g · (softmax(z_t) − onehot(y_t)) / T``. An id that is not a whole number in [0, V) raises
``TargetIdError`` (``fit`` and ``evaluate`` check the targets first, naming the fix; this is the
check for compiled modules called directly), so no id reads outside its row.

>>> import numpy as np
>>> z, y, g = np.zeros((1, 6)), np.array([[1.0, 2.0]]), np.array([2, 3])
>>> out, p = np.empty((1, 1)), np.empty((1, 6))
>>> token_ce_fwd(z, y, out, p, g)
>>> round(float(out[0, 0]), 6), round(float(np.log(3)), 6)  # uniform over 3: log 3 at each position
(1.098612, 1.098612)
>>> dz = np.zeros((1, 6))
>>> token_ce_bwd(np.ones((1, 1)), p, y, dz, g)
>>> np.round(dz * 2 * 3, 6)  # (softmax − onehot)/T, times T·3
array([[ 1., -2.,  1.,  1.,  1., -2.]])
"""

from __future__ import annotations

import math

import numba

from ..errors import TargetError
from .sums import largest, total
from .vecmath import exp, log

njit = numba.njit(cache=True, error_model="numpy")


class TargetIdError(TargetError):
    """A target id that is not a whole number in [0, vocab): args (the id, row, position, vocab)."""

    def __str__(self) -> str:
        if len(self.args) != 4:
            return super().__str__()
        v, row, t, vocab = self.args
        return (f"target id {v:g} (position {int(t)}, row {int(row)} of the batch) is not a token id: the "
                f"'token_cross_entropy' loss takes whole numbers in [0, {vocab}) (the id that comes next at each "
                f"position). Fix: targets numbered like the inputs, e.g. the ids shifted by one position.")


@njit
def token_ce_fwd(z, y, out, p, g):
    # out[b] = (1/T) Σ_t logsumexp(z_t) − z_t[y_t]; p gets softmax(z_t), position by position
    T, V = g[0], g[1]
    one = z.dtype.type(1.0)
    for b in range(z.shape[0]):
        tot = z.dtype.type(0.0)
        for t in range(T):
            at = t * V
            m = largest(z[b], at, at + V)
            for j in range(V):  # alone in its loop, exp vectorises
                p[b, at + j] = exp(z[b, at + j] - m)
            s = total(p[b], at, at + V)
            inv = one / s
            for j in range(V):
                p[b, at + j] *= inv
            v = y[b, t]
            if not (v >= 0 and v < V and v == math.floor(v)):  # NaN fails too
                raise TargetIdError(float(v), b, t, V)
            tot += m + log(s) - z[b, at + int(v)]
        out[b, 0] = tot / T


@njit
def token_ce_bwd(dout, p, y, dz, g):
    # dz_t += dout · (softmax(z_t) − onehot(y_t)) / T; the ids were checked by the forward pass
    T, V = g[0], g[1]
    for b in range(dz.shape[0]):
        w = dout[b, 0] / T
        for t in range(T):
            at = t * V
            for j in range(V):
                dz[b, at + j] += w * p[b, at + j]
            dz[b, at + int(y[b, t])] -= w
