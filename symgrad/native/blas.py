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
from llvmlite import binding as llvm
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


# OpenBLAS on AVX-512 CPUs runs small products whose second operand is a transposed view (a
# dense layer's x · Wᵀ) up to 2x slower than the same product with both operands as stored (its
# unpacked "direct" kernels take only those). For beta 0 in the region measured in
# docs/decisions.md ("Dense products with a transposed weight"), gemm copies that operand first
# (8 × 8 blocks of vector shuffles, into a 64-byte aligned buffer) and multiplies as stored;
# elsewhere, and on other CPUs, BLAS gets the product as it is.
_AVX512 = bool(llvm.get_host_cpu_features().get("avx512f", False))
#: the region (measured, docs/decisions.md): an inner size of at most COPY_K with at least
#: COPY_K_ROWS rows and COPY_K_SIDE rows or columns; or at least COPY_ROWS rows, a copied operand
#: of at most COPY_ELEMS values, m·k·n at most COPY_WORK (by itemsize), and at least COPY_N
#: columns or COPY_ROWS_FEW_N rows
COPY_K, COPY_K_ROWS, COPY_K_SIDE = 32, 4, 16
COPY_ROWS, COPY_ELEMS, COPY_N, COPY_ROWS_FEW_N = 32, 16384, 32, 128
COPY_WORK = {4: 1 << 20, 8: 1 << 19}


def copies_first(m: int, k: int, n: int, itemsize: int) -> bool:
    """Whether gemm copies a transposed second operand (k × n) first, for beta 0 (see above).

    >>> copies_first(64, 64, 128, 4) == _AVX512  # the digits MLP's first layer, float32
    True
    """
    thin = k <= COPY_K and m >= COPY_K_ROWS and (m >= COPY_K_SIDE or n >= COPY_K_SIDE)
    small = (m >= COPY_ROWS and k * n <= COPY_ELEMS and m * k * n <= COPY_WORK[itemsize]
             and (n >= COPY_N or m >= COPY_ROWS_FEW_N))
    return _AVX512 and (thin or small)


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
                    if _AVX512 and a_ty.layout == "C" and b_ty.layout == "F":  # x · Wᵀ: see copies_first
                        with builder.if_else(blas.copy_pays(m, n, k)) as (copy, plain):
                            with copy:
                                blas.gemm_copied(context, a, b, out, m, n, k)
                            with plain:
                                blas.gemm(a_ty, a, b_ty, b, sig.args[2], out, m, n, k)
                    else:
                        blas.gemm(a_ty, a, b_ty, b, sig.args[2], out, m, n, k)
    return context.get_dummy_value()


