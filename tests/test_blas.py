"""symgrad.blas.gemm: one BLAS call for out = a @ b (+ out), including its copy of a transposed
second operand first (x · Wᵀ on AVX-512 CPUs), against NumPy in float64."""

import itertools

import numba
import numpy as np
import pytest

from symgrad.native import blas
from symgrad.native.blas import copies_first, gemm

pytestmark = pytest.mark.numba


@numba.njit(cache=False)
def _gemm(a, b, out, beta):
    gemm(a, b, out, beta)


# one row or one column: gemv; otherwise gemm
SHAPES = [(5, 3, 4), (6, 5, 1), (1, 5, 6), (1, 7, 1), (64, 64, 10), (3, 1, 2), (3, 0, 2), (0, 3, 2), (0, 3, 1), (1, 3, 0), (1, 0, 1)]

# inside the region where gemm copies a transposed second operand first (on AVX-512 CPUs, beta 0),
# at its edges, and outside it; sizes that are not multiples of 8 (the copy's edges)
COPY_SHAPES = [(64, 64, 128), (32, 16, 32), (256, 16, 127), (64, 128, 64), (33, 70, 45), (64, 64, 10), (8, 64, 64),
               (512, 64, 64), (64, 784, 128), (31, 33, 32), (32, 33, 31), (3, 16, 5), (128, 100, 10), (1000, 2, 16),
               (9, 13, 200), (32, 20, 16), (8, 32, 10), (4, 24, 24), (2048, 32, 10)]


def _operand(rng, rows, cols, transposed, dtype):
    """A rows x cols operand, stored transposed (an F-layout view) when asked."""
    if transposed:
        return rng.standard_normal((cols, rows)).astype(dtype).T
    return rng.standard_normal((rows, cols)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mkn", SHAPES + COPY_SHAPES)
def test_every_layout_and_beta(dtype, mkn):
    m, k, n = mkn
    rng = np.random.default_rng(0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for ta, tb in itertools.product([False, True], repeat=2):
        a, b = _operand(rng, m, k, ta, dtype), _operand(rng, k, n, tb, dtype)
        exact = a.astype(np.float64) @ b.astype(np.float64)
        for beta in (0.0, 1.0, 0.5):
            out = rng.standard_normal((m, n)).astype(dtype)
            want = exact + beta * out
            if beta == 0.0 and out.size:
                out[0, 0] = np.nan  # beta 0: out is written, never read
            _gemm(a, b, out, beta)
            np.testing.assert_allclose(out, want, rtol=tol, atol=tol * max(1, k), err_msg=f"{ta=} {tb=} {beta=}")


def test_strided_operands_are_a_typing_error():
    big = np.ones((8, 6))
    with pytest.raises(numba.TypingError, match="C- or F-contiguous operands"):
        _gemm(big[::2, ::2], big[:3, 1:5], np.empty((4, 4)), 0.0)


def test_python_path_matches():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)).T
    for beta in (1.0, 0.5):
        start = rng.standard_normal((4, 2))
        out, ref = start.copy(), start.copy()
        gemm(a, b, ref, beta)
        _gemm(a, b, out, beta)
        np.testing.assert_allclose(out, ref, rtol=1e-13)
        np.testing.assert_allclose(ref, beta * start + a @ b, rtol=1e-13)


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="shapes do not match"):
        _gemm(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)), 0.0)


def test_non_contiguous_out_is_a_typing_error():
    with pytest.raises(numba.TypingError, match="C-contiguous out"):
        _gemm(np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 4))[:, ::2], 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mkn", COPY_SHAPES)
def test_the_copy_is_transposed_right(dtype, mkn):
    # one nonzero entry of the transposed operand lands in one column of out, at every edge of
    # the copy's 8 × 8 blocks
    m, k, n = mkn
    a = np.random.default_rng(1).standard_normal((m, k)).astype(dtype)
    for j, c in {(n - 1, k - 1), (0, 0), (n // 2, k // 3)}:
        b = np.zeros((n, k), dtype)
        b[j, c] = 1.0
        out = np.full((m, n), np.nan, dtype)
        _gemm(a, b.T, out, 0.0)
        want = np.zeros((m, n), dtype)
        want[:, j] = a[:, c]
        np.testing.assert_array_equal(out, want, err_msg=f"{j=} {c=}")


def test_the_copy_rule():
    assert copies_first(64, 64, 128, 4) == blas._AVX512  # the digits MLP's first layer: only on AVX-512 CPUs
    assert copies_first(64, 128, 64, 4) == blas._AVX512
    assert copies_first(1000, 2, 16, 8) == blas._AVX512  # an inner size of 32 or less, 4 rows or more
    assert copies_first(32, 20, 16, 8) == blas._AVX512  # W3's first layer
    assert copies_first(4, 24, 24, 4) == blas._AVX512
    assert not copies_first(64, 128, 128, 8)  # float64: m·k·n over 2^19
    for m, k, n in [(64, 64, 10), (8, 64, 64), (512, 64, 64), (64, 784, 128), (31, 33, 32), (64, 400, 120),
                    (8, 32, 10), (3, 16, 64)]:
        assert not copies_first(m, k, n, 4)


_WHICH_COPY = """
import json, sys
import numba, numpy as np
from numba.core.runtime import rtsys
from symgrad.native.blas import gemm

@numba.njit
def f(a, b, out, beta):
    gemm(a, b.T, out, beta)

def allocations(*args):
    f(*args)
    before = rtsys.get_allocation_stats().alloc
    f(*args)
    return rtsys.get_allocation_stats().alloc - before

seen = []
for m, k, n, dt in json.loads(sys.argv[1]):
    a, b = np.ones((m, k), dt), np.ones((n, k), dt)
    out = np.empty((m, n), dt)
    # the copy's buffer is one allocation more than the same call with beta 1 (never copied)
    # makes for its arguments
    seen.append(allocations(a, b, out, 0.0) - allocations(a, b, out, 1.0))
print(json.dumps(seen))
"""


def test_the_lowering_copies_exactly_where_copies_first_says():
    # the rule lives twice, in Python (copies_first) and in the IR that gemm emits; Numba's
    # allocation count (NUMBA_NRT_STATS) shows which products the compiled code copied
    import json
    import os
    import subprocess
    import sys

    shapes = [(m, k, n, dt) for dt in ("float32", "float64") for m, k, n in
              [(64, 64, 128), (64, 128, 128), (64, 64, 10), (128, 64, 10), (8, 64, 64), (4, 32, 16), (3, 32, 16),
               (8, 32, 10), (32, 33, 32), (31, 33, 32), (256, 64, 64), (32, 16, 512), (64, 400, 120), (2048, 2, 16)]]
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    proc = subprocess.run([sys.executable, "-c", _WHICH_COPY, json.dumps(shapes)], env=env, capture_output=True,
                          text=True, check=True)
    copied = json.loads(proc.stdout.splitlines()[-1])
    want = [int(copies_first(m, k, n, np.dtype(dt).itemsize)) for m, k, n, dt in shapes]
    assert copied == want
    if blas._AVX512:
        assert 0 < sum(want) < len(want)  # the shapes reach both sides of the rule
