"""Forms that lose digits, written after CSE as ones that keep them.

sympy.cse's output holds log(1 + u), e^u − 1, 1 − u² and quotients by sums of squares, whose
pieces it often took out as temporaries shared by a value and its gradients (the 1 + u of
log(1 + u), e^u, u², 1/(x² + y²)): the temporaries' values are looked up. After CSE the pieces
are small, where a rewrite of every gradient before it walked shared subtrees once per gradient.

>>> x, y = sp.symbols("x y", real=True)
>>> temps, finals = accurate_forms([], [sp.log(1 + x), sp.exp(x) - 1, 1 - x**2, -x * y / (x**2 + y**2)])
>>> temps, finals
([(_hyp0, Root(x**2 + y**2))], [log1p(x), expm1(x), (1 - x)*(x + 1), -DivBy(x, _hyp0, 1)*DivBy(y, _hyp0, 1)])
"""

from __future__ import annotations

import itertools

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from ..derive.simplify import _larger_than
from .one_minus import _erfc_sum, _log_erfc, _one_minus, _product, _written


class Root(sp.Function):
    """√S for S a sum of squares (and at most one positive number), printed scaled (hypot)."""

    nargs = 1


class DivBy(sp.Function):
    """``f / h / ... / h`` (k times), unevaluated: SymPy would merge (x/h)·(y/h) into x·y/h², and
    x·y overflows where the quotients do not."""

    nargs = 3


def accurate_forms(replacements: list, reduced: list, libm: bool = True) -> tuple[list, list]:
    """CSE's (temporaries, finals) with log(1 + u) as log1p(u) (log(1 + 1e-30) came out 0), log(S) as
    2·log(√S) for S a sum of squares (inf at x = y = 1e160, where it is 737.5), e^u − 1 as expm1(u)
    (elu's ∂/∂α near 0; p − p·e^u alike), p − p·cos(u) as 2p·sin²(u/2), 1 ± erf(u) as erfc(∓u),
    1 − u² as (1 − u)(1 + u) (asin', acos' and atanh' near ±1: 2.5e-11 off at −0.9999999999), acosh(1 + w)
    as log1p(w + √w·√(w + 2)), and
    num·S^(−m/2), S a sum of squares, as num's factors divided in turn by h = √S computed scaled
    (atan2's gradient −y/(x² + y²) was 0 at x = y = 1e160: S overflowed).
    log(1 + S) is log1p(S) below 4 and 2·log(√S) above (log1p(u²) was inf from u = 1.3e154).
    ``libm=False`` keeps 1 ± erf(u) and log1p(S) (a network's maps: math.erfc or a branch would stop
    their loops vectorising)."""
    value = dict(replacements)
    # a temporary that holds such a power (CSE shares 1/(x² + y²) between atan2's two gradients) is
    # put back into the products that use it: computed alone it is 0 (or inf) where they are not
    powers: dict[sp.Symbol, sp.Expr] = {}
    for t, v in replacements:  # c·S^(−m/2), a/S, also through another such temporary (2·t2)
        if not isinstance(v, sp.Expr):  # a condition
            continue
        v = sp.Mul(*(powers.get(f, f) for f in sp.Mul.make_args(v)))
        if any(_power_of_squares(f, value) is not None for f in sp.Mul.make_args(v)):
            powers[t] = v  # a/S alone is a/h/h: inf at x = y = 1e-155, where (a/h)·(y/h) is not
    roots: dict[sp.Expr, sp.Dummy] = {}
    names = (sp.Dummy(f"hyp{k}") for k in itertools.count())

    def form(n: sp.Basic) -> sp.Expr | None:
        if isinstance(n, sp.log):
            arg = _written(n.args[0], value)
            squares = _sum_of_squares(arg, value)
            if squares is not None and sp.S.One not in squares.args:  # log(x² + y²)
                return 2 * sp.log(Root(squares))
            if squares is not None and libm:  # log(1 + u²): log1p's digits for small u, no overflow for large
                h = roots[squares] if squares in roots else roots.setdefault(squares, next(names))
                return sp.Piecewise((log1p(squares - 1), h < 2), (2 * sp.log(h), True))
            cdf = _erfc_sum(arg, value) if libm and arg.is_Add else None
            if cdf is not None:  # log(1 + erf(u)): log1p's digits near u = 0, erfc's in the tail
                return _log_erfc(*cdf.as_coeff_Mul())
            if not (arg.is_Add and sp.S.One in arg.args):  # log(1 + u) itself, below
                return None
            one_minus = _one_minus(arg, value)
            if one_minus is not None:
                c, rest = one_minus.as_coeff_Mul()
                if isinstance(rest, expm1) and c == -1:  # log(1 - e^u): Maechler's log1mexp, both tails exact
                    u = rest.args[0]
                    return sp.Piecewise((sp.log(-expm1(u)), u > -sp.log(2)), (log1p(-sp.exp(u)), True))
                if one_minus.is_Add and sp.S.One in one_minus.args:  # 1 + a − a·e^u: still log1p's
                    return log1p(one_minus - 1)
                return sp.log(one_minus)  # log(1 - cos u) as log(2 sin^2(u/2))
            return log1p(arg - 1)
        if isinstance(n, sp.acosh) and libm:  # acosh(1 + w) for small w: √(2w)'s digits (0 for 1.4e-9 at w = 1e-18)
            c, w = _written(n.args[0], value).as_coeff_Add()
            if c == 1:  # √w·√(w + 2): w(w + 2) overflows from w = 1.3e154; w + √w·√(w + 2) from 9e307 (float32: 1.7e38)
                # √w from w as written where SymPy takes the root (√(x²) = |x|, √(e^u) = e^(u/2)): a temporary
                # t0 = x² underflows (x = 1e-170; float32 1e-23) where √w does not
                full = _all_written(w, value)
                root = sp.sqrt(full)
                root = sp.sqrt(w) if root.is_Pow and root.base == full else root
                # from w = 1e17 acosh(1 + w) is log(2w) to a part in 1e19; log(w) + log(2): 2w overflows from 9e307
                return sp.Piecewise((log1p(w + root * sp.sqrt(w + 2)), w < 1e17), (sp.log(w) + sp.log(2), True))
        if n.is_Mul and any(f in powers for f in n.args):
            n = sp.Mul(*(powers.get(f, f) for f in n.args))
        if n.is_Pow and n.exp == sp.S.Half and (n.base in value or n.base.is_Add):
            # √(t0·a² + 1) with t0 = x²: the printer sees no square
            squares = _sum_of_squares(value.get(n.base, n.base), value)
            return None if squares is None else Root(squares)
        if n.is_Mul or n.is_Pow:
            return _divided(n, value, roots, names)
        if libm and n.is_Add and n.has(sp.erf, sp.erfc, *value):
            e = _erfc_sum(n, value)
            if e is not None:
                return e
        if n.is_Add and (pair := _one_minus(n, value)) is not None:
            return pair
        if not (n.is_Add and len(n.args) == 2):
            return None
        c, rest = n.as_coeff_Add()
        w = value.get(-rest, -rest) if c == 1 else value.get(rest, rest) if c == -1 else None
        if w is not None and w.is_Pow and w.exp == 2:
            return (1 - w.base) * (1 + w.base) if c == 1 else (w.base - 1) * (w.base + 1)
        return None

    def fix(e: sp.Basic) -> sp.Basic:  # top-down: a product is seen before its power of a sum
        if e.is_Atom:
            return e
        if isinstance(e, DivBy):  # made here: only what it divides may hold more
            return DivBy(fix(e.args[0]), *e.args[1:])
        new = form(e)
        e = e if new is None else new
        args = [fix(a) for a in e.args]
        return e.func(*args) if args != list(e.args) else e

    temps, finals = [(t, fix(v)) for t, v in replacements], [fix(r) for r in reduced]
    return _with_roots(temps, finals, powers, roots), finals


