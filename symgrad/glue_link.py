"""Glue libraries are linked, not optimised again: a cold-build saving inside Numba.

Numba links a compiled function's callees into its library and then runs LLVM's full module
optimiser over the whole linked module, callees included, though each callee was already
optimised when its own library was finalised. For glue (functions compiled with
``_dbg_optnone``, which only make arrays and call compiled segments: ``jit.glue_options``) that
second pass re-optimised every kernel of the model once per glue function: for the example
transformer, 3.4 of a 21.3 s cold build (17.9 s without it; run time the same, 40-42 ms per
step either way; docs/decisions.md). This skips the module passes for a library whose own
code is glue; everything else is compiled as Numba does.

It patches one method of Numba's ``CPUCodeLibrary``, once, and only if the method is there (a
Numba without it keeps its own behaviour).

>>> install() in (True, False)
True
"""

from __future__ import annotations

import functools


def _is_glue(module) -> bool:
    # the glue's own functions carry optnone (numba.core.lowering, dbg_optnone); linked callees
    # never do, as they are compiled with their own options
    return any(not fn.is_declaration and any(b"optnone" in a for a in fn.attributes) for fn in module.functions)


@functools.lru_cache(maxsize=1)
def install() -> bool:
    """Make glue libraries skip the final module optimisation; whether the patch is in place."""
    try:
        from numba.core.codegen import CPUCodeLibrary
    except ImportError:
        return False
    original = getattr(CPUCodeLibrary, "_optimize_final_module", None)
    if original is None:
        return False

    def optimize_final_module(self):
        if _is_glue(self._final_module):
            return  # its callees were optimised in their own libraries; the glue is optnone
        original(self)

    CPUCodeLibrary._optimize_final_module = optimize_final_module
    return True
