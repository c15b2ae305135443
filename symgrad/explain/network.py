"""Per-layer backprop equations in matrix form (the delta rule), from the tensor IR.

Each batched node's delta is collected as an *elementwise* SymPy expression of the layer
names (z1, a1, ...); contractions appear as product nodes (``notation.MatProd``) such as
``W2ᵀ·δ_z2``. So the
equations read like the textbook: δ_z2 = σ(z2) − y; ∂ℓ/∂W2 = δ_z2·a1ᵀ; δ_z1 = (W2ᵀ·δ_z2) ⊙ a1 ⊙ (1 − a1).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..derive.ir import OUT, TNode, lower
from ..derive.simplify import tidy
from ..kinds import KINDS
from ..lang.constants import HuberDelta
from . import imaging
from .display import Printout, Row, Style
from .loss_notation import orient_abs, root_means
from .notation import forward_expr, named, show, sym
from .numeric import network_values
from .printing import tex_text

imaging.add_legends(HuberDelta)  # its legend line gives the value the formulas print as δ

#: The delta rule's heading, and the LaTeX of its legend.
_BACKWARD = "Backward (delta rule; ⊙ is the elementwise product, ᵀ the transpose)"
_BACKWARD_TEX = (tex_text("Backward (delta rule; ") + r"\odot" + tex_text(" is the elementwise product, ")
                 + r"{}^{\top}" + tex_text(" the transpose)"))


@dataclass
class NetworkFormulas(Printout):
    """Forward and backward equations of a tensor model: ``str()`` for text, ``latex()`` for an
    ``aligned`` block, ``latex_lines()`` one formula per line; typeset in a notebook.
    With ``values`` (``formulas(..., at=)``), each line is followed by its value for one sample
    (a parameter gradient by its norm), the sample's ``inputs`` stated first."""

    forward: list[tuple[str, sp.Expr]]
    backward: list[tuple[str, sp.Expr]]
    values: dict[str, object] | None = None
    inputs: tuple[str, ...] = ()

    def _value(self, s: Style, k: str) -> str:
        if not self.values or k not in self.values:
            return ""
        if k.startswith("∂"):
            return s.pick(",   ", r", \quad ") + s.norm(k, self.values[k])
        return s.array(self.values[k])

    def _rows(self, s: Style) -> list[Row]:
        # deltas are elementwise products of vectors; a difference reads a - y
        delta = {"mul": " ⊙ ", "power": "^", "lead_positive": True}
        scalar = {"mul": "·", "power": "^", "lead_positive": True}  # ℓ is a scalar
        rows = []
        if self.values:
            at = s.pick(", ", r",\ ").join(s.name(k) + s.array(self.values[k]) for k in self.inputs)
            rows.append(Row("head", s.words("At one sample: ") + at + s.words(" (values to 6 significant digits)")))
        rows.append(s.head("Forward (per sample)"))
        after = imaging.notes([v for _, v in self.forward], s.latex)  # a convolution's geometry
        rows += [s.eq(s.name(k), "=", s.expr(v, **(scalar if k == "ℓ" else delta)) + self._value(s, k) + n)
                 for (k, v), n in zip(self.forward, after)]
        rows.append(Row("head", s.pick(_BACKWARD, _BACKWARD_TEX)))
        # what ⋆, ∗, rot180, ... mean, for the convolution and pooling operations printed
        rows += [Row("note", line) for line in imaging.legends([v for _, v in self.forward + self.backward],
                                                                 s.latex)]
        rows += [s.eq(s.name(k), "=", s.expr(orient_abs(v), **delta) + self._value(s, k)) for k, v in self.backward]
        return rows + s.kink_note(*(v for _, v in self.forward))


