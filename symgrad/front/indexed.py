"""Index notation, as in the lecture notes (issue 17): ``a = Σ_j θ_j x_j`` written with ``sp.Sum``
over ``sp.IndexedBase`` elements, differentiated with respect to an element such as ``theta[j]``.

This module checks and normalises such an expression for ``grad`` and ``explain``; the sweep's
``Sum`` nodes are in ``derive/indexed.py``. The normal form:

* every ``Idx`` and index symbol is an integer Symbol of the same name; other symbols and the
  IndexedBases are real (as ``validate.realify`` does for plain formulas);
* a Sum has one limit (``Sum(f, (i, ...), (j, ...))`` is nested);
* a Sum whose summand holds a variable's base indexed by the summation index is summed over the
  variable's own letter (``Sum(theta[i]*x[i], (i, 0, D))`` with ``wrt=theta[j]`` is summed over j),
  so the term of the Sum that holds the variable is the one at the variable's index;
* a variable's base appears only as that variable (``theta[j]``): ``theta[0]`` beside
  ``theta[j]`` would be the same element for j = 0, which the derivation cannot show.

``sg.compile`` keeps refusing Sum (``validate.check_functions``, the fix is ``.doit()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sympy as sp

from ..errors import SymgradError, UnsupportedFunctionError
from ..lang.ops import textbook_signs
from .validate import check_functions, check_scalar

_DOIT = "expand the sum first: .doit() with a numeric upper limit (e.g. .subs(D, 3).doit())"


def uses_indices(expr: object, wrt: Sequence[object]) -> bool:
    """Whether ``expr`` or ``wrt`` uses index notation (Sum, Indexed)."""
    return (isinstance(expr, sp.Basic) and expr.has(sp.Sum, sp.Indexed)) or any(
        isinstance(w, sp.Indexed) for w in wrt)


def leaf(w: sp.Basic) -> sp.Symbol:
    """The sweep's variable for ``w``: a plain Symbol as it is, an element as a real Symbol of its
    printed name (``theta[j]``), mapped back by :meth:`Prepared.result`."""
    return w if isinstance(w, sp.Symbol) else sp.Symbol(str(w), real=True)


@dataclass
class Prepared:
    """An expression in index notation, normalised (see the module docstring)."""

    expr: sp.Expr
    wrt: list[sp.Basic]  # Symbols and Indexed, in the normal form's terms
    forward: dict = field(default_factory=dict)  # the user's objects -> the normal form's
    back: dict = field(default_factory=dict)  # and back, for results

    @property
    def leaves(self) -> list[sp.Symbol]:
        return [leaf(w) for w in self.wrt]

    @property
    def elements(self) -> dict[sp.Symbol, sp.Indexed]:
        """Each element's sweep variable (``theta[j]``, ``x[j]``) -> the element, in the user's terms."""
        return {leaf(i): i.xreplace(self.back) for i in self.expr.atoms(sp.Indexed)}

    def key(self, e: sp.Basic) -> sp.Basic:
        """A ``names=`` key, normalised as the expression was."""
        return _canonical(_nest(e.xreplace(self.forward)), self.wrt)

    def result(self, e: sp.Expr) -> sp.Expr:
        """A derivative from the sweep, in the user's symbols and elements."""
        return textbook_signs(e.xreplace({leaf(i): i for i in self.expr.atoms(sp.Indexed)}).xreplace(self.back))


def prepare_indexed(expr: object, wrt: Sequence[object]) -> Prepared:
    """Check and normalise ``expr`` and ``wrt`` (see the module docstring); raise SymgradError
    naming the fix for what the derivation cannot show."""
    e = check_scalar(expr, "expression")
    for w in wrt:
        _check_wrt(w)
    check_functions(e.replace(lambda n: isinstance(n, sp.Sum), lambda n: n.function))
    forward = _forward_map(e, wrt)
    e = _nest(e.xreplace(forward))
    wrt_n = [w.xreplace(forward) for w in wrt]
    _check_variables(e, wrt_n)
    e = _canonical(e, wrt_n)
    _check_occurrences(e, wrt_n)
    back = {v: k for k, v in forward.items()}
    for w in wrt:  # the variable's own index objects win (Idx j or Symbol j)
        for i in getattr(w, "indices", ()):
            back[i.xreplace(forward)] = i
    return Prepared(e, wrt_n, forward, back)


