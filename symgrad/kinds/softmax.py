"""The softmax family: softmax as a vector op, logsumexp, and softmax cross-entropy fused with
its gradient (softmax(z) − t), each computed with the row maximum subtracted first."""

from __future__ import annotations

import sympy as sp

from ..derive.ir import TNode
from ..errors import ShapeError, UnsupportedModelError
from ..explain.notation import Jacobian, MatProd, Tr, call, named, operand, sym
from ..lang.functions import logsumexp, softmax, softmax_ce
from .base import Kind, register

HELPERS = '''
@jit
def softmax_ce_bwd(dout, p, t, dz):
    # the fused rule: d/dz [logsumexp(z) - t.z] = softmax(z) - t
    for i in range(dz.shape[0]):
        g = dout[i, 0]
        for j in range(dz.shape[1]):
            dz[i, j] += g * (p[i, j] - t[i, j])


@jit
def softmax_bwd(p, dp, dz):
    # d softmax: dz = p * (dp - sum(dp * p)), row by row
    for i in range(p.shape[0]):
        s = F(0.0)
        for j in range(p.shape[1]):
            s = radd(s, dp[i, j] * p[i, j])
        for j in range(p.shape[1]):
            dz[i, j] += p[i, j] * (dp[i, j] - s)


@jit
def scale_rows_add(dout, p, dz):
    for i in range(dz.shape[0]):
        g = dout[i, 0]
        for j in range(dz.shape[1]):
            dz[i, j] += g * p[i, j]


@jit
def logsumexp_fwd(z, out, p):
    # the row max is subtracted first: finite for any logits; p gets softmax(z). exp and log
    # each run in one loop over the whole batch, which vectorises where a row of a few classes
    # does not (2-2.8x faster measured)
    B, n = z.shape
    for i in range(B):
        m = z[i, 0]
        for j in range(n):
            m = max(m, z[i, j])
        out[i, 0] = m
        for j in range(n):
            p[i, j] = z[i, j] - m
    pf = p.reshape(-1)
    for k in range(pf.shape[0]):
        pf[k] = vm.exp(pf[k])
    s = np.empty(B, dtype=F)
    for i in range(B):
        acc = F(0.0)
        for j in range(n):
            acc = radd(acc, p[i, j])
        s[i] = acc
        for j in range(n):
            p[i, j] /= acc
    of = out.reshape(-1)
    for i in range(B):
        of[i] += vm.log(s[i])


@jit
def softmax_ce_fwd(z, t, out, p):
    # logsumexp(z) - t.z
    logsumexp_fwd(z, out, p)
    for i in range(z.shape[0]):
        dot = F(0.0)
        for j in range(z.shape[1]):
            dot = radd(dot, t[i, j] * z[i, j])
        out[i, 0] -= dot
'''


def _fresh(n: int) -> list[sp.Symbol]:
    return [sp.Symbol(f"_b{k}", real=True) for k in range(n)]


@register
class Softmax(Kind):
    name = "softmax"
    lowers = (softmax,)
    helpers = HELPERS

    def lower(self, lowerer, e: softmax) -> TNode:
        z = lowerer.matrix(e.args[0])
        if z.shape[1] != 1 or not z.batched:
            raise UnsupportedModelError(f"softmax needs a per-sample column vector, got {z.shape} in {e}")
        return lowerer._add(TNode("softmax", "", z.shape, True, [z]), e)

    def forward(self, prog, n) -> list[str]:
        (z,) = n.inputs
        return prog.decl(n.name, n) + prog.decl(f"{n.name}_lse", TNode("sum", "", (1, 1), True)) + [
            f"    {prog.fn('logsumexp_fwd')}({prog.v(z)}, {n.name}_lse, {n.name})"]

    def backward(self, prog, n) -> list[str]:
        (z,) = n.inputs
        return [f"    {prog.fn('softmax_bwd')}({n.name}, {prog.d(n)}, {prog.d(z)})"]

    def delta(self, c, n) -> None:
        if named(n):  # p ⊙ (δ_p − pᵀ·δ_p)
            p, dp = sym(n.label), sym(f"δ_{n.label}")
            c.add(n.inputs[0], p * (dp - MatProd(Tr(p), dp)))
        else:
            c.add(n.inputs[0], MatProd(Jacobian(sym("softmax")), c.ref(n)))

    def tangent(self, b, n, ins):
        # dp = p ⊙ (dz − Σ p ⊙ dz)
        (tz,) = ins
        p, dz, s = _fresh(3)
        pdz = b.map(p * dz, {p: n, dz: tz}, n, f"d{n.label}_pz")
        tot = b.add("sum", (1, 1), n.batched, [pdz], f"d{n.label}_s")
        return b.map(p * (dz - s), {p: n, dz: tz, s: tot}, n, f"d{n.label}")


