"""The contraction: a matrix product, one BLAS call forward and one per operand backward."""

from __future__ import annotations

import sympy as sp

from ..derive.ir import _lane
from ..derive.simplify import tidy
from ..explain.notation import MatProd, Tr, operand
from .base import Kind, register


def _operands(prog, n):
    (a, b), (ta, tb) = n.inputs, n.trans
    A = prog.mat(a, prog.v(a)) + (".T" if ta else "")
    Bm = prog.mat(b, prog.v(b)) + (".T" if tb else "")
    return a, b, A, Bm


def _side(x, transposed: bool) -> sp.Expr:
    return Tr(operand(x)) if transposed else operand(x)


def _tr(e: sp.Expr) -> sp.Expr:
    return e.args[0] if isinstance(e, Tr) else Tr(e)


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
        dn = tidy(c.ref(n))  # δ_z when the product is a named layer
        A, B = (_side(x, t) for x, t in zip(n.inputs, n.trans))
        c.add(a, MatProd(B, Tr(dn)) if ta else MatProd(dn, _tr(B)))
        c.add(b, MatProd(Tr(dn), A) if tb else MatProd(_tr(A), dn))

    def show(self, n) -> sp.Expr:
        return MatProd(*(_side(x, t) for x, t in zip(n.inputs, n.trans)))

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