def _check_wrt(w: object) -> None:
    if isinstance(w, sp.Symbol):
        return
    if not isinstance(w, sp.Indexed):
        raise SymgradError(f"can only differentiate with respect to a Symbol or an element such as theta[j], "
                           f"got {w!r} ({type(w).__name__}). Fix: e.g. grad(expr, x) or grad(expr, theta[j]).")
    bad = [i for i in w.indices if not isinstance(i, (sp.Symbol, sp.Idx))]
    if bad:
        raise SymgradError(f"the variable {w} has the index {bad[0]}, which is not a letter; the derivation "
                           f"shows the derivative for a general element. Fix: differentiate with respect to "
                           f"{w.base}[j] (an index letter such as j) and substitute j = {bad[0]} in the result (it holds "
                           f"for j inside a Sum's range; where {bad[0]} is outside every Sum's range the derivative is "
                           f"0), or {_DOIT} and use a plain Symbol.")


def _forward_map(e: sp.Expr, wrt: Sequence[sp.Basic]) -> dict:
    """Idx and index symbols -> integer Symbols; other symbols and IndexedBases -> real ones."""
    everything = [e, *wrt]
    indices: dict = {}
    for x in everything:
        for s in x.atoms(sp.Sum):
            for lim in s.limits:
                indices[lim[0]] = None
        for ind in x.atoms(sp.Indexed):
            for i in ind.indices:
                for a in i.atoms(sp.Symbol, sp.Idx):
                    indices[a] = None
    out = {i: sp.Symbol(str(i.label if isinstance(i, sp.Idx) else i), integer=True) for i in indices}
    out = {k: v for k, v in out.items() if k != v}
    for x in everything:
        for s in x.free_symbols:
            if isinstance(s, sp.Symbol) and s not in indices and not s.is_real:
                out[s] = sp.Symbol(s.name, real=True)
        for ind in x.atoms(sp.Indexed):
            b = ind.base
            if not b.is_real and b not in out:
                out[b] = sp.IndexedBase(b.label.name if isinstance(b.label, sp.Symbol) else str(b), real=True)
    return out


def _nest(e: sp.Basic) -> sp.Basic:
    """Refuse a Sum over several indices at once: SymPy merges ``Sum(Sum(f, (i, ...)), (j, ...))``
    into one such Sum, and the derivation is for one index per Sum (it read the first limit only:
    a quadratic form θᵀAθ came out 2·A[k, k]·θ[k])."""
    for s in sorted((s for s in e.atoms(sp.Sum) if len(s.limits) > 1), key=str):
        raise UnsupportedFunctionError(
            f"{s} sums over {', '.join(str(lim[0]) for lim in s.limits)} at once; the derivation takes one index "
            f"per Sum, with a Sum inside another's function (Sum over j of beta[j]*sigmoid(Sum over i of "
            f"alpha[j, i]*x[i])). Fix: {_DOIT}.")
    return e


