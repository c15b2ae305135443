"""The next-token cross-entropy kind: ``token_ce(Z, y)``, a softmax cross-entropy at each position.

Forward, each position's logits give ``logsumexp(z_t) − z_t[y_t]`` and the sample's loss is their
mean; backward, the fused rule ``δ_z_t = (softmax(z_t) − onehot(y_t))/T`` (finite for any logits).
The ids get no gradient (data; the loss is piecewise constant in them). The kernels live in
symgrad/native/tokens.py, compiled once per machine; the node's ``geom`` is (T, V).
"""

from __future__ import annotations

from ..derive.ir import TNode
from ..errors import UnsupportedModelError
from ..explain.notation import call, sym
from ..lang.tokens import token_ce
from .base import Kind, native, register


@register
class TokenCE(Kind):
    name = "token_ce"
    lowers = (token_ce,)
    helpers = native("tokens")

    def lower(self, lowerer, e: token_ce) -> TNode:
        z, y = (lowerer.matrix(a) for a in e.args)
        if not y.batched:
            raise UnsupportedModelError(f"{e}: the target ids {e.args[1]} must come from the data. Fix: put them in "
                                        "data=[...] (fit passes them as Y).")
        return lowerer._add(TNode(self.name, "", (1, 1), True, [z, y], geom=(e.positions, e.vocab)), e)

    def forward(self, prog, n) -> list[str]:
        z, y = n.inputs
        return prog.decl(n.name, n) + prog.decl(f"{n.name}_p", z) + [
            f"    tokens.token_ce_fwd({prog.v(z)}, {prog.v(y)}, {n.name}, {n.name}_p, {prog.geom(n)})"]

    def backward(self, prog, n) -> list[str]:
        z, y = n.inputs
        if id(z) not in prog.need:
            return []
        return [f"    tokens.token_ce_bwd({prog.d(n)}, {n.name}_p, {prog.v(y)}, {prog.d(z)}, {prog.geom(n)})"]

    def delta(self, c, n) -> None:
        z, y = n.inputs
        T = n.geom[0]
        c.add(z, c.ref(n) * (call("softmax", sym(f"{z.label}_t")) - call("onehot", sym(f"{y.label}_t"))) / T)

    def tangent(self, b, n, ins):
        raise UnsupportedModelError(
            f"no Hessian-vector rule through the next-token cross-entropy ({n.label}) yet. Fix: train with a "
            "first-order optimizer (sg.fit, f.grad), or estimate H·v by a difference of two gradients.")
