"""The reverse sweep for scalar expressions (the adjoint method of the lecture notes).

The expression DAG is cut into nodes, each with a fresh *seam* symbol. SymPy only ever
differentiates one node's small body with respect to its lanes; the chain rule across
nodes is ours. The same sweep yields the gradient and the readable adjoint steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .simplify import tidy


@dataclass
class Node:
    """One forward step ``out = body(lanes)``, with ``partials[i] = d body / d lanes[i]``."""

    out: sp.Symbol
    expr: sp.Expr  # the original subexpression, in leaves
    body: sp.Expr  # the op applied to lane symbols and constants
    lanes: tuple[sp.Symbol, ...]
    partials: tuple[sp.Expr, ...]


@dataclass
class Step:
    """One backward step: ``adj[target] += adj[source] * local``."""

    target: sp.Symbol
    source: sp.Symbol
    local: sp.Expr


@dataclass
class Sweep:
    """The result of a reverse sweep over one scalar expression."""

    nodes: list[Node]
    leaves: list[sp.Symbol]
    output: sp.Symbol
    steps: list[Step] = field(default_factory=list)
    adjoint: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)  # in seam symbols

    def forward_map(self) -> dict[sp.Symbol, sp.Expr]:
        """seam -> full expression in leaves."""
        return {n.out: n.expr for n in self.nodes}

    def gradient(self, leaf: sp.Symbol) -> sp.Expr:
        """dJ/dleaf as an expression in the leaves, tidied."""
        adj = self.adjoint.get(leaf, sp.S.Zero)
        return tidy(_substitute_forward(adj, self.nodes))


def _substitute_forward(e: sp.Expr, nodes: list[Node]) -> sp.Expr:
    # Later nodes refer to earlier seams, so substitute from the last node back.
    for n in reversed(nodes):
        if e.has(n.out):
            e = e.xreplace({n.out: n.body})
    return e


def _is_const(e: sp.Basic) -> bool:
    return not e.free_symbols


def _clean_partial(p: sp.Expr) -> sp.Expr:
    """Remove distributions SymPy produces at kinks; the conventions live in ops.py."""
    p = p.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    return p.replace(
        lambda e: isinstance(e, sp.Heaviside),
        lambda e: sp.Piecewise((sp.S.One, e.args[0] > 0), (sp.S.Zero, True)),
    )


class _Builder:
    def __init__(self, names: dict[sp.Expr, str], output_name: str):
        self.names = names
        self.output_name = output_name
        self.nodes: list[Node] = []
        self.leaves: list[sp.Symbol] = []
        self.seam: dict[sp.Expr, sp.Symbol] = {}

    def visit(self, e: sp.Expr, is_root: bool = False) -> sp.Symbol:
        if e in self.seam:
            return self.seam[e]
        if isinstance(e, sp.Symbol):
            self.leaves.append(e)
            self.seam[e] = e
            return e
        lanes: list[sp.Symbol] = []
        body = self._body(e, lanes)
        name = self.output_name if is_root else self.names.get(e, f"v{len(self.nodes) + 1}")
        out = sp.Symbol(name, real=True)
        partials = tuple(_clean_partial(sp.diff(body, s)).xreplace({body: out}) for s in lanes)
        node = Node(out, e, body, tuple(lanes), partials)
        self.nodes.append(node)
        self.seam[e] = out
        return out

    def _body(self, e: sp.Expr, lanes: list[sp.Symbol]) -> sp.Expr:
        if isinstance(e, sp.Piecewise):
            return self._piecewise_body(e, lanes)
        args = []
        for a in e.args:
            if _is_const(a):
                args.append(a)
            else:
                s = self.visit(a)
                if s not in lanes:
                    lanes.append(s)
                args.append(s)
        return e.func(*args)

    def _piecewise_body(self, e: sp.Piecewise, lanes: list[sp.Symbol]) -> sp.Expr:
        # Pieces and the two sides of each condition become lanes; conditions carry no gradient.
        repl: dict[sp.Expr, sp.Symbol] = {}
        for piece, cond in e.args:
            parts = [piece] + (list(cond.args) if isinstance(cond, sp.core.relational.Relational) else [])
            for p in parts:
                if not _is_const(p) and p not in repl:
                    s = self.visit(p)
                    repl[p] = s
                    if s not in lanes:
                        lanes.append(s)
        return e.xreplace(repl)


def sweep(expr: sp.Expr, names: dict[sp.Expr, str] | None = None, output_name: str = "J") -> Sweep:
    """Build the forward trace of ``expr`` and run the reverse (adjoint) sweep.

    >>> x = sp.Symbol("x", real=True)
    >>> s = sweep(sp.cos(x**2))
    >>> s.gradient(x)
    -2*x*sin(x**2)
    """
    b = _Builder(dict(names or {}), output_name)
    if _is_const(expr):
        out = sp.Symbol(output_name, real=True)
        return Sweep([Node(out, expr, expr, (), ())], [], out, [], {out: sp.S.One})
    root = b.visit(expr, is_root=True)
    result = Sweep(b.nodes, b.leaves, root)
    if isinstance(expr, sp.Symbol):
        result.adjoint[root] = sp.S.One
        return result
    result.adjoint[root] = sp.S.One
    for node in reversed(b.nodes):
        src = result.adjoint.get(node.out, sp.S.Zero)
        for lane, local in sorted(zip(node.lanes, node.partials), key=lambda t: t[0].name):
            if local == 0:
                continue
            result.steps.append(Step(lane, node.out, local))
            result.adjoint[lane] = result.adjoint.get(lane, sp.S.Zero) + src * local
    return result
