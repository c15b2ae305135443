"""The native kernels' reassociable sums (symgrad/native/sums.py): right to float32's rounding
against an exact sum, NaN and Inf kept, and their loops vectorised (packed adds), which is why
they exist: a serial running sum was a chain of dependent adds in layer norm, attention and the
token cross-entropy (docs/decisions.md, "Sums that vectorise in the native kernels")."""

from __future__ import annotations

import math
import re

import numba
import numpy as np
import pytest

from symgrad.native import sums


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_total_and_dot_match_an_exact_sum(dtype):
    rng = np.random.default_rng(5)
    eps = np.finfo(dtype).eps
    for n in (0, 1, 3, 7, 16, 33, 64, 1000):
        a, b = rng.standard_normal(n + 5).astype(dtype), rng.standard_normal(n + 5).astype(dtype)
        lo, hi = 2, 2 + n
        exact_t = math.fsum(float(v) for v in a[lo:hi])
        exact_d = math.fsum(float(u) * float(v) for u, v in zip(a[lo:hi], b[lo:hi], strict=True))
        # a sum of n terms in any order: within n·eps of the sum of the magnitudes
        bound_t = n * eps * float(np.abs(a[lo:hi]).sum()) + 1e-300
        bound_d = 2 * n * eps * float(np.abs(a[lo:hi] * b[lo:hi]).sum()) + 1e-300
        t, d = sums.total(a, lo, hi), sums.dot(a, b, lo, hi)
        assert abs(float(t) - exact_t) <= bound_t and abs(float(d) - exact_d) <= bound_d, n


def test_nan_and_inf_propagate():
    for dtype in (np.float32, np.float64):
        a = np.ones(40, dtype)
        a[17] = np.nan
        assert np.isnan(sums.total(a, 0, 40)) and np.isnan(sums.dot(a, a, 0, 40))
        assert sums.total(a, 18, 40) == 22
        a[17] = np.inf
        assert sums.total(a, 0, 40) == np.inf and sums.dot(a, a, 0, 40) == np.inf
        a[3] = -np.inf
        assert np.isnan(sums.total(a, 0, 40))


@pytest.mark.parametrize("fn", ["total", "dot"])
def test_the_loops_vectorise(fn):
    # a cached function has no assembly to show: compile its Python source afresh with the
    # dispatcher's own options (fastmath flags included)
    opts = {k: v for k, v in getattr(sums, fn).targetoptions.items() if k not in ("cache", "nopython")}
    f = numba.njit(**opts)(getattr(sums, fn).py_func)
    x = np.ones(64, np.float32)
    f(*([x] if fn == "total" else [x, x]), 0, 64)
    asm = f.inspect_asm(f.signatures[0])
    assert re.search(r"v(add|fmadd\w*)ps\s+[^\n]*%[yz]mm", asm), f"{fn}'s float32 loop did not vectorise"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_largest_is_the_largest_entry_for_every_length(dtype):
    """Eight running maxima (16 entries and up) and the plain chain below: the same exact max."""
    rng = np.random.default_rng(11)
    for n in range(1, 70):
        row = rng.normal(size=n + 6).astype(dtype)
        lo = int(rng.integers(0, 3))
        assert sums.largest(row, lo, lo + n) == row[lo:lo + n].max()
        row[lo + rng.integers(0, n)] = np.inf
        assert sums.largest(row, lo, lo + n) == np.inf
