"""Glue libraries are linked, not optimised again: a cold-build saving inside Numba.

Numba links a compiled function's callees into its library and then runs LLVM's full module
optimiser over the whole linked module, callees included, though each callee was already
optimised when its own library was finalised. For glue (functions compiled with
``_dbg_optnone``, which only make arrays and call compiled segments: ``jit.glue_options``) that
second pass re-optimised every kernel of the model once per glue function: for the example
transformer, 3.4 of a 21.3 s cold build (17.9 s without it; run time the same, 40-42 ms per
step either way; docs/decisions.md). This skips the module passes for a library whose own
code is glue (seen when its own IR is added, before callees are linked in); everything else,
including a library that only links glue in, is compiled as Numba does.

It patches two methods of Numba's ``CPUCodeLibrary``, once, and only if both are there (a Numba
without them keeps its own behaviour).

>>> install() in (True, False)
True
"""

from __future__ import annotations

import functools


def _has_optnone(module) -> bool:
    # glue functions carry optnone (numba.core.lowering, dbg_optnone)
    return any(not fn.is_declaration and any(b"optnone" in a for a in fn.attributes) for fn in module.functions)


@functools.lru_cache(maxsize=1)
def install() -> bool:
    """Make glue libraries skip the final module optimisation; whether the patch is in place."""
    try:
        from numba.core.codegen import CPUCodeLibrary
    except ImportError:
        return False
    original = getattr(CPUCodeLibrary, "_optimize_final_module", None)
    add = getattr(CPUCodeLibrary, "add_llvm_module", None)
    if original is None or add is None:
        return False

    def add_llvm_module(self, ll_module):
        # the library's own code, before any callee is linked in: a library that merely links
        # glue (a prange loop calling loss_grad) is optimised as usual
        if _has_optnone(ll_module):
            self._symgrad_glue = True
        add(self, ll_module)

    def optimize_final_module(self):
        if getattr(self, "_symgrad_glue", False):
            return  # its callees were optimised in their own libraries; the glue is optnone
        original(self)

    CPUCodeLibrary.add_llvm_module = add_llvm_module
    CPUCodeLibrary._optimize_final_module = optimize_final_module
    return True