def _check_variables(e: sp.Expr, wrt: Sequence[sp.Basic]) -> None:
    bases = sorted({str(i.base) for i in e.atoms(sp.Indexed)})
    bounds = {v for s in e.atoms(sp.Sum) for lim in s.limits[0][1:] for v in lim.free_symbols}
    for w in wrt:
        if isinstance(w, sp.Indexed) and str(w.base) not in bases:
            raise SymgradError(f"the variable {w}: its base {w.base} does not appear in the expression "
                               f"(its indexed bases: {', '.join(bases) or 'none'}). Fix: differentiate "
                               f"with respect to an element of one of these, e.g. {bases[0] if bases else 'x'}[j].")
        if isinstance(w, sp.Symbol) and w in bounds:
            raise SymgradError(f"{w} is a limit of a Sum, not a differentiable variable. Fix: "
                               "differentiate with respect to a variable of the summand.")
    twice = sorted({str(w.base) for w in wrt if isinstance(w, sp.Indexed)
                    and sum(isinstance(v, sp.Indexed) and v.base == w.base for v in wrt) > 1})
    if twice:
        raise SymgradError(f"two elements of {twice[0]} are variables; the derivation is for one general "
                           f"element of each base. Fix: list one, e.g. {twice[0]}[j].")


def _canonical(e: sp.Basic, wrt: Sequence[sp.Basic]) -> sp.Basic:
    """Sum each Sum whose summand indexes a variable's base by the summation index over the
    variable's letter (inner Sums first)."""
    if not isinstance(e, sp.Basic) or not e.has(sp.Sum):
        return e
    e = e.func(*[_canonical(a, wrt) for a in e.args])
    return _rename(e, wrt) if isinstance(e, sp.Sum) else e


def _rename(s: sp.Sum, wrt: Sequence[sp.Basic]) -> sp.Sum:
    (j, *_), f = s.limits[0], s.function
    if j not in f.free_symbols:
        free = sorted({str(i) for ind in f.atoms(sp.Indexed) for i in ind.indices if i != j})
        raise SymgradError(f"the summand of {s} does not depend on its index {j}"
                           + (f" (it uses {', '.join(free)}, free)" if free else "")
                           + f": it is {s.limits[0][2] - s.limits[0][1] + 1} times the same term. Fix: sum "
                           f"over the index the summand uses, e.g. Sum(theta[j]*x[j], (j, 0, D)).")
    elements = {w.base: w for w in wrt if isinstance(w, sp.Indexed)}
    letters = {elements[ind.base].indices[p] for ind in f.atoms(sp.Indexed) if ind.base in elements
               for p, i in enumerate(ind.indices) if i == j and p < len(elements[ind.base].indices)}
    if len(letters) > 1:
        raise SymgradError(f"the Sum over {j} in {s} indexes the variables at {', '.join(sorted(map(str, letters)))}"
                           f" by {j}. Fix: give the variables the same index letter at that place, "
                           "e.g. wrt=[alpha[j, i], beta[j]] for Sum over j of beta[j]*sigmoid(Sum over i of alpha[j, i]*x[i]).")
    if not letters or j in letters:
        return s
    k = letters.pop()
    # an inner Sum over k that holds j: renaming j to k there would capture it
    inner = {lim[0] for t in f.atoms(sp.Sum) if j in t.free_symbols for lim in t.limits}
    if k in s.free_symbols or k in inner:
        raise SymgradError(f"{s} uses {k} both {'free' if k in s.free_symbols else 'in an inner Sum'} and as the "
                           f"variable's index. Fix: use another letter for the {'free' if k in s.free_symbols else 'inner'}"
                           f" index or for the variable, or {_DOIT}.")
    return s.xreplace({j: k})


def _check_occurrences(e: sp.Expr, wrt: Sequence[sp.Basic]) -> None:
    elements = {w.base: w for w in wrt if isinstance(w, sp.Indexed)}
    for ind in sorted(e.atoms(sp.Indexed), key=str):
        w = elements.get(ind.base)
        if w is not None and ind != w:
            raise UnsupportedFunctionError(
                f"{ind.base} appears as {ind} and as the variable {w}, which may be the same element; "
                f"the derivation is for a general element, indexed alike everywhere. Fix: write every "
                f"{ind.base} with the variable's indices (summing over the same letter), or {_DOIT} and "
                "differentiate with respect to plain Symbols.")
