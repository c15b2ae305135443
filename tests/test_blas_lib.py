"""Which BLAS compiled products call (symgrad/native/blas_lib.py): NumPy's OpenBLAS where NumPy
ships one, else SciPy's through Numba's wrappers; both give NumPy's products, and code cached
under one runs under the other."""

import os
import subprocess
import sys
import textwrap

import pytest

from symgrad.native import blas_lib

pytestmark = pytest.mark.numba

# every layout, beta 0/1/0.5, gemm and both gemv cases, both dtypes, against float64 NumPy
CHECK = textwrap.dedent("""
    import itertools, sys
    import numba, numpy as np
    sys.path.insert(0, sys.argv[1])
    from symgrad.native import blas_lib
    import cached_gemm
    rng = np.random.default_rng(0)
    for dtype, (m, k, n) in itertools.product([np.float32, np.float64], [(5, 3, 4), (6, 5, 1), (1, 5, 6), (0, 3, 2), (33, 70, 65)]):
        tol = 1e-5 if dtype == np.float32 else 1e-12
        for ta, tb in itertools.product([False, True], repeat=2):
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            a, b = (a.T if ta else a), (b.T if tb else b)
            for beta in (0.0, 1.0, 0.5):
                out = rng.standard_normal((m, n)).astype(dtype)
                want = a.astype(np.float64) @ b.astype(np.float64) + beta * out
                cached_gemm.f(a, b, out, beta)
                np.testing.assert_allclose(out, want, rtol=tol, atol=tol * max(1, k))
    hits = sum(cached_gemm.f.stats.cache_hits.values())
    print(blas_lib.register(), "hits" if hits else "compiled")
""")

MODULE = textwrap.dedent("""
    import numba
    from symgrad.native.blas import gemm

    @numba.njit(cache=True)
    def f(a, b, out, beta):
        gemm(a, b, out, beta)
""")


def _run(folder, numpy_blas: str) -> list[str]:
    env = {**os.environ, "SYMGRAD_NUMPY_BLAS": numpy_blas}
    out = subprocess.run([sys.executable, "-c", CHECK, str(folder)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split()


def test_both_libraries_multiply_right_and_share_cached_code(tmp_path):
    (tmp_path / "cached_gemm.py").write_text(MODULE)
    first = _run(tmp_path, "")
    assert first == ["numpy" if blas_lib.numpy_openblas() else "scipy", "compiled"]
    # the cached code names symbols, not addresses: SciPy's adapters serve it too, and back
    assert _run(tmp_path, "0") == ["scipy", "hits"]
    assert _run(tmp_path, "") == [first[0], "hits"]


def test_numpy_openblas_is_used_where_numpy_ships_it():
    found = blas_lib.numpy_openblas()
    if found is None:
        pytest.skip("this NumPy ships no ILP64 OpenBLAS (built against another BLAS): SciPy's is used")
    addresses, path = found
    assert set(addresses) == set(blas_lib.ROUTINES) and all(addresses.values())
    assert "openblas64_" in path.name
    assert blas_lib.register() == "numpy"
