"""``grad`` and ``explain`` for index notation (issue 17): ``a = Σ_j θ_j x_j`` with ``sp.Sum`` and
``sp.IndexedBase``, differentiated with respect to ``theta[j]`` as the lecture notes do::

    a = Sum(theta[j]*x[j], (j, 0, D))
    ∂J/∂theta[j] += ∂J/∂a * ∂a/∂theta[j],   ∂a/∂theta[j] = x[j]

The expression is normalised by ``front/indexed.py`` and swept with ``derive/indexed.py``'s Sum
nodes; the printout is :class:`~symgrad.explain.trace.Derivation`'s, with elements written
``theta[j]`` in the text and ``\\theta_{j}`` in LaTeX.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sympy as sp

from ..derive.indexed import builder
from ..derive.reverse import sweep
from ..errors import OptionError
from ..front.indexed import prepare_indexed
from ..front.rewrite import stabilize
from .display import Style
from .printing import tex
from .trace import Derivation, agreement, check_trace_names, resolve_names


def grad_indexed(expr: sp.Expr, wrt: Sequence[sp.Basic]) -> list[sp.Expr]:
    """The stabilised gradient, in the user's symbols and elements (``x[j]*(sigmoid(a) - y*)``)."""
    p = prepare_indexed(expr, wrt)
    stable, _ = stabilize(p.expr)
    s = sweep(stable, builder=builder(p.wrt))
    return [p.result(s.gradient(v)) for v in p.leaves]


def explain_indexed(expr: sp.Expr, wrt: Sequence[sp.Basic], names: Mapping | None, output: str,
                    at: dict | None, textbook: bool) -> Derivation:
    """``explain`` for index notation (same arguments, less ``at=``)."""
    if at is not None:
        raise OptionError("at= gives values to Symbols, and index notation (a Sum, elements such as theta[j]) is "
                          "derived for a general element, without values. Fix: for a worked example with numbers, "
                          "write the terms with Symbols, e.g. e.doit().xreplace({theta[0]: sp.Symbol('theta0'), ...}) "
                          "(a numeric upper limit first: .subs(D, 3)), or leave out at=.")
    p = prepare_indexed(expr, wrt)
    stable, rules = stabilize(p.expr)
    derived = p.expr if textbook else stable

    def forms(key: sp.Expr) -> list[sp.Expr]:
        k = p.key(key)
        return [k] if textbook else [stabilize(k)[0], k]

    named = resolve_names(names, p.expr, derived, forms, output)
    s = sweep(derived, {node: name for node, (name, _) in named.items()}, output, rename_output=False,
              builder=builder(p.wrt))
    check_trace_names(s, named, derived, bool(rules) and not textbook)
    d = IndexedDerivation(p.expr, stable, rules, s, p.leaves, textbook=textbook, elements=p.elements)
    d.gradients = [p.result(s.gradient(v)) for v in p.leaves]
    if textbook and rules:  # what the stable form gives, and that it is the same derivative
        stable_sweep = sweep(stable, {}, output, rename_output=False, builder=builder(p.wrt))
        d.stable_raw = [stable_sweep.gradient(v) for v in p.leaves]
        d.stable_gradients = [p.result(g) for g in d.stable_raw]
        d.agreement = [_agreement(g, h) for g, h in zip(d.gradients, d.stable_gradients)]
        d.note = ("sg.compile needs the sum expanded: .doit() with a numeric upper limit "
                  "(e.g. .subs(D, 3).doit()); it then compiles this stable form term by term.")
    return d


def _agreement(written: sp.Expr, stable: sp.Expr) -> str:
    """``trace.agreement`` with each Sum and element as a symbol of its own: both derivatives
    are functions of the same sums and elements, so they agree iff they do as such functions."""
    both = written - stable
    parts = sorted(both.atoms(sp.Sum), key=sp.default_sort_key)
    repl = {s: sp.Dummy(f"s{i}", real=True) for i, s in enumerate(parts)}
    w, h = written.xreplace(repl), stable.xreplace(repl)
    elements = {e: sp.Dummy(str(e), real=True) for e in (w - h).atoms(sp.Indexed)}
    w, h = w.xreplace(elements), h.xreplace(elements)
    return agreement(w, h, (w - h).free_symbols | h.free_symbols)


class _IndexStyle(Style):
    """The derivation's style, with elements as textbooks write them in LaTeX (``\\theta_{j}``)."""

    def __init__(self, latex: bool, elements: Mapping[sp.Symbol, sp.Indexed]):
        super().__init__(latex)
        self.elements = dict(elements)
        self.by_name = {s.name: e for s, e in self.elements.items()}

    def expr(self, e: sp.Basic, **text_settings) -> str:
        return super().expr(e.xreplace(self.elements) if self.latex else e, **text_settings)

    def name(self, n: object) -> str:
        e = self.by_name.get(str(n))
        return tex(e) if self.latex and e is not None else super().name(n)


@dataclass
class IndexedDerivation(Derivation):
    """A :class:`Derivation` whose variables may be elements ``theta[j]`` of an IndexedBase."""

    elements: dict = field(default_factory=dict)
    note: str = ""  # printed after the stable form: how to compile it

    def _rows(self, s: Style):
        style = _IndexStyle(s.latex, self.elements)
        rows = super()._rows(style)
        if self.note:
            kinks = [i for i, r in enumerate(rows) if r.kind == "note"]
            rows.insert(kinks[0] if kinks else len(rows), style.head(self.note))
        return rows
