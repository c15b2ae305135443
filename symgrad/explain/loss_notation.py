"""How a loss reads in the printouts, text and LaTeX alike: a mean over a network's outputs as
``mean(...)`` (``msum(A)/k`` read like the textbook's ½ of the squared error at k = 2), the sum
of a 1×1 matrix as its one entry (no ``msum`` around a single output's loss), ``|r|`` for
``Abs(r)`` and ``≤`` for ``<=``.

>>> z, y = sp.MatrixSymbol("z", 2, 1), sp.MatrixSymbol("y", 2, 1)
>>> from symgrad.explain.printing import tex, text
>>> text(msum(sp.HadamardPower(z - y, 2)) / 2, lead_positive=True, power="^")
'mean((z - y)^2)'
>>> tex(msum(sp.HadamardPower(z - y, 2)) / 2, lead_positive=True)
'\\\\operatorname{mean}\\\\left(\\\\left(z - y\\\\right)^{2}\\\\right)'
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence

from ..lang.constants import RuntimeConstant
from ..lang.functions import bce_sum, msum


def mean_of(e: sp.Basic) -> sp.MatrixExpr | None:
    """A in ``msum(A)/k`` where k is A's number of entries (the mean of A), else None."""
    if not (isinstance(e, sp.Mul) and len(e.args) == 2):
        return None
    c, s = e.args
    if not (c.is_Rational and isinstance(s, (msum, bce_sum)) and getattr(s.args[0], "shape", None)):
        return None
    rows, cols = s.args[0].shape
    k = rows * cols
    if not (k > 1 and k.is_Integer and c == sp.Rational(1, k)):
        return None
    return s.args[0] if isinstance(s, msum) else _BCE(*s.args)


class _BCE(sp.Function):
    """The entries of a binary cross-entropy on logits (a mean of ``bce_sum`` prints their mean)."""

    def _sympystr(self, p):
        return "bce_logits(%s, %s)" % tuple(p._print(a) for a in self.args)

    def _latex(self, p):
        return r"\operatorname{BCE}_{\text{logits}}\left(%s, %s\right)" % tuple(p._print(a) for a in self.args)


def root_means(e: sp.Basic) -> sp.Basic:
    """``e`` with k^(-p)·msum(A)^p (SymPy's form of (msum(A)/k)^p) as (mean of A)^p: a root mean
    square loss prints as sqrt(mean((z2 - y)^2)), not sqrt(3)·sqrt(Σ((z2 - y)^2))/3."""
    def fold(m: sp.Mul) -> sp.Basic:
        num = sp.Mul(*(g for g in m.args if g.is_number))
        for f in m.args:
            if f.is_Pow and isinstance(f.base, msum) and getattr(f.base.args[0], "shape", None):
                k = f.base.args[0].shape[0] * f.base.args[0].shape[1]
                ratio = sp.simplify(num * k**f.exp) if k.is_Integer and k > 1 else None
                if ratio is not None and ratio.is_Rational:  # 5·(msum/k)^(3/2), not 5·sqrt(3)·msum^(3/2)/9
                    rest = [g for g in m.args if g is not f and not g.is_number]
                    mean = sp.Pow(sp.Mul(sp.Rational(1, k), f.base, evaluate=False), f.exp, evaluate=False)
                    factors = ([ratio] if ratio != 1 else []) + rest
                    return sp.Mul(*factors, mean, evaluate=False) if factors else mean
        return m

    return e.replace(lambda x: isinstance(x, sp.Mul), fold)


def orient_abs(e: sp.Basic) -> sp.Basic:
    """``e`` with |a| written |−a| where −a is a sum that ``e`` also holds outside the bars: SymPy
    turns |z2 − y| into |y − z2|, which then stood beside sign(z2 − y) and (z2 − y)."""
    inside = {a for b in sp.preorder_traversal(e) if isinstance(b, sp.Abs) for a in sp.preorder_traversal(b.args[0])
              if isinstance(a, sp.Add)}
    outside = {a for a in sp.preorder_traversal(e) if isinstance(a, sp.Add)} - inside

    def flip(b: sp.Abs) -> sp.Basic:
        a = b.args[0]
        if isinstance(a, sp.Add) and a not in outside and -a in outside:
            return sp.Abs(-a, evaluate=False)
        return b

    return e.replace(lambda x: isinstance(x, sp.Abs), flip)


