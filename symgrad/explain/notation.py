"""How tensor-IR nodes print in the delta-rule formulas: layer names, products, forward values."""

from __future__ import annotations

import re

import sympy as sp

from ..kinds.base import KINDS


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def named(n) -> bool:
    """A layer value the user knows by name (z1, a1), not an internal v7 or a contraction (a
    contraction is named when it is a layer's pre-activation: z = W x, without bias)."""
    return not n.label.startswith("v") and (n.kind != "matmul" or "·" not in n.label)


def show(n) -> sp.Expr:
    """How an equation refers to node n: its name, or what it computes."""
    return sym(n.label) if named(n) or n.kind == "leaf" else forward_expr(n)


def forward_expr(n) -> sp.Expr:
    """Node n's value in terms of its inputs (``Kind.show``)."""
    return KINDS[n.kind].show(n)


def factor(label: str, transposed: bool) -> str:
    """An operand of a printed product. A product label (W1·x) is transposed in parentheses,
    (W1·x)ᵀ: W1·xᵀ would read as W1 times xᵀ, a product of the wrong shape."""
    if not transposed:
        return label if " " not in label else f"({label})"
    atom = re.fullmatch(r"\w+", label) is not None  # not isidentifier(): it accepts the middle dot
    return f"{label}ᵀ" if atom else f"({label})ᵀ"
