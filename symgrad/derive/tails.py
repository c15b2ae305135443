"""Derivatives written through a function's value, rewritten to stay accurate in both tails.

The textbook derivatives σ' = σ(1 − σ) and tanh' = 1 − tanh² are how symgrad prints them, but
computed that way they lose all relative precision where σ or tanh approaches 1: ``1 − σ(z)``
cancels, σ'(20) comes out 4e-8 off in relative terms and σ'(40) as 0 instead of 4.2e-18. The code
generator takes the identities ``1 − σ(u) = σ(−u)`` and ``1 − tanh(u)² = 1/cosh(u)²``, exact
and accurate for any u (σ(−u) as the stable sigmoid's helper, ``sigmoid_e(−u, e^−|u|)``, which
SymPy does not rewrite back to 1 − σ(u) as it does ``sigmoid(−u)``; cosh overflows only where
the true value underflows). A sum is searched for pairs ``t − t·σ(u)`` and ``t − t·tanh(u)²``, so the
expanded form SymPy makes of ``x(1 − tanh(ax)²)``, ``x − x·tanh(ax)²``, is found too.

>>> from symgrad.lang.ops import sigmoid
>>> z, x = sp.symbols("z x", real=True)
>>> accurate_tails(sigmoid(z) * (1 - sigmoid(z)))
sigmoid(z)*sigmoid_e(-z, exp(-Abs(z)))
>>> accurate_tails(x - x * sp.tanh(z) ** 2)
x/cosh(z)**2
"""

from __future__ import annotations

import sympy as sp

from ..lang.numba_helpers import sigmoid_e
from ..lang.ops import sigmoid


def _complement(term: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """(t, the accurate form of t − t·f) when ``term`` is −t·f with f = σ(u) or tanh(u)²."""
    for f in sp.Mul.make_args(term):
        if isinstance(f, sigmoid):
            u = f.args[0]
            return -term / f, sigmoid_e(-u, sp.exp(-sp.Abs(u)))
        if f.is_Pow and f.exp == 2 and isinstance(f.base, sp.tanh):
            return -term / f, 1 / sp.cosh(f.base.args[0]) ** 2
    return None


def _pair_up(e: sp.Add) -> sp.Expr:
    terms = list(e.args)
    out, used = [], set()
    for j, term in enumerate(terms):
        found = _complement(term) if j not in used else None
        k = next((k for k, t in enumerate(terms) if k != j and k not in used and found and t == found[0]), None)
        if k is None:
            continue
        used |= {j, k}
        out.append(found[0] * found[1])
    if not used:
        return e
    return sp.Add(*out, *(t for k, t in enumerate(terms) if k not in used))


def accurate_tails(e: sp.Expr) -> sp.Expr:
    """``e`` with every ``t − t·σ(u)`` and ``t − t·tanh(u)²`` in its sums in a form accurate in both tails."""
    if not isinstance(e, sp.Basic) or not e.has(sigmoid, sp.tanh):
        return e
    return e.replace(lambda n: n.is_Add, _pair_up)
