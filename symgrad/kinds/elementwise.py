"""The elementwise map: a scalar SymPy body applied to its lanes, element by element."""

from __future__ import annotations

import sympy as sp

from ..derive.ir import OUT
from ..explain.notation import show
from .base import Kind, register


@register
class Map(Kind):
    name = "map"

    def forward(self, prog, n) -> list[str]:
        k = prog.kernels.forward(n)
        args = [prog.flat(i, prog.v(i)) for i in n.inputs]
        return prog.decl(n.name, n) + [f"    {prog.fn(k)}({', '.join(args + [n.name, *prog.map_constants(n)])})"]

    def backward(self, prog, n) -> list[str]:
        need = [id(i) in prog.need for i in n.inputs]
        k = prog.kernels.backward(n, need, assign=prog.assigned(n, need))
        return [f"    {prog.fn(k)}({prog.map_args(n, need, [n.name, prog.d(n)])})"]

    def writes_whole(self, m, n) -> bool:
        # a lane of the map's own shape (a narrower lane is broadcast; its adjoint is a sum)
        return m.batched and m.length == n.length

    def delta(self, c, n) -> None:
        from ..explain.norms import SumOverEntries  # the notation reads this table: import when used

        d = c.ref(n)
        for k, i in enumerate(n.inputs):
            local = c.local(n, k)
            if local == 0:  # printed as a term 0·v6ᵀ of the input's delta
                continue
            # a number every entry shares (s of s·z, a broadcast lane): its adjoint sums the entries'
            c.add(i, SumOverEntries(d * local) if i.length == 1 < n.length else d * local)

    def show(self, n) -> sp.Expr:
        return n.body.xreplace({s: show(i) for s, i in zip(n.lanes, n.inputs)})

    def tangent(self, b, n, ins):
        # d f(x1..xk) = Σ ∂f/∂xi · dxi, the partials through the node's own output y where
        # map_partials wrote them so (sigmoid' = y(1 - y)): y becomes one more lane
        ts = [sp.Symbol(f"_t{k}", real=True) for k in range(len(ins))]
        y = sp.Symbol("_y", real=True)
        body = sp.Add(*[p.xreplace({OUT: y}) * t for p, t, ti in zip(n.partials, ts, ins) if ti is not None])
        lanes = {**dict(zip(n.lanes, n.inputs)), y: n, **{t: ti for t, ti in zip(ts, ins) if ti is not None}}
        return b.map(body, lanes, n, f"d{n.label}")
