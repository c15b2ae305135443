"""The self-attention kind: multi-head scaled dot-product attention as one node.

Forward, the projections ``Q = X·Wq``, ``K = X·Wk``, ``V = X·Wv`` are one BLAS product each
over every position of the minibatch, then per sample and head ``P = softmax(Q·Kᵀ/√d_h)`` (the
row maximum subtracted; causal: 0 above the diagonal) and ``O = P·V``, and the output ``O·Wo``
is one product again. Q, K, V, P and O are saved for the backward pass, which runs the rules
of ``explain.attention``: δ_O = δ·Woᵀ, δ_V = Pᵀ·δ_O, δ_P = δ_O·Vᵀ, δ_S = P ⊙ (δ_P − rowsum(δ_P ⊙ P)),
δ_Q = δ_S·K/√d_h, δ_K = δ_Sᵀ·Q/√d_h, then ∂ℓ/∂W = Xᵀ·δ (Oᵀ·δ for Wo) and δ_X = Σ δ·Wᵀ.
The kernels live in symgrad/native/attention.py, compiled once per machine; the node's ``geom``
is (T, d, heads, causal).
"""

from __future__ import annotations

import sympy as sp

from ..derive.ir import TNode
from ..errors import UnsupportedModelError
from ..explain.attention import deltas, forward
from ..explain.notation import MatProd, Tr, show
from ..lang.attention import attention
from .base import Kind, native, register

#: The generated module only imports the kernels (as the image kinds do: ``pool.IMAGES``, ``conv.CONVOLVE``).
ATTENTION = native("attention")
EMPTY = "np.empty((0, 0), dtype=F)"  # the adjoint of an input nobody needs


def number(n: TNode) -> str:
    """The layer's number, which its Q, K, V, ... carry: the digits its Wq ends in (Wq1: 1)."""
    for label in (n.inputs[1].label, n.label):
        digits = label[len(label.rstrip("0123456789")):]
        if digits:
            return digits
    return ""


@register
class Attention(Kind):
    name = "attention"
    lowers = (attention,)
    helpers = ATTENTION

    def lower(self, lowerer, e: attention) -> TNode:
        x, *w = (lowerer.matrix(a) for a in e.args[:5])
        if not x.batched:
            raise UnsupportedModelError(
                f"{e}: attention takes a sequence that depends on the data, got {x.label}, the same for every "
                "sample. Fix: attend over the input (x in data=[...]) or a layer of it.")
        batched = [name for name, m in zip(("Wq", "Wk", "Wv", "Wo"), w) if m.batched]
        if batched:
            raise UnsupportedModelError(
                f"{e}: the weights {', '.join(batched)} depend on the data; attention's weights are parameters. "
                "Fix: put them in wrt=[...], not data=[...].")
        return lowerer._add(TNode("attention", "", (int(e.shape[0]), 1), True, [x, *w], geom=e.geometry), e)

    def forward(self, prog, n) -> list[str]:
        x, *w = n.inputs
        T, d, heads, _ = n.geom
        saved = {s: TNode("attention", "", (T * d, 1), True) for s in "qkvo"}  # (B, T·d) each
        saved["p"] = TNode("attention", "", (heads * T * T, 1), True)
        lines = prog.decl(n.name, n) + sum((prog.decl(f"{n.name}_{s}", m) for s, m in saved.items()), [])
        ws = ", ".join(prog.mat(m, prog.v(m)) for m in w)
        keep = ", ".join(f"{n.name}_{s}" for s in "qkvpo")
        return lines + [f"    attention.attention_fwd({prog.v(x)}, {ws}, {n.name}, {keep}, {prog.geom(n)})"]

    def backward(self, prog, n) -> list[str]:
        x, *w = n.inputs
        lines: list[str] = []
        dw = [prog.dmat(m, lines) if id(m) in prog.need else EMPTY for m in w]
        dx = prog.d(x) if id(x) in prog.need else EMPTY
        assign = 0 in prog.assigned(n, [id(x) in prog.need, False, False, False, False])
        ws = ", ".join(prog.mat(m, prog.v(m)) for m in w)
        keep = ", ".join(f"{n.name}_{s}" for s in "qkvpo")
        return lines + [f"    attention.attention_bwd({prog.v(x)}, {ws}, {keep}, {prog.d(n)}, {dx}, {', '.join(dw)}, "
                        f"{prog.geom(n)}, {assign})"]

    def writes_whole(self, m, n) -> bool:
        return n is m.inputs[0] and all(w is not n for w in m.inputs[1:])  # δ_X, once

    def delta(self, c, n) -> None:
        x, wq, wk, wv, wo = n.inputs
        dq, dk, dv = deltas(number(n))
        X = show(x)
        c.add(wo, MatProd(Tr(sp.Symbol(f"O{number(n)}", real=True)), c.ref(n)))
        for W, dw in ((wv, dv), (wk, dk), (wq, dq)):
            c.add(W, MatProd(Tr(X), dw))
        c.add(x, MatProd(dq, Tr(show(wq))) + MatProd(dk, Tr(show(wk))) + MatProd(dv, Tr(show(wv))))

    def show(self, n) -> sp.Expr:
        x, *w = n.inputs
        T, d, heads, causal = n.geom
        return forward(show(x), [show(m) for m in w], number(n), heads, d // heads, bool(causal))

    def tangent(self, b, n, ins):
        raise UnsupportedModelError(
            f"no Hessian-vector rule through attention ({n.label}) yet. Fix: train with a first-order optimizer "
            "(sg.fit, f.grad), or estimate H·v by a difference of two gradients.")
