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


def _greek(name: str) -> str:
    """Unicode Greek letters as SymPy's spelled-out names (θ1 -> theta1), so LaTeX gets \\theta; in a
    name that goes on with a letter after one (Δw, Δθ), every Greek letter as its command (\\Delta w):
    SymPy reads Deltaw as eight letters."""
    letters = [unicodedata.name(ch, "") if ord(ch) > 127 else "" for ch in name]
    spelled = [u.removeprefix("GREEK SMALL LETTER ").lower() if u.startswith("GREEK SMALL LETTER ")
               else u.removeprefix("GREEK CAPITAL LETTER ").capitalize() if u.startswith("GREEK CAPITAL LETTER ")
               else "" for u in letters]
    commands = any(g and nxt.isalpha() for g, nxt in zip(spelled, name[1:]))
    out = []
    for ch, g in zip(name, spelled):
        if g:
            out.append("\\" + g + " " if commands else g)
        else:
            out.append(_ACCENTS.get(ch, ch))
    return "".join(out).rstrip()


def _spelled(name: str) -> str:
    """``name`` letter for letter: a Greek head as its letter, the rest as written (theta1 -> \\theta1)."""
    g = _greek("".join(_SPECIAL.get(c, c) for c in name))
    head, rest = re.match(r"([A-Za-z]*)(.*)", g).groups()
    return (LatexPrinter()._deal_with_super_sub(head) if head else "") + rest.replace("_", r"\_")


def tex_ident(name: str) -> str:
    """One name as a textbook writes it: z1 -> z_{1}, theta0 -> \\theta_{0}, δ_z2 -> \\delta_{z_{2}}, y* -> y^{*}."""
    if name == "ℓ":
        return r"\ell"
    if name.startswith("δ_"):
        return r"\delta_{%s}" % tex_ident(name[2:])
    if name in (spelled := _SPELLED.get() or {}):
        return spelled[name]
    star = name.endswith("*") and "^" not in name  # y^* is SymPy's superscript already
    # lambda_ (Python's way around a keyword) is λ, not λ with an empty subscript
    plain = name[:-1] if star else name.rstrip("_") or name
    out = LatexPrinter()._deal_with_super_sub(_greek("".join(_SPECIAL.get(c, c) for c in plain)))
    out += "^{*}" if star else ""
    if (seen := _SEEN.get()) is not None:  # y* and y^* both print y^{*}
        seen.setdefault(out, set()).add(name)
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

    def kept_first(n: str) -> tuple:  # β keeps \\beta beside beta, which is then written upright
        return _spelled(n) != tex_ident(n), "_" not in n, n.isascii(), n
    spelled: dict[str, str] = {}
    for names in alike:
        first, *others = sorted(names, key=kept_first)
        taken = {tex_ident(first)}
        for n in others:
            form = _spelled(n)
            if form in taken:  # beta beside β spells as \\beta too: its letters, upright
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
