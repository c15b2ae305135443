"""SymPy -> Numba-friendly Python scalar code.

Every constant is emitted as ``F(value)`` where ``F`` is the module's dtype, because a
bare Python float promotes float32 arithmetic to float64 in Numba (numba/numba#2006).
exp, log, log1p and tanh print as ``vm.*`` (symgrad.vecmath), whose loops vectorise;
sin and cos do too where the caller checks their range (``fast_trig=True``).
"""

from __future__ import annotations

import keyword
import unicodedata

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter

from ..errors import UnsupportedModelError
from ..lang.math_functions import MATH, MATH_FUNCS, TABLE
from ..lang.ops import OPS, AfterExp
from ..native import vecmath
from .accurate import square_base

#: math functions printed as their vecmath twins: vectorisable, within an ulp, any argument
_VM = {f"math.{name}": f"vm.{name}" for name in vecmath.NAMES}


class NumbaPrinter(PythonCodePrinter):
    """Prints scalar expressions; records which helper functions it used.

    With ``fast_trig``, sin and cos print as ``vm.sin_fast``/``vm.cos_fast``, which are
    exact only for arguments up to ``vecmath.TRIG_MAX``: the caller must check those
    arguments (codegen_scalar does, and falls back to libm).
    """

    def __init__(self, fast_trig: bool = False, names: dict[sp.Symbol, str] | None = None) -> None:
        super().__init__({"standard": "python3", "fully_qualified_modules": False})
        self.helpers: set[str] = set()
        self.fast_trig = fast_trig
        self.names = names if names is not None else {}  # symbol -> identifier, for mangled names

    # constants -------------------------------------------------------------
    def _print_Integer(self, e):
        return f"F({float(e)!r})"

    def _print_Rational(self, e):
        return f"F({float(e)!r})"

    def _print_Float(self, e):
        return f"F({float(e)!r})"

    def _print_NumberSymbol(self, e):
        return f"F({float(e)!r})"

    _print_Pi = _print_Exp1 = _print_NumberSymbol

    def _print_ImaginaryUnit(self, e):
        # the formula is real, but a derivative is not: (-2)**x has d/dx (-2)**x*(log(2) + I*pi)
        raise UnsupportedModelError(
            "a derivative of the formula is complex (it holds I), and compiled code is real arithmetic: a "
            "negative constant raised to a symbolic power, (-2)**x, or the root of an expression that is "
            "never positive, sqrt(-x**2 - 1), give one. Fix: write a real formula, e.g. 2**x, or "
            "(-1)**n*2**x with n integer data.")

    def _print_NaN(self, e):
        # SymPy's derivative is undefined somewhere it cannot tell apart (0**a: 0**a*log(0) = nan);
        # the code named an undefined 'nan' (a raw NameError, or Numba's TypingError)
        raise UnsupportedModelError(
            f"a derivative of the formula is {e} (infinite or undefined) as SymPy writes it, e.g. a power of 0 or a "
            "log of 0 with a symbolic exponent. Fix: write the formula without that constant (the value "
            "meant for each case, with a Piecewise).")

    _print_ComplexInfinity = _print_Infinity = _print_NegativeInfinity = _print_NaN

    def _print_Half(self, e):
        return "F(0.5)"

    def _print_Zero(self, e):
        return "F(0.0)"

    def _print_One(self, e):
        return "F(1.0)"

    def _print_NegativeOne(self, e):
        return "F(-1.0)"

    # arithmetic ------------------------------------------------------------
    # Invariant: every power prints as an atom (a call or a parenthesised group), so no
    # parent needs to know what text it emitted; SymPy's parenthesize judges by the SymPy
    # node's precedence, and x*x or 1/x would otherwise bind wrongly under it.
    def _print_Pow(self, e, rational=False):
        base, ex = e.as_base_exp()
        if ex.is_Integer and 1 <= abs(int(ex)) <= 4:
            prod = self._int_power(base, abs(int(ex)))
            return prod if ex > 0 else f"(F(1.0) / {prod})"
        if abs(ex) == sp.S.Half:
            root = self._root(base)
            return root if ex > 0 else f"(F(1.0) / {root})"
        b = self.parenthesize(base, PRECEDENCE["Pow"], strict=False)
        x = self.parenthesize(ex, PRECEDENCE["Pow"], strict=False)
        return f"({b} ** {x})"

    def _root(self, base: sp.Expr) -> str:
        """sqrt(base). A sum of squares and at most one positive number is computed scaled
        (hypot): x*x overflows for |x| > 1.3e154 (float32: 1.8e19) where the root does not, and
        asinh'(x) = 1/sqrt(x**2 + 1) came out 0, not 1/|x|."""
        terms = sp.Add.make_args(base)
        squares = [b for b in map(square_base, terms) if b is not None]
        numbers = [t for t in terms if t.is_Number and t > 0]
        if len(terms) < 2 or len(squares) + len(numbers) != len(terms) or len(numbers) > 1:
            return f"math.sqrt({self._print(base)})"
        if not squares[1:]:  # u**2 + c: vectorises, and exact as written for |u| <= 1
            self.helpers.add("sqrt_sq")
            return f"sqrt_sq({self._print(squares[0])}, {self._print(numbers[0])})"
        out = self._print(squares[0])
        for t in squares[1:] + [sp.sqrt(c) for c in numbers]:
            out = f"math.hypot({out}, {self._print(t)})"
        return out

    def _int_power(self, base: sp.Expr, k: int) -> str:
        """base**k (1 <= k <= 4) as an atom: x*x rather than x**2, because Numba's integer
        power promotes float32 to float64; a compound base goes through a tiny helper so it
        is computed once."""
        if k == 1:
            return self._print(base) if base.is_Symbol else f"({self._print(base)})"
        if base.is_Symbol:
            return "(" + " * ".join([self._print(base)] * k) + ")"
        self.helpers.add(f"pow{k}")
        return f"pow{k}({self._print(base)})"

    def _print_Mul(self, e):
        coeff, rest = e.as_coeff_Mul()
        if coeff == -1:  # "-x", so that sums print as "a - x"
            return f"-{self.parenthesize(rest, 50)}"
        return super()._print_Mul(e)

    # functions -------------------------------------------------------------
    def _print_Function(self, e):
        name = type(e).__name__
        if name in OPS or isinstance(e, AfterExp):
            self.helpers.add(name)
            return f"{name}({', '.join(self._print(a) for a in e.args)})"
        return super()._print_Function(e)

    def _print_math(self, e):
        func = MATH_FUNCS[type(e)]
        func = _VM.get(func, func)
        if self.fast_trig and type(e) in (sp.sin, sp.cos):
            func = f"vm.{vecmath.TRIG[type(e).__name__]}"
        return f"{func}({', '.join(self._print(a) for a in e.args)})"

    def _print_log(self, e):
        arg = e.args[0]
        # log(1 + u) loses all digits of u when |u| < eps; log1p keeps them.
        if isinstance(arg, sp.Add) and sp.S.One in arg.args:
            return f"vm.log1p({self._print(arg - 1)})"
        return f"vm.log({self._print(arg)})"

    def _print_Root(self, e):  # √(a sum of squares), made after CSE (codegen/accurate.py)
        return self._root(e.args[0])

    def _print_DivBy(self, e):  # f / h / ... / h, made after CSE (codegen/accurate.py)
        f, h, k = e.args
        return "(" + " / ".join([self.parenthesize(f, PRECEDENCE["Mul"], strict=True)] + [self._print(h)] * int(k)) + ")"

    def _print_Erfc(self, e):  # erfc(−u) kept so, made after CSE (codegen/accurate.py)
        return f"math.erfc({self._print(e.args[0])})"

    def _print_log1p(self, e):  # sympy.codegen's log1p, made from log(1 + u) after CSE (accurate_forms)
        return f"vm.log1p({self._print(e.args[0])})"

    def _print_expm1(self, e):  # sympy.codegen's expm1, made from exp(u) - 1 after CSE (accurate_forms)
        return f"vm.expm1({self._print(e.args[0])})"

    def _print_exp(self, e):
        return f"vm.exp({self._print(e.args[0])})"

    def _print_Abs(self, e):
        return f"abs({self._print(e.args[0])})"

    def _print_sign(self, e):
        self.helpers.add("sign")
        return f"sign({self._print(e.args[0])})"

    def _extremum(self, name: str, args) -> str:
        # nested two-argument helpers that propagate NaN: Python's max(0.0, nan) is 0.0, which
        # dropped a NaN sample from the loss without a NonFiniteWarning
        self.helpers.add(name)
        out = self._print(args[-1])
        for a in reversed(args[:-1]):
            out = f"{name}({self._print(a)}, {out})"
        return out

    def _print_Max(self, e):
        return self._extremum("max2", e.args)

    def _print_Min(self, e):
        return self._extremum("min2", e.args)

    def _print_Piecewise(self, e):
        if e.args[-1].cond != True:  # noqa: E712 - SymPy true is not Python True
            raise ValueError("a Piecewise needs a final (value, True) branch to be compiled")
        out = self._print(e.args[-1].expr)
        for piece, cond in reversed(e.args[:-1]):
            out = f"({self._print(piece)} if {self._print(cond)} else {out})"
        return out

    def _print_Relational(self, e):
        return f"({self._print(e.lhs)} {e.rel_op} {self._print(e.rhs)})"

    def _print_Symbol(self, e):
        return self.names.get(e) or py_name(e)

    _print_Dummy = _print_Symbol


