"""Elementary functions that Numba can vectorise: exp, expm1, log, log1p, tanh, sin, cos.

Numba lowers ``math.exp`` and friends to scalar libm calls, and without Intel's SVML
(unavailable in most llvmlite builds, including ours) LLVM cannot put them in SIMD
registers, so every loop that calls one runs one element at a time. These versions use
only arithmetic, FMA and integer bit operations, so a loop over them vectorises (3-10x
faster than libm measured, docs/decisions.md) while staying within about one ulp of the
correctly rounded result (tests/test_vecmath.py checks this against mpmath at 50 digits,
and every special value: ±0, ±inf, NaN, subnormals, overflow thresholds).

Each name is a plain Python function (the ``math`` version) with a Numba overload, so
generated code calls ``vm.exp(x)`` both on the Python reference path (libm) and under
Numba (the vectorisable version). float32 arguments are computed in float64 and rounded
once, which keeps float32 results correctly rounded in almost every case.

>>> import numba, numpy as np
>>> from symgrad.native import vecmath as vm
>>> f = numba.njit(lambda x: vm.exp(x) + vm.sin_fast(x))
>>> bool(abs(f(1.5) - (np.exp(1.5) + np.sin(1.5))) < 1e-15)
True
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
from llvmlite import ir
from numba import njit as _njit
from numba import types
from numba.extending import intrinsic, overload

# NumPy's error model and no fastmath, stated: otherwise these functions take their caller's,
# and the on-disk cache then serves whichever was compiled first. Python's model checks every
# division for zero, which raises where IEEE gives inf/NaN and stops loops from vectorising;
# fastmath's 'nnan'/'ninf' would let LLVM drop the checks for inf and NaN.
njit = functools.partial(_njit, error_model="numpy", fastmath=False)

# --- bit-level helpers (LLVM instructions, so they vectorise) ----------------------------


@intrinsic
def _bits(typingctx, x):
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, n):
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    # a*b + c with one rounding: the range reductions below rely on it being exact
    def codegen(context, builder, sig, args):
        return builder.fma(*args)

    return types.float64(types.float64, types.float64, types.float64), codegen


@njit(cache=True)
def _two_prod(a, b):
    """a * b = p + err exactly."""
    p = a * b
    return p, _fma(a, b, -p)


@njit(cache=True)
def _round(x):
    """Round to the nearest integer (ties to even) for |x| < 2^51; larger |x| are integers
    already. Adding and removing 1.5 * 2^52 does it in two additions (np.round costs a
    second of compile time)."""
    return (x + 6755399441055744.0) - 6755399441055744.0


@njit(cache=True)
def _horner(x, coeffs):
    p = coeffs[0]
    for c in coeffs[1:]:
        p = _fma(p, x, c)
    return p


def _estrin(x, coeffs):
    """The polynomial with coefficients ``coeffs`` (highest degree first) at x, by Estrin's
    scheme under Numba (the overload below); in Python, Horner's."""
    return _horner(x, coeffs)


def _estrin_source(n: int) -> str:
    # Pairs of terms first, then pairs of pairs, ...: Horner's chain of n - 1 dependent FMAs
    # becomes about log2(n) levels. Where exp feeds log1p in one loop body (softplus, BCE),
    # the loop is bound by that latency, not by throughput (docs/decisions.md).
    terms = [f"coeffs[{n - 1 - j}]" for j in range(n)]  # lowest degree first
    lines, power, level = ["def estrin(x, coeffs):", "    p1 = x"], 1, 0
    while len(terms) > 1:
        pairs = [terms[i:i + 2] for i in range(0, len(terms), 2)]
        terms = []
        for j, pair in enumerate(pairs):
            if len(pair) == 1:
                terms.append(pair[0])
                continue
            lines.append(f"    t{level}_{j} = _fma({pair[1]}, p{power}, {pair[0]})")
            terms.append(f"t{level}_{j}")
        if len(terms) > 1:
            lines.append(f"    p{2 * power} = p{power} * p{power}")
            power, level = 2 * power, level + 1
    return "\n".join([*lines, f"    return {terms[0]}"])


@overload(_estrin)
def _estrin_ov(x, coeffs):
    namespace = {"_fma": _fma}
    exec(_estrin_source(coeffs.count), namespace)
    return namespace["estrin"]


# --- constants: ln 2 and pi/2 split so that k*HI is exact (values from mpmath, checked in tests)

