"""Reductions to one value per sample: the sum of a matrix, and one element of it."""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

from ..derive.ir import TNode, _lane
from ..errors import ShapeError
from ..lang.functions import bce_sum, msum
from ..lang.ops import bce_logits
from .base import Kind, register


@register
class Sum(Kind):
    name = "sum"
    lowers = (msum, bce_sum)

    def lower(self, lowerer, e: sp.Basic) -> TNode:
        if isinstance(e, msum):
            inner = lowerer.matrix(e.args[0])
        else:  # bce_sum(z, t): the sum of the stable elementwise BCE on logits
            z, t = (lowerer.matrix(a) for a in e.args)
            if z.shape != t.shape:
                raise ShapeError(f"bce logits {z.shape} and target {t.shape} differ")
            inner = lowerer._map_node(sp.Tuple(e, 0), [z, t], (_lane(0), _lane(1)),
                                      bce_logits(_lane(0), _lane(1)), z.shape)
        return lowerer._add(TNode("sum", "", (1, 1), inner.batched, [inner]), e)

    def forward(self, prog, n) -> list[str]:
        (a,) = n.inputs
        if not n.batched:
            return [f"    {n.name} = np.empty(1, dtype=F)", f"    {n.name}[0] = {prog.v(a)}.sum()"]
        return prog.decl(n.name, n) + ["    for i in range(B):", "        acc = F(0.0)",
                                       f"        for j in range({prog.v(a)}.shape[1]):",
                                       f"            acc = radd(acc, {prog.v(a)}[i, j])",
                                       f"        {n.name}[i, 0] = acc"]

    def backward(self, prog, n) -> list[str]:
        (a,) = n.inputs
        if not n.batched:
            # loops, not slice arithmetic: Numba's array-into-slice assignment costs seconds to compile
            return [f"    for j in range({prog.dflat(a)}.shape[0]):", f"        {prog.dflat(a)}[j] += {prog.d(n)}[0]"]
        return ["    for i in range(B):", f"        for j in range({prog.d(a)}.shape[1]):",
                f"            {prog.d(a)}[i, j] += {prog.d(n)}[i, 0]"]

    def delta(self, c, n) -> None:
        c.add(n.inputs[0], c.ref(n))

    def tangent(self, b, n, ins):
        return b.add("sum", n.shape, n.batched, [ins[0]], f"d{n.label}")


@register
class Select(Kind):
    name = "select"
    lowers = (MatrixElement,)

    def lower(self, lowerer, e: MatrixElement) -> TNode:
        inner = lowerer.matrix(e.parent)
        idx = int(e.i) * inner.shape[1] + int(e.j)
        return lowerer._add(TNode("select", "", (1, 1), inner.batched, [inner], index=idx), e)

    def forward(self, prog, n) -> list[str]:
        (a,) = n.inputs
        src = (f"{prog.v(a)}[:, {n.index}:{n.index + 1}]" if n.batched
               else f"{prog.flat(a, prog.v(a))}[{n.index}:{n.index + 1}]")
        return [f"    {n.name} = np.ascontiguousarray({src})"]

    def backward(self, prog, n) -> list[str]:
        (a,) = n.inputs
        if n.batched:
            return ["    for i in range(B):", f"        {prog.d(a)}[i, {n.index}] += {prog.d(n)}[i, 0]"]
        return [f"    {prog.dflat(a)}[{n.index}] += {prog.d(n)}[0]"]

    def delta(self, c, n) -> None:
        c.add(n.inputs[0], c.ref(n))

    def tangent(self, b, n, ins):
        return b.add("select", n.shape, n.batched, [ins[0]], f"d{n.label}", index=n.index)
