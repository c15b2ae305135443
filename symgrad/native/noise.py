"""Dropout kernels for generated code (``symgrad/kinds/dropout.py``).

The mask is not drawn from a stateful generator but computed: entry (i, j) of a minibatch's
(B, n) array is kept when ``keep_u(key, row0 + i, j)``, a counter-based hash (SplitMix64's
finaliser) mapped to [0, 1), is at least p. So the mask is a pure function of the step's
``key``, the row and the column: the backward pass recomputes it instead of storing it, row
blocks on several threads (``row0``: the block's first row) draw exactly what one thread
draws, and resuming at step t draws what an uninterrupted run draws. ``key == 0`` is
inference: the identity (PyTorch's ``model.eval()``).

Kept entries are scaled by 1/(1 − p) (inverted dropout, as PyTorch), so inference needs no
rescaling.

>>> import numpy as np
>>> x, out = np.ones((2, 4)), np.empty((2, 4))
>>> dropout_fwd(x, out, 0.5, 0, 0)  # key 0: inference, the identity
>>> out.tolist() == x.tolist()
True
>>> key = step_key(123, 7)
>>> dropout_fwd(x, out, 0.5, key, 0)
>>> sorted(set(out.ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
True
>>> bool(keep_u(key, 0, 3) == keep_u(key, 0, 3))  # a pure function of (key, row, column)
True
"""

from __future__ import annotations

import numba
import numpy as np

njit = numba.njit(cache=True, error_model="numpy")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit
def _mix(z):
    # SplitMix64's finaliser: every input bit flips each output bit with probability ~1/2
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit
def step_key(seed, t):
    """The key of training step t (t ≥ 0) of a run seeded by ``seed``: never 0 (0 is inference)."""
    k = _mix(np.uint64(seed) * _GOLDEN + np.uint64(t) + _GOLDEN)
    return np.int64(k >> np.uint64(1)) | np.int64(1)


@njit
def keep_u(key, row, col):
    """A uniform number in [0, 1) for entry (row, col) under ``key``: 53 bits of the hash."""
    z = _mix(np.uint64(key) ^ _mix(np.uint64(row) * _GOLDEN + np.uint64(col)))
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit
def dropout_fwd(x, out, p, key, row0):
    # out = x ⊙ m / (1 − p), m[i, j] = keep_u(key, row0 + i, j) ≥ p; key 0: out = x
    B, n = x.shape
    scale, zero = x.dtype.type(1.0 / (1.0 - p)), x.dtype.type(0.0)
    for i in range(B):
        if key == 0:
            for j in range(n):
                out[i, j] = x[i, j]
            continue
        for j in range(n):
            out[i, j] = x[i, j] * scale if keep_u(key, row0 + i, j) >= p else zero


@njit
def dropout_bwd(dout, dx, p, key, row0, assign):
    # dx (+)= δ ⊙ m / (1 − p), the same mask recomputed; with ``assign`` dx is written, not added to
    B, n = dout.shape
    scale, zero = dout.dtype.type(1.0 / (1.0 - p)), dout.dtype.type(0.0)
    for i in range(B):
        for j in range(n):
            g = dout[i, j] if key == 0 else (dout[i, j] * scale if keep_u(key, row0 + i, j) >= p else zero)
            if assign:
                dx[i, j] = g
            else:
                dx[i, j] += g