LN2_HI = 0.6931471805599453
LN2_LO = 2.3190468138462996e-17
INV_LN2 = 1.4426950408889634
LOG_LN2_HI = 0.6931471806019545  # ln 2 to 32 bits: e*LOG_LN2_HI is exact for any exponent e
LOG_LN2_LO = -4.2009150726810846e-11
PIO2_1 = 1.5707963267948966
PIO2_2 = 6.123233995736766e-17
PIO2_3 = -1.4973849048591698e-33
TWO_OVER_PI = 0.6366197723675814
EXP_MAX = 709.782712893384  # above: exp overflows
EXP_MIN = -745.1332191019412  # below: exp underflows to 0
# Above TRIG_MAX, sin_fast/cos_fast return NaN: an exact reduction there needs a table of 2/pi
# (Payne-Hanek), and computing it for every lane cost 3.6x the fast path measured, so callers
# check their arguments and use libm instead (the generated code does, see codegen_scalar).
TRIG_MAX = 2.0**26

# Taylor coefficients, highest degree first (Horner order). Truncation error < 2^-60 relative
# on the reduced ranges |r| <= ln2/2 (exp) and |r| <= pi/4 (sin, cos); |s| <= 0.172 (log).
EXPM1_C = tuple(1.0 / math.factorial(n) for n in range(13, 1, -1))  # r^13 .. r^2 over n!
SIN_C = tuple((-1.0) ** n / math.factorial(2 * n + 1) for n in range(8, 1, -1))  # r^17 .. r^5
COS_C = tuple((-1.0) ** n / math.factorial(2 * n) for n in range(8, 1, -1))  # r^16 .. r^4
ATANH_C = tuple(2.0 / (2 * k + 1) for k in range(11, 0, -1))  # log(1+f) = 2s + s*R(s^2)


@njit(cache=True)
def _pow2(k):
    """2^k as a float64 for integer -1022 <= k <= 1023."""
    return _from_bits((k + 1023) << 52)


@njit(cache=True)
def _clamp_k(k):
    # NaN goes to -1100 too: converting NaN to an integer is undefined in LLVM
    return np.int64(k if abs(k) <= 1100.0 else (1100.0 if k > 0.0 else -1100.0))


@njit(cache=True)
def _reduce_ln2(x):
    """x = k*ln2 + r, |r| <= ln2/2; returns (k as float, r)."""
    k = _round(x * INV_LN2)
    r = _fma(-k, LN2_HI, x)  # exact: k*LN2_HI has no more bits than x - r needs
    return k, _fma(-k, LN2_LO, r)


@njit(cache=True)
def _exp64(x):
    k, r = _reduce_ln2(x)
    p = _fma(_estrin(r, EXPM1_C), r * r, r)  # expm1(r)
    # 2^k in two factors, so that subnormal results are rounded once, at the last product
    ki = _clamp_k(k)
    half = ki >> 1
    y = (1.0 + p) * _pow2(half) * _pow2(ki - half)
    y = math.inf if x > EXP_MAX else y
    return 0.0 if x < EXP_MIN else y


@njit(cache=True)
def _expm1_64(x):
    k, r = _reduce_ln2(x)
    p = _fma(_horner(r, EXPM1_C), r * r, r)
    ki = _clamp_k(k)
    half = ki >> 1
    s = _pow2(half) * _pow2(ki - half)  # 2^k, may underflow to 0 (result -1)
    y = _fma(s, p, s - 1.0)  # 2^k (expm1(r) + 1) - 1; s - 1 is exact for |k| <= 53
    y = math.inf if x > EXP_MAX else y
    y = -1.0 if x < -40.0 else y  # rounds to -1 there; also catches -inf
    return x if x == 0.0 else y  # keeps the sign of -0.0


