"""Sum and Indexed in the reverse sweep: ``a = Σ_j θ_j x_j`` is one node, as in the notes.

An element ``theta[j]`` is a leaf (a real Symbol named ``theta[j]``). A ``Sum(f, (j, lo, hi))``
is one node whose lanes are the terms of the summand ``f`` (its factors, or its terms, or ``f``
itself):

* a term that depends on j is a quantity *at index j* (``theta[j]``, ``x[j]``, ``z_j``): only
  the j-th term of the Sum holds it, so ``∂a/∂theta[j] = ∂f/∂theta[j]``, the summand's own
  derivative (``x[j]``);
* a term that does not (a scalar ``w``) is in every term: ``∂a/∂w = Σ_j ∂f/∂w``.

The first holds for j inside the Sum's range. Where every Sum over j has the same range, that range
is the elements' own and the derivative is written for j inside it, as the notes write it. Where
the ranges differ (a ridge penalty Σ_{j=1}^{D} θ_j² that leaves θ_0 out, beside a loss over
j = 0..D), each Sum's partial holds only inside its range: ``Piecewise((x[j], (j >= 1) & (j <= D)),
(0, True))``; without it, θ_0 got the penalty's term too. Limits in decreasing order are refused:
SymPy reads Σ_{j=3}^{0} as −Σ_{j=1}^{2}, which no reader expects.

The first needs every variable (``wrt``) inside such a term to be indexed by j: a scalar ``w``
or an element ``x[i]`` of an inner Sum inside ``exp(w*x[j])`` belongs to every term, and the
derivation is refused with the fix (expand the Sum with ``.doit()``). ``front/indexed.py``
has normalised the expression so that a variable's index letter is the summation index.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from ..errors import UnsupportedFunctionError
from ..front.indexed import leaf
from .partials import _clean_partial
from .reverse import Node, _Builder


def builder(wrt: Sequence[sp.Basic]):
    """A sweep builder (``reverse.sweep(..., builder=)``) that knows the variables ``wrt``."""
    def make(names, output_name, taken):
        return IndexedBuilder(names, output_name, taken, wrt)
    return make


class IndexedBuilder(_Builder):
    def __init__(self, names, output_name, taken, wrt: Sequence[sp.Basic]):
        super().__init__(names, output_name, taken)
        self.wrt = list(wrt)

    def visit(self, e: sp.Expr, is_root: bool = False) -> sp.Symbol:
        if is_root:
            self.ranges = _ranges(e)
        if e in self.seam:
            return self.seam[e]
        if isinstance(e, sp.Indexed):
            s = leaf(e)
            self.leaves.append(s)
            self.seam[e] = s
            return s
        if isinstance(e, sp.Sum):
            return self._sum(e, is_root)
        return super().visit(e, is_root)

    def _sum(self, e: sp.Sum, is_root: bool) -> sp.Symbol:
        f, (j, lo, hi) = e.function, e.limits[0]
        terms = f.args if isinstance(f, (sp.Add, sp.Mul)) else (f,)
        shared = [w for g in terms if j in g.free_symbols for w in self._shared(g, j)]
        if shared:
            return self._whole(e, is_root, shared)
        seams: dict[sp.Expr, sp.Symbol] = {}
        local: set[sp.Symbol] = set()  # lanes at index j
        for g in terms:
            if not g.free_symbols - {j}:
                continue  # a constant, or the index itself
            s = self.visit(g)
            seams[g] = s
            if j in g.free_symbols:
                local.add(s)
        lanes = list(dict.fromkeys(seams.values()))

        def rebuild(term):  # the summand with each of its terms replaced by term(g)
            return f.func(*[term(g) for g in terms]) if len(terms) > 1 else term(f)
        at_j = rebuild(lambda g: seams.get(g, g))  # in the lanes: the term at index j
        outer = rebuild(lambda g: seams[g] if g in seams and seams[g] not in local else g)
        partials = []
        for s in lanes:
            if s in local:
                partials.append(_inside(_clean_partial(sp.diff(at_j, s)), j, lo, hi, self.ranges))
            else:
                p = sp.Sum(_clean_partial(sp.diff(outer, s)), (j, lo, hi))
                partials.append(p.doit() if not p.function.has(sp.Indexed, sp.Sum) else p)
        return self._node(e, is_root, lanes, partials, sp.Sum(at_j, (j, lo, hi)))

    def _node(self, e: sp.Sum, is_root: bool, lanes: list, partials: list, shown: sp.Expr) -> sp.Symbol:
        name = self.output_name if is_root else self.names.get(e) or self._auto_name()
        out = sp.Symbol(name, real=True)
        self.nodes.append(Node(out, e, e, tuple(lanes), tuple(partials), shown=shown))
        self.seam[e] = out
        return out

    def _shared(self, g: sp.Expr, j: sp.Symbol) -> list[sp.Basic]:
        """The variables in ``g``, a term that changes with j, that every term of the Sum holds:
        plain Symbols, and elements not indexed by j."""
        return [w for w in self.wrt if (w in g.free_symbols if isinstance(w, sp.Symbol)
                                        else g.has(w) and j not in w.indices)]

    def _whole(self, e: sp.Sum, is_root: bool, shared: list[sp.Basic]) -> sp.Symbol:
        """A Sum whose every term depends on a variable (``Σ_j (w*x[j] - y[j])**2``, ``w``): one
        node with the variables as lanes, ``∂a/∂w = Σ_j ∂f/∂w``. Refused when an element of
        the Sum's own index is a variable too (its step is the one term's, the other's is not)."""
        (j, *_), f = e.limits[0], e.function
        own = [w for w in self.wrt if isinstance(w, sp.Indexed) and j in w.indices and f.has(w)]
        if own or not all(isinstance(w, sp.Symbol) for w in shared):
            w = shared[0] if own else next(w for w in shared if not isinstance(w, sp.Symbol))
            raise UnsupportedFunctionError(
                f"in {e}, the variable {w} is in every term of the Sum over {j}"
                + (f", beside {own[0]}, which is in the {j}-th term only" if own else "")
                + ": the derivation cannot show this as one step. Fix: expand the sum first: .doit() with "
                "a numeric upper limit (e.g. .subs(D, 3).doit()), or differentiate with respect to "
                + ("each separately." if own else f"elements indexed by {j}."))
        lanes = list(dict.fromkeys(self.visit(w) for w in shared))
        partials = [sp.Sum(_clean_partial(sp.diff(f, w)), e.limits[0]) for w in lanes]
        return self._node(e, is_root, lanes, partials, e)


def _ranges(e: sp.Expr) -> dict[sp.Symbol, set[tuple]]:
    """Each summation index's ranges (lo, hi) in ``e``; decreasing numeric limits are refused."""
    out: dict[sp.Symbol, set[tuple]] = {}
    for term in e.atoms(sp.Sum):
        for j, lo, hi in term.limits:
            if (hi - lo).is_negative:
                raise UnsupportedFunctionError(
                    f"{term} has its limits in decreasing order ({lo} > {hi}); SymPy reads such a Sum as minus "
                    f"the Sum over {hi + 1} .. {lo - 1}. Fix: write the limits in increasing order, "
                    f"({j}, {hi}, {lo}).")
            out.setdefault(j, set()).add((lo, hi))
    return out


def _inside(p: sp.Expr, j: sp.Symbol, lo: sp.Expr, hi: sp.Expr, ranges: dict) -> sp.Expr:
    """``p``, the partial of the Sum's j-th term, where the Sums over j have several ranges: 0 outside
    this one's."""
    if len(ranges.get(j, ())) < 2 or p == 0:
        return p
    return sp.Piecewise((p, sp.And(j >= lo, j <= hi)), (0, True))
