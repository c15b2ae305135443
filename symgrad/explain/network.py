"""Per-layer backprop equations in matrix form (the delta rule), from the tensor IR.

Each batched node's delta is collected as an *elementwise* SymPy expression of the layer
names (z1, a1, ...); contractions appear as opaque factors such as ``W2ᵀ·δ_z2``. So the
equations read like the textbook: δ_z2 = σ(z2) − y; ∂ℓ/∂W2 = δ_z2·a1ᵀ; δ_z1 = (W2ᵀ·δ_z2) ⊙ a1 ⊙ (1 − a1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from ..derive.ir import OUT, TNode, lower
from ..derive.simplify import tidy


def _sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


@dataclass
class NetworkFormulas:
    """Forward and backward equations of a tensor model. ``str()`` for text, ``latex()``."""

    forward: list[tuple[str, sp.Expr]]
    backward: list[tuple[str, sp.Expr]]

    def __str__(self) -> str:
        lines = ["Forward (per sample)"] + [f"  {k} = {_text(v) if k != 'ℓ' else str(v).replace('**', '^').replace('*', '·')}"
                                            for k, v in self.forward]
        lines += ["Backward (delta rule; ⊙ is the elementwise product, ᵀ the transpose)"]
        lines += [f"  {k} = {_text(v)}" for k, v in self.backward]
        return "\n".join(lines)

    def latex(self) -> str:
        odot = r" \odot "
        rows = []
        for k, v in self.forward + self.backward:
            names = {s: _ltx_name(s.name) for s in v.free_symbols}
            rows.append(f"{_ltx_name(k)} &= {sp.latex(v, mul_symbol=odot, symbol_names=names)}")
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


def _text(e: sp.Expr) -> str:
    return str(e).replace("**", "^").replace("*", " ⊙ ")


def _ltx_name(k: str) -> str:
    """Our unicode names (δ_z1, W2ᵀ·δ_z2, ∂ℓ/∂W1) as LaTeX."""
    out = re.sub(r"δ_(\w+)", r"\\delta_{\1}", k)
    out = out.replace("ᵀ", r"^{\top}").replace("·", r"\,").replace("ℓ", r"\ell ")
    return out.replace("∂", r"\partial ")


class _Collector:
    def __init__(self, nodes: list[TNode]):
        self.nodes = nodes
        self.delta: dict[int, sp.Expr] = {}
        self.names = {id(n): n.label for n in nodes}

    def add(self, n: TNode, e: sp.Expr) -> None:
        self.delta[id(n)] = self.delta.get(id(n), sp.S.Zero) + e

    def ref(self, n: TNode) -> sp.Expr:
        """How a downstream equation refers to n's delta: by name when it is a layer."""
        d = tidy(self.delta.get(id(n), sp.S.Zero))
        return _sym(f"δ_{n.label}") if _named(n) else d

    def local(self, n: TNode, k: int) -> sp.Expr:
        # unnamed inputs (a residual z2 - y) are shown by what they compute
        subs = {s: _show(i) for s, i in zip(n.lanes, n.inputs)}
        subs[OUT] = _sym(n.label)
        return n.partials[k].xreplace(subs)


def network_formulas(loss: sp.Expr, params, data, labels=None) -> NetworkFormulas:
    """Derive the textbook equations for ``loss`` over MatrixSymbol ``params`` and ``data``."""
    nodes, out = lower(loss, params, data, labels)
    for n in nodes:  # contractions are named by what they compute: W1·x
        if n.kind == "matmul" and n.label == n.name:
            n.label = str(_forward_expr(n))
    c = _Collector(nodes)
    c.add(out, sp.S.One)
    backward: list[tuple[str, sp.Expr]] = []
    for n in reversed(nodes):
        if n.kind == "leaf":
            if n.role == "param" and id(n) in c.delta:
                backward.append((f"∂ℓ/∂{n.label}", tidy(c.delta[id(n)])))
            continue
        if _named(n) and n is not out:
            backward.append((f"δ_{n.label}", tidy(c.delta.get(id(n), sp.S.Zero))))
        _push(c, n)
    backward.sort(key=lambda kv: kv[0].startswith("∂"))
    shown = _internal_refs(nodes, backward)
    forward = [(n.label, _forward_expr(n)) for n in nodes
               if n.kind != "leaf" and (_named(n) or id(n) in shown)]
    short = {e: sp.MatrixSymbol(name, *e.shape) for e, name in (labels or {}).items()}
    forward.append(("ℓ", loss.xreplace(short)))
    return NetworkFormulas(forward, _order(backward))


