"""The notation of self-attention in the printed formulas (modelled on ``imaging``).

Each operation is a SymPy function that prints itself, in text and in LaTeX, and the ones that
give a printout its meaning say what they mean (``legend``, listed by ``imaging.legends`` under
the Backward heading, in the "Attention" family, when a printout uses them). An attention
layer's internal matrices carry the layer's number (the digits its weights end in): Q1, K1,
V1 for ``Wq1``, ``Wk1``, ``Wv1``. Its forward line is ``softmax(Q1·K1ᵀ/√d_h)·V1·Wo1`` per head,
with Q1, K1, V1 stated after it; its backward rules are, per head,

    δ_O = δ·Woᵀ,  δ_V = Pᵀ·δ_O,  δ_P = δ_O·Vᵀ,  δ_S = P ⊙ (δ_P − rowsum(δ_P ⊙ P)),
    δ_Q = δ_S·K/√d_h,  δ_K = δ_Sᵀ·Q/√d_h,

listed in the legend, and the lines a printout shows are the ones for the layer's inputs:
``∂ℓ/∂Wq1 = Xᵀ·δ_Q1`` (and K, V), ``∂ℓ/∂Wo1 = O1ᵀ·δ``, ``δ_X = δ_Q1·Wq1ᵀ + δ_K1·Wk1ᵀ + δ_V1·Wv1ᵀ``.

>>> x, Wq = sp.Symbol("x"), sp.Symbol("Wq1")
>>> print(text(MatProd(Tr(x), DeltaQK(sp.Symbol("δ_Q1")))))
xᵀ·δ_Q1
>>> print(tex(MatProd(DeltaQK(sp.Symbol("δ_Q1")), Tr(Wq))))
\\delta_{Q_{1}}\\,Wq_{1}^{\\top}
>>> v = forward(x, [Wq, sp.Symbol("Wk1"), sp.Symbol("Wv1"), sp.Symbol("Wo1")], "1", 2, 2, True)
>>> print(text(v))
softmax(mask(Q1·K1ᵀ/√2))·V1·Wo1   (Q1 = x·Wq1, K1 = x·Wk1, V1 = x·Wv1; 2 heads of d_h = 2, causal)
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from ..lang.walk import holds
from .imaging import add_legends
from .notation import MatProd, Tr
from .printing import tex, text  # noqa: F401 (the examples above print with them)

_D = ("δ", r"\delta")
_DH = ("√d_h", r"\sqrt{d_h}")


def _m(s: str, latex: str) -> tuple[str, str]:
    return (s, latex)


class Scaled(sp.Function):
    """A/√d_h: args A, d_h."""

    nargs = 2
    precedence = PRECEDENCE["Mul"]

    def _sympystr(self, p):
        return f"{p.parenthesize(self.args[0], PRECEDENCE['Mul'], strict=True)}/√{self.args[1]}"

    def _latex(self, p):
        return r"%s / \sqrt{%s}" % (p.parenthesize(self.args[0], PRECEDENCE["Mul"], strict=True), self.args[1])


class _Word(sp.Function):
    """word(A)."""

    word = ""
    nargs = 1
    family = "Attention"

    def _sympystr(self, p):
        return f"{self.word}({p._print(self.args[0])})"

    def _latex(self, p):
        return r"\operatorname{%s}\left(%s\right)" % (self.word, p._print(self.args[0]))


class RowSoftmax(_Word):
    word = "softmax"
    legend = (_m("softmax(S)", r"\operatorname{softmax}(S)"), " is taken along each row of ", _m("S", "S"),
              "; the heads' ", _m("O", "O"), " sit side by side, and the layer's value is ",
              _m("O·Wo", r"O\,W_{o}"))


class Mask(_Word):
    word = "mask"
    legend = (_m("mask(S)", r"\operatorname{mask}(S)"), " sets ", _m("S_ij = −∞", r"S_{ij} = -\infty"),
              " for ", _m("j > i", "j > i"), " (causal: a position sees itself and the ones before), so ",
              _m("P_ij = 0", "P_{ij} = 0"), ": masked entries get zero gradient")


class AttentionValue(sp.Function):
    """An attention layer's value with what its Q, K, V are: args the value, X, Wq, Wk, Wv, the
    layer's number (a Symbol, possibly empty), heads, d_h."""

    family = "Attention"
    legend = ("per head (", _m("d_h = d/heads", r"d_h = d/\text{heads}"), " of the columns of ", _m("Q, K, V", "Q, K, V"),
              "): ", _m("S = Q·Kᵀ/√d_h", r"S = Q\,K^{\top} / \sqrt{d_h}"), ", ", _m("P = softmax(S)", r"P = \operatorname{softmax}(S)"),
              ", ", _m("O = P·V", r"O = P\,V"), " (each layer's Q, K, V, S, P, O carry its number)")

    @property
    def precedence(self):
        return PRECEDENCE["Mul"]

    def _parts(self):
        value, X, Wq, Wk, Wv, k, heads, dh = self.args
        qkv = [(sp.Symbol(f"{n}{k}"), MatProd(X, W)) for n, W in zip("QKV", (Wq, Wk, Wv))]
        causal = holds(value, Mask)
        return value, qkv, int(heads), int(dh), causal

    def _sympystr(self, p):
        value, qkv, heads, dh, causal = self._parts()
        defs = ", ".join(f"{p._print(a)} = {p._print(b)}" for a, b in qkv)
        more = (f"{heads} heads of d_h = {dh}" if heads > 1 else f"1 head, d_h = {dh}") + (", causal" if causal else "")
        return f"{p._print(value)}   ({defs}; {more})"

    def _latex(self, p):
        value, qkv, heads, dh, causal = self._parts()
        defs = ", ".join(f"{p._print(a)} = {p._print(b)}" for a, b in qkv)
        more = (f"{heads} heads of }}d_h = {dh}" if heads > 1 else f"1 head, }}d_h = {dh}")
        return r"%s\quad (%s;\ \text{%s%s)" % (p._print(value), defs, more, r"\text{, causal}" if causal else "")


