"""``gemm``: out = a @ b (+ out), one BLAS call, for the matrix products of generated code.

Under Numba it calls the BLAS wrapper that ``np.dot`` itself ends in (Numba's
``numba_xxgemm``, which calls SciPy's ``sgemm``/``dgemm``), with the transposition flags
read from the operands' layouts. ``np.dot(a, b, out)`` is compiled anew for every layout
combination, with its checks and copies (about 0.7 s of the digits model's cold build,
docs/decisions.md), and ``out += np.dot(a, b)`` allocates a temporary; ``gemm`` passes
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
from numba.extending import intrinsic, overload

_KIND = {types.float32: "s", types.float64: "d"}


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray, beta: float) -> None:
    """``out = a @ b + beta * out`` for 2-D float arrays, beta 0 or 1 (0: ``out`` is not read).

    In Python this is NumPy; under Numba, one BLAS call (see the module docstring).
    """
    if beta == 0:
        np.dot(a, b, out)
    else:
        out += np.dot(a, b)


@intrinsic
def _xxgemm(typingctx, a, b, out, beta):
    """The BLAS call for C/F-contiguous a and b and C-contiguous out, shapes already checked."""
    import scipy.linalg.cython_blas  # noqa: F401  (numba_xxgemm finds sgemm/dgemm there)

    def codegen(context, builder, sig, args):
        char, intp, vp = ir.IntType(8), context.get_value_type(types.intp), ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp, vp, vp, intp,
                                                vp, intp, vp, vp, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        arrs = [context.make_array(t)(context, builder, v) for t, v in zip(sig.args[:3], args[:3])]
        dt = sig.args[2].dtype
        alpha = cgutils.alloca_once_value(builder, context.get_constant(dt, 1.0))
        beta_slot = cgutils.alloca_once_value(builder, context.cast(builder, args[3], sig.args[3], dt))
        one = ir.Constant(intp, 1)

        def operand(ty, arr):
            # (transpose flag, leading dimension >= 1, data pointer) in BLAS's column-major terms
            rows, cols = cgutils.unpack_tuple(builder, arr.shape, 2)
            ld = cols if ty.layout == "C" else rows
            ld = builder.select(builder.icmp_signed("<", ld, one), one, ld)
            return ir.Constant(char, ord("n" if ty.layout == "C" else "t")), ld, builder.bitcast(arr.data, vp)

        m, k = cgutils.unpack_tuple(builder, arrs[0].shape, 2)
        n = cgutils.unpack_tuple(builder, arrs[1].shape, 2)[1]
        # row-major out = a @ b is column-major out^T = b^T a^T: b is BLAS's first operand
        tb, ldb, pb = operand(sig.args[1], arrs[1])
        ta, lda, pa = operand(sig.args[0], arrs[0])
        ldc, pc = operand(sig.args[2], arrs[2])[1:]
        res = builder.call(fn, (ir.Constant(char, ord(_KIND[dt])), tb, ta, n, m, k, builder.bitcast(alpha, vp),
                                pb, ldb, pa, lda, builder.bitcast(beta_slot, vp), pc, ldc))
        from numba.np.linalg import check_blas_return

        check_blas_return(context, builder, res)
        return context.get_dummy_value()

    return types.void(a, b, out, beta), codegen


@overload(gemm)
def _gemm_ov(a, b, out, beta):
    arrays = (a, b, out)
    if not all(isinstance(t, types.Array) and t.ndim == 2 for t in arrays):
        raise TypingError(f"gemm takes 2-D arrays, got {a}, {b}, {out}")
    if out.dtype not in _KIND or a.dtype != out.dtype or b.dtype != out.dtype:
        raise TypingError(f"gemm takes float32 or float64 arrays of one dtype, got {a.dtype}, {b.dtype}, {out.dtype}")
    if out.layout != "C":
        raise TypingError("gemm writes a C-contiguous out; pass np.ascontiguousarray storage")

    if a.layout in "CF" and b.layout in "CF":

        def impl(a, b, out, beta):
            if a.shape[1] != b.shape[0] or out.shape[0] != a.shape[0] or out.shape[1] != b.shape[1]:
                raise ValueError("gemm: shapes do not match (a is m x k, b k x n, out m x n)")
            _xxgemm(a, b, out, beta)

        return impl

    def impl_copy(a, b, out, beta):  # strided views: BLAS needs contiguous operands
        if a.shape[1] != b.shape[0] or out.shape[0] != a.shape[0] or out.shape[1] != b.shape[1]:
            raise ValueError("gemm: shapes do not match (a is m x k, b k x n, out m x n)")
        _xxgemm(np.ascontiguousarray(a), np.ascontiguousarray(b), out, beta)

    return impl_copy
