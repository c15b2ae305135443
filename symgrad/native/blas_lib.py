"""Which BLAS the compiled matrix products call: NumPy's own OpenBLAS where NumPy ships one.

NumPy's wheels bundle a 64-bit-integer OpenBLAS (``libscipy_openblas64_``), newer than the
one in SciPy's wheels, which Numba's ``np.dot`` calls. On this project's machine NumPy's was
within 2% or faster at each of 38 product shapes measured, and 1.3-2.7x faster for the skinny
float32 products of convolutions and small dense layers (docs/decisions.md, "NumPy's OpenBLAS").

Generated code calls the symbols ``symgrad_sgemm``, ``symgrad_dgemm``, ``symgrad_sgemv`` and
``symgrad_dgemv``, which take BLAS's Fortran arguments (every argument a pointer; integers
64-bit). :func:`register` binds them, once per process and before any compiled code that
calls them is loaded (``blas.py`` calls it on import): to NumPy's OpenBLAS entry points, or,
where NumPy has none (a NumPy built against another BLAS) or ``SYMGRAD_NUMPY_BLAS=0``, to small
adapters onto Numba's own BLAS wrappers (SciPy's BLAS). Numba's on-disk cache keeps only the
symbol names, so cached code follows whichever library this process bound.

>>> register() in ("numpy", "scipy")
True
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
from llvmlite import binding as ll
from llvmlite import ir

from ..switches import switch

ROUTINES = ("sgemm", "dgemm", "sgemv", "dgemv")
_BOUND: list[str] = []
_KEEP: list = []  # the fallback adapters' compiled library must outlive every caller


def numpy_openblas() -> tuple[dict[str, int], Path] | None:
    """({routine: address}, library path) of NumPy's bundled ILP64 OpenBLAS, or None."""
    root = Path(np.__file__).parent
    found = [*root.parent.glob("numpy.libs/libscipy_openblas64_*"), *root.glob(".dylibs/libscipy_openblas64_*"),
             *root.parent.glob("numpy.libs/libopenblas64_*"), *root.glob(".dylibs/libopenblas64_*")]
    for path in found:
        try:
            lib = ctypes.CDLL(str(path))  # NumPy has loaded it already: the same handle
        except OSError:
            continue
        for prefix in ("scipy_", ""):  # NumPy 2's scipy-openblas64, NumPy 1's openblas64_
            try:
                fns = {r: getattr(lib, f"{prefix}{r}_64_") for r in ROUTINES}
            except AttributeError:
                continue
            return {r: ctypes.cast(f, ctypes.c_void_p).value for r, f in fns.items()}, path
    return None


def register() -> str:
    """Bind the four ``symgrad_*`` symbols (see the module docstring); returns which BLAS."""
    if _BOUND:
        return _BOUND[0]
    found = None if switch("SYMGRAD_NUMPY_BLAS") is False else numpy_openblas()
    addresses = found[0] if found else _adapters()
    for routine, address in addresses.items():
        ll.add_symbol(f"symgrad_{routine}", address)
    _BOUND.append("numpy" if found else "scipy")
    return _BOUND[0]


def _adapters() -> dict[str, int]:
    """The four symbols as adapters onto Numba's ``numba_xxgemm``/``numba_xxgemv`` (SciPy's BLAS)."""
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    try:  # Numba's wrappers find SciPy's BLAS at the first call, and would return an error code
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError as e:  # that the adapters could not report: no silent products
        raise ImportError("symgrad's matrix products need a BLAS: this NumPy ships no OpenBLAS of its own (or "
                          "SYMGRAD_NUMPY_BLAS=0), and SciPy's cannot be imported. Fix: pip install scipy.") from e

    i8, i32, i64, vp = ir.IntType(8), ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()
    lib = cpu_target.target_context.codegen().create_library("symgrad_blas_adapters")
    mod = lib.create_ir_module("symgrad_blas_adapters")
    xxgemm = ir.Function(mod, ir.FunctionType(i32, [i8, i8, i8, i64, i64, i64, vp, vp, i64, vp, i64, vp, vp, i64]),
                         "numba_xxgemm")
    xxgemv = ir.Function(mod, ir.FunctionType(i32, [i8, i8, i64, i64, vp, vp, i64, vp, vp, vp]), "numba_xxgemv")
    # Each Fortran argument: c a flag to load (one character), i an integer to load, v a pointer
    # passed on, - not passed (gemv's increments: Numba's wrapper assumes 1, as symgrad passes).
    # gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); gemv(t, m, n, alpha, a, lda, x,
    # incx, beta, y, incy)
    spec = {"gemm": ("cciiivvivivvi", xxgemm), "gemv": ("ciivviv-vv-", xxgemv)}
    for routine in ROUTINES:
        pattern, target = spec[routine[1:]]
        fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [vp] * len(pattern)), f"symgrad_{routine}_adapter")
        b = ir.IRBuilder(fn.append_basic_block())
        args = [ir.Constant(i8, ord(routine[0]))]
        for kind, arg in zip(pattern, fn.args):
            if kind == "c":
                args.append(b.load(arg))
            elif kind == "i":
                args.append(b.load(b.bitcast(arg, i64.as_pointer())))
            elif kind == "v":
                args.append(arg)
        b.call(target, args)
        b.ret_void()
    lib.add_ir_module(mod)
    with global_compiler_lock:
        lib.finalize()
    _KEEP.append(lib)
    return {r: lib.get_pointer_to_function(f"symgrad_{r}_adapter") for r in ROUTINES}
