"""Elementary functions that Numba can vectorise: exp, expm1, log, log1p, tanh, erf, sin, cos.

Numba lowers ``math.exp`` and friends to scalar libm calls, and without Intel's SVML
(unavailable in most llvmlite builds, including ours) LLVM cannot put them in SIMD
registers, so every loop that calls one runs one element at a time. These versions use
only arithmetic, FMA and integer bit operations, so a loop over them vectorises (3-10x
faster than libm measured, docs/decisions.md) while staying within about one ulp of the
correctly rounded result (tests/test_vecmath.py checks this against mpmath at 50 digits,
and every special value: ±0, ±inf, NaN, subnormals, overflow thresholds).

Each name is a plain Python function (the ``math`` version) with a Numba overload, so
generated code calls ``vm.exp(x)`` both on the Python reference path (libm) and under
Numba (the vectorisable version). float32 arguments of exp, erf, tanh, log and log1p are computed
in float32 (float32.py: within one float32 ulp, 2-4x faster); the others in float64 and rounded
once, which keeps float32 results correctly rounded in almost every case.

The float64 versions live by family: explog.py (exp, expm1, log, log1p, tanh), trig.py
(sin, cos and their range reduction), special.py (erf), all built on fpcore.py (bit casts,
FMA, polynomials).

>>> import numba, numpy as np
>>> from symgrad.native import vecmath as vm
>>> f = numba.njit(lambda x: vm.exp(x) + vm.sin_fast(x))
>>> bool(abs(f(1.5) - (np.exp(1.5) + np.sin(1.5))) < 1e-15)
True
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
from numba import types
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import overload

# The implementations, by family; their constants and kernels stay importable from here.
from .explog import (  # noqa: F401
    ATANH_C,
    EXP_MAX,
    EXP_MIN,
    EXPM1_C,
    INV_LN2,
    LN2_HI,
    LN2_LO,
    LOG_LN2_HI,
    LOG_LN2_LO,
    _exp64,
    _expm1_64,
    _log1p64,
    _log64,
    _log_core,
    _tanh64,
)
from .float32 import _erf32, _exp32, _log1p32, _log32, _tanh32
from .special import _erf64
from .trig import COS_C, PIO2_1, PIO2_2, PIO2_3, SIN_C, TRIG_MAX, TWO_OVER_PI, _cos64, _sin64  # noqa: F401

# --- public functions: math on the Python path, the explog/trig versions under Numba -------


def _public(name: str, impl64, inline: str = "never", impl32=None):
    py = getattr(math, name.removesuffix("_fast"))

    def func(x):
        return py(x)

    func.__name__ = func.__qualname__ = name
    func.__doc__ = f"``math.{py.__name__}`` in Python; a vectorisable version under Numba."

    @overload(func, inline=inline)
    def _ov(x):
        if isinstance(x, types.Float) and x.bitwidth == 32:
            if impl32 is not None:  # computed in float32 (float32.py)
                return lambda x: impl32(x)
            return lambda x: np.float32(impl64(np.float64(x)))
        if isinstance(x, (types.Float, types.Integer)):
            return lambda x: impl64(np.float64(x))
        return None

    return func


exp = _public("exp", _exp64, impl32=_exp32)
expm1 = _public("expm1", _expm1_64)
log = _public("log", _log64, impl32=_log32)
log1p = _public("log1p", _log1p64, impl32=_log1p32)
sin_fast = _public("sin_fast", _sin64)  # for |x| <= TRIG_MAX; NaN beyond under Numba
cos_fast = _public("cos_fast", _cos64)
tanh = _public("tanh", _tanh64, impl32=_tanh32)
# Numba's SSA pass, after inlining erf's IR, reports its select's phi variables as "not in scope" and
# asks for a bug report: a check of its own that the compiled code does not depend on. Only those.
warnings.filterwarnings("ignore", r"variable '_public__locals___ov__locals___lambda_.*' is not in scope",
                        NumbaIRAssumptionWarning)
erf = _public("erf", _erf64, inline="always", impl32=_erf32)  # too big for LLVM to inline: a call would stop vectorising

#: The math functions this module replaces, by name (the printer reads it).
NAMES: tuple[str, ...] = ("exp", "expm1", "log", "log1p", "tanh", "erf")
#: Those valid only for |x| <= TRIG_MAX, keyed by the math function they stand for.
TRIG: dict[str, str] = {"sin": "sin_fast", "cos": "cos_fast"}


def _ieee(name: str, f):
    """libm's ``f`` returning what compiled code returns where libm raises: ±inf at a pole or on
    overflow (with the argument's sign for odd functions), NaN outside the domain."""
    def g(*args):
        try:
            return f(*args)
        except OverflowError:
            return math.copysign(math.inf, args[0]) if name in ("sinh", "expm1") and args[0] < 0 else math.inf
        except (ValueError, ZeroDivisionError):
            v = args[0]
            if name in ("log", "log2", "log10", "lgamma") and v == 0 or name == "log1p" and v == -1:
                return -math.inf if name != "lgamma" else math.inf
            if name == "atanh" and abs(v) == 1:
                return math.copysign(math.inf, v)
            return math.nan
    return g


#: ``math`` for generated code on the Python reference path (jit.py binds it there): its functions
#: give NaN and ±inf where libm raises, as the compiled code does (sqrt(-1), acos(2), log(0)).
PYTHON_MATH = SimpleNamespace(**{n: getattr(math, n) for n in dir(math) if not n.startswith("_")})
for _name in ("sqrt", "log", "log2", "log10", "log1p", "exp", "expm1", "exp2", "cosh", "sinh", "acos", "asin",
              "acosh", "atanh", "gamma", "lgamma", "pow", "sin", "cos", "tan", "fmod"):
    if hasattr(math, _name):
        setattr(PYTHON_MATH, _name, _ieee(_name, getattr(math, _name)))

#: This module's names bound to those, for generated code on the Python reference path: a
#: Piecewise branch not taken may still be evaluated there (its common subexpressions come
#: first), so log(0) must be −inf, as compiled, not a ValueError.
PYTHON = SimpleNamespace(exp=PYTHON_MATH.exp, expm1=PYTHON_MATH.expm1, log=PYTHON_MATH.log, log1p=PYTHON_MATH.log1p,
                         tanh=math.tanh, erf=math.erf, sin_fast=PYTHON_MATH.sin, cos_fast=PYTHON_MATH.cos)
