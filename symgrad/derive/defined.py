"""Derivatives in forms defined wherever their value is: SymPy's derivatives of x**y and of a
Piecewise are right as formulas but compute NaN where the true value is finite (0/0 at x = 0,
0·inf in a branch not taken). Applied by the code generator after :mod:`.tails`; the printed
formulas keep SymPy's forms."""

from __future__ import annotations

import sympy as sp


def merged_powers(e: sp.Expr) -> sp.Expr:
    """``x**y·x**k`` (k a whole number) as ``x**(y + k)``: the derivative of a power with a
    symbolic exponent comes as ``x**y·y/x``, which is 0/0 at x = 0 where ``y·x**(y − 1)`` is the
    value (0 for y > 1, 1 for y = 1). Exact wherever the product is defined.

    >>> x, y = sp.symbols("x y", real=True)
    >>> merged_powers(sp.diff(x**y, x))
    x**(y - 1)*y
    """
    def split(m: sp.Mul) -> dict[sp.Expr, list[sp.Expr]]:
        bases: dict[sp.Expr, list[sp.Expr]] = {}
        for f in m.args:
            b, k = f.as_base_exp()
            bases.setdefault(b, []).append(k)
        return bases

    def mergeable(ks: list[sp.Expr]) -> bool:
        return len(ks) > 1 and sum(not k.is_number for k in ks) == 1 and all(k.is_Integer for k in ks if k.is_number)

    def merge(m: sp.Mul) -> sp.Expr:
        return sp.Mul(*(b ** sp.Add(*ks) if mergeable(ks) else sp.Mul(*(b**k for k in ks)) for b, ks in split(m).items()))

    return e.replace(lambda n: n.is_Mul and any(b is not sp.E and mergeable(ks) for b, ks in split(n).items()), merge)


def _indicator(p: sp.Basic):
    """c when ``p`` is Piecewise((1, c), (0, True)), not c for Piecewise((0, c), (1, True)) (the
    last branch's indicator, as SymPy differentiates a two-branch Piecewise), else None."""
    if isinstance(p, sp.Piecewise) and len(p.args) == 2 and p.args[1].cond == sp.true:
        (first, c), (last, _) = p.args
        if first == 1 and last == 0:
            return c
        if first == 0 and last == 1:
            return sp.Not(c)
    return None


def guarded_branches(e: sp.Expr) -> sp.Expr:
    """``𝟙[c]·E`` as ``E if c else 0``: the reverse sweep reaches a Piecewise branch's derivative
    through its indicator, and where the branch is not taken its derivative may be infinite or NaN
    (log(x) at x = 0 under ``x > 0``): 0·(−inf) is NaN, where the derivative is 0. A select
    evaluates E only where c holds. Exact wherever E is finite.

    >>> a, x = sp.symbols("a x", real=True)
    >>> guarded_branches(sp.Piecewise((1, x > 0), (0, True)) * sp.log(x) * a)
    Piecewise((a*log(x), x > 0), (0, True))
    """
    def guard(m: sp.Mul) -> sp.Expr:
        conds = [c for f in m.args if (c := _indicator(f)) is not None]
        rest = sp.Mul(*(f for f in m.args if _indicator(f) is None))
        return sp.Piecewise((rest, sp.And(*conds)), (0, True))

    return e.replace(lambda n: n.is_Mul and any(_indicator(f) is not None for f in n.args), guard)
