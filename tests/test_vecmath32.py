"""vecmath's exp, erf, tanh, log and log1p for float32 arguments (symgrad/native/float32.py): computed in float32,
within one float32 ulp of the exact value, special values kept, and their loops vectorised.

The references share no code with the implementation: NumPy's and libm's float64 functions
(within an ulp of double, far below a float32 ulp) on many points, mpmath on a sample. With
``--corpus`` above 300 every float32 in the ranges where the approximations switch is checked.
"""

from __future__ import annotations

import math
import re

import mpmath
import numba
import numpy as np
import pytest

from symgrad.native import float32 as f32
from symgrad.native import vecmath as vm

pytestmark = pytest.mark.numba
F = np.float32
_erf64 = np.vectorize(math.erf, otypes=[np.float64])


def _loop(fn):
    """A compiled loop applying vecmath function ``fn`` elementwise, as generated code does."""
    @numba.njit(error_model="numpy")
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return loop


LOOPS = {"exp": (_loop(vm.exp), np.exp), "erf": (_loop(vm.erf), _erf64), "tanh": (_loop(vm.tanh), np.tanh),
         "log": (_loop(vm.log), np.log), "log1p": (_loop(vm.log1p), np.log1p)}


def _run(name: str, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    LOOPS[name][0](x, out)
    return out


def _worst_ulps(name: str, x: np.ndarray) -> tuple[float, float]:
    """The largest error of float32 ``name`` on ``x`` in float32 ulps of the exact value (its
    float64 value from NumPy or libm; a subnormal's ulp is the smallest subnormal)."""
    got, exact = _run(name, x).astype(np.float64), LOOPS[name][1](x.astype(np.float64))
    finite = np.abs(exact) <= np.finfo(F).max
    unit = np.spacing(np.abs(exact[finite]).astype(F)).astype(np.float64)
    err = np.abs(got[finite] - exact[finite]) / unit
    i = int(np.argmax(err))
    return float(err[i]), float(x[finite][i])


def _near(*edges: float, n: int = 2000) -> np.ndarray:
    # the n float32 values on each side of each edge, where the ranges switch
    bits = np.array(edges, dtype=F).view(np.int32)
    return np.concatenate([(b + np.arange(-n, n, dtype=np.int32)).view(F) for b in bits])


def test_float32_functions_within_an_ulp():
    rng = np.random.default_rng(0)
    xs = {"exp": np.concatenate([rng.uniform(-104, 89, 300_000), rng.uniform(-2, 2, 100_000),
                                 _near(0.34657359, -0.34657359, 88.72, -87.33, -103.97)]).astype(F),
          "erf": np.concatenate([rng.uniform(-5, 5, 300_000), rng.uniform(-1.2, 1.2, 100_000),
                                 _near(1.0, -1.0, 4.0, -4.0, 1e-3)]).astype(F),
          "tanh": np.concatenate([rng.uniform(-12, 12, 300_000), rng.uniform(-1, 1, 100_000),
                                  _near(0.55, -0.55, 9.02, -9.02, 10.0, 1e-3)]).astype(F),
          # every 97th positive float32 (subnormals included), and around √2 and 1
          "log": np.concatenate([np.arange(1, 0x7F800000, 97, dtype=np.int32).view(F),
                                 _near(1.4142135, 1.0, 0.70710677, 1.1754944e-38)]),
          "log1p": np.concatenate([np.arange(1, 0x7F800000, 97, dtype=np.int32).view(F),
                                   -np.arange(1, 0x3F800000, 31, dtype=np.int32).view(F),
                                   _near(0.41421354, -0.29289323, 1e-7, -1e-7, -0.999)]).astype(F)}
    for name, x in xs.items():
        worst, at = _worst_ulps(name, x)
        # measured 0.90, 0.99, 0.73, 0.84 and 0.84
        assert worst <= 1.0, f"float32 {name}: {worst:.3f} ulp at x = {at!r}"


def test_float32_against_mpmath():
    x = np.random.default_rng(1).uniform(-10, 10, 500).astype(F)
    domain = {"log": np.abs(x) + F(1e-3), "log1p": np.abs(x) - F(0.999)}  # inside each domain
    with mpmath.workdps(30):
        for name, mp in (("exp", mpmath.exp), ("erf", mpmath.erf), ("tanh", mpmath.tanh),
                         ("log", mpmath.log), ("log1p", mpmath.log1p)):
            xs = domain.get(name, x)
            for xi, yi in zip(xs, _run(name, xs)):
                exact = mp(mpmath.mpf(float(xi)))
                assert abs(mpmath.mpf(float(yi)) - exact) <= np.spacing(F(abs(float(exact)))), (name, xi)


def test_float32_every_value_where_ranges_switch(request):
    if request.config.getoption("--corpus") <= 300:
        pytest.skip("every float32 where the ranges switch: run with --corpus above 300")
    lo, hi = np.array([0.5, 4.5], dtype=F).view(np.int32)
    pos = np.arange(lo, hi, dtype=np.int32).view(F)
    assert _worst_ulps("erf", pos)[0] <= 1.0 and _worst_ulps("erf", -pos)[0] <= 1.0
    two = np.array([2.0], dtype=F).view(np.int32)[0]
    near0 = np.arange(0, two, 4, dtype=np.int32).view(F)
    assert _worst_ulps("exp", near0)[0] <= 1.0 and _worst_ulps("exp", -near0)[0] <= 1.0
    lo, hi = np.array([0.25, 1.0], dtype=F).view(np.int32)  # tanh's switch, 0.55, and its worst
    mid = np.arange(lo, hi, dtype=np.int32).view(F)
    assert _worst_ulps("tanh", mid)[0] <= 1.0 and _worst_ulps("tanh", -mid)[0] <= 1.0
    lo, hi = np.array([0.5, 2.0], dtype=F).view(np.int32)  # a whole period of log's reduction
    assert _worst_ulps("log", np.arange(lo, hi, dtype=np.int32).view(F))[0] <= 1.0
    lo, hi = np.array([0.25, 1.0], dtype=F).view(np.int32)  # log1p's switches: 1 + x = √2 and √½
    assert _worst_ulps("log1p", np.arange(lo, hi, dtype=np.int32).view(F))[0] <= 1.0
    assert _worst_ulps("log1p", -np.arange(lo, hi // 2 + lo // 2, dtype=np.int32).view(F))[0] <= 1.0


# (name, x, the exact value at float32(x) or None for the value of NumPy's or libm's function)
SPECIAL32 = [
    ("exp", 0.0, 1.0), ("exp", -0.0, 1.0), ("exp", math.inf, math.inf), ("exp", -math.inf, 0.0),
    ("exp", 88.72, None), ("exp", 88.73, math.inf), ("exp", 1e30, math.inf), ("exp", -87.5, None),
    ("exp", -103.97, None), ("exp", -104.0, 0.0), ("exp", -1e30, 0.0), ("exp", 1e-40, 1.0),
    ("erf", 0.0, 0.0), ("erf", -0.0, -0.0), ("erf", 1e-40, None), ("erf", 4.0, 1.0), ("erf", math.inf, 1.0),
    ("erf", -math.inf, -1.0), ("erf", -30.0, -1.0), ("erf", 1.0, None),
    ("tanh", 0.0, 0.0), ("tanh", -0.0, -0.0), ("tanh", 1e-40, None), ("tanh", 1e-20, None),
    ("tanh", 9.0, None), ("tanh", 9.5, 1.0), ("tanh", -30.0, -1.0), ("tanh", math.inf, 1.0),
    ("tanh", -math.inf, -1.0), ("tanh", 0.55, None),
    ("log", 1.0, 0.0), ("log", 0.0, -math.inf), ("log", -0.0, -math.inf), ("log", math.inf, math.inf),
    ("log", 1e-45, None), ("log", 1e-40, None), ("log", 3.4e38, None), ("log", 1.4142135, None),
    ("log1p", 0.0, 0.0), ("log1p", -0.0, -0.0), ("log1p", -1.0, -math.inf), ("log1p", math.inf, math.inf),
    ("log1p", 1e-45, None), ("log1p", -1e-45, None), ("log1p", 1e-20, None), ("log1p", -0.9999999, None),
    ("log1p", 3.4e38, None),
]


@pytest.mark.parametrize("name,x,expected", SPECIAL32)
def test_float32_special_values(name, x, expected):
    x32 = np.array([x], dtype=F)
    got = _run(name, x32)[0]
    assert got.dtype == F
    if expected is None:  # within an ulp: subnormal results (exp(-103.97), erf(1e-40)) too
        exact = LOOPS[name][1](x32.astype(np.float64))[0]
        assert abs(float(got) - exact) <= np.spacing(F(abs(exact))), (got, exact)
    else:
        assert got == F(expected) and math.copysign(1, got) == math.copysign(1, expected), got


@pytest.mark.parametrize("name", ["exp", "erf", "tanh", "log", "log1p"])
def test_float32_nan_stays_nan(name):
    assert math.isnan(_run(name, np.array([math.nan], dtype=F))[0])


@pytest.mark.parametrize("name,x", [("log", -1e-45), ("log", -1.0), ("log", -math.inf), ("log1p", -1.0000001),
                                    ("log1p", -2.0), ("log1p", -math.inf)])
def test_float32_log_outside_its_domain_is_nan(name, x):
    assert math.isnan(_run(name, np.array([x], dtype=F))[0])


@pytest.mark.parametrize("name", ["exp", "erf", "tanh", "log", "log1p"])
def test_float32_loops_vectorise_in_single_precision(name):
    loop = LOOPS[name][0]
    _run(name, np.linspace(-3, 3, 16, dtype=F))
    asm = loop.inspect_asm(next(s for s in loop.signatures if s[0].dtype == numba.float32))
    # packed FMAs, register or memory operands: at least one per coefficient of a degree-4 polynomial
    assert len(re.findall(r"vfmadd\w*ps\s+[^\n]*%[yz]mm", asm)) >= 4, f"float32 {name}'s loop did not vectorise"
    assert not re.search(r"vcvtps2pd", asm), f"float32 {name} went through float64"


def test_float32_kernels_state_their_flags():
    # as the float64 ones (test_vecmath.py): no caller's fastmath or error model may leak in
    for impl in (f32._exp32, f32._erf32, f32._pow2_32):
        assert impl.targetoptions["error_model"] == "numpy" and impl.targetoptions["fastmath"] is False
