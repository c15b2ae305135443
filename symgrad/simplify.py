"""Targeted, cheap simplification: never ``sympy.simplify`` on a whole model.

Each candidate is an algebraic identity (expand, factor_terms, collect), so it is
exact by construction; we keep whichever has the fewest operations.
"""

from __future__ import annotations

import sympy as sp

#: Above this many operations we skip ``expand`` (it can blow up polynomially).
EXPAND_LIMIT = 400


def tidy(e: sp.Expr) -> sp.Expr:
    """Return the cheapest of a few exact rewrites of ``e`` (by ``count_ops``).

    >>> x, y = sp.symbols("x y", real=True)
    >>> tidy(x*y + x*(1 - y))
    x
    """
    e = sp.sympify(e)
    if e.is_Atom:
        return e
    n = sp.count_ops(e)
    candidates = [e, sp.factor_terms(e)]
    if n <= EXPAND_LIMIT:
        expanded = sp.expand(e, power_base=False, power_exp=False, log=False)
        # expand can multiply out powers of sums into thousands of terms: keep it only if small
        if sp.count_ops(expanded) <= 2 * n:
            candidates += [expanded, sp.factor_terms(expanded)]
    return min(candidates, key=lambda c: (sp.count_ops(c), len(str(c))))