def scalar_factors(factors) -> tuple[list[sp.Basic], list[sp.Basic]]:
    """(numbers and named constants, the other factors) of a product's factors: in the delta
    rule's elementwise products a scalar multiplies (2(z2 - y), κ sign(r)), it is not a ⊙ factor."""
    def scalar(f) -> bool:
        return f.is_number or isinstance(f, RuntimeConstant)

    return [f for f in factors if scalar(f)], [f for f in factors if not scalar(f)]


class LossNotation:
    """Printer methods of both readable printers (``printing.ReadableText``, ``ReadableLatex``)."""

    _TEXT = True

    def _print_Mul(self, e):  # the LaTeX printer's (ReadableText has its own, which asks mean_of too)
        a = mean_of(e)
        if a is not None:
            return self._mean(a)
        lead, rest = scalar_factors(e.args)
        c = sp.Mul(*lead)
        if "odot" not in str(self._settings.get("mul_symbol")) or not (lead and rest) or c == -1:
            return super()._print_Mul(e)
        # a scalar times a vector, as written: 2\,(z2 - y), \frac{2\,(z2 - y)}{3}, \frac{\sqrt{3}}{3}\,(...);
        # not 2 ⊙ (z2 - y), nor ⊙ between two numbers
        from .printing import tex  # printing imports this module

        body = self.parenthesize(sp.Mul(*rest), PRECEDENCE["Mul"])
        sign, c = ("-", -c) if c.could_extract_minus_sign() else ("", c)
        if c.is_Rational and c.q != 1:
            top = self._print(sp.Mul(*rest)) if c.p == 1 else r"%s\, %s" % (c.p, body)
            return r"%s\frac{%s}{%s}" % (sign, top, c.q)
        return r"%s%s\, %s" % (sign, tex(c), body)

    def _product(self, factors: list, sep: str, strict: bool) -> str:
        """The text printer's product of ``factors`` joined by ``sep``."""
        lead, rest = scalar_factors(factors) if sep == " ⊙ " else ([], factors)
        vec = sep.join(self.parenthesize(f, PRECEDENCE["Mul"], strict=strict) for f in rest)
        if not (lead and rest):
            return vec or sep.join(self.parenthesize(f, PRECEDENCE["Mul"], strict=strict) for f in lead)
        # a scalar times a vector, as written: 2(z2 - y), κ sign(r), sqrt(2) z7; not 2 ⊙ (z2 - y)
        return " ".join(self._print(f) for f in lead) + ("" if vec.startswith("(") else " ") + vec

    def _mean(self, a: sp.MatrixExpr) -> str:
        inner = self._print(a)
        return f"mean({inner})" if self._TEXT else r"\operatorname{mean}\left(%s\right)" % inner

    def _print_msum(self, e):
        a = e.args[0]
        if getattr(a, "shape", None) == (1, 1):  # a single output's loss: the entry itself
            return self._print(a)
        return f"Σ({self._print(a)})" if self._TEXT else r"\sum %s" % self.parenthesize(a, 60)

    def _print_bce_sum(self, e):
        z, y = e.args
        term = self._print(_BCE(z, y))
        if getattr(z, "shape", None) == (1, 1):  # one output: its one term
            return term
        return f"bce_sum({self._print(z)}, {self._print(y)})" if self._TEXT else r"\sum " + term

    def _print_Abs(self, e):
        inner = self._print(e.args[0])
        return f"|{inner}|" if self._TEXT else r"\left|{%s}\right|" % inner

    def _print_Relational(self, e):
        if not self._TEXT or e.rel_op not in ("<=", ">="):
            return super()._print_Relational(e)
        op, p = ("≤" if e.rel_op == "<=" else "≥"), precedence(e)
        return f"{self.parenthesize(e.lhs, p)} {op} {self.parenthesize(e.rhs, p)}"
