"""A function's return type from Numba's typing passes alone, without compiling it.

Typing a glue function needs the type of each kernel call in it, and Numba gets that by
compiling the kernel. Where the kernel can be compiled later, by the build helper on another
core (build_helper.py), its type is all the glue needs now: this runs Numba's pipeline up to
type inference and stops. Typing is a small part of a compile once Numba's typing machinery is
warm (6 of 112 ms for the training loop's minibatch slice ``rows``). The compiled kernel's
return type is checked against this one where the call's code is made (shared_kernels.py).

>>> import numba
>>> from numba.core import types
>>> f = numba.njit(lambda a, k: a[:k])
>>> print(return_type(f, (types.float32[::1], types.int64)))
array(float32, 1d, C)
>>> len(f.overloads)  # nothing was compiled
0
"""

from __future__ import annotations

import functools


class _Typed(Exception):
    def __init__(self, return_type):
        self.return_type = return_type


@functools.cache
def _pipeline():
    """Numba's nopython pipeline up to type inference, which then stops by raising ``_Typed``."""
    from numba.core import compiler, typed_passes
    from numba.core.compiler_machinery import FunctionPass, register_pass

    @register_pass(mutates_CFG=False, analysis_only=True)
    class StopAfterTyping(FunctionPass):
        _name = "symgrad_stop_after_typing"

        def __init__(self):
            FunctionPass.__init__(self)

        def run_pass(self, state):
            raise _Typed(state.return_type)

    class TypingOnly(compiler.CompilerBase):
        def define_pipelines(self):
            pm = compiler.DefaultPassBuilder.define_untyped_pipeline(self.state)
            pm.add_pass(typed_passes.NopythonTypeInference, "nopython frontend")
            pm.add_pass(StopAfterTyping, "stop after typing")
            pm.finalize()
            return [pm]

    return TypingOnly


def return_type(dispatcher, argtypes: tuple):
    """The type ``dispatcher`` (a Numba ``njit`` function) returns for ``argtypes``, with its
    own options (error model, fastmath), found without compiling it."""
    from numba.core import compiler

    flags = compiler.Flags()
    dispatcher.targetdescr.options.parse_as_flags(flags, dispatcher.targetoptions)
    try:
        compiler.compile_extra(dispatcher.typingctx, dispatcher.targetctx, dispatcher.py_func, argtypes, None,
                               flags, {}, pipeline_class=_pipeline())
    except _Typed as typed:
        return typed.return_type
    raise RuntimeError(f"Numba's typing of {dispatcher.py_func.__name__} did not stop after type inference")