def _probabilities(b, n) -> TNode:
    z = n.inputs[0]
    if not z.batched:
        raise UnsupportedModelError(f"Hessian-vector products of {n.kind} need per-sample logits ({n.label})")
    return b.add("softmax", z.shape, True, [z], f"softmax({z.label})")


class _RowReduction(Kind):
    """One value per sample from a row of logits (and a target): logsumexp, softmax CE."""

    helpers = HELPERS

    def lower(self, lowerer, e: sp.Basic) -> TNode:
        ins = [lowerer.matrix(a) for a in e.args]
        if len(ins) == 2 and ins[0].shape != ins[1].shape:
            raise ShapeError(f"{self.name} logits {ins[0].shape} and target {ins[1].shape} differ")
        shared = [what for what, i in zip(("logits", "target"), ins) if not i.batched]
        if shared:  # its kernels read row i of each: a parameter has one row, and was read out of bounds
            raise UnsupportedModelError(
                f"{self.name}({', '.join(map(str, e.args))}): the {' and '.join(shared)} must be one per sample "
                f"(computed from the data), not a parameter shared by every sample. Fix: make the "
                f"{shared[0]} data, or compute it from the data (e.g. W*x + b).")
        return lowerer._add(TNode(self.name, "", (1, 1), any(i.batched for i in ins), ins), e)

    def _sum_of(self, b, n, term: sp.Expr, lanes: dict) -> TNode:
        """The tangent Σ term over the row: a map of the logits' shape, then a sum."""
        terms = b.map(term, lanes, n.inputs[0], f"d{n.label}_terms")
        return b.add("sum", n.shape, n.batched, [terms], f"d{n.label}")


@register
class LogSumExp(_RowReduction):
    name = "logsumexp"
    lowers = (logsumexp,)

    def forward(self, prog, n) -> list[str]:
        (z,) = n.inputs
        return prog.decl(n.name, n) + prog.decl(f"{n.name}_p", z) + [
            f"    {prog.fn('logsumexp_fwd')}({prog.v(z)}, {n.name}, {n.name}_p)"]

    def backward(self, prog, n) -> list[str]:
        (z,) = n.inputs
        return [f"    {prog.fn('scale_rows_add')}({prog.d(n)}, {n.name}_p, {prog.d(z)})"]

    def delta(self, c, n) -> None:
        c.add(n.inputs[0], c.ref(n) * call("softmax", operand(n.inputs[0])))

    def tangent(self, b, n, ins):
        # d lse(z) = softmax(z)·dz
        p, dz = _fresh(2)
        return self._sum_of(b, n, p * dz, {p: _probabilities(b, n), dz: ins[0]})


@register
class SoftmaxCE(_RowReduction):
    name = "softmax_ce"
    lowers = (softmax_ce,)

    def forward(self, prog, n) -> list[str]:
        z, t = n.inputs
        return prog.decl(n.name, n) + prog.decl(f"{n.name}_p", z) + [
            f"    {prog.fn('softmax_ce_fwd')}({prog.v(z)}, {prog.v(t)}, {n.name}, {n.name}_p)"]

    def backward(self, prog, n) -> list[str]:
        z, t = n.inputs
        lines = []
        if id(z) in prog.need:  # the fused rule: d/dz = softmax(z) - t
            lines.append(f"    {prog.fn('softmax_ce_bwd')}({prog.d(n)}, {n.name}_p, {prog.v(t)}, {prog.d(z)})")
        if id(t) in prog.need:
            lines += ["    for i in range(B):", "        for j in range(%s.shape[1]):" % prog.v(z),
                      f"            {prog.d(t)}[i, j] -= {prog.d(n)}[i, 0] * {prog.v(z)}[i, j]"]
        return lines

    def delta(self, c, n) -> None:
        z, t = n.inputs
        c.add(z, c.ref(n) * (call("softmax", operand(z)) - operand(t)))

    def tangent(self, b, n, ins):
        # d [lse(z) − t·z] = (softmax(z) − t)·dz − z·dt
        p, t, dz, dt, zz = _fresh(5)
        term, lanes = sp.S.Zero, {p: _probabilities(b, n), t: n.inputs[1], zz: n.inputs[0]}
        if ins[0] is not None:
            term, lanes[dz] = (p - t) * dz, ins[0]
        if ins[1] is not None:
            term, lanes[dt] = term - zz * dt, ins[1]
        return self._sum_of(b, n, term, lanes)
