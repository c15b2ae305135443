"""The contraction: a matrix product, one BLAS call forward and one per operand backward."""

from __future__ import annotations

import sympy as sp

from ..derive.ir import _lane
from ..derive.simplify import tidy
from ..explain.notation import factor, sym
from ..explain.printing import text
from .base import Kind, register


def _operands(prog, n):
    (a, b), (ta, tb) = n.inputs, n.trans
    A = prog.mat(a, prog.v(a)) + (".T" if ta else "")
    Bm = prog.mat(b, prog.v(b)) + (".T" if tb else "")
    return a, b, A, Bm


@register
class MatMul(Kind):
    name = "matmul"

    def forward(self, prog, n) -> list[str]:
        a, b, A, Bm = _operands(prog, n)
        if not a.batched and b.batched:  # W @ x for every sample x: X @ W.T
            return prog.decl(n.name, n) + [f"    {prog.fn('mm')}({Bm}, {A}.T, {n.name})"]
        expr = f"np.dot({A}, {Bm})"
        return [f"    {n.name} = {expr}" + ("" if n.batched else ".reshape(-1)")]

    def backward(self, prog, n) -> list[str]:
        a, b, A, Bm = _operands(prog, n)
        (ta, tb), dn = n.trans, prog.d(n)
        lines: list[str] = []
        da = prog.dmat(a, lines) if id(a) in prog.need else ""
        db = prog.dmat(b, lines) if id(b) in prog.need else ""
        if not a.batched and b.batched:  # out = X @ Aeff.T
            if id(b) in prog.need:
                lines.append(prog.acc(b, db, f"{dn}, {A}"))
            if id(a) in prog.need:
                lines.append(prog.acc(a, da, f"{prog.v(b)}.T, {dn}" if ta else f"{dn}.T, {prog.v(b)}"))
            return lines
        dn2 = dn if n.batched else prog.mat(n, dn)
        if id(a) in prog.need:
            mm_acc = prog.fn("mm_acc")
            lines.append(f"    {mm_acc}({Bm}, {dn2}.T, {da})" if ta else f"    {mm_acc}({dn2}, {Bm}.T, {da})")
        if id(b) in prog.need:
            mm_acc = prog.fn("mm_acc")
            lines.append(f"    {mm_acc}({dn2}.T, {A}, {db})" if tb else f"    {mm_acc}({A}.T, {dn2}, {db})")
        return lines

    def writes_whole(self, m, n) -> bool:
        # the batch operand of parameter x sample: one product writes its whole adjoint
        return m.inputs[1] is n and m.inputs[0] is not n and not m.inputs[0].batched

    def delta(self, c, n) -> None:
        # out = A·B with A = a or aᵀ, B = b or bᵀ: δA = δ·Bᵀ, δB = Aᵀ·δ, and δa = (δA)ᵀ when A = aᵀ
        (a, ta), (b, tb) = zip(n.inputs, n.trans)
        dn = f"({text(tidy(c.ref(n)), mul=' ⊙ ', power='^')})"  # the formulas' notation; δ_z when named
        c.add(a, sym(f"{factor(b.label, tb)}·{dn}ᵀ" if ta else f"{dn}·{factor(b.label, not tb)}"))
        c.add(b, sym(f"{dn}ᵀ·{factor(a.label, ta)}" if tb else f"{factor(a.label, not ta)}·{dn}"))

    def show(self, n) -> sp.Expr:
        a, b = n.inputs
        return sym(f"{factor(a.label, n.trans[0])}·{factor(b.label, n.trans[1])}")

    def tangent(self, b, n, ins):
        # d(AB) = dA·B + A·dB
        (a, c), (ta, tc) = n.inputs, ins
        label = f"d{n.label}"
        terms = [b.add("matmul", n.shape, n.batched, [x, z], label, trans=n.trans)
                 for x, z, t in ((ta, c, ta), (a, tc, tc)) if t is not None]
        if len(terms) == 1:
            return terms[0]
        s0, s1 = _lane(0), _lane(1)
        return b.add("map", n.shape, n.batched, terms, label, body=s0 + s1, lanes=(s0, s1),
                     partials=(sp.S.One, sp.S.One))
