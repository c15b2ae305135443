"""The notation optimizer update rules are written in, and how a rule prints.

A rule is an assignment over real symbols: ``p`` (a parameter), ``g`` (its gradient), ``lr``,
the step count ``t``, and each optimizer's state and hyperparameters by name. It prints as
text and LaTeX in textbook order, with Greek letters for the hyperparameters.

>>> m, b1 = sym("m"), sym("beta1")
>>> rule_text(textbook_order(b1 * m + (1 - b1) * G, m, {b1}))
'β1·m + (1 − β1)·g'
"""

from __future__ import annotations

import sympy as sp

from ..explain.printing import tex, text


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


P, G, LR, T = sym("p"), sym("g"), sym("lr"), sym("t")

_TEXT_NAMES = {"beta": "β", "beta1": "β1", "beta2": "β2", "alpha": "α", "eps": "ε",
               "weight_decay": "λ", "mhat": "m̂", "vhat": "v̂"}
_LATEX_NAMES = {"eps": r"\varepsilon", "weight_decay": r"\lambda", "lr": r"\eta"}


def textbook_order(e: sp.Expr, target: sp.Symbol, coef: set) -> sp.Expr:
    """``e`` unevaluated, in textbook order: ``v ← β·v + g``, ``p ← p − lr·g``, ``1 − β1``.

    SymPy sorts terms and factors by name (``g + β·v``); printing follows the stored order
    only for unevaluated trees, so we rebuild one. ``coef``: scalars such as lr and β1.
    """
    if e.is_Atom:
        return e
    args = [textbook_order(a, target, coef) for a in e.args]
    if isinstance(e, sp.Add):  # the updated variable first, then positive terms, states before constants
        args.sort(key=lambda a: (target not in a.free_symbols, a.could_extract_minus_sign(),
                                 not a.is_Number, a.free_symbols <= coef, sp.default_sort_key(a)))
    elif isinstance(e, sp.Mul):  # numbers, then scalar coefficients, then states: (1 − β1)·g
        args.sort(key=lambda a: (not a.is_Number, not a.free_symbols <= coef, sp.default_sort_key(a)))
    return e.func(*args, evaluate=False)


def rule_text(e: sp.Expr) -> str:
    """A rule in text: · for products, − for minus, ² and √, Greek names."""
    return text(e, order="none", mul="·", power="^", minus="−", square="²", sqrt="√", names=_TEXT_NAMES)


def rule_latex(e: sp.Expr) -> str:
    names = {s: _LATEX_NAMES[s.name] for s in e.free_symbols if s.name in _LATEX_NAMES}
    return tex(e, names=names, order="none")
