"""The embedding kind: ``h = E[ids] (+ P)``, a gather forward and a scatter-add backward.

Forward, row ``id_t`` of the table E (plus row t of the positional embedding P) is copied to
position t of the output sequence, each id checked to be a whole number in [0, vocab) first (a
``TokenIdError`` naming the fix otherwise). Backward, ``∂ℓ/∂E[k] = Σ_{t: id_t = k} δ_h[t]``
(repeated ids accumulate) and ``∂ℓ/∂P = δ_h``; the ids get no gradient (they are data, and the
output is piecewise constant in them). The kernels live in symgrad/native/embedding.py, compiled
once per machine; the node's ``geom`` is (T, d, vocab, positional).
"""

from __future__ import annotations

import sympy as sp

from ..derive.ir import TNode
from ..errors import UnsupportedModelError
from ..explain.embedding import ScatterRows, forward
from ..explain.notation import show
from ..lang.embedding import embedding
from .base import Kind, native, register

#: The generated module only imports the kernels (as the attention kind does).
EMBEDDING = native("embedding")
EMPTY = "np.empty((0, 0), dtype=F)"  # the adjoint of an input nobody needs


@register
class Embedding(Kind):
    name = "embedding"
    lowers = (embedding,)
    helpers = EMBEDDING

    def lower(self, lowerer, e: embedding) -> TNode:
        E, ids, P = e.args[:3]
        table, idx = lowerer.matrix(E), lowerer.matrix(ids)
        if not idx.batched:
            raise UnsupportedModelError(
                f"{e}: the token ids {ids} are the same for every sample; they must come from the data. "
                "Fix: put them in data=[...] (the input x of a Sequential).")
        inputs = [table, idx] + ([lowerer.matrix(P)] if e.positional else [])
        batched = [str(a) for a, m in zip((E, P), inputs[:1] + inputs[2:]) if m.batched]
        if batched:
            raise UnsupportedModelError(
                f"{e}: {', '.join(batched)} depend on the data; the embedding table and the positional embedding "
                "are parameters. Fix: put them in wrt=[...], not data=[...].")
        return lowerer._add(TNode("embedding", "", (int(e.shape[0]), 1), True, inputs, geom=e.geometry), e)

    def forward(self, prog, n) -> list[str]:
        table, idx, *pos = n.inputs
        P = prog.mat(pos[0], prog.v(pos[0])) if pos else EMPTY
        return prog.decl(n.name, n) + [
            f"    embedding.embedding_fwd({prog.v(idx)}, {prog.mat(table, prog.v(table))}, {P}, {n.name}, {prog.geom(n)})"]

    def backward(self, prog, n) -> list[str]:
        table, idx, *pos = n.inputs
        lines: list[str] = []
        dE = prog.dmat(table, lines) if id(table) in prog.need else EMPTY
        dP = prog.dmat(pos[0], lines) if pos and id(pos[0]) in prog.need else EMPTY
        return lines + [f"    embedding.embedding_bwd({prog.v(idx)}, {prog.d(n)}, {dE}, {dP}, {prog.geom(n)})"]

    def delta(self, c, n) -> None:
        table, idx, *pos = n.inputs
        c.add(table, ScatterRows(show(idx), c.ref(n)))
        if pos:
            c.add(pos[0], c.ref(n))

    def show(self, n) -> sp.Expr:
        table, idx, *pos = n.inputs
        return forward(show(table), show(idx), show(pos[0]) if pos else sp.S.Zero)

    def tangent(self, b, n, ins):
        raise UnsupportedModelError(
            f"no Hessian-vector rule through an embedding ({n.label}) yet. Fix: train with a first-order optimizer "
            "(sg.fit, f.grad), or estimate H·v by a difference of two gradients.")
