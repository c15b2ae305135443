"""How tensor-IR nodes print in the delta-rule formulas: layer names, products, forward values.

Every composite a formula refers to (a product W2ᵀ·δ_z2, a transpose, softmax(z2)) is an
expression node that ``printing.ReadableText`` and ``ReadableLatex`` print, never a Symbol whose
name spells it out: so the LaTeX is made from the tree, not by re-reading a string.

>>> from .printing import tex, text
>>> W, d, a = sym("W2"), sym("δ_z2"), sym("a1")
>>> print(text(MatProd(Tr(W), d)), text(MatProd(d - a, Tr(a))), text(call("softmax", a)))
W2ᵀ·δ_z2 (-a1 + δ_z2)·a1ᵀ softmax(a1)
>>> print(tex(MatProd(Tr(W), d) * a, hadamard=True))
\\left(W_{2}^{\\top}\\,\\delta_{z_{2}}\\right) \\odot a_{1}
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from ..kinds.base import KINDS
from .printing import NamedOp


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def named(n) -> bool:
    """A layer value the user knows by name (z1, a1, or a layer without bias z = W x), not an
    internal v7 or a contraction, which is shown by what it computes (W1·x)."""
    return n.label != n.name


def show(n) -> sp.Expr:
    """How an equation refers to node n: its name, or what it computes."""
    return sym(n.label) if named(n) or n.kind == "leaf" else forward_expr(n)


def operand(n) -> sp.Expr:
    """How a product or a named operation refers to its input n: by its label (z1, or v8, whose
    forward line is printed), a product by what it computes (W1·x, which has no line of its own)."""
    return forward_expr(n) if n.kind == "matmul" and not named(n) else sym(n.label)


def forward_expr(n) -> sp.Expr:
    """Node n's value in terms of its inputs (``Kind.show``)."""
    return KINDS[n.kind].show(n)


def call(name: str, *args: sp.Basic) -> sp.Expr:
    """``name(args)``: an operation the notation names (softmax, onehot, a kind's own name)."""
    return sp.Function(name, bases=(NamedOp,))(*args)  # SymPy's applied undefined function, marked as ours


class MatProd(sp.Function):
    """A·B·…: the matrix product of per-sample matrices (or a matrix and a weight). An operand
    that is a sum or an elementwise product is parenthesised: W·(a ⊙ b), not W·a ⊙ b."""

    precedence = PRECEDENCE["Mul"]

    @classmethod
    def class_key(cls):
        # SymPy orders terms and factors by their class first: a product before the names added to
        # it reads W1·x + b1, as a layer is written (a Function's own key would put b1 first)
        return 1, 1, cls.__name__  # after numbers (1, 0), before names (2, 0)

    def _operands(self, p) -> list[str]:
        return [p.parenthesize(a, PRECEDENCE["Mul"], strict=isinstance(a, MatProd)) for a in self.args]

    def _sympystr(self, p):
        return "·".join(self._operands(p))

    def _latex(self, p):
        return r"\,".join(self._operands(p))


class Tr(sp.Function):
    """Aᵀ. Binds as a power: (Aᵀ)^{2} keeps its parentheses, and no LaTeX double superscript."""

    nargs = 1
    precedence = PRECEDENCE["Pow"]

    def _sympystr(self, p):
        return p.parenthesize(self.args[0], PRECEDENCE["Pow"], strict=True) + "ᵀ"

    def _latex(self, p):
        return p.parenthesize(self.args[0], PRECEDENCE["Pow"], strict=True) + r"^{\top}"


class Jacobian(sp.Function):
    """f': the Jacobian of a row operation (softmax'), a matrix that multiplies a delta."""

    nargs = 1

    def _sympystr(self, p):
        return f"{self.args[0]}'"

    def _latex(self, p):
        return r"\operatorname{%s}'" % self.args[0]
