"""Local derivatives of one node of the reverse sweep: d body / d lane for each lane.

SymPy differentiates only a node's small body (``_partials``); Max/Min have their own rule
(``_extremum_partials``), and distributions SymPy produces at kinks are replaced by the
conventions of lang/ops.py (``_clean_partial``).
"""

from __future__ import annotations

import sympy as sp


def _clean_partial(p: sp.Expr) -> sp.Expr:
    """Remove distributions SymPy produces at kinks; the conventions live in lang/ops.py."""
    p = p.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    return p.replace(
        lambda e: isinstance(e, sp.Heaviside),
        lambda e: sp.Piecewise((sp.S.One, e.args[0] > 0), (sp.S.Zero, True)),
    )


def _partials(body: sp.Expr, lanes: list[sp.Symbol], out: sp.Symbol) -> tuple[sp.Expr, ...]:
    """d body / d lane for each lane, through the output ``out`` where that is exact."""
    if isinstance(body, (sp.Add, sp.Mul)) and all(a.is_Symbol or a.is_Number for a in body.args):
        # A sum or product of distinct symbols (each once, to the first power) and a constant:
        # the partials are 1, or the product of the other factors: what sp.diff returns, the
        # same expressions, without its generic machinery (~1 ms each, half of a 200-parameter
        # derivation; and an Add of N lanes is differentiated term by term for each lane).
        args = set(body.args)
        if all(s in args for s in lanes):
            if isinstance(body, sp.Add):
                return (sp.S.One,) * len(lanes)
            return tuple(sp.Mul(*[a for a in body.args if a != s]) for s in lanes)
    return tuple(_clean_partial(sp.diff(body, s)).xreplace({body: out}) for s in lanes)


def _extremum_partials(is_max: bool, ordered: list[sp.Expr], lanes: list[sp.Symbol]) -> tuple[sp.Expr, ...]:
    """d max(a_1, ..., a_n)/d a_i = 1 where a_i is the one chosen, else 0 (min alike).

    The convention is strict comparisons with ties going to the later argument (constants are
    last, so d max(x, 0)/dx = 0 at x = 0, as relu'(0)): a_i is chosen iff a_i > a_k for every
    later k and a_i >= a_j for every earlier j. Written as comparisons of seams, not as nested
    Piecewise of the arguments: SymPy's evaluation of a Piecewise whose conditions hold other
    Piecewises (nested Max/Min) is exponential in the nesting; the corpus drew
    Max(0, elu(Max(...)), Min(...)), whose compile never finished that way.
    """
    gt, ge = (sp.StrictGreaterThan, sp.GreaterThan) if is_max else (sp.StrictLessThan, sp.LessThan)
    out = []
    for s in lanes:
        i = ordered.index(s)
        cond = sp.And(*[ge(s, a) for a in ordered[:i]], *[gt(s, a) for a in ordered[i + 1:]])
        out.append(sp.Piecewise((sp.S.One, cond), (sp.S.Zero, True)))
    return tuple(out)


def with_chosen_branches(body: sp.Expr) -> sp.Expr:
    """``body`` with each Max/Min of two or more non-constant arguments written as the Piecewise of the
    kink convention (:func:`_extremum_partials`: ties to the later argument), whose derivative SymPy
    takes branch by branch. SymPy's own, Heaviside(a − b)·a' + Heaviside(b − a)·b', made strict, was 0
    at a tie: Max(z, z/100), a leaky ReLU, had derivative 0 at z = 0, where its slopes are 1 and 0.01.
    A Max with one non-constant argument (relu's Max(z, 0)) gives the convention's 0 at the tie already."""
    def chosen(e: sp.Expr) -> sp.Expr:
        gt, ge = (sp.StrictGreaterThan, sp.GreaterThan) if isinstance(e, sp.Max) else (sp.StrictLessThan, sp.LessThan)
        ordered = sorted(e.args, key=lambda a: (not a.free_symbols, sp.default_sort_key(a)))
        branches = [(a, sp.And(*[ge(a, b) for b in ordered[:i]], *[gt(a, b) for b in ordered[i + 1:]]))
                    for i, a in enumerate(ordered[:-1])]
        return sp.Piecewise(*branches, (ordered[-1], True))

    return body.replace(lambda e: isinstance(e, (sp.Max, sp.Min)) and sum(bool(a.free_symbols) for a in e.args) > 1,
                        chosen)


def complements(p: sp.Expr) -> sp.Expr:
    """``p`` with a factor 1 − σ(u) as σ(−u) and 1 − tanh²(u) as sech²(u): the BCE's second derivative
    σ(u)(1 − σ(u)) was 0 at u = 40 for 4e-18 (a Hessian-vector product's map). Factors of a product
    only: in a sum (SiLU's σ + z·σ·(1 − σ)) the lost digits are below the sum's, and σ(−u) would cost
    an exp. A sigmoid or tanh layer's own partial is y(1 − y) or 1 − y² in its output y, as the notes
    and PyTorch compute it."""
    from ..lang.ops import sigmoid

    if not p.is_Mul:
        return p
    factors = []
    for f in p.args:
        s = next((s for s in f.atoms(sigmoid) if f == 1 - s), None) if f.is_Add else None
        t = next((t for t in f.atoms(sp.tanh) if f == 1 - t**2), None) if f.is_Add else None
        if t is not None:  # 1 − tanh²(u) as sech²(u) = 4e^−2|u|/(1 + e^−2|u|)²: 7% off at 8.15 in float32
            e = sp.exp(-2 * sp.Abs(t.args[0]))
            f = 4 * e / (1 + e) ** 2
        factors.append(f if s is None else sigmoid(-s.args[0]))
    return p if factors == list(p.args) else sp.Mul(*factors)  # Mul(2, a + b) would distribute the 2
