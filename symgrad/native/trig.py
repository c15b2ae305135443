"""sin and cos in float64 from arithmetic and FMA, for |x| <= TRIG_MAX.

The Numba implementations behind ``vecmath.sin_fast`` and ``vecmath.cos_fast`` (vecmath.py
holds the public names): x = k*pi/2 + r is reduced in double-double, then the sin or cos
polynomial is picked by the quadrant k mod 4.
"""

from __future__ import annotations

import math

import numpy as np

from .fpcore import _fma, _horner, _round, _two_prod, njit

# --- constants: pi/2 split so that k*PIO2_1 is exact (values from mpmath, checked in tests) ---

PIO2_1 = 1.5707963267948966
PIO2_2 = 6.123233995736766e-17
PIO2_3 = -1.4973849048591698e-33
TWO_OVER_PI = 0.6366197723675814
# Above TRIG_MAX, sin_fast/cos_fast return NaN: an exact reduction there needs a table of 2/pi
# (Payne-Hanek), and computing it for every lane cost 3.6x the fast path measured, so callers
# check their arguments and use libm instead (the generated code does, see codegen/scalar.py).
TRIG_MAX = 2.0**26

# Taylor coefficients, highest degree first (Horner order). Truncation error < 2^-60 relative
# on the reduced range |r| <= pi/4.
SIN_C = tuple((-1.0) ** n / math.factorial(2 * n + 1) for n in range(8, 1, -1))  # r^17 .. r^5
COS_C = tuple((-1.0) ** n / math.factorial(2 * n) for n in range(8, 1, -1))  # r^16 .. r^4


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
