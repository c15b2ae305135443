"""Second order for tensor models: the Hessian-vector product as one more reverse sweep.

Pearlmutter's identity: H v = ∇_θ (∇f(θ)·v), and ∇f(θ)·v = d/dε f(θ + εv) at ε = 0. The
forward IR is extended by its tangent (forward-mode) nodes, one per node that depends on a
parameter, so that the new output is, per sample, the directional derivative of the loss along
v. The unchanged reverse sweep (``Program``) then differentiates that graph with respect to θ
and to v at once: the gradient with respect to θ is H v; the one with respect to v is ∇f itself.
No k×k matrix is ever formed; each kind's rule (``Kind.tangent``, ``symgrad/kinds``) is the
product or chain rule of that node.
"""

from __future__ import annotations

import sympy as sp

from ..errors import UnsupportedModelError
from .ir import TNode, _lane, map_partials


class _Tangents:
    """Builds tangent nodes; ``tan`` maps id(node) -> its tangent node."""

    def __init__(self) -> None:
        self.nodes: list[TNode] = []
        self.tan: dict[int, TNode] = {}

    def add(self, kind: str, shape, batched: bool, inputs: list[TNode], label: str, **kw) -> TNode:
        node = TNode(kind, f"j{len(self.nodes)}", tuple(shape), batched, list(inputs), label=label, **kw)
        self.nodes.append(node)
        return node

    def map(self, body: sp.Expr, lanes: dict[sp.Symbol, TNode], like: TNode, label: str) -> TNode:
        """A map node of ``like``'s shape whose body uses the symbols in ``lanes`` (renumbered
        as lanes s0, s1, ...; a node bound twice becomes one lane)."""
        order: list[TNode] = []
        repl: dict[sp.Symbol, sp.Symbol] = {}
        for sym, node in lanes.items():
            if sym not in body.free_symbols:
                continue
            k = next((j for j, m in enumerate(order) if m is node), None)
            if k is None:
                order.append(node)
                k = len(order) - 1
            repl[sym] = _lane(k)
        body = body.xreplace(repl)
        syms = tuple(_lane(j) for j in range(len(order)))
        return self.add("map", like.shape, like.batched, order, label, body=body, lanes=syms,
                        partials=map_partials(body, syms))


def _tangent(b: _Tangents, n: TNode) -> TNode | None:
    """The tangent of node n from its inputs' tangents (None: n does not depend on θ)."""
    ins = [b.tan.get(id(i)) for i in n.inputs]
    if all(t is None for t in ins):
        return None
    from ..kinds import KINDS  # the kinds import this package: bind late

    return KINDS[n.kind].tangent(b, n, ins)


def tangent_graph(nodes: list[TNode], out: TNode, params: list[TNode]) -> tuple[list[TNode], TNode, list[TNode]]:
    """(nodes with their tangents, the loss's tangent, one direction leaf per parameter).

    The direction leaves are parameters of the new graph, so that one reverse sweep returns
    both H v (the θ part) and ∇f (the v part)."""
    from ..codegen.printer import leaf_ident  # the generated code's names; codegen imports derive

    taken = {n.name for n in nodes if n.kind == "leaf"}
    b = _Tangents()
    vleaves = []
    for p in params:  # a user's A_v_f beside A: A's direction A_v has its flat view p_A_v_f too
        leaf = TNode("leaf", leaf_ident(f"{p.name}_v", taken), p.shape, False, role="param", label=f"v_{p.label}")
        vleaves.append(leaf)
        b.tan[id(p)] = leaf
    merged = [n for n in nodes if n.kind == "leaf"] + vleaves
    for n in nodes:
        if n.kind == "leaf":
            continue
        merged.append(n)
        start = len(b.nodes)
        t = _tangent(b, n)
        if t is not None:
            b.tan[id(n)] = t
            merged += b.nodes[start:]
    if id(out) not in b.tan:
        raise UnsupportedModelError("the loss does not depend on the parameters: its Hessian is zero")
    return merged, b.tan[id(out)], vleaves
