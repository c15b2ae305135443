"""exp, expm1, log, log1p and tanh in float64 from arithmetic, FMA and bit operations.

The Numba implementations behind ``vecmath.exp`` and friends (vecmath.py holds the public
names). exp and expm1 reduce x = k*ln2 + r; log and log1p split x = 2^e * (1 + f); tanh is
built from expm1.
"""

from __future__ import annotations

import math

import numpy as np

from .fpcore import _bits, _estrin, _fma, _from_bits, _horner, _round, njit

# --- constants: ln 2 split so that k*HI is exact (values from mpmath, checked in tests) ----

LN2_HI = 0.6931471805599453
LN2_LO = 2.3190468138462996e-17
INV_LN2 = 1.4426950408889634
LOG_LN2_HI = 0.6931471806019545  # ln 2 to 32 bits: e*LOG_LN2_HI is exact for any exponent e
LOG_LN2_LO = -4.2009150726810846e-11
EXP_MAX = 709.782712893384  # above: exp overflows
EXP_MIN = -745.1332191019412  # below: exp underflows to 0

# Taylor coefficients, highest degree first (Horner order). Truncation error < 2^-60 relative
# on the reduced ranges |r| <= ln2/2 (exp) and |s| <= 0.172 (log).
EXPM1_C = tuple(1.0 / math.factorial(n) for n in range(13, 1, -1))  # r^13 .. r^2 over n!
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
def _tanh64(x):
    a = min(abs(x), 20.0)  # tanh(20) rounds to 1
    t = _expm1_64(2.0 * a)
    y = t / (t + 2.0)
    y = y if a < 0.55 else 1.0 - 2.0 / (t + 2.0)  # no cancellation either way
    y = math.copysign(y, x)
    return x if x != x else y
