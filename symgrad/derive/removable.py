"""Removable singularities: a formula finite where its written form divides 0 by 0.

Box-Cox's (t^λ − 1)/λ, the growth factor (e^{rt} − 1)/r, sin(a·x)/(a·x) and the two-rate
kinetics k_a/(k_a − k_e)·(e^{−k_e t} − e^{−k_a t}) are finite and smooth where their denominators
vanish, but computed as written they are 0/0 there (NaN) and lose digits near it: the digits
they keep fall with the distance δ to the point, as ε/δ for the value and ε/δ³ for a second
derivative, whose terms ~1/δ³ cancel to O(1). At λ = 1e-9 Box-Cox's derivative came out 63 for
0.84 and its Hessian −1.3e11 for 0.55, silently.

``isolate`` finds the smallest product or sum around such a denominator that is finite at the
point (SymPy's series has no negative power there) and replaces it by a function node, R(λ, t),
whose partials are nodes too, so the derivation's chain rule runs outside it. ``restore`` puts
back each node and partial ∂^α R, computed from the Taylor polynomial in δ where that has
converged (its last two terms below the dtype's ε of the sum of its terms' magnitudes, at the
data given) and as written elsewhere. The polynomial of ∂^α R is the derivative of R's (a
truncated series' derivative is the derivative's own series, one order shorter), so SymPy
expands each node once, and only the node, not the loss around it. Where the series has not
converged δ is large enough for the written form to have lost at most ~ε^(1 − k/m) (k the
pole's order plus the derivative's, m ≥ 11 the polynomial's degree).

Only analytic nodes with one denominator that has a factor linear in one variable (λ, r·t,
k_a − k_e), and no function of it inside another, are expanded (SymPy's series is one-sided, and
slow on nested forms; docs/decisions.md). A pole that is not removable, a node SymPy cannot
expand, or one whose coefficients divide by something new is left as written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sympy as sp

from .choose import Choose

#: nodes larger than this (SymPy's count_ops) are not expanded: the build would wait on SymPy
MAX_OPS = 60
#: terms of the expansion beyond the pole's order: a Hessian's polynomial keeps 12
TERMS = 14
#: poles of higher order than this are left as written (their Hessians need longer expansions)
MAX_ORDER = 3


class Node:
    """One isolated node: the expression, its expansion's polynomial in ``d`` = s − s0, and the
    function classes of its partials, one per multi-index over its arguments."""

    def __init__(self, index: int, expr: sp.Expr, s: sp.Symbol, s0: sp.Expr, poly: sp.Expr, d: sp.Dummy,
                 exact: bool = False):
        self.expr, self.s, self.s0, self.poly, self.d, self.exact = expr, s, s0, poly, d, exact
        self.args = tuple(sorted(expr.free_symbols, key=str))
        self.index, self.classes = index, {}

    def cls(self, alpha: tuple[int, ...]):
        if alpha not in self.classes:
            node = self

            def fdiff(self, argindex=1):
                a = list(self.alpha)
                a[argindex - 1] += 1
                return node.cls(tuple(a))(*self.args)
            name = f"removable{self.index}_" + "".join(map(str, alpha))
            self.classes[alpha] = type(name, (sp.Function,), {
                "fdiff": fdiff, "alpha": alpha, "node": self, "nargs": len(self.args),
                "_eval_is_real": lambda self: True})
        return self.classes[alpha]

    def diff(self, p: sp.Expr, v: sp.Symbol) -> sp.Expr:
        """∂p/∂v for a polynomial p(d, others) with d = s − s0(others), term by term: the
        coefficients are not multiplied out ((t − t0)**k expanded cancels for t ~ t0)."""
        by: dict[int, sp.Expr] = {}
        ds0 = None if v == self.s else (-sp.diff(self.s0, v) if self.s0.has(v) else None)
        for k, c in _terms(p, self.d):
            if v != self.s:
                by[k] = by.get(k, sp.S.Zero) + sp.diff(c, v)
            if k and (v == self.s or ds0 is not None):
                by[k - 1] = by.get(k - 1, sp.S.Zero) + k * c * (1 if v == self.s else ds0)
        return sp.Add(*[c * self.d**k for k, c in by.items() if c != 0])

    def forms(self, alpha: tuple[int, ...]) -> tuple[sp.Expr, sp.Expr]:
        """∂^α of the node as written and of its polynomial."""
        written, poly = self.expr, self.poly
        for v, k in zip(self.args, alpha):
            for _ in range(k):
                written, poly = sp.diff(written, v), self.diff(poly, v)
        # sign'(x) = 0, as the derivation outside the node takes it (SymPy writes DiracDelta)
        return tuple(e.replace(lambda u: isinstance(u, sp.DiracDelta), lambda u: sp.S.Zero) for e in (written, poly))

    def output(self, alpha: tuple[int, ...], computed: Callable, dtype: str) -> sp.Expr:
        """∂^α of the node: its polynomial where that has converged, else as written."""
        written, poly = self.forms(alpha)
        terms = _terms(poly, self.d)
        delta = self.s - self.s0
        if self.exact:  # the node is this polynomial ((1 + a·t)³ − 1)/a: its terms never get small
            return computed(sp.Add(*[c * delta ** k for k, c in terms]))
        written = computed(written)
        if len(terms) < 3:  # too short to judge its convergence
            return written
        info = np.finfo(np.dtype(dtype))
        # the convergence test on the terms without their common factor: e^(−ke·t) underflowed in some
        # of them and not others, and 0 <= ε·scale held where the series had not converged (kinetics 0 for 6e-9)
        common = _common_factor([c for _, c in terms])
        mags = [sp.Abs(c / common) * sp.Abs(delta) ** k if k else sp.Abs(c / common) for k, c in terms]
        scale, tail = sp.Add(*mags), mags[-1] + mags[-2]
        series = sp.Add(*[c * delta ** k for k, c in terms])
        # the bound at 113 bits: at 53 SymPy prints it in 15 digits, which round above the largest double
        top = sp.Float(float(info.max), precision=113)
        return Choose(series, written, tail, float(info.eps) * scale, scale, top)


def _common_factor(cs: list[sp.Expr]) -> sp.Expr:
    """The non-constant factors every coefficient shares (e^(−ke·t) in the kinetics' series), or 1."""
    shared = None
    for c in cs:
        fs = set(sp.Mul.make_args(sp.factor_terms(c)))
        shared = fs if shared is None else shared & fs
    return sp.Mul(*[f for f in shared or () if f.free_symbols])


def _terms(p: sp.Expr, d: sp.Dummy) -> list[tuple[int, sp.Expr]]:
    """(power, coefficient) of the polynomial ``p`` in ``d``, the nonzero ones, by power."""
    by: dict = {}
    for term in sp.Add.make_args(p):
        c, k = term.as_coeff_exponent(d)
        if c.has(d) or not k.is_Integer or k < 0:
            raise ValueError(f"not a polynomial in {d}: {term}")
        by[int(k)] = by.get(int(k), sp.S.Zero) + c
    return sorted((k, c) for k, c in by.items() if c != 0)


def _negative_powers(e: sp.Expr) -> list[sp.Pow]:
    return [p for p in sp.preorder_traversal(e) if isinstance(p, sp.Pow) and p.exp.is_number and p.exp.is_negative]


def _points(node: sp.Expr, variables: set) -> list[tuple[sp.Symbol, sp.Expr, int]]:
    """(s, s0, order): where a factor of one of the node's own denominators (its factors', or its
    terms' factors'), linear in the variable s, vanishes."""
    out: list[tuple[sp.Symbol, sp.Expr, int]] = []
    parts = node.args if isinstance(node, sp.Add) else (node,)
    for part in parts:
        for p in sp.Mul.make_args(part):
            if not (isinstance(p, sp.Pow) and p.exp.is_number and p.exp.is_negative):
                continue
            for g in sp.Mul.make_args(p.base):
                power = 1
                if isinstance(g, sp.Pow) and g.exp.is_Integer and g.exp > 0:
                    g, power = g.base, int(g.exp)
                order = power * int(sp.ceiling(-p.exp))
                if order > MAX_ORDER or not g.free_symbols or not g.free_symbols <= variables:
                    continue
                for s in sorted(g.free_symbols, key=str):
                    if g.is_polynomial(s) and sp.degree(g, s) == 1:
                        s0 = sp.solve(g, s)
                        if len(s0) == 1 and all(q[:2] != (s, s0[0]) for q in out):
                            out.append((s, s0[0], order))
                        break
    return out


def _expanded(node: sp.Expr, s: sp.Symbol, s0: sp.Expr, order: int) -> tuple[sp.Expr, sp.Dummy, bool] | None:
    """The node's Taylor polynomial around s = s0, or None where it has a pole there (or SymPy
    cannot expand it, or its coefficients divide by what the node did not)."""
    d = sp.Dummy("d", real=True)
    g = node.subs(s, s0 + d)
    # SymPy's series is one-sided (d -> 0+): a kink at the point (Abs, Max, Piecewise, relu, ...)
    # would get the right-hand polynomial on both sides. Only analytic forms are expanded.
    if any(not isinstance(e, (sp.Add, sp.Mul, sp.Pow, sp.exp, sp.log, sp.Symbol, sp.Number, sp.Dummy,
                               sp.sin, sp.cos, sp.tan, sp.sinh, sp.cosh, sp.tanh, sp.asin, sp.acos, sp.atan,
                               sp.asinh, sp.acosh, sp.atanh, sp.erf, sp.erfc, sp.NumberSymbol))
           and e.has(d) for e in sp.preorder_traversal(g)) or not _simple(g, d):
        return None
    # sums free of d kept as symbols: SymPy's series multiplies out (t − t0)**k, which cancels
    frozen = {e: sp.Dummy("u", real=True) for e in sp.preorder_traversal(g)
              if isinstance(e, sp.Add) and not e.has(d) and e.free_symbols}
    frozen = {e: u for e, u in frozen.items() if not any(e != o and o.has(e) for o in frozen)}
    back = {u: e for e, u in frozen.items()}
    g = g.xreplace(frozen)
    try:
        if g.is_rational_function(d) and (q := sp.cancel(g)).is_polynomial(d):
            return sp.expand(q).xreplace(back), d, True
        if sp.series(g, d, 0, 1).removeO().has(d):
            return None  # a pole, log(d) or a fractional power: not removable
        poly = sp.series(g, d, 0, TERMS + order).removeO()
        # SymPy's coefficients of a power hold quotients that cancel ((t − x)²/(t − x)²)
        poly = sp.Add(*[sp.cancel(c).xreplace(back) * d**k for k, c in _terms(sp.expand(poly), d)])
    except Exception:  # noqa: BLE001 -- SymPy cannot expand this form: left as written
        return None
    g = g.xreplace(back)
    before = {p.base for p in _negative_powers(g)}
    if poly.has(sp.Order) or any(p.base.free_symbols and p.base not in before for p in _negative_powers(poly)):
        return None
    return poly, d, False


def _simple(g: sp.Expr, d: sp.Dummy) -> bool:
    """Forms whose expansion SymPy makes in a second: one denominator that vanishes with d, and
    no function of d inside another ((e^{sin(a t + b)} − e^{sin b})/a took minutes, three-rate
    Bateman kinetics' coefficients never finished cancelling)."""
    def applied(e):  # functions of d: exp(d t), t**d
        return e.has(d) and (isinstance(e, sp.Function) or isinstance(e, sp.Pow) and e.exp.has(d))
    nested = any(applied(e) and any(applied(a) for q in e.args for a in sp.preorder_traversal(q))
                 for e in sp.preorder_traversal(g))
    return not nested and len({p.base for p in _negative_powers(g) if p.base.has(d)}) <= 1


def isolate(f: sp.Expr, variables: Sequence[sp.Symbol]) -> tuple[sp.Expr, list[Node]]:
    """``f`` with each removable node replaced by a function node, and the nodes."""
    found: list[Node] = []
    names = set(variables)

    def walk(e: sp.Expr) -> sp.Expr:
        if e.is_Atom:
            return e
        args = [walk(a) for a in e.args]
        if any(a is not b for a, b in zip(args, e.args)):
            e = e.func(*args)
        if not isinstance(e, (sp.Add, sp.Mul)):
            return e
        points = _points(e, names)
        if not points or sp.count_ops(e) > MAX_OPS:
            return e
        # a node holding another (sin(2c)·erf(sin(x)/x)/(2c)) is not expanded whole: SymPy's Piecewise
        # of the two series could not be built (NoConvergence, RecursionError); its factors free of it are
        holds = bool(found) and e.has(*_classes(found))
        for s, s0, order in points:
            got = None if holds else _expanded(e, s, s0, order)
            if got is not None:
                node = Node(len(found), e, s, s0, *got)
                found.append(node)
                return node.cls((0,) * len(node.args))(*node.args)
            if isinstance(e, sp.Mul):  # sin(a)·σ(a)/a: the factors SymPy can expand, the rest (σ(a)) outside
                inner = [g for g in e.args if not any(isinstance(q, sp.Function) and not isinstance(q, _ANALYTIC)
                                                       for q in sp.preorder_traversal(g))]
                if 1 < len(inner) < len(e.args):
                    sub = sp.Mul(*inner)
                    got = _expanded(sub, s, s0, order) if _points(sub, names) else None
                    if got is not None:
                        node = Node(len(found), sub, s, s0, *got)
                        found.append(node)
                        return node.cls((0,) * len(node.args))(*node.args) * sp.Mul(*[g for g in e.args if g not in inner])
        return e
    if not any(p.base.free_symbols for p in _negative_powers(f)):
        return f, []
    return walk(f), found


#: functions SymPy expands at a point of a node (symgrad's ops stay outside it)
_ANALYTIC = (sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.sinh, sp.cosh, sp.tanh, sp.asin, sp.acos, sp.atan,
             sp.asinh, sp.acosh, sp.atanh, sp.erf, sp.erfc)


def _classes(found: list[Node]) -> set:
    return {c for n in found for c in n.classes.values()}


def restore(d: sp.Expr, found: list[Node], computed: Callable, dtype: str) -> sp.Expr:
    """``computed(d)`` with each node and partial put back as its output (``Node.output``).

    >>> r, t = sp.symbols("r t", real=True)
    >>> f, found = isolate((sp.exp(r * t) - 1) / r, [r, t])
    >>> g = restore(sp.diff(f, r), found, lambda e: e, "float64")
    >>> float(g.subs({r: 0, t: 2})), float(g.subs({r: 1e-9, t: 2}))
    (2.0, 2.000000002666667)
    """
    if not found:
        return computed(d)
    apps = [a for a in d.atoms(sp.Function) if getattr(a.func, "node", None) in found]
    holders = {a: sp.Dummy(f"r{k}", real=True) for k, a in enumerate(apps)}
    out = computed(d.xreplace(holders))

    def nested(e: sp.Expr) -> sp.Expr:  # a node inside another's written form (erf(sin(x)/x)·sin(2c)/(2c))
        return restore(e, found, computed, dtype)
    try:
        got = out.xreplace({h: a.func.node.output(a.func.alpha, nested, dtype) for a, h in holders.items()})
    except Exception:  # noqa: BLE001 - SymPy could not build it anyway: the node as written, as before it was recognised
        got = out.xreplace({h: nested(a.func.node.forms(a.func.alpha)[0]) for a, h in holders.items()})
    # an inner node left in an outer one's series' coefficients
    inner = any(getattr(a.func, "node", None) in found for a in got.atoms(sp.Function))
    return restore(got, found, lambda e: e, dtype) if inner else got