# The math functions of the one function table (lang/math_functions.py) print through _print_math,
# unless the class above has a method of its own for one (log, exp).
for _e in TABLE:
    if _e.kind == MATH and f"_print_{_e.node.__name__}" not in vars(NumbaPrinter):
        setattr(NumbaPrinter, f"_print_{_e.node.__name__}", NumbaPrinter._print_math)

_RESERVED = set(keyword.kwlist) | {
    "math", "np", "numba", "F", "jit", "prange", "vm", "vecmath", "huge", "TRIG_MAX", "abs", "max", "min", "range", "sign", "max2", "min2", "n", "i",
} | set(OPS)


def _ident(name: str) -> str:
    """``name`` as identifier characters: letters, digits and '_' kept, '*' as '_star', the rest '_'.
    A character that Python would NFKC-normalise into another (ℓ into l) is replaced too, so two
    different names never become one identifier behind our back."""
    out = []
    for ch in name:
        if ch == "_" or (ch.isalnum() and unicodedata.normalize("NFKC", ch) == ch and ("a" + ch).isidentifier()):
            out.append(ch)
        else:
            out.append("_star" if ch == "*" else "_")
    return "".join(out).strip("_") or "s"


def leaf_ident(name: str, taken: set[str]) -> str:
    """A tensor model's parameter or data name in generated code (printed as p_W, x_X, and a
    parameter's flat view as p_W_f): an identifier, unique in ``taken`` (which it joins), and never
    another one's name plus a suffix the generator appends, '_f' or '_v': a parameter A_f beside A
    overwrote A's flat view p_A_f (a wrong loss and gradient), and 'W 1' printed as p_W 1."""
    base = _ident(name)
    base = "s_" + base if base[0].isdigit() else base
    ident, k = base, 1

    def clash(i: str) -> bool:
        return i in taken or any(i == t + sfx or t == i + sfx for t in taken for sfx in ("_f", "_v"))
    while clash(ident):
        k += 1
        ident = f"{base}_{k}"
    taken.add(ident)
    return ident


