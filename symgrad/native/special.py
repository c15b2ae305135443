"""erf in float64 from arithmetic, FMA and one exp: the Numba implementation behind ``vecmath.erf``.

``math.erf`` is a scalar libm call that stops a loop from vectorising; GELU's erf ran at a fifth
of exp's speed and was the largest cost of a transformer's position-wise MLP (docs/decisions.md).
Two ranges, both evaluated and one kept (a select, so the loop still vectorises):

- |x| ≤ 1: ``erf(x) = x + x · P(x²)``, P of degree 12 (erf(x)/x − 1);
- 1 < |x| < 6: ``erf(x) = 1 − exp(−x²) · erfcx(x)``, erfcx (``erfc(x) e^{x²}``, smooth and slowly
  varying) a polynomial of degree 24 in ``s = (1/x − 7/12)/(5/12)``, which maps [1, 6] onto [−1, 1];
  x² is split into its rounded value and its exact error (FMA) so that exp(−x²) keeps full precision;
- |x| ≥ 6: ±1 (erfc(6) ≈ 2e-17 is below half an ulp of 1).

The coefficients are Chebyshev fits made with mpmath at 50 digits (``mpmath.chebyfit``): on their
ranges the fits err by 1e-19 (P, relative) and 1.5e-17 (erfcx, absolute, where exp(−x²) ≤ 0.37
scales it further down). tests/test_vecmath.py checks the result against mpmath in ulps.
"""

from __future__ import annotations

import math

from .explog import _exp64
from .fpcore import _estrin, _fma, njit

#: erf(x)/x − 1 as a polynomial in u = x², u in [0, 1], highest degree first
ERF_SMALL = (5.957176147748911e-11, -1.1372848856791674e-09, 1.4659775274047436e-08, -1.6350312701054695e-07,
             1.6461000484121368e-06, -1.4925595266831182e-05, 0.0001205533111164271, -0.000854832698083379,
             0.0052239776248180145, -0.026866170645076792, 0.11283791670954879, -0.3761263890318375,
             0.1283791670955126)
#: erfcx(x) as a polynomial in s = (1/x − 7/12)/(5/12), x in [1, 6], highest degree first
ERFCX_C = (2.3536979572445124e-10, -2.3141125612785943e-10, -1.5967918453108467e-09, 2.828024790048224e-09,
           4.507664335137243e-10, -2.7983497703309644e-09, 2.3173165145718272e-09, -1.4585572765297821e-08,
           4.980945987466356e-08, -9.821320495249197e-08, 1.2488260283637228e-07, 3.3003779342775526e-09,
           -6.62787417422296e-07, 2.582429042121849e-06, -6.498242897250973e-06, 1.0882793978525845e-05,
           -4.046598181654776e-06, -5.528651391918668e-05, 0.0002656054665609539, -0.0007383867417931075,
           0.0010344322263503756, 0.002821131897847166, -0.03083105050843015, 0.16536269001261483,
           0.28972211632346423)
ERF_ONE = 6.0  #: from here on erf rounds to ±1


# inline='always': Numba inlines it into the caller's IR, where LLVM's own inliner leaves a body
# this size as a call, and a loop with a call in it does not vectorise (measured: no vector code)
@njit(cache=True, inline="always")
def _erf64(x):
    a = abs(x)
    u = a * a
    small = _fma(a, _estrin(u, ERF_SMALL), a)  # a + a·(P − 1): P − 1's rounding error shrinks 9×
    s = (1.0 / max(a, 1.0) - 7.0 / 12.0) * 2.4  # max: no division by 0 in the lanes that keep `small`
    lo = _fma(a, a, -u)  # x² = u + lo exactly
    e = _exp64(-u) * (1.0 - lo)  # exp(−x²) to first order in lo (|lo| ≤ 2e-15 here)
    big = 1.0 - e * _estrin(s, ERFCX_C)
    y = small if a <= 1.0 else big
    y = 1.0 if a >= ERF_ONE else y  # ±inf too; NaN fails every comparison and stays NaN
    return math.copysign(y, x)
