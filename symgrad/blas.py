"""``gemm``: out = a @ b (+ out), one BLAS call, for the matrix products of generated code.

Under Numba it calls the BLAS wrapper that ``np.dot`` itself ends in (Numba's
``numba_xxgemm``, which calls SciPy's ``sgemm``/``dgemm``), with the transposition flags
read from the operands' layouts (C, or F for a transposed view: generated code passes nothing
else, and anything else is a typing error). ``np.dot(a, b, out)`` is compiled anew for every
layout combination, with its checks and copies (docs/decisions.md), and
``out += np.dot(a, b)`` allocates a temporary; ``gemm`` passes
BLAS's beta instead, so an accumulating product adds into ``out`` in place.

>>> import numba, numpy as np
>>> from symgrad.blas import gemm
>>> a, b, out = np.arange(6.0).reshape(3, 2), np.arange(6.0).reshape(3, 2), np.ones((2, 2))
>>> numba.njit(lambda a, b, out: gemm(a.T, b, out, 1.0))(a, b, out)  # out += a.T @ b
>>> out
array([[21., 27.],
       [27., 36.]])
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import lower_builtin, type_callable
from numba.np.linalg import check_blas_return, ensure_blas

_KIND = {types.float32: "s", types.float64: "d"}


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray, beta: float) -> None:
    """``out = a @ b + beta * out`` for 2-D float arrays, beta 0 or 1 (0: ``out`` is not read).

    In Python this is NumPy; under Numba, one BLAS call (see the module docstring).
    """
    if beta == 0:
        np.dot(a, b, out)
    else:
        out += np.dot(a, b)


def _check_types(a, b, out, beta) -> None:
    if not all(isinstance(t, types.Array) and t.ndim == 2 for t in (a, b, out)):
        raise TypingError(f"gemm takes 2-D arrays, got {a}, {b}, {out}")
    if out.dtype not in _KIND or a.dtype != out.dtype or b.dtype != out.dtype:
        raise TypingError(f"gemm takes float32 or float64 arrays of one dtype, got {a.dtype}, {b.dtype}, {out.dtype}")
    if a.layout not in "CF" or b.layout not in "CF" or out.layout != "C":
        raise TypingError(f"gemm takes C- or F-contiguous operands and a C-contiguous out, got layouts "
                          f"{a.layout}, {b.layout}, {out.layout}; pass np.ascontiguousarray copies")
    if not isinstance(beta, types.Number):
        raise TypingError(f"gemm's beta is a number, got {beta}")


# Typed and lowered in place (no compiled implementation function): a Numba function costs
# ~0.2 s to compile, and np.dot's needed one per layout combination.
@type_callable(gemm)
def _type_gemm(context):
    def typer(a, b, out, beta):
        _check_types(a, b, out, beta)
        ensure_blas()  # SciPy, whose BLAS numba_xxgemm calls: a clear ImportError without it
        return types.none

    return typer


@lower_builtin(gemm, types.Array, types.Array, types.Array, types.Number)
def _lower_gemm(context, builder, sig, args):
    char, intp, vp = ir.IntType(8), context.get_value_type(types.intp), ir.IntType(8).as_pointer()
    arrs = [context.make_array(t)(context, builder, v) for t, v in zip(sig.args[:3], args[:3])]
    (m, k), (k2, n), (m2, n2) = (cgutils.unpack_tuple(builder, x.shape, 2) for x in arrs)
    bad = builder.or_(builder.icmp_signed("!=", k, k2),
                      builder.or_(builder.icmp_signed("!=", m, m2), builder.icmp_signed("!=", n, n2)))
    with builder.if_then(bad, likely=False):
        context.call_conv.return_user_exc(builder, ValueError, ("gemm: shapes do not match (a is m x k, b k x n, out m x n)",))
    dt = sig.args[2].dtype
    alpha = cgutils.alloca_once_value(builder, context.get_constant(dt, 1.0))
    beta = cgutils.alloca_once_value(builder, context.cast(builder, args[3], sig.args[3], dt))
    one = ir.Constant(intp, 1)

    def operand(ty, arr):
        # (transpose flag, leading dimension >= 1, data pointer) in BLAS's column-major terms
        rows, cols = cgutils.unpack_tuple(builder, arr.shape, 2)
        ld = cols if ty.layout == "C" else rows
        ld = builder.select(builder.icmp_signed("<", ld, one), one, ld)
        return ir.Constant(char, ord("n" if ty.layout == "C" else "t")), ld, builder.bitcast(arr.data, vp)

    # row-major out = a @ b is column-major out^T = b^T a^T: b is BLAS's first operand
    tb, ldb, pb = operand(sig.args[1], arrs[1])
    ta, lda, pa = operand(sig.args[0], arrs[0])
    ldc, pc = operand(sig.args[2], arrs[2])[1:]
    fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp, vp, vp, intp, vp, intp, vp, vp, intp])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
    res = builder.call(fn, (ir.Constant(char, ord(_KIND[dt])), tb, ta, n, m, k, builder.bitcast(alpha, vp),
                            pb, ldb, pa, lda, builder.bitcast(beta, vp), pc, ldc))
    check_blas_return(context, builder, res)
    return context.get_dummy_value()