def _all_written(e: sp.Expr, value: dict) -> sp.Expr:
    """``e`` with every temporary it holds put back, through temporaries of temporaries."""
    for _ in range(len(value) + 1):
        held = e.free_symbols & value.keys()
        if not held:
            break
        e = e.xreplace({t: value[t] for t in held})
    return e


def _with_roots(temps: list, finals: list, powers: dict, roots: dict) -> list:
    """``temps`` with each root's statement before its first use, and without the powers' own
    statements where nothing uses them any more (every use divides by the root now)."""
    if not roots:
        return temps
    h_of = {h: s for s, h in roots.items()}
    # the roots' own sums count as uses: (2y − t1/t0)² + 4 keeps t0 = y² + 1 defined
    used = set().union(*(v.free_symbols for _, v in temps), *(r.free_symbols for r in finals),
                       *(s.free_symbols for s in roots))
    out, placed = [], set()
    for t, v in temps:
        for h in sorted(v.free_symbols & (h_of.keys() - placed), key=str):
            out.append((h, Root(h_of[h])))
            placed.add(h)
        if t in used or not (t in powers or _sum_of_squares(v, {}) is not None):
            out.append((t, v))
    out += [(h, Root(h_of[h])) for h in sorted(h_of.keys() - placed, key=str)]
    return out


