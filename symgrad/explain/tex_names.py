"""Names in LaTeX as a textbook writes them (z1 -> z_{1}, theta0 -> \\theta_{0}), told apart where two
names of one printout would print alike.

theta1 and theta_1 both read θ₁, so a printout with both showed ∂J/∂θ₁ twice with two results.
:func:`without_clashes` writes a printout once, noting each LaTeX form's names, and where a form has
two, writes it again with all but one spelled as they are (``\\theta1``, ``\\lambda\\_``).

>>> tex_ident("theta1"), tex_ident("lambda_"), tex_ident("δ_z2")
('\\\\theta_{1}', '\\\\lambda', '\\\\delta_{z_{2}}')
>>> without_clashes(lambda: [tex_ident(n) for n in ("theta1", "theta_1", "x2")])
['\\\\theta1', '\\\\theta_{1}', 'x_{2}']
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

import sympy as sp
from sympy.printing.latex import LatexPrinter

T = TypeVar("T")

#: while a printout is written: each LaTeX form -> the names printed so
_SEEN: ContextVar[dict | None] = ContextVar("symgrad_tex_seen", default=None)
#: names spelled as they are in this printout, since another one prints as they would: name -> LaTeX
_SPELLED: ContextVar[dict | None] = ContextVar("symgrad_tex_spelled", default=None)
#: while a printout is written: (style, printed form, "symbol" or "constant") of each symbol or
#: constant that prints as one of the other (pi, E in text; \pi, e in LaTeX) was written
_USED: ContextVar[set | None] = ContextVar("symgrad_constants_used", default=None)
#: (style, printed form) told apart in this printout, as ``constant_clash`` says how
_APART: ContextVar[frozenset] = ContextVar("symgrad_constants_apart", default=frozenset())
#: LaTeX's special characters in a user's name (lr%, a&b) would comment out or break the line
_SPECIAL = {c: "\\" + c for c in "%#&$"}


#: combining accents after a letter (θ̂, x̄) as SymPy's modifier words: thetahat -> \hat{\theta}
_ACCENTS = {"\u0302": "hat", "\u0303": "tilde", "\u0304": "bar", "\u0305": "bar", "\u0307": "dot",
            "\u0308": "ddot", "\u20d7": "vec"}


#: Greek letters Unicode names differently from SymPy's words, or that LaTeX has no command for
_GREEK_WORDS = {"final sigma": "varsigma", "GREEK THETA SYMBOL": "vartheta", "GREEK PHI SYMBOL": "varphi",
                "GREEK PI SYMBOL": "varpi", "GREEK RHO SYMBOL": "varrho", "GREEK KAPPA SYMBOL": "varkappa",
                "GREEK LUNATE EPSILON SYMBOL": "epsilon", "MICRO SIGN": "mu"}


def _greek_word(ch: str) -> str:
    """SymPy's word for a Greek letter (λ -> lamda, which SymPy writes \\lambda), else ''."""
    u = unicodedata.name(ch, "") if ord(ch) > 127 else ""
    if u.startswith("GREEK SMALL LETTER "):
        w = u.removeprefix("GREEK SMALL LETTER ").lower()
    elif u.startswith("GREEK CAPITAL LETTER "):
        w = u.removeprefix("GREEK CAPITAL LETTER ").capitalize()
    else:
        return _GREEK_WORDS.get(u, "")
    return _GREEK_WORDS.get(w, w) if " " not in w or w in _GREEK_WORDS else ""


def _greek(name: str) -> str:
    """Unicode Greek letters as SymPy's spelled-out names (θ1 -> theta1), so LaTeX gets \\theta; in a
    name where a Greek letter touches another letter (Δw, Δθ, xα), every Greek or accented letter as its
    LaTeX (\\Delta w, x \\alpha): SymPy reads Deltaw as eight letters. Precomposed accents (ŷ) as
    a letter and its combining accent (\\hat{y})."""
    name = unicodedata.normalize("NFD", name)
    clusters: list[list[str]] = []  # [base, accent words...]
    for ch in name:
        if ch in _ACCENTS and clusters:
            clusters[-1].append(_ACCENTS[ch])
        else:
            clusters.append([ch])
    words = [_greek_word(c[0]) for c in clusters]
    letter = [bool(w) or c[0].isalpha() for c, w in zip(clusters, words)]
    commands = any((words[i] and letter[i + 1]) or (words[i + 1] and letter[i]) for i in range(len(clusters) - 1))
    out = []
    for c, w in zip(clusters, words):
        word = (w or c[0]) + "".join(c[1:])
        if commands and (w or len(c) > 1):
            out.append(LatexPrinter()._deal_with_super_sub(word) + " ")
        else:
            out.append(word)
    return "".join(out).rstrip()


def _spelled(name: str) -> str:
    """``name`` letter for letter: a Greek head as its letter, the rest as written (theta1 -> \\theta1)."""
    if name == "ℓ":  # its letter: ell beside it is the one spelled out
        return r"\ell"
    g = _greek("".join(_SPECIAL.get(c, c) for c in name))
    head, rest = re.match(r"([A-Za-z]*)(.*)", g).groups()
    return (LatexPrinter()._deal_with_super_sub(head) if head else "") + rest.replace("_", r"\_")


