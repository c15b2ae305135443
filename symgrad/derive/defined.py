"""Derivatives in forms defined wherever their value is: SymPy's derivatives of x**y and of a
Piecewise are right as formulas but compute NaN where the true value is finite (0/0 at x = 0,
0·inf in a branch not taken). Applied by the code generator after :mod:`.tails`; the printed
formulas keep SymPy's forms."""

from __future__ import annotations

import sympy as sp


def merged_powers(e: sp.Expr) -> sp.Expr:
    """``x**y·x**k`` (k a whole number) as ``x**(y + k)``: the derivative of a power with a
    symbolic exponent comes as ``x**y·y/x``, which is 0/0 at x = 0 where ``y·x**(y − 1)`` is the
    value (0 for y > 1, 1 for y = 1), and 0 where x**y underflows (x**π at 1e-110) and x**(y − 1)
    does not. Exact wherever the product is defined. And ``sign(u)·u**k`` (k odd) as ``|u|**k``, so
    that SymPy cancels it against a like term: the Hessian of acosh(1 + x²) held 1/|x| − sign(x)/x,
    0 computed after a small term it swallowed (0 for −7.1e-10 at x = 1e-9); both are not finite at 0.

    >>> x, y = sp.symbols("x y", real=True)
    >>> merged_powers(sp.diff(x**y, x)), merged_powers(1 / sp.Abs(x) - sp.sign(x) / x + x)
    (x**(y - 1)*y, x)
    """
    def split(m: sp.Mul) -> dict[sp.Expr, list[sp.Expr]]:
        bases: dict[sp.Expr, list[sp.Expr]] = {}
        for f in m.args:
            b, k = f.as_base_exp()
            bases.setdefault(b, []).append(k)
        return bases

    def mergeable(ks: list[sp.Expr]) -> bool:  # one exponent y (a symbol, or a number SymPy keeps apart: π, √2)
        return len(ks) > 1 and sum(not k.is_Integer for k in ks) == 1

    def powers(m: sp.Mul) -> bool:
        return any(b is not sp.E and mergeable(ks) for b, ks in split(m).items())

    def merge(m: sp.Mul) -> sp.Expr:
        if powers(m):
            m = sp.Mul(*(b ** sp.Add(*ks) if mergeable(ks) else sp.Mul(*(b**k for k in ks)) for b, ks in split(m).items()))
        pair = _sign_pair(m) if m.is_Mul else None
        if pair is None:
            return m
        s, k = pair
        return sp.Mul(*[f for f in m.args if f is not s and f != s.args[0] ** k]) * sp.Abs(s.args[0]) ** k

    # one walk: a second (has(sign), then its replace) was 30% more of a compile's calls
    return e.replace(lambda n: n.is_Mul and (powers(n) or _sign_pair(n) is not None), merge)


def _sign_pair(m: sp.Mul):
    """(sign(u), k) for factors sign(u) and u**k, k odd, of the product ``m``; else None."""
    for s in m.args:
        if isinstance(s, sp.sign):
            u = s.args[0]
            k = next((f.exp for f in m.args if f.is_Pow and f.base == u and f.exp.is_Integer and f.exp % 2),
                     1 if u in m.args else None)
            if k is not None:
                return s, k
    return None


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


#: functions finite at every finite real argument
_EVERYWHERE_FINITE = (sp.exp, sp.sin, sp.cos, sp.tanh, sp.sinh, sp.cosh, sp.atan, sp.erf, sp.erfc)


def _finite_in(g: sp.Basic, xs: set, vanishing) -> bool:
    """Whether ``g`` is finite where x = 0, as far as it depends on x (``xs``, its symbols): built by
    sums, products, whole powers and functions finite everywhere from x, its ``vanishing`` powers and
    coefficients free of x (which may be anything: where one is infinite, so is the product at every x)."""
    if not g.free_symbols & xs or g.is_Symbol or vanishing(g):
        return True
    if g.is_Add or g.is_Mul or isinstance(g, _EVERYWHERE_FINITE) or type(g).__name__ in ("sigmoid", "softplus"):
        return all(_finite_in(a, xs, vanishing) for a in g.args)
    return g.is_Pow and g.exp.is_Integer and g.exp >= 0 and _finite_in(g.base, xs, vanishing)


