"""exp, erf, tanh, log and log1p computed in float32: the Numba implementations behind
``vecmath.exp``, ``vecmath.erf``, ``vecmath.tanh``, ``vecmath.log`` and ``vecmath.log1p`` for
float32 arguments.

The float64 versions (explog.py, special.py) carry 53 bits through polynomials of degree 13 and
24; a float32 result needs 24. In float32 a vector register holds twice the lanes, and the
polynomials here have degree 7 (exp), 6 and 9 (erf), 4 (tanh, log), so a loop over float32
values runs 2-5x faster than through float64 (docs/decisions.md, "float32 exp and erf computed
in float32" and "float32 tanh, log and log1p computed in float32").
Accuracy: within one float32 ulp of the exact value (0.5 is correctly rounded), checked in
tests/test_vecmath32.py against NumPy, libm and mpmath, special values and subnormal results
included.

- exp: x = k·ln2 + r, |r| ≤ ln2/2 (Cody-Waite in two float32 parts), e^r − 1 = r + r²·P(r) with
  Taylor's coefficients to 1/7! (truncation 6e-9 relative), and 2^k·(1 + p) formed as one FMA
  and one exact product, so a subnormal result is rounded once.
- erf: |x| ≤ 1: x + x·P(x²), P of degree 6 (erf(x)/x − 1); 1 < |x| < 4: 1 − exp(−x²)·erfcx(x),
  erfcx of degree 9 in s = (1/x − 5/8)/(3/8), which maps [1, 4] onto [−1, 1]; beyond 4, ±1
  (erfc(4) ≈ 1.5e-8 is below half an ulp of 1). Least-squares fits to mpmath's values on 3,000
  Chebyshev nodes, each coefficient rounded to float32 in turn from the constant term up and the
  rest fitted again (erfcx's errors weighted by exp(−x²)): they err by 1.3e-9 and 2.9e-10
  (absolute, erfcx's after the weight) with their float32 coefficients.
- tanh: |x| < 0.55: x + x³·P(x²), P of degree 4 fitted as erf's (errs by 1.2e-9 after the
  weight x²); above, 1 − 2/(e^2|x| + 1) with e^2|x| reduced as in exp and the rounding errors of
  the sum and the division carried in FMA residuals to one final rounding; beyond 10 as at 10
  (±1). Every float32 in [0.001, 10.5] checked: 0.73 ulp at most (the polynomial's side of the
  switch).
- log and log1p: explog.py's float64 algorithm (fdlibm's) in float32: x = 2^e·(1 + f) with
  √½ <= 1 + f < √2 from the bits, log(1 + f) from s = f/(2 + f) and atanh's series to s¹¹, ln 2
  in two parts so that e·ln2's high part is exact; log1p adds the rounding error of 1 + x before
  the last rounding. 0.84 ulp at most (every 97th positive float32, and every float32 around the
  switches).

>>> import numba, numpy as np
>>> f = numba.njit(lambda x: (_exp32(x), _erf32(x), _tanh32(x)))
>>> e, r, t = f(np.float32(1.0))
>>> bool(e == np.float32(np.e)), bool(abs(r - np.float32(0.8427008)) <= np.spacing(np.float32(0.84)))
(True, True)
>>> bool(t == np.float32(np.tanh(1.0)))
True
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .fpcore import _estrin, _fma, _horner, njit

F = np.float32
INV_LN2 = F(1.4426950408889634)
LN2_HI = F(0.693359375)  # 9 bits: k·LN2_HI is exact for every k used here
LN2_LO = F(math.log(2) - 0.693359375)
ROUND = F(12582912.0)  # 1.5·2^23: adding and removing it rounds to an integer
EXP_LO, EXP_HI = F(-104.0), F(89.0)  # exp rounds to 0 below, overflows above
#: (e^r − 1 − r)/r², Taylor's coefficients 1/7! .. 1/2!, highest degree first
EXP_C = tuple(F(1.0 / math.factorial(n)) for n in range(7, 1, -1))
#: erf(x)/x − 1 as a polynomial in u = x², u in [0, 1], highest degree first
ERF_SMALL = tuple(F(c) for c in (
    7.919901690911502e-05, -0.000803065428044647, 0.005190725903958082, -0.026855124160647392,
    0.11283618211746216, -0.3761262893676758, 0.12837916612625122))
#: erfcx(x) as a polynomial in s = (1/x − 5/8)/(3/8), x in [1, 4], highest degree first
ERFCX_C = tuple(F(c) for c in (
    1.614480765965709e-06, -1.5039177014841698e-06, -2.3128033717512153e-05, 0.00012082813191227615,
    -0.0003507095098029822, 0.0004617442609742284, 0.002308444119989872, -0.024243107065558434,
    0.14335639774799347, 0.3059529960155487))
ERF_ONE = F(4.0)
ONE = F(1.0)
#: (tanh(x)/x − 1)/x² as a polynomial in u = x², u in [0, 0.55²], highest degree first
TANH_SMALL = tuple(F(c) for c in (
    -0.0062634823843836784, 0.0210630651563406, -0.05384986847639084, 0.13332557678222656,
    -0.33333316445350647))
TANH_SWITCH = F(0.55)  # below: the polynomial; above: 1 − 2/(e^2|x| + 1), at least 0.5
TANH_MAX = F(10.0)  # tanh rounds to 1 from 9.02
LOG_LN2_HI = F(22713.0 / 32768.0)  # ln 2 to 15 bits: e·LOG_LN2_HI is exact for every exponent
LOG_LN2_LO = F(math.log(2) - 22713.0 / 32768.0)
#: log(1 + f) = f − f²/2 + s·(f²/2 + R), R = z·P(z), s = f/(2 + f), z = s²: atanh's Taylor
#: coefficients 2/3 .. 2/11, highest degree first (|s| <= 0.172: truncation below 1e-10)
LOG_C = tuple(F(2.0 / (2 * k + 1)) for k in range(5, 0, -1))
SQRT2_BITS = np.int32(0x3FB504F3)  # the bits of float32(√2)
INF, NAN = F(math.inf), F(math.nan)


@intrinsic
def _from_bits32(typingctx, n):
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _bits32(typingctx, x):
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@njit(cache=True)
def _pow2_32(k):
    """2^k as a float32 for integer −126 <= k <= 127."""
    return _from_bits32((k + np.int32(127)) << np.int32(23))


@njit(cache=True)
def _exp_parts32(z):
    """(k, p) with e^z = 2^k·(1 + p), k a whole float32, |p| <= ~0.41 (for exp and tanh)."""
    k = (z * INV_LN2 + ROUND) - ROUND
    r1 = _fma(-k, LN2_HI, z)  # exact
    r = _fma(-k, LN2_LO, r1)
    # r's rounding error, folded into the small terms: alone it cost up to 0.25 ulp (measured
    # 1.06 ulp in all without this, 0.88 with it)
    err = _fma(-k, LN2_LO, r1 - r)
    return k, r + _fma(_estrin(r, EXP_C), r * r, _fma(err, r, err))  # p = e^(r + err) − 1


@njit(cache=True)
def _exp32(x):
    xc = min(max(x, EXP_LO), EXP_HI)  # k stays where 2^k's two factors are normal numbers
    k, p = _exp_parts32(xc)
    ki = np.int32(k)
    half = ki >> np.int32(1)
    s = _pow2_32(half)
    y = _fma(p, s, s) * _pow2_32(ki - half)  # exact but for a subnormal result (rounded once)
    return x if x != x else y


# inline='always' as for the float64 erf: a call left in a loop stops it vectorising
@njit(cache=True, inline="always")
def _erf32(x):
    a = abs(x)
    u = a * a
    lo = _fma(a, a, -u)  # x² = u + lo exactly
    small = _fma(a, _horner(u, ERF_SMALL), a)
    s = (ONE / max(a, ONE) - F(0.625)) * F(2.6666666666666665)  # max: no division by 0
    e = _exp32(-u)
    e = _fma(-e, lo, e)  # exp(−x²) to first order in lo; (1 − lo) itself would round to 1
    big = _fma(-e, _horner(s, ERFCX_C), ONE)
    y = small if a <= ONE else big
    y = ONE if a >= ERF_ONE else y  # ±inf too; NaN fails every comparison and stays NaN
    return math.copysign(y, x)


@njit(cache=True, inline="always")
def _tanh32(x):
    a = min(abs(x), TANH_MAX)
    u = a * a
    small = _fma(a * u, _horner(u, TANH_SMALL), a)
    # e^z, z = 2a, as 2^k·(1 + p), exp's reduction; then q = 2/(e^z + 1) with the rounding
    # errors of e^z + 1 (d_err) and of the division (rho) carried to the end, where 1 − q is
    # formed exactly as hi + t (hi = 1 − q rounded) and rounded once: without them the result
    # erred by up to 2.4 ulp just above the switch, where q is near 0.5
    k, p = _exp_parts32(a + a)
    s = _pow2_32(np.int32(k))
    s1 = s + ONE
    d = _fma(s, p, s1)
    d_err = _fma(s, p, s1 - d)  # s1 − d is exact: d is within a factor 2 of s1
    q = F(2.0) / d
    rho = _fma(-q, d, F(2.0))
    hi = ONE - q
    t = (ONE - hi) - q  # hi + t = 1 − q exactly
    big = hi + (t - (rho - q * d_err) / d)
    y = math.copysign(small if a < TANH_SWITCH else big, x)
    return x if x != x else y


@njit(cache=True)
def _log_parts32(x):
    """x = 2^e·(1 + f) with √½ <= 1 + f < √2, for finite x > 0 (e as a float32)."""
    tiny = x < F(1.1754943508222875e-38)  # subnormal: scale into the normal range first
    b = _bits32(x * F(16777216.0) if tiny else x)  # 2^24
    e = (b >> np.int32(23)) - np.int32(127) - (np.int32(24) if tiny else np.int32(0))
    m = (b & np.int32(0x007FFFFF)) | np.int32(0x3F800000)
    big = m > SQRT2_BITS  # mantissa above √2: halve it
    m = m - np.int32(1 << 23) if big else m
    e = e + np.int32(1) if big else e
    return F(e), _from_bits32(m) - ONE  # exact: Sterbenz


@njit(cache=True)
def _log_core32(e, f, c):
    """log(2^e·(1 + f)) + c, c a small correction added before the last rounding (as explog.py's)."""
    s = f / (F(2.0) + f)
    z = s * s
    R = z * _horner(z, LOG_C)
    hfsq = F(0.5) * f * f
    return e * LOG_LN2_HI - ((hfsq - (s * (hfsq + R) + (e * LOG_LN2_LO + c))) - f)


@njit(cache=True)
def _special_log32(x, y):
    y = -INF if x == F(0.0) else y
    y = INF if x == INF else y
    return NAN if (x < F(0.0) or x != x) else y


@njit(cache=True)
def _log32(x):
    e, f = _log_parts32(x)
    return _special_log32(x, _log_core32(e, f, F(0.0)))


@njit(cache=True)
def _log1p32(x):
    u = ONE + x
    c = (x - (u - ONE)) / u  # the rounding error of 1 + x, to first order
    e, f = _log_parts32(u)
    y = _special_log32(u, _log_core32(e, f, c))
    y = INF if x == INF else y
    return x if x == F(0.0) else y  # keeps the sign of −0