@njit(cache=True)
def _log_parts(x):
    """x = 2^e * (1 + f) with sqrt(1/2) <= 1 + f < sqrt(2), for finite x > 0."""
    tiny = x < 2.2250738585072014e-308  # subnormal: scale into the normal range first
    b = _bits(x * 18014398509481984.0 if tiny else x)  # 2^54
    e = (b >> 52) - 1023 - (54 if tiny else 0)
    m = (b & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000
    big = m > 0x3FF6A09E667F3BCD  # mantissa above sqrt(2): halve it
    m = m - (1 << 52) if big else m
    e = e + 1 if big else e
    return float(e), _from_bits(m) - 1.0  # exact: Sterbenz


@njit(cache=True)
def _log_core(e, f, c):
    """log(2^e (1 + f)) + c, with c a small correction folded in before the last rounding."""
    s = f / (2.0 + f)
    z = s * s
    R = z * _estrin(z, ATANH_C)
    hfsq = 0.5 * f * f
    # log(1+f) = f - hfsq + s*(hfsq + R), arranged as in fdlibm so the large terms add last
    return e * LOG_LN2_HI - ((hfsq - (s * (hfsq + R) + (e * LOG_LN2_LO + c))) - f)


@njit(cache=True)
def _special_log(x, y):
    y = -math.inf if x == 0.0 else y
    y = math.inf if x == math.inf else y
    return math.nan if (x < 0.0 or x != x) else y


@njit(cache=True)
def _log64(x):
    e, f = _log_parts(x)
    return _special_log(x, _log_core(e, f, 0.0))


@njit(cache=True)
def _log1p64(x):
    u = 1.0 + x
    c = (x - (u - 1.0)) / u  # the rounding error of 1 + x, to first order
    e, f = _log_parts(u)
    y = _special_log(u, _log_core(e, f, c))
    y = math.inf if x == math.inf else y
    return x if x == 0.0 else y  # keeps the sign of -0.0


@njit(cache=True)
def _reduce_pio2(x):
    """x = k*pi/2 + (r + rr) in double-double, |r| <= pi/4, for |x| <= TRIG_MAX."""
    k = _round(x * TWO_OVER_PI)
    r1 = _fma(-k, PIO2_1, x)  # exact for |k| < 2^40
    ph, pl = _two_prod(k, PIO2_2)
    r = r1 - ph
    rr = ((r1 - r) - ph) - (pl + k * PIO2_3)  # the bits r1 - ph lost, and the rest of pi/2
    return k, r, rr


@njit(cache=True)
def _sin_kernel(r, rr):
    z = r * r
    tail = r * z * _fma(_horner(z, SIN_C), z, -1.0 / 6.0)
    return r + (tail + rr * (1.0 - 0.5 * z))


@njit(cache=True)
def _cos_kernel(r, rr):
    z = r * r
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + (z * z * _horner(z, COS_C) - r * rr))


@njit(cache=True, inline="always")  # too big for LLVM's inliner, which would stop vectorisation
def _sincos_quadrant(x, shift):
    k, r, rr = _reduce_pio2(x)
    kq = k - 4.0 * np.floor(0.25 * k)  # k mod 4, exact; NaN for x = ±inf or NaN
    q = (np.int64(kq) + shift) & 3 if kq == kq else shift  # sin(x + shift*pi/2): shift 1 gives cos
    s = _sin_kernel(r, rr)
    c = _cos_kernel(r, rr)
    y = s if (q & 1) == 0 else c
    y = -y if q >= 2 else y
    return math.nan if abs(x) > TRIG_MAX else y


@njit(cache=True)
def _sin64(x):
    y = _sincos_quadrant(x, 0)
    return x if x == 0.0 else y  # keeps the sign of -0.0 (a select: a branch would not vectorise)


@njit(cache=True)
def _cos64(x):
    return _sincos_quadrant(x, 1)


@njit(cache=True)
def _tanh64(x):
    a = min(abs(x), 20.0)  # tanh(20) rounds to 1
    t = _expm1_64(2.0 * a)
    y = t / (t + 2.0)
    y = y if a < 0.55 else 1.0 - 2.0 / (t + 2.0)  # no cancellation either way
    y = math.copysign(y, x)
    return x if x != x else y


# --- public functions: math on the Python path, the versions above under Numba -------------


def _public(name: str, impl64):
    py = getattr(math, name.removesuffix("_fast"))

    def func(x):
        return py(x)

    func.__name__ = func.__qualname__ = name
    func.__doc__ = f"``math.{py.__name__}`` in Python; a vectorisable version under Numba."

    @overload(func)
    def _ov(x):
        if isinstance(x, types.Float) and x.bitwidth == 32:
            return lambda x: np.float32(impl64(np.float64(x)))
        if isinstance(x, (types.Float, types.Integer)):
            return lambda x: impl64(np.float64(x))
        return None

    return func


exp = _public("exp", _exp64)
expm1 = _public("expm1", _expm1_64)
log = _public("log", _log64)
log1p = _public("log1p", _log1p64)
sin_fast = _public("sin_fast", _sin64)  # for |x| <= TRIG_MAX; NaN beyond under Numba
cos_fast = _public("cos_fast", _cos64)
tanh = _public("tanh", _tanh64)

#: The same names bound to libm, for generated code on the Python reference path.
PYTHON = SimpleNamespace(exp=math.exp, expm1=math.expm1, log=math.log, log1p=math.log1p, tanh=math.tanh,
                         sin_fast=math.sin, cos_fast=math.cos)

#: The math functions this module replaces, by name (the printer reads it).
NAMES: tuple[str, ...] = ("exp", "expm1", "log", "log1p", "tanh")
#: Those valid only for |x| <= TRIG_MAX, keyed by the math function they stand for.
TRIG: dict[str, str] = {"sin": "sin_fast", "cos": "cos_fast"}
