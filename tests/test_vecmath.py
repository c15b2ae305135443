"""symgrad.vecmath against mpmath at 50 digits, special values, float32, and vectorisation."""

from __future__ import annotations

import math
import re

import mpmath
import numba
import numpy as np
import pytest

from symgrad.native import vecmath as vm

pytestmark = pytest.mark.numba

NAMES = ("exp", "expm1", "log", "log1p", "tanh", "sin_fast", "cos_fast", "erf")
MP = {"exp": mpmath.exp, "expm1": mpmath.expm1, "log": mpmath.log, "log1p": mpmath.log1p,
      "tanh": mpmath.tanh, "sin_fast": mpmath.sin, "cos_fast": mpmath.cos, "erf": mpmath.erf}
# Measured worst cases are 0.50-0.94 ulp, except expm1 (up to 1.8 ulp for x just above ln2/2,
# where k = 1 doubles the rounding error of the reduced argument) and tanh (2.1, through
# expm1), and erf (1.1 ulp just above 1, where 1 − exp(−x²)·erfcx(x) takes over); the bounds
# leave little room. See docs/decisions.md.
ULP_BOUND = {"exp": 1.0, "expm1": 2.0, "log": 1.0, "log1p": 1.0, "tanh": 2.5, "sin_fast": 1.0, "cos_fast": 1.0,
             "erf": 1.5}


@numba.njit(error_model="numpy")
def _all(x, out):
    for i in range(x.shape[0]):
        out[0, i] = vm.exp(x[i])
        out[1, i] = vm.expm1(x[i])
        out[2, i] = vm.log(x[i])
        out[3, i] = vm.log1p(x[i])
        out[4, i] = vm.tanh(x[i])
        out[5, i] = vm.sin_fast(x[i])
        out[6, i] = vm.cos_fast(x[i])
        out[7, i] = vm.erf(x[i])


def evaluate(x) -> dict[str, np.ndarray]:
    x = np.asarray(x, dtype=x.dtype if isinstance(x, np.ndarray) else np.float64)
    out = np.empty((len(NAMES), len(x)), dtype=x.dtype)
    _all(x, out)
    return dict(zip(NAMES, out))


def _points(rng) -> np.ndarray:
    """Both signs, magnitudes from subnormal to huge, denser where the reductions switch."""
    mags = np.exp(rng.uniform(math.log(1e-310), math.log(1e300), 1500))
    near = rng.uniform(-40, 40, 1500)
    small = rng.uniform(-2, 2, 3000)  # expm1's and tanh's worst cases are here (k = 1); erf's switch at 1
    edges = np.concatenate([np.nextafter(v, [-np.inf, np.inf]) for v in (1.0, -1.0, 6.0, -6.0)])  # erf's ranges
    return np.concatenate([mags, -mags, near, small, np.arange(-8, 8) * math.pi / 4, [0.5, 1.0, 2.0, 6.0], edges])


def _ulps(got: float, exact) -> float:
    if not mpmath.isfinite(exact) or abs(exact) > 1.7976931348623157e308:
        return 0.0 if got == float(exact) else math.inf
    ref = float(exact)
    unit = math.ulp(ref) if ref != 0.0 else 5e-324
    return float(abs(mpmath.mpf(got) - exact) / unit)


def test_within_an_ulp_of_mpmath():
    x = _points(np.random.default_rng(0))
    got = evaluate(x)
    with mpmath.workdps(50):
        for name in NAMES:
            worst, at = 0.0, None
            for xi, yi in zip(x, got[name]):
                if name in ("log", "log1p") and xi <= (0 if name == "log" else -1):
                    continue
                if name.endswith("_fast") and abs(xi) > vm.TRIG_MAX:
                    assert math.isnan(yi), f"{name}({xi}) must be NaN beyond TRIG_MAX"
                    continue
                err = _ulps(float(yi), MP[name](mpmath.mpf(float(xi))))
                if err > worst:
                    worst, at = err, xi
            assert worst <= ULP_BOUND[name], f"{name}: {worst:.3f} ulp at x = {at!r}"


