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
        if f.is_number:  # 1 − σ(1) is a number: rewritten, Min(a, 1 − σ(1)) could no longer compare it
            continue
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
        if found is None:
            continue
        k = next((k for k, t in enumerate(terms) if k != j and k not in used and t == found[0]), None)
        spread = _spread(found[0], terms, used | {j}) if k is None else None
        if k is not None:
            used |= {j, k}
        elif spread is not None:  # 2x + 2y − 2(x + y)·σ(u): SymPy distributed the number over t
            used |= {j, *spread}
        else:  # σ(a) + σ(2a) − 2: SymPy merged the two constants the pairs need into one
            k = next((k for k, t in enumerate(terms) if k != j and k not in used and _lends(t, found[0])), None)
            if k is None:
                continue
            terms[k] -= found[0]  # the rest of the number stays a term, for other pairs or as it is
            used.add(j)
        out.append(found[0] * found[1])
    if not used:
        return e
    return sp.Add(*out, *(t for k, t in enumerate(terms) if k not in used))


def _spread(t: sp.Expr, terms: list[sp.Expr], taken: set[int]) -> list[int] | None:
    """The positions of t's terms among ``terms`` (none of ``taken``), or None. Not expanded: t is
    already the sum SymPy made of 2·(x + y), and expanding large ones took minutes (the corpus)."""
    parts = sp.Add.make_args(t)
    found: list[int] = []
    for part in parts if len(parts) > 1 else ():
        k = next((k for k, s in enumerate(terms) if s == part and k not in taken and k not in found), None)
        if k is None:
            return None
        found.append(k)
    return found or None


def _lends(have: sp.Expr, need: sp.Expr) -> bool:
    """A number ``have`` holds ``need``: same sign and at least as large, so that what is left has
    that sign too and no new cancellation arises."""
    return have.is_Number and need.is_Number and have * need > 0 and abs(have) >= abs(need)


def _factor_out(e: sp.Add) -> sp.Expr:
    """A sum that is a polynomial p in one σ(u) with p(1) = 0, or in one tanh(u) with p(±1) = 0,
    as q(σ)·σ(−u) or q(tanh)/cosh(u)²: second derivatives expand into such sums (tanh'' is
    2·tanh³ − 2·tanh, σ'' is σ − 3σ² + 2σ³), whose terms no pair of :func:`_pair_up` matches.
    Only sums holding a square or higher power of σ(u) or tanh(u) are tried (the rest are pairs).
    Where the polynomial shares the sum with other terms, it takes the constant it needs from the
    sum's plain terms (:func:`_borrowed`) and the rest is made accurate on its own."""
    for g in _squared(e):
        p = _coefficients(e, g)
        if p is None:
            continue
        q = _quotient(p, g)
        if q is not None:
            return q
        borrowed = _borrowed(p, g)
        if borrowed is not None:
            q, rest = borrowed
            rest = _accurate_sum(rest) if isinstance(rest, sp.Add) else rest
            return q + rest
        split = _by_monomial(p, g)
        if split is not None:
            return split
    return e


def _by_monomial(p: dict[int, sp.Expr], g: sp.Expr) -> sp.Expr | None:
    """p(g) = Σ m·p_m(g) over the monomials m of its coefficients in the other symbols, each p_m
    that vanishes where g (or g²) is 1 factored: in x·(tanh³ + 1)·(y·tanh² − 0.001·tanh)'s
    gradient, the terms in y (−5y·tanh⁶ + 5y·tanh⁴ − 2y·tanh³ + 2y·tanh) vanish at tanh = ±1 and
    the others do not (1.1e-6 off at y = 1e10), or None where none does."""
    groups: dict[sp.Expr, dict[int, sp.Expr]] = {}
    for k, ck in p.items():
        for mono, num in sp.expand(ck).as_coefficients_dict().items():
            groups.setdefault(mono, {})
            groups[mono][k] = groups[mono].get(k, sp.S.Zero) + num
    if len(groups) < 2:
        return None
    parts = [(mono, _quotient(pm, g) if max(pm) > 0 else None, pm) for mono, pm in groups.items()]
    if all(q is None for _, q, _ in parts):
        return None
    return sp.Add(*(mono * (q if q is not None else sp.Add(*(c * g**k for k, c in pm.items())))
                    for mono, q, pm in parts))