class _Collector:
    def __init__(self, nodes: list[TNode]):
        self.nodes = nodes
        self.delta: dict[int, sp.Expr] = {}

    def add(self, n: TNode, e: sp.Expr) -> None:
        self.delta[id(n)] = self.delta.get(id(n), sp.S.Zero) + e

    def ref(self, n: TNode) -> sp.Expr:
        """How a downstream equation refers to n's delta: by name when it is a layer."""
        d = tidy(self.delta.get(id(n), sp.S.Zero))
        return sym(f"δ_{n.label}") if named(n) else d

    def local(self, n: TNode, k: int) -> sp.Expr:
        # unnamed inputs (a residual z2 - y) are shown by what they compute
        subs = {s: show(i) for s, i in zip(n.lanes, n.inputs)}
        subs[OUT] = sym(n.label)
        return n.partials[k].xreplace(subs)


def network_formulas(loss: sp.Expr, params, data, labels=None, at: dict | None = None) -> NetworkFormulas:
    """Derive the textbook equations for ``loss`` over MatrixSymbol ``params`` and ``data``;
    ``at`` (each leaf's value by name, one sample) adds the values (``numeric.network_values``)."""
    nodes, out = lower(loss, params, data, labels)
    c = _Collector(nodes)
    c.add(out, sp.S.One)
    backward: list[tuple[str, sp.Expr]] = []
    for n in reversed(nodes):
        if n.kind == "leaf":
            if n.role == "param" and id(n) in c.delta:
                backward.append((f"∂ℓ/∂{n.label}", tidy(c.delta[id(n)])))
            continue
        if named(n) and n is not out:
            backward.append((f"δ_{n.label}", tidy(c.delta.get(id(n), sp.S.Zero))))
        _push(c, n)
    backward.sort(key=lambda kv: kv[0].startswith("∂"))
    shown = _internal_refs(nodes, backward)
    forward = [(n.label, forward_expr(n)) for n in nodes
               if n.kind != "leaf" and (named(n) or id(n) in shown)]
    short = {e: sp.MatrixSymbol(name, *e.shape) for e, name in (labels or {}).items()}
    forward.append(("ℓ", _shorten(loss, short)))
    if at is None:
        return NetworkFormulas(forward, _order(backward))
    values = network_values(nodes, out, at) | {str(d): at[str(d)] for d in data}
    return NetworkFormulas(forward, _order(backward), values, tuple(str(d) for d in data))


def _shorten(loss: sp.Expr, short: dict) -> sp.Expr:
    """The loss in the layers' names: z2 - y, not W2·a1 + b2 - y, also where SymPy merged the layer's
    sum into a larger one (W2·a1 + b2 - y is one MatAdd, of which W2·a1 + b2 is no subtree)."""
    loss = loss.xreplace(short)
    sums = [({a.xreplace(short) for a in k.args}, v) for k, v in short.items() if isinstance(k, sp.MatAdd)]

    def merged(e: sp.MatAdd) -> sp.Basic:
        terms = list(e.args)
        for args, name in sums:
            if args < set(terms):  # each term of a layer's sum is distinct (W·a, b)
                terms = [t for t in terms if t not in args] + [name]
        return sp.MatAdd(*terms) if len(terms) < len(e.args) else e

    return root_means(loss.replace(lambda e: isinstance(e, sp.MatAdd), merged))


def _internal_refs(nodes: list[TNode], rows) -> set[int]:
    """Ids of the unnamed intermediates (v8) that the printed equations refer to, so that their
    forward lines are printed too: without them a reader meets v8 with no definition."""
    internal = {n.label: n for n in nodes if n.kind not in ("leaf", "matmul") and not named(n)}
    todo = [e for _, e in rows] + [forward_expr(n) for n in nodes if n.kind != "leaf" and named(n)]
    found: set[int] = set()
    while todo:
        for s in todo.pop().free_symbols:
            n = internal.get(s.name)
            if n is not None and id(n) not in found:
                found.add(id(n))
                todo.append(forward_expr(n))
    return found


def _order(rows):
    # deltas first (output layer down), then parameter gradients in the same order
    deltas = [r for r in rows if r[0].startswith("δ")]
    grads = [r for r in rows if not r[0].startswith("δ")]
    return deltas + grads


def _push(c: _Collector, n: TNode) -> None:
    KINDS[n.kind].delta(c, n)