def test_trig_near_multiples_of_half_pi():
    # the hardest arguments for the reduction: doubles nearest k*pi/2, up to TRIG_MAX
    k = np.concatenate([np.arange(1, 200), np.random.default_rng(1).integers(1, 2**26 / 1.58, 400)])
    x = np.array([float(mpmath.mpf(int(kk)) * mpmath.pi / 2) for kk in k])
    x = x[np.abs(x) <= vm.TRIG_MAX]
    got = evaluate(x)
    with mpmath.workdps(60):
        for name in ("sin_fast", "cos_fast"):
            errs = [_ulps(float(y), MP[name](mpmath.mpf(float(xi)))) for xi, y in zip(x, got[name])]
            assert max(errs) <= 1.0, (name, max(errs))


SPECIAL = [
    ("exp", 0.0, 1.0), ("exp", -0.0, 1.0), ("exp", math.inf, math.inf), ("exp", -math.inf, 0.0),
    ("exp", 709.78, math.exp(709.78)), ("exp", 709.79, math.inf), ("exp", -745.13, 5e-324),
    ("exp", -746.0, 0.0), ("exp", -720.0, math.exp(-720.0)),
    ("expm1", -0.0, -0.0), ("expm1", 1e-300, 1e-300), ("expm1", -math.inf, -1.0),
    ("expm1", math.inf, math.inf), ("expm1", -50.0, -1.0), ("expm1", 709.9, math.inf),
    ("log", 0.0, -math.inf), ("log", -0.0, -math.inf), ("log", -1.0, math.nan), ("log", math.inf, math.inf),
    ("log", 5e-324, math.log(5e-324)), ("log", 1.0, 0.0),
    ("log1p", -0.0, -0.0), ("log1p", -1.0, -math.inf), ("log1p", -2.0, math.nan),
    ("log1p", math.inf, math.inf), ("log1p", 1e-300, 1e-300), ("log1p", 1e300, math.log1p(1e300)),
    ("tanh", -0.0, -0.0), ("tanh", math.inf, 1.0), ("tanh", -math.inf, -1.0), ("tanh", 1e-310, 1e-310),
    ("sin_fast", -0.0, -0.0), ("sin_fast", math.inf, math.nan), ("sin_fast", 2.0**27, math.nan),
    ("cos_fast", -math.inf, math.nan), ("cos_fast", 0.0, 1.0),
    ("erf", -0.0, -0.0), ("erf", math.inf, 1.0), ("erf", -math.inf, -1.0), ("erf", 5e-324, 5e-324),
    ("erf", 1e-300, math.erf(1e-300)), ("erf", 6.0, 1.0), ("erf", -30.0, -1.0), ("erf", 1.0, math.erf(1.0)),
]


@pytest.mark.parametrize("name,x,expected", SPECIAL)
def test_special_values(name, x, expected):
    got = float(evaluate(np.array([x]))[name][0])
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected and math.copysign(1, got) == math.copysign(1, expected), got


def test_nan_propagates():
    got = evaluate(np.array([math.nan]))
    assert all(math.isnan(v[0]) for v in got.values())


def test_float32_is_float32_and_rounded_once():
    x = np.random.default_rng(2).uniform(-20, 20, 2000).astype(np.float32)
    got = evaluate(x)
    with mpmath.workdps(30):
        for name in NAMES:
            assert got[name].dtype == np.float32
            for xi, yi in zip(x[:300], got[name][:300]):
                if name in ("log", "log1p") and xi <= (0 if name == "log" else -1):
                    continue
                exact = MP[name](mpmath.mpf(float(xi)))
                assert abs(float(yi) - float(exact)) <= np.spacing(np.float32(abs(float(exact)))), (name, xi)