def _quotient(p: dict[int, sp.Expr], g: sp.Expr) -> sp.Expr | None:
    """q(g)·σ(−u) (or q(g)/cosh(u)²) where p(g) = q(g)·(1 − g) (or q(g)·(1 − g²)), else None."""
    degree = max(p)
    c = [p.get(k, sp.S.Zero) for k in range(degree + 1)]
    step = 1 if isinstance(g, sigmoid) else 2  # divide by 1 − s, or by 1 − s²
    q: list[sp.Expr] = []
    for k in range(degree + 1 - step):  # p_k = q_k − q_(k−step)
        q.append(c[k] + (q[k - step] if k >= step else 0))
    rest = [c[k] - (q[k] if k < len(q) else 0) + (q[k - step] if k >= step else 0) for k in range(degree + 1)]
    scale = max((abs(float(v)) for ck in c for v in sp.expand(ck).as_coefficients_dict().values()), default=0.0)
    if not q or not all(_vanishes(r, scale) for r in rest):
        return None  # not divisible: p(1) (or p(−1)) is not 0
    accurate = sigmoid_e(-g.args[0], sp.exp(-sp.Abs(g.args[0]))) if step == 1 else 1 / sp.cosh(g.args[0]) ** 2
    if step == 1 and len(q) > 1:  # q = (1 − 2σ)·r: σ'' = σ·σ(−u)·(1 − 2σ), and 1 − 2σ(u) = −tanh(u/2) does not
        r: list[sp.Expr] = []     # cancel near u = 0 (5e-9 off at 1e-8)
        for k in range(len(q) - 1):  # q_k = r_k − 2·r_(k−1)
            r.append(q[k] + (2 * r[k - 1] if k else 0))
        if _vanishes(q[-1] + 2 * r[-1], scale):
            return -sp.Add(*(rk * g**k for k, rk in enumerate(r))) * sp.tanh(g.args[0] / 2) * accurate
    return sp.Add(*(qk * g**k for k, qk in enumerate(q))) * accurate


def _vanishes(r: sp.Expr, scale: float) -> bool:
    """``r`` is 0, or, where it holds Floats, their rounding: SymPy's Float arithmetic left 0.001·σ³'s
    second derivative (0.012σ⁵ − 0.021σ⁴ + 2.009σ³ − ...) a remainder of 1e-17 at σ = 1, where the
    exact polynomial vanishes (every term holds σ' = σ(1 − σ)). A few roundings at the Floats' own
    precision, not more: the formula route derives with 113-bit Floats (build.py), so 1e15·tanh² −
    999999999999999's remainder 1 is no rounding (it was taken for one at 53 bits: −0.017 for 0.983)."""
    r = sp.expand(r)
    if r == 0 or not r.has(sp.Float):
        return r == 0
    eps = 2.0 ** -min(f._prec for f in r.atoms(sp.Float))
    return all(v.is_Number and abs(float(v)) <= 8 * eps * scale for v in r.as_coefficients_dict().values())


