"""Sums and dot products whose additions LLVM may reorder, so that their loops vectorise.

A running sum ``s += a[j]`` in a kernel is a chain of dependent additions, each waiting for the
one before (4 cycles on this machine's CPU), and LLVM may not split it into vector lanes: that
changes the order of the float additions and so the rounding. These functions allow exactly that
reordering ('reassoc', and 'contract' for fused multiply-adds), as the generated code's
``jit_reduce`` does: NaN and Inf still propagate ('nnan' and 'ninf' are not set). The result is
a sum in another order, no less accurate than the serial one (the lanes are partial sums), but
not bit-identical with it. Measured on the CNN's and transformer's kernels (docs/decisions.md,
"Sums that vectorise in the native kernels").

>>> import numpy as np
>>> a = np.arange(10.0)
>>> float(total(a, 2, 5)), float(dot(a, a, 0, 3))
(9.0, 5.0)
"""

from __future__ import annotations

import numba

rjit = numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})


@rjit
def total(a, lo, hi):
    """a[lo] + … + a[hi − 1] in a's dtype (0 for an empty range)."""
    s = a.dtype.type(0.0)
    for j in range(lo, hi):
        s += a[j]
    return s


@rjit
def dot(a, b, lo, hi):
    """a[lo]·b[lo] + … + a[hi − 1]·b[hi − 1] in a's dtype."""
    s = a.dtype.type(0.0)
    for j in range(lo, hi):
        s += a[j] * b[j]
    return s
