"""The notation of dropout in the printed formulas (modelled on ``norms``).

For ``d = dropout_p(x) = m ⊙ x/(1 − p)``, with m the step's 0/1 mask (each entry 0 with
probability p, a new mask per sample and step), the delta rule is

    δ_x = m ⊙ δ_d/(1 − p)

and in inference (predict, evaluate) d = x. The mask of layer d is printed ``m_d``.

>>> d, x = sp.Symbol("δ_d2"), sp.Symbol("a1")
>>> print(text(DropBackward(d, sp.Symbol("d2"), 0.5), mul=" ⊙ "))
m_d2 ⊙ δ_d2/(1 - 0.5)
>>> print(tex(DropBackward(d, sp.Symbol("d2"), 0.5), hadamard=True))
\\frac{m_{d_{2}} \\odot \\delta_{d_{2}}}{1 - 0.5}
>>> print(text(Dropped(x, 0.1)), tex(Dropped(x, 0.1)))
dropout_0.1(a1) \\operatorname{dropout}_{0.1}\\left(a_{1}\\right)
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from .imaging import add_legends
from .printing import tex, text  # noqa: F401 (the examples above print with them)


class Dropped(sp.Function):
    """dropout_p(x): m ⊙ x/(1 − p) in training, x in inference; args x, p."""

    nargs = 2
    family = "Dropout"
    legend = (("dropout_p(x) = m ⊙ x/(1 - p)", r"\operatorname{dropout}_{p}(x) = m \odot x / (1 - p)"),
              " in training (m: a new 0/1 mask per sample and step, ", ("P(m = 0) = p", r"P(m = 0) = p"),
              "), x in predict and evaluate")

    def _sympystr(self, p):
        return f"dropout_{float(self.args[1]):g}({p._print(self.args[0])})"

    def _latex(self, p):
        return r"\operatorname{dropout}_{%s}\left(%s\right)" % (f"{float(self.args[1]):g}", p._print(self.args[0]))


class DropBackward(sp.Function):
    """δ_x = m_d ⊙ δ_d/(1 − p): args δ (of d), d (the layer's name), p."""

    nargs = 3
    precedence = PRECEDENCE["Mul"]

    def _parts(self, p) -> tuple[str, str, str]:
        d, name, prob = self.args
        return p._print(sp.Symbol(f"m_{name}", real=True)), p._print(d), f"{float(prob):g}"

    def _sympystr(self, p):
        m, d, prob = self._parts(p)
        return f"{m}{p._settings.get('mul') or ' ⊙ '}{d}/(1 - {prob})"

    def _latex(self, p):
        _, d, prob = self._parts(p)
        return r"\frac{m_{%s} \odot %s}{1 - %s}" % (p._print(self.args[1]), d, prob)


add_legends(Dropped)