def _borrowed(p: dict[int, sp.Expr], g: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """(the polynomial's terms in g with the constant that makes them vanish at g = 1, factored;
    the other terms with that constant taken away), when the sum's plain terms (no σ, no tanh)
    hold it: tanh(2a)² + σ(−a)'s second derivative is 8 − 32·tanh² + 24·tanh⁴ plus a polynomial in
    σ(−a), and 8 belongs to the first. Taken only where that leaves fewer plain terms, or a number
    of the same sign and smaller: then no new cancellation arises in either tail."""
    need = -sp.expand(sp.Add(*(c for k, c in p.items() if k > 0)))
    if need == 0:  # the terms in g vanish at g = 1 by themselves (8·tanh⁷ − 8·tanh⁹ beside σ terms)
        q = _quotient({k: c for k, c in p.items() if k > 0}, g)
        return None if q is None else (q, p.get(0, sp.S.Zero))
    plain = [t for t in sp.Add.make_args(p.get(0, sp.S.Zero)) if not t.has(sigmoid, sp.tanh)]
    if not plain:
        return None
    left = sp.expand(sp.Add(*plain) - need)
    fewer = len(sp.Add.make_args(left)) < len(plain) or left == 0
    smaller = need.is_number and len(plain) == 1 and plain[0].is_number and need * plain[0] > 0 \
        and abs(need) <= abs(plain[0])
    if not (fewer or smaller):
        return None
    q = _quotient({**p, 0: need}, g)
    if q is None:
        return None
    others = [t for t in sp.Add.make_args(p.get(0, sp.S.Zero)) if t.has(sigmoid, sp.tanh)]
    return q, sp.Add(left, *others)


def _squared(e: sp.Add) -> list[sp.Expr]:
    """The σ(u) and tanh(u) of which a term of ``e`` holds a square or a higher power."""
    out = []
    for term in e.args:
        for f in sp.Mul.make_args(term):
            if f.is_Pow and isinstance(f.base, (sigmoid, sp.tanh)) and f.exp.is_Integer and f.exp >= 2:
                out.append(f.base)
    return sorted(set(out), key=sp.default_sort_key)


def _coefficients(e: sp.Add, g: sp.Expr) -> dict[int, sp.Expr] | None:
    """{power: coefficient} of ``e`` as a polynomial in ``g``; None when g is also elsewhere."""
    p: dict[int, sp.Expr] = {}
    for term in e.args:
        c, rest = term.as_independent(g, as_Add=False)
        if rest == 1:
            n = 0
        elif rest == g:
            n = 1
        elif rest.is_Pow and rest.base == g and rest.exp.is_Integer and rest.exp > 0:
            n = int(rest.exp)
        else:
            return None
        p[n] = p.get(n, sp.S.Zero) + c
    return p


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


def _label_gap(e: sp.Add) -> sp.Expr | None:
    """σ(u) − y (the BCE's gradient) as (1 − y)·σ(u) − y·σ(−u): the same number for every y, and
    exact in both tails for the labels 0 and 1 (σ(40) − 1 came out 0 for −4.2e-18)."""
    if len(e.args) != 2:
        return None
    s, other = e.args if isinstance(e.args[0], sigmoid) else e.args[::-1]
    if not isinstance(s, sigmoid) or not (-other).is_Symbol:
        return None
    y, u = -other, s.args[0]
    return (1 - y) * s - y * sigmoid_e(-u, sp.exp(-sp.Abs(u)))


def _half_tanh(e: sp.Add) -> sp.Expr | None:
    """c − 2c·σ(u) as −c·tanh(u/2): σ'' holds 1 − 2σ, which cancels near u = 0 (5e-9 off at 1e-8)."""
    c, rest = e.as_coeff_Add()
    k, s = rest.as_coeff_Mul()
    return -c * sp.tanh(s.args[0] / 2) if c != 0 and isinstance(s, sigmoid) and k == -2 * c else None


def _accurate_sum(e: sp.Add) -> sp.Expr:
    gap = _label_gap(e) or _half_tanh(e)
    if gap is not None:
        return gap
    # the whole polynomial first: pairing 2 − 2·tanh(a)² out of a·tanh(a)'s second derivative,
    # 2 − 2·tanh² − 2a·tanh + 2a·tanh³, left −2a·tanh + 2a·tanh³ to cancel (0 at a = 40 for −5.6e-33)
    factored = _factor_out(e)
    if factored is not e:
        return factored
    paired = _pair_up(e)
    return _factor_out(paired) if isinstance(paired, sp.Add) else paired
