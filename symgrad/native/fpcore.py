"""The building blocks of symgrad's vectorisable math (vecmath.py): bit casts, FMA, exact
products, rounding and polynomial evaluation, shared by explog.py and trig.py.

Everything here compiles to plain LLVM arithmetic, so a loop that inlines it vectorises.
The cached functions of explog.py and trig.py have these compiled in; Numba's cache does not
see that, so the folder's cache is dropped whenever a file here changes (``__init__.py``).

>>> print(_estrin_source(3))
def estrin(x, coeffs):
    p1 = x
    t0_0 = _fma(coeffs[1], p1, coeffs[2])
    p2 = p1 * p1
    t1_0 = _fma(coeffs[0], p2, t0_0)
    return t1_0
"""

from __future__ import annotations

import functools

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
    # a*b + c with one rounding: the range reductions below rely on it being exact. In float32
    # when all three are (float32.py), else in float64
    def codegen(context, builder, sig, args):
        return builder.fma(*args)

    t = types.float32 if all(x == types.float32 for x in (a, b, c)) else types.float64
    return t(t, t, t), codegen


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
