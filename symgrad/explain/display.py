"""One printout, three renderings: text, LaTeX lines (each one formula) and a LaTeX ``aligned`` block.

An object that prints (a derivation, network formulas, an optimizer) builds its rows once,
given a :class:`Style` (how a name, an expression, a derivative and a note are written), and
:class:`Printout` renders them. The text and the LaTeX therefore hold the same lines: the
stabilisation note and the kink conventions appear in both.

Every LaTeX line needs amsmath only (``\\text``, ``\\operatorname``) and is one formula that
matplotlib's mathtext renders (no ``aligned``, ``cases`` or ``\\mathrel`` inside a line).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..lang.ops import KINK_CONVENTIONS
from . import numeric
from .imaging import kink_notes
from .printing import tex, tex_name, tex_text, text
from .tex_names import told_apart, without_clashes

#: The kink conventions in LaTeX, by the same keys as the text (``lang.ops.KINK_CONVENTIONS``).
KINK_LATEX: dict[str, str] = {
    "relu": r"\operatorname{ReLU}'(0) = 0",
    "Abs": r"|x|' = \operatorname{sign}(x),\ \operatorname{sign}(0) = 0",
    "leaky_relu": r"\operatorname{LeakyReLU}_{\alpha}'(0) = \alpha",
    "elu": r"\operatorname{ELU}_{\alpha}'(0) = \alpha",
    "Max": (r"\text{at a tie, max/min take the derivative of the later argument, constants last: }"
            r"\frac{d}{dx}\max(x, 0) = 0 \text{ at } x = 0"),
}
#: What the printout writes for ReLU's derivative, stated once with its convention at 0.
_RELU_INDICATOR = (", so relu'(z) = 𝟙[z > 0]", r",\ \text{so}\ \operatorname{ReLU}'(z) = \mathbf{1}[z > 0]")


def kinks(*exprs: sp.Basic) -> list[str]:
    """The keys of ``KINK_CONVENTIONS`` for the kinked functions in ``exprs``, sorted."""
    names = {type(f).__name__ for e in exprs for f in e.atoms(sp.Function)}
    names |= {"Max"} if any(e.has(sp.Max, sp.Min) for e in exprs) else set()
    return sorted(n for n in names if n in KINK_CONVENTIONS)


@dataclass(frozen=True)
class Row:
    """One line of a printout: a heading, an equation ``lhs rel rhs``, a note, or a blank."""

    kind: str
    lhs: str = ""
    rel: str = ""
    rhs: str = ""


class Style:
    """How the rows are written for one audience; ``TEXT`` and ``LATEX`` are the two."""

    def __init__(self, latex: bool):
        self.latex = latex

    def pick(self, as_text: str, as_latex: str) -> str:
        return as_latex if self.latex else as_text

    def expr(self, e: sp.Basic, **text_settings) -> str:
        """An expression; the settings are the text printer's (``mul``, ``power``, ...)."""
        if self.latex:
            return tex(e, hadamard=text_settings.get("mul") == " ⊙ ",
                       lead_positive=text_settings.get("lead_positive", False))
        return text(e, **text_settings)

    def name(self, n: object) -> str:
        return tex_name(str(n)) if self.latex else str(n)

    def words(self, s: str) -> str:
        return tex_text(s) if self.latex else s

    def d(self, num: object, den: object) -> str:
        """The partial derivative ∂num/∂den."""
        if self.latex:
            return r"\frac{\partial %s}{\partial %s}" % (self.name(num), self.name(den))
        return f"∂{num}/∂{den}"

    def value(self, v: sp.Basic) -> str:
        """`` = 1`` or `` ≈ 0.841471``: a value after a printed formula (``at=``, 6 digits)."""
        return " " + numeric.shown(v, self.latex)

    def array(self, a) -> str:
        """`` ≈ [0.1, -0.2, …]``: a network value after its formula (``formulas(..., at=)``)."""
        return " " + numeric.array(a, self.latex)

    def norm(self, name: object, a) -> str:
        """``‖∂ℓ/∂W1‖ ≈ 0.123``: the norm of a parameter's gradient."""
        return numeric.norm(a, self.latex, self.name(name))

    def head(self, s: str) -> Row:
        return Row("head", self.words(s))

    def eq(self, lhs: str, rel: str, rhs: str) -> Row:
        return Row("eq", lhs, rel, rhs)

    def kink_note(self, *exprs: sp.Basic) -> list[Row]:
        """``Conventions at kinks: ...`` when a kinked function (or max pooling, whose tie rule is
        stated) appears, else nothing."""
        found = kinks(*exprs)
        table = KINK_LATEX if self.latex else KINK_CONVENTIONS
        items = [table.get(k) or tex_text(KINK_CONVENTIONS[k]) for k in found]
        items = [i + self.pick(*_RELU_INDICATOR) if k == "relu" else i for k, i in zip(found, items)]
        items += kink_notes(exprs, self.latex)  # max pooling's tie
        if not items:
            return []
        return [Row("note", self.words("Conventions at kinks: ") + self.pick("; ", r";\ ").join(items))]


TEXT, LATEX = Style(latex=False), Style(latex=True)


class Printout:
    """``str()``, ``latex_lines()``, ``latex()`` and Jupyter's ``_repr_latex_`` from ``_rows(style)``."""

    _indent = "  "  # before each equation in the text

    def _rows(self, s: Style) -> list[Row]:
        raise NotImplementedError

    def __str__(self) -> str:
        out = []
        for r in told_apart(lambda: self._rows(TEXT)):  # a symbol pi beside the constant π
            eq = " ".join(p for p in (r.lhs, r.rel, r.rhs) if p)
            out.append(self._indent + eq if r.kind == "eq" else r.lhs)
        return "\n".join(out)

    def latex_lines(self) -> list[str]:
        """One LaTeX formula per printed line (headings and notes as ``\\text``): for matplotlib's
        mathtext, or ``$...$`` in notes. No line holds an ``aligned`` environment."""
        return [" ".join(p for p in (r.lhs, r.rel, r.rhs) if p) for r in self._latex_rows() if r.kind != "blank"]

    def _latex_rows(self) -> list[Row]:
        # theta1 and theta_1 are not both θ₁, and a symbol e is not the constant e
        return without_clashes(lambda: told_apart(lambda: self._rows(LATEX)))

    def latex(self) -> str:
        """The printout as one LaTeX ``aligned`` block (amsmath), equations aligned at the relation."""
        rows = []
        for r in self._latex_rows():
            if r.kind == "eq":
                rows.append(f"{r.lhs} &{r.rel} {r.rhs}" if r.rel else f"&{r.rhs}")
            elif r.kind != "blank":
                rows.append("&" + r.lhs)
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def _repr_latex_(self) -> str:
        # No _repr_html_: Jupyter front ends prefer HTML over LaTeX, so one would hide the typeset form.
        return "$$" + self.latex() + "$$"
