"""``gemm``: out = a @ b (+ out), one BLAS call, for the matrix products of generated code.

Under Numba it calls BLAS's ``sgemm``/``dgemm`` (``sgemv``/``dgemv`` for a one-row or
one-column product) through the symbols that ``blas_lib`` binds: NumPy's own OpenBLAS where
NumPy ships one, else SciPy's, which Numba's ``np.dot`` calls. The transposition flags are
read from the operands' layouts (C, or F for a transposed view: generated code passes nothing
else, and anything else is a typing error). ``np.dot(a, b, out)`` is compiled anew for every
layout combination, with its checks and copies (docs/decisions.md), and
``out += np.dot(a, b)`` allocates a temporary; ``gemm`` passes
BLAS's beta instead, so an accumulating product adds into ``out`` in place.

>>> import numba, numpy as np
>>> from symgrad.native.blas import gemm
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
from numba.np.linalg import ensure_blas

from .blas_lib import register

_KIND = {types.float32: "s", types.float64: "d"}
register()  # before any compiled caller is loaded from Numba's cache


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray, beta: float) -> None:
    """``out = a @ b + beta * out`` for 2-D float arrays (beta 0: ``out`` is not read, as in BLAS).

    In Python this is NumPy; under Numba, one BLAS call (see the module docstring).
    """
    if beta == 0:
        np.dot(a, b, out)
        return
    if beta != 1:
        out *= beta
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
    arrs = [context.make_array(t)(context, builder, v) for t, v in zip(sig.args[:3], args[:3])]
    (m, k), (k2, n), (m2, n2) = (cgutils.unpack_tuple(builder, x.shape, 2) for x in arrs)
    bad = builder.or_(builder.icmp_signed("!=", k, k2),
                      builder.or_(builder.icmp_signed("!=", m, m2), builder.icmp_signed("!=", n, n2)))
    with builder.if_then(bad, likely=False):
        context.call_conv.return_user_exc(builder, ValueError, ("gemm: shapes do not match (a is m x k, b k x n, out m x n)",))
    blas = _Blas(context, builder, sig, args[3])
    a_ty, b_ty = sig.args[:2]
    a, b, out = arrs
    one, zero = ir.Constant(k.type, 1), ir.Constant(k.type, 0)
    # a one-column or one-row product goes to gemv, as in np.dot: sgemm is several times slower
    # there (logistic regression's X w and r^T X)
    has_k = builder.icmp_signed("!=", k, zero)
    with builder.if_else(builder.and_(has_k, builder.icmp_signed("==", n, one))) as (mat_vec, other):
        with mat_vec:
            blas.gemv("t" if a_ty.layout == "C" else "n", a_ty, a, b.data, out.data)
        with other:
            with builder.if_else(builder.and_(has_k, builder.icmp_signed("==", m, one))) as (vec_mat, mat_mat):
                with vec_mat:
                    blas.gemv("n" if b_ty.layout == "C" else "t", b_ty, b, a.data, out.data)
                with mat_mat:
                    blas.gemm(a_ty, a, b_ty, b, sig.args[2], out, m, n, k)
    return context.get_dummy_value()


class _Blas:
    """Calls of BLAS's Fortran ``?gemm``/``?gemv`` (every argument a pointer, integers 64-bit)
    through the symbols ``blas_lib`` binds, with alpha 1 and the caller's beta."""

    def __init__(self, context, builder, sig, beta):
        self.b, self.dt = builder, sig.args[2].dtype
        self.i64, self.vp = ir.IntType(64), ir.IntType(8).as_pointer()
        self.alpha = self.ptr(cgutils.alloca_once_value(builder, context.get_constant(self.dt, 1.0)))
        self.beta = self.ptr(cgutils.alloca_once_value(builder, context.cast(builder, beta, sig.args[3], self.dt)))
        self.one = self.int(ir.Constant(self.i64, 1))

    def ptr(self, p):
        return self.b.bitcast(p, self.vp)

    def int(self, n):  # a pointer to a 64-bit copy of n
        return self.ptr(cgutils.alloca_once_value(self.b, self.b.sext(n, self.i64) if n.type.width < 64 else n))

    def flag(self, c: str):
        return self.ptr(cgutils.alloca_once_value(self.b, ir.Constant(ir.IntType(8), ord(c))))

    def ld(self, n):  # BLAS wants leading dimensions >= 1, even for empty matrices
        one = ir.Constant(n.type, 1)
        return self.int(self.b.select(self.b.icmp_signed("<", n, one), one, n))

    def call(self, routine: str, args: tuple) -> None:
        name = f"symgrad_{_KIND[self.dt]}{routine}"
        fn = cgutils.get_or_insert_function(self.b.module, ir.FunctionType(ir.VoidType(), [self.vp] * len(args)), name)
        self.b.call(fn, args)

    def gemv(self, trans: str, mat_ty, mat, x, y) -> None:
        """y = op(mat) x + beta y, with mat in BLAS's column-major view (a C array is its transpose)."""
        rows, cols = cgutils.unpack_tuple(self.b, mat.shape, 2)
        m, n = (rows, cols) if mat_ty.layout == "F" else (cols, rows)
        self.call("gemv", (self.flag(trans), self.int(m), self.int(n), self.alpha, self.ptr(mat.data), self.ld(m),
                           self.ptr(x), self.one, self.beta, self.ptr(y), self.one))

    def gemm(self, a_ty, a, b_ty, b, out_ty, out, m, n, k) -> None:
        def operand(ty, arr):
            # (transpose flag, leading dimension, data) in BLAS's column-major terms
            rows, cols = cgutils.unpack_tuple(self.b, arr.shape, 2)
            return self.flag("n" if ty.layout == "C" else "t"), self.ld(cols if ty.layout == "C" else rows), self.ptr(arr.data)

        # row-major out = a @ b is column-major out^T = b^T a^T: b is BLAS's first operand
        tb, ldb, pb = operand(b_ty, b)
        ta, lda, pa = operand(a_ty, a)
        ldc, pc = operand(out_ty, out)[1:]
        self.call("gemm", (tb, ta, self.int(n), self.int(m), self.int(k), self.alpha, pb, ldb, pa, lda, self.beta,
                           pc, ldc))
