"""Numbers in a loss that the compiled module reads at run time: a new value compiles nothing.

A run-time constant is a SymPy function of its value (``HuberDelta(1/2)``). Symbolically it is
a positive number (derivatives see a constant, ``evalf`` and ``lambdify`` its value); printed,
it is its letter (κ), its value in the formulas' legend. The code generator passes it to the
map kernels that use it as an argument, read from the model's ``dims`` (codegen/maps.py), so
the module's text, and its compilation, are the same for every value (issue 21, section 3).

>>> import sympy as sp
>>> d = HuberDelta(sp.Rational(1, 2))
>>> str(d), sp.latex(d), d.evalf(), sp.diff(d * sp.Symbol("z"), sp.Symbol("z"))
('κ', '\\\\kappa', 0.500000000000000, κ)
"""

from __future__ import annotations

import sympy as sp


class RuntimeConstant(sp.Function):
    """A positive real number that prints as ``letter``; subclasses name what it is."""

    nargs = 1
    is_real = True
    is_finite = True
    letter, tex_letter = "c", "c"
    #: what it is, as legend parts: plain words, or (text, LaTeX) pairs for math
    what: tuple = ("a constant",)
    family = "Constants"

    @classmethod
    def eval(cls, value):
        return None  # stays itself, whatever its value: that is what keeps the text the same

    def _eval_is_positive(self):
        return self.args[0].is_positive

    @property
    def value(self) -> float:
        return float(self.args[0])

    def _eval_evalf(self, prec):
        return self.args[0]._eval_evalf(prec)

    def fdiff(self, argindex=1):
        return sp.S.Zero

    def _sympystr(self, printer):
        return self.letter

    def _latex(self, printer, exp=None):
        return self.tex_letter if exp is None else r"%s^{%s}" % (self.tex_letter, exp)

    def _pythoncode(self, printer):  # lambdify (NumPy, SciPy, math, mpmath): the value
        return repr(self.value)

    _numpycode = _scipycode = _mpmathcode = _lambdacode = _pythoncode

    @classmethod
    def legend_for(cls, found: list[RuntimeConstant]) -> tuple:
        values = ", ".join(f"{v:g}" for v in sorted({c.value for c in found}))
        return (f"{cls.letter} = {values}", r"%s = %s" % (cls.tex_letter, values)), " (", *cls.what, ")"


class HuberDelta(RuntimeConstant):
    """Huber's threshold (PyTorch's ``delta``), printed κ: δ is the delta rule's."""

    letter, tex_letter = "κ", r"\kappa"
    what = ("Huber's threshold, PyTorch's delta: the loss is quadratic where ", ("|r| ≤ κ", r"|r| \leq \kappa"),
            ", linear beyond")