def tex_ident(name: str) -> str:
    """One name as a textbook writes it: z1 -> z_{1}, theta0 -> \\theta_{0}, δ_z2 -> \\delta_{z_{2}}, y* -> y^{*}."""
    if name in (spelled := _SPELLED.get() or {}):
        return spelled[name]
    if name == "ℓ" or name.startswith("δ_"):  # recorded too: ell and delta_z print the same
        out = r"\ell" if name == "ℓ" else r"\delta_{%s}" % tex_ident(name[2:])
        if (seen := _SEEN.get()) is not None:
            seen.setdefault(out, set()).add(name)
        return out
    star = name.endswith("*") and "^" not in name  # y^* is SymPy's superscript already
    # lambda_ (Python's way around a keyword) is λ, not λ with an empty subscript
    plain = name[:-1] if star else name.rstrip("_") or name
    out = LatexPrinter()._deal_with_super_sub(_greek("".join(_SPECIAL.get(c, c) for c in plain)))
    out += "^{*}" if star else ""
    if (seen := _SEEN.get()) is not None:  # y* and y^* both print y^{*}
        seen.setdefault(out, set()).add(name)
    if out in (r"\pi", "e") and constant_clash("tex", out, "symbol") and name == "pi":
        return r"\mathrm{pi}"  # beside π, wherever the name is printed (∂J/∂pi, At pi = 1, a layer pi)
    return out


def tex_name(name: str) -> str:
    """A name of our notation (z1, δ_z2, ∂ℓ/∂W1, y*) in LaTeX. A composite (W2ᵀ·δ_z2, softmax(z2))
    is never a name: it is an expression node (``notation.MatProd``, ``notation.call``)."""
    if name.startswith("∂ℓ/∂"):
        return r"\frac{\partial \ell}{\partial %s}" % tex_ident(name[4:])
    return tex_ident(name)


def without_clashes(write: Callable[[], T]) -> T:
    """``write()``, a printout's LaTeX, with names that print alike told apart: of each such set, the
    name whose own spelling is its LaTeX (lambda beside lambda_), else the one with a written
    subscript (theta_1 beside theta1), keeps its textbook form, and the others are spelled out."""
    token = _SEEN.set({})
    try:
        out = write()
        alike = [names for names in _SEEN.get().values() if len(names) > 1]
    finally:
        _SEEN.reset(token)
    if not alike:
        return out

    def kept_first(n: str) -> tuple:  # β keeps \beta beside beta, which is then written upright
        return _spelled(n) != tex_ident(n), "_" not in n, n.isascii(), n
    spelled: dict[str, str] = {}
    for names in alike:
        first, *others = sorted(names, key=kept_first)
        taken = {tex_ident(first)}
        for n in others:
            form = _spelled(n)
            if form in taken:  # beta beside β spells as \beta too: its letters, upright
                form = r"\mathrm{%s}" % "".join(_SPECIAL.get(c, c) for c in n).replace("_", r"\_")
            spelled[n] = form
            taken.add(form)
    token = _SPELLED.set(spelled)
    try:
        return write()
    finally:
        _SPELLED.reset(token)


def constant_clash(style: str, form: str, kind: str) -> bool:
    """Note that a symbol or a constant (``kind``) printing as ``form`` was written in ``style``
    ('text' or 'tex'); whether this printout tells the two apart, having both. Then the constants
    print as π and exp(1) in text and e as \\mathrm{e} (upright, ISO 80000-2) in LaTeX, and a symbol
    named pi as \\mathrm{pi}: a symbol pi beside π printed pi*(pi + pi*cos(pi*q)), J = E*(2*E*q + ...)."""
    if (used := _USED.get()) is not None:
        used.add((style, form, kind))
    return (style, form) in _APART.get()


def told_apart(write: Callable[[], T]) -> T:
    """``write()``, a printout, again with a symbol and a constant that printed alike told apart."""
    token = _USED.set(set())
    try:
        out = write()
        used = _USED.get()
    finally:
        _USED.reset(token)
    clash = frozenset((st, f) for st, f, kind in used if kind == "symbol" and (st, f, "constant") in used)
    if not clash:
        return out
    token = _APART.set(clash)
    try:
        return write()
    finally:
        _APART.reset(token)


#: names that read as a constant in a printout, whether or not it holds the constant (∂v3/∂pi = cos(pi)
#: reads as cos π, and pi is \pi in LaTeX); e and E are told apart from e where both appear (told_apart)
_CONSTANTS = {"pi": "the constant π", "π": "the constant π", "I": "the imaginary unit", "oo": "∞",
              "zoo": "complex ∞", "nan": "NaN"}


def reads_as(name: str, formula: sp.Basic) -> str | None:
    """What a name chosen for a step or the output reads as in a printout (a constant, or a function
    of the formula or of its derivatives: cos in sin's), or None."""
    from ..front.validate import SUPPORTED_NAMES  # the front end imports the printers' names

    if name in _CONSTANTS:
        return _CONSTANTS[name]
    nodes = formula.atoms(sp.Function)
    functions = {type(f).__name__ for f in nodes}
    if name not in functions and name in SUPPORTED_NAMES:  # one its derivatives may hold (relu is a fine name elsewhere)
        for f in nodes:
            functions |= {type(g).__name__ for x in f.free_symbols for g in sp.diff(f, x).atoms(sp.Function)}
    return f"the function {name}" if name in functions else None
