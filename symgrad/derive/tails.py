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


def _factor_out(e: sp.Add) -> sp.Expr:
    """A sum that is a polynomial p in one σ(u) with p(1) = 0, or in one tanh(u) with p(±1) = 0,
    as q(σ)·σ(−u) or q(tanh)/cosh(u)²: second derivatives expand into such sums (tanh'' is
    2·tanh³ − 2·tanh, σ'' is σ − 3σ² + 2σ³), whose terms no pair of :func:`_pair_up` matches."""
    for g in sorted(e.atoms(sigmoid, sp.tanh), key=sp.default_sort_key):
        try:
            p = sp.Poly(e, g)
        except sp.PolynomialError:  # g also inside another function of the sum
            continue
        s = sp.Dummy("s")
        factor, accurate = ((1 - s, sigmoid_e(-g.args[0], sp.exp(-sp.Abs(g.args[0])))) if isinstance(g, sigmoid)
                            else (1 - s**2, 1 / sp.cosh(g.args[0]) ** 2))
        q, r = sp.div(p.as_expr().subs(g, s), factor, s)
        if r == 0 and q != 0:
            return q.subs(s, g) * accurate
    return e


def _tanh_of_quotients(e: sp.Expr) -> sp.Expr:
    """sinh(u)^n·cosh(u)^−n as tanh(u)^n (log(cosh(u))'s derivatives), so that its tails are found."""
    def as_tanh(m: sp.Mul) -> sp.Expr:
        powers = m.as_powers_dict()
        for f, n in powers.items():
            if isinstance(f, sp.sinh) and powers.get(sp.cosh(f.args[0])) == -n:
                return m / (f**n * sp.cosh(f.args[0]) ** -n) * sp.tanh(f.args[0]) ** n
        return m
    return e.replace(lambda n: n.is_Mul and n.has(sp.sinh), as_tanh)


def accurate_tails(e: sp.Expr) -> sp.Expr:
    """``e`` with every ``t − t·σ(u)`` and ``t − t·tanh(u)²`` in its sums in a form accurate in
    both tails, and polynomials in σ(u) or tanh(u) that vanish where σ or tanh² is 1 factored."""
    if not isinstance(e, sp.Basic) or not e.has(sigmoid, sp.tanh, sp.sinh):
        return e
    e = _tanh_of_quotients(e) if e.has(sp.sinh) else e
    if not e.has(sigmoid, sp.tanh):
        return e
    return e.replace(lambda n: n.is_Add, _accurate_sum)


def _accurate_sum(e: sp.Add) -> sp.Expr:
    paired = _pair_up(e)
    return _factor_out(paired) if isinstance(paired, sp.Add) else paired


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
