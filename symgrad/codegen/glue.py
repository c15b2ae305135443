"""How generated code names the functions it calls.

A kernel calls another kernel by its name. Glue (the training loop, a deep model's
``loss_grad``: code compiled without LLVM's optimiser, docs/decisions.md) calls it through its
overload twin ``name_c``, made by ``callee()`` in the module header (codegen/scalar.py's
GLUE_HEADER): a direct reference to a Numba dispatcher would stay in the unoptimised code, and
Numba does not cache a function that holds one. The program builder is given one of these two
namers when it is made, so every emitter writes the right call the first time; a glue namer
keeps the twins it handed out, and the function that generated the glue returns them, so that
the module defines exactly those.

>>> g = Glue()
>>> direct("mm"), g("mm"), g("fill0"), g("mm")
('mm', 'mm_c', 'fill0_c', 'mm_c')
>>> print(aliases(g.used))
fill0_c = callee(fill0)
mm_c = callee(mm)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: How one generated function names a function it calls.
Namer = Callable[[str], str]


def direct(name: str) -> str:
    """A kernel's way: by name."""
    return name


class Glue:
    """Glue's way: through the overload twin; ``used`` holds the names it was asked for."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, name: str) -> str:
        self.used.add(name)
        return f"{name}_c"


def aliases(callees: Iterable[str]) -> str:
    """The module's definitions of the twins its glue calls."""
    return "\n".join(f"{n}_c = callee({n})" for n in sorted(callees))