def vanishing_logs(e: sp.Expr) -> sp.Expr:
    """``x**k·P(log x)`` (P a polynomial, k > 0) as 0 at x = 0 (where log(x) as computed is −inf): its
    limit there, and, for data x = 0, the value of 0**k = 0 and of its derivatives in k. The
    derivative of ``a*x**b`` in b is ``a*x**b*log(x)``, 0·(−inf) = NaN at a data point x = 0, which
    made a power law's whole gradient NaN (torch gives 0); an entropy's p·log(p) at p = 0 alike
    (scipy's ``xlogy``).

    >>> x, k = sp.symbols("x k", real=True)
    >>> vanishing_logs(x**k * sp.log(x))
    Piecewise((0, (k > 0) & (log(x) < -1000)), (x**k*log(x), True))
    """
    found = e.atoms(sp.log)  # once: a walk of every product's factors was ~N²
    logs = {n.args[0]: n for n in found}
    # log(y·R), R free of a symbol y (a Poisson deviance's y·log(y/μ)): y·log(y·R) → 0 at y = 0 as y·log(y)
    # does; its guard asks y == 0 as well, since log(y·R) is also -inf where R underflows with y > 0
    scaled = {f: n for n in found if n.args[0].is_Mul for f in n.args[0].args
              if f.is_Symbol and f not in logs and f not in (n.args[0] / f).free_symbols}
    logs.update(scaled)

    def power(m: sp.Mul):
        for f in m.args:
            b, k = f.as_base_exp()
            if b not in logs or (k.is_number and not k.is_positive):
                continue
            log_b, others = logs[b], [g for g in m.args if g is not f]
            if not any(g.has(log_b) for g in others):
                continue
            u, powers = sp.Dummy(), set()

            def finite_power(n: sp.Expr, b=b, powers=powers) -> bool:  # x**e: finite at x = 0 where e >= 0
                if not isinstance(n, sp.Expr) or n.as_base_exp()[0] != b:
                    return False
                e = n.as_base_exp()[1]
                powers.add(e)
                return not e.is_number or bool(e >= 0)
            # the other factors are polynomials in log(x) with coefficients finite where x = 0 (free of x,
            # or x in sums, products, powers x**e with e >= 0 and functions finite everywhere, as a gamma
            # variate's e^(−c·t)): the product is x**k·(a polynomial in log x) there
            rest = [g.xreplace({log_b: u}) for g in others]
            if all(g.is_polynomial(u) and _finite_in(g, b.free_symbols, finite_power) for g in rest):
                return b, k, frozenset(e for e in powers if not e.is_number)
        return None

    def walk(n: sp.Basic, guarded: frozenset) -> sp.Basic:
        # outermost product first: 2·x**b·(log(x)·v + x**b·w) is x**b times a polynomial in log x,
        # which its inner product x**b·w, guarded first, would no longer be
        if not isinstance(n, sp.Expr) or n.is_Atom:
            return n
        hit = power(n) if n.is_Mul else None
        hit = None if hit in guarded else hit
        args = [walk(a, guarded | {hit} if hit else guarded) for a in n.args]
        inner = n.func(*args) if any(a is not b for a, b in zip(args, n.args)) else n
        if hit is None:
            return inner
        b, k, powers = hit
        # b == 0 as the code computes log(b) (accurately: -expm1, 2·sin²(u/2)), not b itself: SymPy writes
        # Eq(1 - e^(-t), 0) as Eq(e^(-t), 1), true in floats for t < 1.1e-16, where b is not 0
        zero = sp.StrictLessThan(logs[b], -1000)  # -inf: a finite double's log is above -745
        zero = sp.And(sp.Eq(b, 0), zero) if b in scaled else zero
        signs = ([] if k.is_number else [k > 0]) + [e >= 0 for e in sorted(powers - {k}, key=sp.default_sort_key)]
        return sp.Piecewise((sp.S.Zero, sp.And(zero, *signs)), (inner, True))

    return walk(e, frozenset()) if logs else e