def _internal_refs(nodes: list[TNode], rows) -> set[int]:
    """Ids of the unnamed intermediates (v8) that the printed equations refer to, so that their
    forward lines are printed too: without them a reader meets v8 with no definition."""
    internal = {n.label: n for n in nodes if n.kind not in ("leaf", "matmul") and not _named(n)}
    todo = [e for _, e in rows] + [_forward_expr(n) for n in nodes if n.kind != "leaf" and _named(n)]
    found: set[int] = set()
    while todo:
        for token in re.findall(r"\w+", str(todo.pop())):
            n = internal.get(token)
            if n is not None and id(n) not in found:
                found.add(id(n))
                todo.append(_forward_expr(n))
    return found


def _order(rows):
    # deltas first (output layer down), then parameter gradients in the same order
    deltas = [r for r in rows if r[0].startswith("δ")]
    grads = [r for r in rows if not r[0].startswith("δ")]
    return deltas + grads


def _named(n: TNode) -> bool:
    """A layer value the user knows by name (z1, a1), not an internal v7 or a contraction."""
    return not n.label.startswith("v") and n.kind != "matmul"


def _show(n: TNode) -> sp.Expr:
    return _sym(n.label) if _named(n) or n.kind == "leaf" else _forward_expr(n)


def _forward_expr(n: TNode) -> sp.Expr:
    if n.kind == "map":
        return n.body.xreplace({s: _show(i) for s, i in zip(n.lanes, n.inputs)})
    if n.kind == "matmul":
        a, b = n.inputs
        return _sym(f"{_factor(a.label, n.trans[0])}·{_factor(b.label, n.trans[1])}")
    return _sym(f"{n.kind}({', '.join(i.label for i in n.inputs)})")


def _push(c: _Collector, n: TNode) -> None:
    d = c.ref(n)
    if n.kind == "map":
        for k, i in enumerate(n.inputs):
            c.add(i, d * c.local(n, k))
    elif n.kind == "sum" or n.kind == "select":
        c.add(n.inputs[0], d)
    elif n.kind == "softmax_ce":
        z, t = n.inputs
        c.add(z, d * (_sym(f"softmax({z.label})") - _sym(t.label)))
    elif n.kind == "softmax":
        p = n.label
        c.add(n.inputs[0], _sym(f"{p} ⊙ (δ_{p} - {p}ᵀ·δ_{p})") if _named(n) else _sym(f"softmax'·({d})"))
    elif n.kind == "logsumexp":
        c.add(n.inputs[0], d * _sym(f"softmax({n.inputs[0].label})"))
    elif n.kind == "matmul":
        _push_matmul(c, n)


def _factor(label: str, transposed: bool) -> str:
    """An operand of a printed product. A product label (W1·x) is transposed in parentheses,
    (W1·x)ᵀ: W1·xᵀ would read as W1 times xᵀ, a product of the wrong shape."""
    if not transposed:
        return label if " " not in label else f"({label})"
    atom = re.fullmatch(r"\w+", label) is not None  # not isidentifier(): it accepts the middle dot
    return f"{label}ᵀ" if atom else f"({label})ᵀ"


def _push_matmul(c: _Collector, n: TNode) -> None:
    # out = A·B with A = a or aᵀ, B = b or bᵀ: δA = δ·Bᵀ, δB = Aᵀ·δ, and δa = (δA)ᵀ when A = aᵀ
    (a, ta), (b, tb) = zip(n.inputs, n.trans)
    dn = f"({tidy(c.delta.get(id(n), 0))})"
    c.add(a, _sym(f"{_factor(b.label, tb)}·{dn}ᵀ" if ta else f"{dn}·{_factor(b.label, not tb)}"))
    c.add(b, _sym(f"{dn}ᵀ·{_factor(a.label, ta)}" if tb else f"{_factor(a.label, not ta)}·{dn}"))