class _Delta(sp.Function):
    """δ_Q1 and the like: an attention layer's internal delta, by name (its rule is in the legend)."""

    nargs = 1
    family = "Attention"

    def _sympystr(self, p):
        return p._print(self.args[0])

    def _latex(self, p):
        return p._print(self.args[0])


class DeltaV(_Delta):
    legend = (_m("δ_O = δ·Woᵀ", r"\delta_{O} = \delta\,W_{o}^{\top}"), " (", _D, " the layer's own), ",
              _m("δ_V = Pᵀ·δ_O", r"\delta_{V} = P^{\top}\,\delta_{O}"), ", per head")


class DeltaQK(_Delta):
    legend = (_m("δ_P = δ_O·Vᵀ", r"\delta_{P} = \delta_{O}\,V^{\top}"), ", ",
              _m("δ_S = P ⊙ (δ_P − rowsum(δ_P ⊙ P))",
                 r"\delta_{S} = P \odot (\delta_{P} - \operatorname{rowsum}(\delta_{P} \odot P))"),
              " (rowsum: each row's sum), ", _m("δ_Q = δ_S·K/√d_h", r"\delta_{Q} = \delta_{S}\,K / \sqrt{d_h}"), ", ",
              _m("δ_K = δ_Sᵀ·Q/√d_h", r"\delta_{K} = \delta_{S}^{\top}\,Q / \sqrt{d_h}"))


def names(k: str) -> dict[str, sp.Symbol]:
    """The layer's internal matrices (Q1, …, O1) and deltas (δ_Q1, …), by letter."""
    out = {n: sp.Symbol(f"{n}{k}") for n in "QKVSPO"}
    return out | {f"δ_{n}": sp.Symbol(f"δ_{n}{k}") for n in "QKVO"}


def forward(X, W, k: str, heads: int, dh: int, causal: bool) -> sp.Expr:
    """The layer's value: softmax(Q·Kᵀ/√d_h)·V·Wo (per head), Q, K, V stated after it."""
    s = names(k)
    scores = Scaled(MatProd(s["Q"], Tr(s["K"])), dh)
    value = MatProd(RowSoftmax(Mask(scores) if causal else scores), s["V"], W[3])
    return AttentionValue(value, X, *W[:3], sp.Symbol(k), heads, dh)


def deltas(k: str) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """δ_Q, δ_K, δ_V of layer k, as the printed lines refer to them."""
    s = names(k)
    return DeltaQK(s["δ_Q"]), DeltaQK(s["δ_K"]), DeltaV(s["δ_V"])


add_legends(AttentionValue, RowSoftmax, Mask, DeltaV, DeltaQK)