class _Blas:
    """Calls of BLAS's Fortran ``?gemm``/``?gemv`` (every argument a pointer, integers 64-bit)
    through the symbols ``blas_lib`` binds, with alpha 1 and the caller's beta."""

    def __init__(self, context, builder, sig, beta):
        self.b, self.dt = builder, sig.args[2].dtype
        self.beta_value = context.cast(builder, beta, sig.args[3], self.dt)
        self.dt_ir = context.get_value_type(self.dt)
        self.i64, self.vp = ir.IntType(64), ir.IntType(8).as_pointer()
        self.alpha = self.ptr(cgutils.alloca_once_value(builder, context.get_constant(self.dt, 1.0)))
        self.beta = self.ptr(cgutils.alloca_once_value(builder, self.beta_value))
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

    def copy_pays(self, m, n, k):
        """copies_first's rule on the run-time sizes, and beta 0."""
        b, i = self.b, lambda v: ir.Constant(m.type, v)
        big = b.and_(b.icmp_signed(">=", m, i(COPY_ROWS)), b.icmp_signed("<=", b.mul(k, n), i(COPY_ELEMS)))
        big = b.and_(big, b.icmp_signed("<=", b.mul(b.mul(m, k), n), i(COPY_WORK[self.dt.bitwidth // 8])))
        big = b.and_(big, b.or_(b.icmp_signed(">=", n, i(COPY_N)), b.icmp_signed(">=", m, i(COPY_ROWS_FEW_N))))
        thin = b.and_(b.icmp_signed("<=", k, i(COPY_K)), b.icmp_signed(">=", m, i(COPY_K_ROWS)))
        thin = b.and_(thin, b.or_(b.icmp_signed(">=", m, i(COPY_K_SIDE)), b.icmp_signed(">=", n, i(COPY_K_SIDE))))
        region = b.or_(thin, big)
        return b.and_(region, b.fcmp_ordered("==", self.beta_value, ir.Constant(self.beta_value.type, 0.0)))

    def gemm_copied(self, context, a, b, out, m, n, k):
        """out = a · b for C-contiguous a and a transposed view b: b copied to a C-contiguous k × n
        buffer first (b's storage is n × k: element (c, j) at j·k + c), then BLAS on both as stored."""
        bld, dt = self.b, self.dt_ir
        size = bld.mul(bld.mul(k, n), ir.Constant(k.type, self.dt.bitwidth // 8))
        buf = context.nrt.allocate(bld, bld.add(size, ir.Constant(k.type, 63)))
        # aligned to 64 bytes, as NumPy's arrays are: from malloc's 16, the product ran ~2 µs slower
        start = bld.and_(bld.add(bld.ptrtoint(buf, self.i64), ir.Constant(self.i64, 63)), ir.Constant(self.i64, -64))
        bt, src = bld.inttoptr(start, dt.as_pointer()), bld.bitcast(b.data, dt.as_pointer())
        self._transpose(src, bt, n, k)
        # row-major out = a · bt is column-major outᵀ = btᵀ · aᵀ, as in gemm below
        nn = self.flag("n")
        self.call("gemm", (nn, nn, self.int(n), self.int(m), self.int(k), self.alpha, self.ptr(bt), self.ld(n),
                           self.ptr(a.data), self.ld(k), self.beta, self.ptr(out.data), self.ld(n)))
        context.nrt.free(bld, buf)

    def _transpose(self, src, bt, n, k):
        """bt (k × n) = the transpose of src (n × k), both row-major: 8 × 8 blocks as eight vector
        loads, lane shuffles and eight vector stores, the edges a value at a time."""
        bld, i = self.b, lambda v: ir.Constant(n.type, v)
        vec = ir.VectorType(self.dt_ir, 8)
        nb, kb = bld.sdiv(n, i(8)), bld.sdiv(k, i(8))  # whole blocks
        n8, k8 = bld.mul(nb, i(8)), bld.mul(kb, i(8))

        def at(base, row, col, width):  # &base[row * width + col]
            return bld.gep(base, [bld.add(bld.mul(row, width), col)])

        def copy(j, c):  # bt[c, j] = src[j, c]
            bld.store(bld.load(at(src, j, c, k)), at(bt, c, j, n))

        with cgutils.for_range(bld, nb) as jb:
            j0 = bld.mul(jb.index, i(8))
            with cgutils.for_range(bld, kb) as cb:
                c0 = bld.mul(cb.index, i(8))
                rows = [bld.load(bld.bitcast(at(src, bld.add(j0, i(t)), c0, k), vec.as_pointer()), align=1)
                        for t in range(8)]
                for u, col in enumerate(self._transpose8(rows)):
                    bld.store(col, bld.bitcast(at(bt, bld.add(c0, i(u)), j0, n), vec.as_pointer()), align=1)
            with cgutils.for_range(bld, k, start=k8) as c:  # the last k % 8 columns
                for t in range(8):
                    copy(bld.add(j0, i(t)), c.index)
        with cgutils.for_range(bld, n, start=n8) as j:  # the last n % 8 rows
            with cgutils.for_range(bld, k) as c:
                copy(j.index, c.index)

    def _transpose8(self, rows):
        """The columns of eight 8-lane rows: pairs interleaved, then pairs of pairs, then halves
        swapped (the usual three-stage transpose; column c's lane t is rows[t][c])."""
        shuf = lambda a, b, lanes: self.b.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 8), lanes))  # noqa: E731
        lo, hi = [0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]
        t = [shuf(rows[2 * p], rows[2 * p + 1], half) for p in range(4) for half in (lo, hi)]
        lo, hi = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
        u = [shuf(t[4 * q + h], t[4 * q + h + 2], half) for q in range(2) for h in range(2) for half in (lo, hi)]
        lo, hi = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]
        return [shuf(u[c], u[c + 4], lo) for c in range(4)] + [shuf(u[c], u[c + 4], hi) for c in range(4)]

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
