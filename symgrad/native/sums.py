"""Sums and dot products whose additions LLVM may reorder, so that their loops vectorise.

A running sum ``s += a[j]`` in a kernel is a chain of dependent additions, each waiting for the
one before (4 cycles on this machine's CPU), and LLVM may not split it into vector lanes: that
changes the order of the float additions and so the rounding. These functions allow exactly that
reordering ('reassoc', and 'contract' for fused multiply-adds), as the generated code's
``jit_reduce`` does: NaN and Inf still propagate ('nnan' and 'ninf' are not set). The result is
a sum in another order, no less accurate than the serial one (the lanes are partial sums), but
not bit-identical with it. Measured on the CNN's and transformer's kernels (docs/decisions.md,
"Sums that vectorise in the native kernels"). ``largest`` is the same idea for a row's maximum,
which needs no reordering permission: max() is exact in any order.

>>> import numpy as np
>>> a = np.arange(10.0)
>>> float(total(a, 2, 5)), float(dot(a, a, 0, 3)), float(largest(a, 2, 5))
(9.0, 5.0, 4.0)
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


@numba.njit(cache=True, error_model="numpy")
def largest(a, lo, hi):
    """The largest of a[lo], …, a[hi − 1] (hi > lo), in eight running maxima: one chain of
    dependent max() calls took as long as the exps of the softmax that needed it. max() is
    exact, so the result is the chain's; only where the range holds a NaN may it differ (a
    softmax of that row is NaN either way)."""
    m = a[lo]
    if hi - lo < 16:
        for j in range(lo + 1, hi):
            m = max(m, a[j])
        return m
    m0, m1, m2, m3, m4, m5, m6, m7 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3], a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    j = lo + 8
    while j + 8 <= hi:
        m0, m1, m2, m3 = max(m0, a[j]), max(m1, a[j + 1]), max(m2, a[j + 2]), max(m3, a[j + 3])
        m4, m5, m6, m7 = max(m4, a[j + 4]), max(m5, a[j + 5]), max(m6, a[j + 6]), max(m7, a[j + 7])
        j += 8
    for k in range(j, hi):
        m0 = max(m0, a[k])
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
