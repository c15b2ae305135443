"""The readable printers: one text printer and one LaTeX printer for explain, formulas and optimizers.

Each audience is a setting, not a rewrite of printed strings:

- ``text(e)`` is SymPy's own notation (``2*x*cos(x**2)``), as ``explain`` prints;
- ``text(e, mul=" ⊙ ", power="^")`` is the delta-rule notation of ``formulas``;
- ``text(e, mul="·", power="^", minus="−", square="²", sqrt="√", names=...)`` the optimizers'.

In all of them ReLU's derivative, ``Piecewise((1, z > 0), (0, True))``, prints as the indicator
``𝟙[z > 0]`` (``\\mathbf{1}[z > 0]``: ``\\mathbb`` would need amssymb). ``tex(e)`` needs amsmath
only and stays within what matplotlib's mathtext renders (no ``cases``, no ``\\mathrel``).

>>> z = sp.Symbol("z1", real=True)
>>> text(sp.Piecewise((1, z > 0), (0, True)) * sp.Symbol("δ_a1") ** 2, mul=" ⊙ ", power="^")
'δ_a1^2 ⊙ 𝟙[z1 > 0]'
>>> tex(sp.Function("softmax", bases=(NamedOp,))(z) - sp.Symbol("δ_z1"), hadamard=True)
'- \\\\delta_{z_{1}} + \\\\operatorname{softmax}\\\\left(z_{1}\\\\right)'
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from .loss_notation import LossNotation, mean_of
from .tex_names import constant_clash, tex_ident, tex_name  # noqa: F401 - re-exported: the printers' names

INDICATOR = "𝟙"


def _indicator(e: sp.Piecewise) -> sp.Basic | None:
    """The condition c when ``e`` is Piecewise((1, c), (0, True)), the indicator 𝟙[c]; else None."""
    if len(e.args) == 2 and e.args[0].expr == 1 and e.args[1].expr == 0 and e.args[1].cond == sp.true:
        return e.args[0].cond
    return None


class Indicator(sp.Function):
    """𝟙[c]: 1 where c holds, else 0. Printed for ReLU's derivative instead of a Piecewise;
    a function, so it binds as an atom (no parentheses in a product)."""

    nargs = 1

    def _sympystr(self, printer):
        return f"{INDICATOR}[{printer._print(self.args[0])}]"

    def _latex(self, printer):
        return r"\mathbf{1}[%s]" % printer._print(self.args[0])


def indicators(e: sp.Basic) -> sp.Basic:
    """``e`` with every Piecewise((1, c), (0, True)) written as the indicator 𝟙[c]."""
    return e.replace(lambda p: isinstance(p, sp.Piecewise) and _indicator(p) is not None,
                     lambda p: Indicator(_indicator(p)))


class Verbatim(sp.Symbol):
    """A placeholder that prints as its name, already printed, and binds as the expression it
    stands for: the argument of an elementwise map, (-y + z2)^2 but relu(W1·x + b1)."""

    def __new__(cls, printed: str, of: sp.Basic):
        obj = super().__new__(cls, printed)
        obj.precedence = precedence(of)
        return obj


def _mapped(printer, e) -> str:
    """An elementwise map f.(M) printed as f(M): the body of f with M in place of its variable."""
    f = e.function
    if not isinstance(f, sp.Lambda):
        z = sp.Dummy("z")
        f = sp.Lambda(z, f(z))
    (z,), body = f.args
    return printer._print(body.xreplace({z: Verbatim(printer._print(e.expr), e.expr)}))


def _hadamard_power(printer, e) -> str:
    return printer._print(sp.Pow(Verbatim(printer._print(e.base), e.base), e.exp, evaluate=False))


class _LeadPositive:
    """A sum's terms in SymPy's order, but with the setting ``lead_positive`` the positive terms
    first, as a textbook writes a difference: softmax(z2) - y, δ_a2 - a2ᵀ·δ_a2."""

    def _as_ordered_terms(self, e, order=None) -> list:
        terms = super()._as_ordered_terms(e, order=order)
        if self._settings["lead_positive"]:
            terms.sort(key=lambda t: t.could_extract_minus_sign())  # stable: SymPy's order otherwise
        return terms


class NamedOp(AppliedUndef):
    """An operation the notation names, applied (``notation.call``): softmax(z2), onehot(y_t)."""


class ReadableText(LossNotation, _LeadPositive, StrPrinter):
    """SymPy's str notation, with settings for the product, power, minus and square-root signs."""

    _default_settings = {**StrPrinter._default_settings, "full_prec": False, "mul": None, "power": "**", "minus": "-",
                         "square": None, "sqrt": None, "names": {}, "lead_positive": False}

    def _print_Symbol(self, e):
        name = self._settings["names"].get(e.name, e.name)
        if name in ("pi", "E"):
            constant_clash("text", name, "symbol")
        return name

    def _print_Verbatim(self, e):
        return self._settings["names"].get(e.name, e.name)

    def _print_Pi(self, e):
        return "π" if constant_clash("text", "pi", "constant") else "pi"

    def _print_Exp1(self, e):
        return "exp(1)" if constant_clash("text", "E", "constant") else "E"

    _print_ElementwiseApplyFunction = _mapped
    _print_HadamardPower = _print_MatPow = _hadamard_power  # MatPow: a 1x1 residual's, (y - y*)^2

    def _print_MatMul(self, e):
        if self._settings["mul"] is None:
            return super()._print_MatMul(e)
        args, sign = list(e.args), ""
        if args[0].is_Number and args[0].is_negative:  # -y: MatMul(-1, y)
            sign, args = "-", ([-args[0]] if args[0] != -1 else []) + args[1:]
        return sign + "·".join(self.parenthesize(a, PRECEDENCE["Mul"]) for a in args)

    def _print_Add(self, e, order=None):
        minus = self._settings["minus"]
        if minus == "-":
            return super()._print_Add(e, order)
        parts = []
        for term in self._as_ordered_terms(e, order=order):
            t = self._print(term)
            negative = t.startswith(("-", "−")) and not term.is_Add
            t = t[1:] if negative else t
            parts.append((negative, f"({t})" if precedence(term) < PRECEDENCE["Add"] or term.is_Add else t))
        (neg0, first), rest = parts[0], parts[1:]
        return (minus if neg0 else "") + first + "".join(f" {minus if n else '+'} {t}" for n, t in rest)

    def _print_Mul(self, e):
        if (a := mean_of(e)) is not None:
            return self._mean(a)
        sep = self._settings["mul"]
        if sep is None:  # SymPy's own, but y* * log(a): y**log(a) would read as a power
            if not any(isinstance(f, sp.Symbol) and f.name.endswith("*") for f in e.args):
                return super()._print_Mul(e)
            sep = " * "
        factors = list(e.args) if self._settings["order"] in ("old", "none") else list(e.as_ordered_factors())
        sign = ""
        if factors[0].is_Number and factors[0].is_negative:
            sign, c = "-", -factors[0]
            factors = factors[1:] if c == 1 else [c, *factors[1:]]
        num, den = [], []
        for f in factors:
            if f.is_Rational and not f.is_Integer:
                num += [sp.Integer(f.p)] if f.p != 1 else []
                den.append(sp.Integer(f.q))
            elif f.is_Pow and f.exp.is_Rational and f.exp.is_negative:
                den.append(f.base if f.exp == -1 else sp.Pow(f.base, -f.exp, evaluate=False))
            else:
                num.append(f)
        # a lone factor binds tighter than the sign: -W1·x, but -(a + b) and a ⊙ (W1·x)
        top = self._product(num, sep, strict=len(num) == 1) or "1"
        if not den:
            return sign + top
        bottom = self._product(den, sep, strict=True)
        return f"{sign}{top}/{bottom if len(den) == 1 else f'({bottom})'}"

    def _print_Piecewise(self, e):  # as the LaTeX prints it: {1 if z > 0, exp(z) otherwise}
        parts = [f"{self._print(a.expr)} if {self._print(a.cond)}" for a in e.args[:-1]]
        last = e.args[-1]
        parts.append(f"{self._print(last.expr)} " + ("otherwise" if last.cond == sp.true else f"if {self._print(last.cond)}"))
        return "{" + ", ".join(parts) + "}"

    def _print_Pow(self, e, rational=False):
        op = self._settings["power"]
        if op == "**":
            return super()._print_Pow(e, rational)
        base, ex = e.args
        if abs(ex) == sp.S.Half:
            b = self._print(base)
            root = self._settings["sqrt"]
            root = f"{root}{b}" if root and base.is_Atom else f"{root or 'sqrt'}({b})"
            return root if ex > 0 else f"1/{root}"
        if ex.is_Rational and ex.is_negative:  # 1/(z^2 + 2), not 1/(z^2 + 2)^1
            inverse = base if ex == -1 else sp.Pow(base, -ex, evaluate=False)
            return "1/" + self.parenthesize(inverse, PRECEDENCE["Mul"], strict=True)
        b = self.parenthesize(base, PRECEDENCE["Pow"], strict=True)
        if ex == 2 and self._settings["square"]:
            return b + self._settings["square"]
        return b + op + self.parenthesize(ex, PRECEDENCE["Pow"], strict=True)