def py_name(sym: sp.Basic) -> str:
    """A valid, readable Python identifier for a symbol name (theta_0, y_star, ...)."""
    ident = _ident(str(sym))
    if ident[0].isdigit():
        ident = "s_" + ident
    # a user symbol may not shadow a module, helper or loop variable of the generated code
    return ident + "_" if ident in _RESERVED else ident


def user_names(groups: list[tuple[str, list[sp.Symbol]]]) -> dict[sp.Symbol, str]:
    """Identifiers for the user's symbols in generated code: each is its group's prefix ('p_' for
    parameters, 'd_' for data) and its name, made unique (a suffix '_2', '_3', ... where two names
    read alike). No name the generator makes starts with a user prefix, so a user may name a
    symbol anything (acc, n, lambda, θ) without touching the generated code's own names.

    >>> a, acc, lam = sp.symbols("a acc lambda", real=True)
    >>> user_names([("p_", [a, lam]), ("d_", [acc])])
    {a: 'p_a', lambda: 'p_lambda', acc: 'd_acc'}
    """
    out: dict[sp.Symbol, str] = {}
    taken: set[str] = set()
    for prefix, symbols in groups:
        for s in symbols:
            base = _ident(s.name)
            ident, k = base, 1
            while ident in taken:
                k += 1
                ident = f"{base}_{k}"
            taken.add(ident)
            out[s] = prefix + ident
    return out
