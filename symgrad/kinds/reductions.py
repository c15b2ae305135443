"""Reductions to one value per sample: the sum of a matrix, and one element of it."""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

from ..derive.ir import TNode, _lane
from ..errors import ShapeError
from ..lang.functions import bce_sum, msum
from ..lang.ops import bce_logits
from .base import Kind, register

# Kernels, not statements: a training loop compiled as glue (not optimised) would run these
# loops at ~15 ns per element.
SUMS = '''
@jit
def row_sums(a, out):
    # out[i, 0] = the sum of row i
    for i in range(a.shape[0]):
        acc = F(0.0)
        for j in range(a.shape[1]):
            acc = radd(acc, a[i, j])
        out[i, 0] = acc


@jit
def add_rows(dout, da):
    # the adjoint of row sums: da[i, j] += dout[i, 0]
    for i in range(da.shape[0]):
        for j in range(da.shape[1]):
            da[i, j] += dout[i, 0]


@jit
def add_all(da, g):
    # the adjoint of a sum of every entry: da[j] += g
    for j in range(da.shape[0]):
        da[j] += g


@jit
def add_column(dout, da, c):
    # the adjoint of column c: da[i, c] += dout[i, 0]
    for i in range(da.shape[0]):
        da[i, c] += dout[i, 0]

'''


@register
class Sum(Kind):
    name = "sum"
    lowers = (msum, bce_sum)
    helpers = SUMS

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
        return prog.decl(n.name, n) + [f"    {prog.fn('row_sums')}({prog.v(a)}, {n.name})"]

    def backward(self, prog, n) -> list[str]:
        (a,) = n.inputs
        if not n.batched:
            # a kernel, not slice arithmetic: Numba's array-into-slice assignment costs seconds to compile
            return [f"    {prog.fn('add_all')}({prog.dflat(a)}, {prog.d(n)}[0])"]
        return [f"    {prog.fn('add_rows')}({prog.d(n)}, {prog.d(a)})"]

    def delta(self, c, n) -> None:
        c.add(n.inputs[0], c.ref(n))

    def show(self, n) -> sp.Expr:
        from ..explain.notation import operand  # the notation reads this table: import when used

        # Σ(v13), as the loss line prints the same sum; not sum(v13)
        return msum(sp.MatrixSymbol(str(operand(n.inputs[0])), *n.inputs[0].shape))

    def tangent(self, b, n, ins):
        return b.add("sum", n.shape, n.batched, [ins[0]], f"d{n.label}")


@register
class Select(Kind):
    name = "select"
    lowers = (MatrixElement,)
    helpers = SUMS

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
            return [f"    {prog.fn('add_column')}({prog.d(n)}, {prog.d(a)}, {n.index})"]
        return [f"    {prog.dflat(a)}[{n.index}] += {prog.d(n)}[0]"]

    def delta(self, c, n) -> None:
        c.add(n.inputs[0], c.ref(n))

    def show(self, n) -> sp.Expr:
        from ..explain.notation import operand  # the notation reads this table: import when used

        (a,) = n.inputs  # s[0, 0], as the user wrote it (not select(s))
        return sp.Symbol(f"{operand(a)}[{', '.join(map(str, divmod(n.index, a.shape[1])))}]", real=True)

    def tangent(self, b, n, ins):
        return b.add("select", n.shape, n.batched, [ins[0]], f"d{n.label}", index=n.index)
