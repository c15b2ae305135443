"""The closed set of tensor kinds: one class per IR node kind, registered in one table.

A kind holds every stage's rule for its node, so that adding one (a convolution, attention) is
adding one class:

- ``lowers`` / ``lower``: the SymPy classes it lowers and how (the structural kinds, map and
  matmul, are lowered by ``derive.ir.Lowerer`` itself from ``MatAdd``, ``MatMul``, ...);
- ``forward`` / ``backward``: the Numba statements of its forward pass and of its adjoint
  (``codegen.program.Program`` gives names, buffers and the kernels of elementwise maps); a
  call of a generated function is written ``prog.fn(name)``, which is the name itself in a
  kernel and the overload twin in glue (``codegen/glue.py``; ``tests/test_glue_calls.py``
  checks every kind);
- ``delta``: its delta rule for the printed formulas (``explain.network``), and ``show``: how
  its value prints;
- ``tangent``: its forward-mode rule, for Hessian-vector products (``derive.tangent``);
- ``helpers``: Numba source it calls, emitted once per module that uses the kind.
"""

from __future__ import annotations

from typing import ClassVar

import sympy as sp


class Kind:
    """Base of every tensor kind; a subclass sets ``name`` and overrides what applies."""

    name: ClassVar[str] = ""
    lowers: ClassVar[tuple[type, ...]] = ()
    helpers: ClassVar[str] = ""

    def lower(self, lowerer, e: sp.Basic):
        raise NotImplementedError(f"kind {self.name!r} lowers nothing by itself")

    def forward(self, prog, n) -> list[str]:
        raise NotImplementedError(f"kind {self.name!r} has no forward emitter")

    def backward(self, prog, n) -> list[str]:
        raise NotImplementedError(f"kind {self.name!r} has no backward emitter")

    def writes_whole(self, m, n) -> bool:
        """Whether node m (of this kind) writes every element of input n's adjoint, once."""
        return False

    def delta(self, c, n) -> None:
        raise NotImplementedError(f"kind {self.name!r} has no delta rule")

    def show(self, n) -> sp.Expr:
        from ..explain.notation import call, operand  # the notation reads this table: import when used

        return call(n.kind, *(operand(i) for i in n.inputs))

    def tangent(self, b, n, ins):
        from ..errors import UnsupportedModelError

        raise UnsupportedModelError(
            f"no Hessian-vector rule through {self.name} ({n.label}) yet. Fix: train with a first-order optimizer "
            "(sg.fit, f.grad), or estimate H·v by a difference of two gradients.")


#: name -> the kind's one instance, in registration order (the order helpers are emitted in)
KINDS: dict[str, Kind] = {}


def register(cls: type[Kind]) -> type[Kind]:
    """Class decorator: add a kind to the table (a kind of the same name is replaced)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name")
    KINDS[cls.name] = cls()
    return cls


def native(module: str) -> str:
    """A kind's ``helpers`` when its loops live in ``symgrad/native/<module>.py``, compiled once
    per machine: the generated module only imports them."""
    return f"\nfrom symgrad.native import {module}\n"


def lowering_kind(e: sp.Basic) -> Kind | None:
    """The registered kind that lowers SymPy object ``e`` itself, if any."""
    for k in KINDS.values():
        if k.lowers and isinstance(e, k.lowers):
            return k
    return None