def text(e: sp.Basic, **settings) -> str:
    """``e`` as readable text (see the module docstring for the settings)."""
    return ReadableText(settings).doprint(indicators(e))


# -- LaTeX ------------------------------------------------------------------------------------------

#: The notation's named operations (``NamedOp``) that LaTeX writes its own way.
_TEX_FUNCS = {"sigmoid": r"\sigma", "relu": r"\operatorname{ReLU}"}


class ReadableLatex(LossNotation, _LeadPositive, LatexPrinter):
    """SymPy's LaTeX with textbook names, the indicator 𝟙[c], and an inline mathtext-safe Piecewise."""

    _default_settings = {**LatexPrinter._default_settings, "lead_positive": False}
    _TEXT = False  # LossNotation's LaTeX forms

    def _print_Symbol(self, e, style="plain"):
        name = self._settings["symbol_names"].get(e)
        if name is None:  # tex_name tells a symbol pi from π (\mathrm{pi}); a symbol e stays e
            return tex_name(e.name)
        if name in (r"\pi", "e"):
            constant_clash("tex", name, "symbol")
        return name

    def _print(self, e, **kwargs):
        # π and e print by their own _latex, which SymPy calls before any _print_ method
        if e is sp.pi:
            constant_clash("tex", r"\pi", "constant")
        elif e is sp.E and constant_clash("tex", "e", "constant"):
            return r"\mathrm{e}"
        return super()._print(e, **kwargs)

    def _print_ExpBase(self, e, exp=None):
        base = r"\mathrm{e}" if constant_clash("tex", "e", "constant") else "e"
        return self._do_exponent(r"%s^{%s}" % (base, self._print(e.args[0])), exp)

    def _print_Verbatim(self, e, style="plain"):
        return e.name

    def _print_Piecewise(self, e):
        parts = [r"%s \;\text{if}\; %s" % (self._print(a.expr), self._print(a.cond)) for a in e.args[:-1]]
        last = e.args[-1]
        parts.append(r"%s \;\text{otherwise}" % self._print(last.expr) if last.cond == sp.true
                     else r"%s \;\text{if}\; %s" % (self._print(last.expr), self._print(last.cond)))
        return r"\left\{ %s \right." % r",\; ".join(parts)

    _print_ElementwiseApplyFunction = _mapped
    _print_HadamardPower = _hadamard_power

    def _print_Function(self, e, exp=None):
        # SymPy hands every applied undefined function here, never to a _print_ of its classes
        if not isinstance(e, NamedOp):
            return super()._print_Function(e, exp)
        name = type(e).__name__
        head = _TEX_FUNCS.get(name, r"\operatorname{%s}" % name.replace("_", r"\_"))
        out = r"%s\left(%s\right)" % (head, ", ".join(self._print(a) for a in e.args))
        return out if exp is None else r"%s^{%s}" % (out, exp)

    def _needs_mul_brackets(self, e, first=False, last=False):
        # a matrix product (notation.MatProd, precedence Mul) among elementwise factors:
        # a1 ⊙ (W2ᵀ·δ_z2), as the text printer writes it
        if isinstance(e, sp.Function) and precedence(e) <= PRECEDENCE["Mul"]:
            return True
        return super()._needs_mul_brackets(e, first=first, last=last)

    def parenthesize_super(self, s):  # a base holding a superscript, wrapped again: ((y - y^{*}))²
        return s if s.startswith(r"\left(") and s.endswith(r"\right)") else super().parenthesize_super(s)

    def _print_Pow(self, e):
        # SymPy hands a function's power to the function (exp=...); our ops' _latex takes no
        # exponent, so sp.latex(sigmoid(y)**2) raised TypeError: write σ(y)^{2} here instead
        # (a product or a transpose as the base keeps its parentheses: (W·x)^{2}).
        b, x = e.args
        root_or_inverse = x.is_Rational and (x.is_negative or x.q != 1)
        atom = precedence(b) >= PRECEDENCE["Func"]
        if b.is_Function and "_latex" in vars(type(b)) and not root_or_inverse and atom:
            return r"%s^{%s}" % (self._print(b), self._print(x))
        return super()._print_Pow(e)


def tex(e: sp.Basic, hadamard: bool = False, names: dict | None = None, **settings) -> str:
    """``e`` in LaTeX; ``hadamard``: products are elementwise (⊙), as in the delta rule."""
    if hadamard:
        settings["mul_symbol"] = r" \odot "
    return ReadableLatex({"symbol_names": names or {}, **settings}).doprint(indicators(e))


def tex_text(s: str) -> str:
    r"""Plain words inside math, with LaTeX's special characters escaped: ``\text{...}``."""
    s = re.sub(r"([_{}$&#%])", r"\\\1", s.replace("\\", "/"))
    return r"\text{%s}" % s.replace("^", r"\^{}").replace("~", r"\~{}")
