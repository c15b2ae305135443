"""Sums over rows in parts: float32 data in blocks whose means are added in float64, the parts
of a Dask array the same way, and the search for the first row whose term is not finite.

A float32 product over many rows (BLAS's Xᵀ·δ, as NumPy's ``X.T @ d``) keeps float32 partial
sums: over 10^6 rows of 0.1 a gradient came out 1e-3 too large (random data: 4e-6). Over blocks
of ``F32_BLOCK`` rows, whose means are added in float64, the errors were 1e-5 and 4e-7, and the
sum took 1.8 ms against 2.0 in one call (blocks of 4096 rows: 2e-5 and 6e-8, in 2.6 ms).

>>> parts = [(2, 1.0, np.array([1.0])), (6, 3.0, np.array([2.0]))]
>>> combine(parts)
(2.5, array([1.75]))
>>> first_bad(10, lambda lo, hi: lo <= 7 < hi)
7
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: Rows per block of a float32 sum (float64 sums are not split).
F32_BLOCK = 16384


def combine(parts: list[tuple], mean: bool = True) -> tuple[float, np.ndarray | None]:
    """Parts' (rows, value, vector or None) as the value and vector of all rows: the parts'
    means weighted by their rows (in float64), or plain sums when ``mean`` is False."""
    n = sum(p[0] for p in parts)
    w = [p[0] / n if mean else 1.0 for p in parts]
    value = float(sum(wk * p[1] for wk, p in zip(w, parts)))
    if parts[0][2] is None:
        return value, None
    return value, sum(wk * p[2].astype(np.float64) for wk, p in zip(w, parts))


def blocks(arrays: Sequence[np.ndarray], dtype: np.dtype) -> list[tuple[int, list[np.ndarray]]]:
    """(rows, the arrays' rows of the block) for each block of a sum over ``arrays``' rows:
    one block in float64, or for fewer than two blocks' rows, or without data."""
    n = len(arrays[0]) if len(arrays) else 0
    if dtype != np.float32 or n <= F32_BLOCK:
        return [(n, list(arrays))]
    return [(min(n, s + F32_BLOCK) - s, [a[s:s + F32_BLOCK] for a in arrays]) for s in range(0, n, F32_BLOCK)]


def first_bad(n: int, bad: Callable[[int, int], bool]) -> int | None:
    """The first row whose term is not finite, where ``bad(lo, hi)`` says whether the sum over
    rows lo..hi-1 is not finite: NaN and Inf survive a sum, so halving finds the row in
    log2(n) evaluations. None when no single row is (finite terms whose sum overflowed)."""
    lo, hi = 0, n
    if n == 0 or not bad(lo, hi):
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bad(lo, mid):
            hi = mid
        elif bad(mid, hi):
            lo = mid
        else:
            return None
    return lo