def _divided(n: sp.Expr, value: dict, roots: dict, names) -> sp.Expr | None:
    """``n`` = num·S^(−m/2) as num's factors each divided by h = √S in turn (m divisions), or None."""
    factors = sp.Mul.make_args(n)
    for f in factors:
        found = _power_of_squares(f, value)
        if found is None:
            continue
        m, s = found
        h = roots[s] if s in roots else roots.setdefault(s, next(names))
        coeff, parts = sp.S.One, []
        for g in factors:
            if g is f:
                continue
            for p in _product(g, value):
                if p.is_Number:
                    coeff *= p
                elif p.is_Pow and p.exp.is_Integer and 1 < p.exp <= 4:
                    parts += [p.base] * int(p.exp)  # x²·y: x, x and y, each of them divided
                else:
                    parts.append(p)
        if not parts:
            return coeff * DivBy(sp.S.One, h, m)
        k = [m // len(parts) + (j < m % len(parts)) for j in range(len(parts))]
        return coeff * sp.Mul(*(DivBy(p, h, kj) if kj else p for p, kj in zip(parts, k)))
    return None


def _power_of_squares(f: sp.Expr, value: dict) -> tuple[int, sp.Expr] | None:
    """(m, S) where ``f`` is S^(−m/2), 1 <= m <= 6, S a sum of squares (or a temporary holding one)."""
    if f.is_Pow and f.exp.is_negative and (2 * f.exp).is_Integer and -2 * f.exp <= 6:
        s = _sum_of_squares(value.get(f.base, f.base), value)
        if s is not None:
            return int(-2 * f.exp), s
    return None


def square_base(t: sp.Expr, value: dict | None = None) -> sp.Expr | None:
    """b where ``t`` = b² for a real b: u², u⁴ as (u²)², a²·x² as (a·x)² (SymPy writes (a·x)² so, and
    asinh(a·x)'s derivative overflowed at a·x = 1e200), 4u² as (2u)²; or None. A temporary's value is
    looked up, and its base stands for a real expression (every formula is real)."""
    value = value or {}
    t = value.get(t, t)
    if t.is_Pow and t.exp.is_Integer and t.exp > 0 and t.exp % 2 == 0 and t.base.is_real is not False:
        return t.base ** (t.exp // 2)
    if not t.is_Mul:
        return None
    coeff, rest = t.as_coeff_Mul()
    root = sp.sqrt(coeff) if coeff.is_Rational and coeff > 0 else None
    bases = [square_base(f, value) for f in sp.Mul.make_args(rest)]
    if root is None or not root.is_Rational or rest.is_Number or any(b is None for b in bases):
        return None  # √2·u would be an irrational constant in the code
    return root * sp.Mul(*bases)


def _sum_of_squares(s: sp.Expr, value: dict) -> sp.Expr | None:
    """``s`` with its temporaries' values put back where it is u² + v² (+ ...) or u² + c, c > 0."""
    if not s.is_Add:
        return None
    terms = [value.get(t, t) for t in s.args]
    bases = [b for b in (square_base(t, value) for t in terms) if b is not None]
    numbers = [t for t in terms if t.is_Number and t > 0]
    if len(bases) + len(numbers) != len(terms) or len(numbers) > 1 or not bases:
        return None
    return sp.Add(*(b**2 for b in bases), *numbers)  # t0·a², t0 = x²: a²·x², which the printer sees


def factored(d: sp.Expr) -> sp.Expr:
    """A small rational function (no Float: factor's floating domain) cancelled and factored, where
    that is no costlier: log(1 + a²b²)'s ∂²/∂a∂b is 4ab/S − 4a³b³/S² as derived, which cancels (3% off
    at ab = 1e7), and 4ab/S² factored; 1/(1 − x²)'s Hessian gets (x − 1)²(x + 1)², not x⁴ − 2x² + 1."""
    if d.is_Atom or _larger_than(d, 120) or d.atoms(sp.Float) or not d.is_rational_function(*d.free_symbols):
        return d  # _larger_than first: it stops after 120 nodes, where a whole walk of an hvp took seconds
    f = sp.factor(sp.cancel(d))
    num, den = sp.fraction(f)
    # a sum of squares in the numerator over one (x²(x² + 3y²)/(x² + y²)²) overflows where the quotient by
    # the scaled root of the derived form's monomials did not
    scaled = any(_sum_of_squares(b.base if b.is_Pow else b, {}) is not None for b in sp.Mul.make_args(den))
    sums = [g.base if g.is_Pow else g for g in sp.Mul.make_args(num) if (g.base if g.is_Pow else g).is_Add]
    if scaled and any(q.exp.is_number and q.exp >= 2 for g in sums for q in g.atoms(sp.Pow)):
        return d  # (ab − 1)(ab + 1) is divided by √S factor by factor; x² + 3y² overflows before
    return f if sp.count_ops(f) <= sp.count_ops(d) else d