def test_python_path_is_libm():
    for name in NAMES:
        assert getattr(vm, name)(0.3) == getattr(math, name.removesuffix("_fast"))(0.3)


def test_constants_split_pi_and_ln2():
    with mpmath.workdps(80):
        ln2, pio2 = mpmath.log(2), mpmath.pi / 2
        assert abs(mpmath.mpf(vm.LN2_HI) + vm.LN2_LO - ln2) < mpmath.mpf(2) ** -105
        assert abs(mpmath.mpf(vm.LOG_LN2_HI) + vm.LOG_LN2_LO - ln2) < mpmath.mpf(2) ** -80
        assert abs(mpmath.mpf(vm.PIO2_1) + vm.PIO2_2 + vm.PIO2_3 - pio2) < mpmath.mpf(2) ** -155
    assert float(vm.LOG_LN2_HI * 2**32).is_integer()  # 32 bits: e * LOG_LN2_HI is exact


@numba.njit(error_model="numpy")
def _erf_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = vm.erf(x[i])


def test_erf_loop_vectorises_alone():
    """erf's body is too big for LLVM to inline; Numba inlines it (inline='always'), or the loop
    would call it once per element (4x slower measured, docs/decisions.md)."""
    for dt in (np.float64, np.float32):
        x = np.linspace(-3.0, 3.0, 16, dtype=dt)
        _erf_loop(x, np.empty_like(x))
    asm = _erf_loop.inspect_asm(_erf_loop.signatures[0])
    assert len(re.findall(r"vfmadd\w*pd\s+%[yz]mm", asm)) > 20, "erf's loop did not vectorise"


def test_loops_over_them_vectorise():
    evaluate(np.linspace(-3.0, 3.0, 16))  # compiles _all, whichever tests ran before
    asm = _all.inspect_asm(_all.signatures[0])
    packed = re.findall(r"vfmadd\w*pd\s+%[xyz]mm", asm)
    assert len(packed) > 20, "no packed FMA: the vecmath loop did not vectorise"


def test_flags_do_not_come_from_the_caller():
    # Numba compiles a callee with its caller's error model and fastmath unless the callee sets
    # them, and the on-disk cache then hands that version to every later caller. A caller with
    # Python's error model (Numba's default) would make divisions raise where IEEE gives -inf
    # (and stop loops from vectorising); one with fastmath would let LLVM drop inf/NaN checks.
    for impl in (vm._exp64, vm._log64, vm._log1p64, vm._tanh64, vm._sin64, vm._log_core, vm._erf64):
        assert impl.targetoptions["error_model"] == "numpy" and impl.targetoptions["fastmath"] is False

    @numba.njit
    def python_model(x):
        return vm.log1p(x), vm.log(x + 1.0)

    @numba.njit(fastmath=True)
    def fast(x):
        return vm.exp(x), vm.log(x)

    assert python_model(-1.0) == (-math.inf, -math.inf)
    assert fast(math.inf) == (math.inf, math.inf)
    assert all(math.isnan(v) for v in fast(math.nan))


def test_native_cache_is_dropped_when_any_native_file_changes(tmp_path):
    """Numba checks only a function's own file; explog/trig compile in fpcore's kernels, so an
    edit to any file of the folder must drop the whole folder's cache (symgrad/native)."""
    from symgrad.native import _drop_stale_cache

    (tmp_path / "fpcore.py").write_text("A = 1\n")
    cache = tmp_path / "__pycache__"
    _drop_stale_cache(tmp_path)
    (cache / "explog._exp64-1.py311.nbi").write_text("index")
    _drop_stale_cache(tmp_path)  # nothing changed: the cache stays
    assert (cache / "explog._exp64-1.py311.nbi").exists()
    (tmp_path / "fpcore.py").write_text("A = 2\n")
    _drop_stale_cache(tmp_path)  # a kernel changed: every cached function here goes
    assert not list(cache.glob("*.nbi")) and (cache / "symgrad-native.stamp").exists()
