"""Numeric worked traces: ``explain(..., at={x: 1.0})`` and ``formulas(..., at=(params, x, y))``.

A derivation's values are computed exactly with SymPy (the point is read as the decimals it
prints as, 0.1 is 1/10) and evaluated to 50 digits with mpmath; a network's values are computed
with NumPy, one node of the tensor IR at a time (``numeric_network``; convolutions, attention and
the other structured kinds by their definitions in ``numeric_kinds``). Neither runs the compiled
code, so each is an independent check of it. Values print with 6 significant digits, ``=``
where that is the exact value and ``≈`` where it is rounded; a long value shows its first and
last entries, and an image or a sequence its shape and norm too (:func:`array`).

>>> x = sp.Symbol("x", real=True)
>>> point = resolve_point({"x": 0.1}, x**2, [x]); point
{x: 1/10}
>>> shown((x**2).xreplace(point), latex=False), shown(sp.sin(x).xreplace(point).evalf(DIGITS), latex=False)
('= 0.01', '≈ 0.0998334')
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

from ..errors import OptionError
from ..runtime.assumptions import assumption_checks, check_assumptions
from .numeric_network import network_sample as network_sample  # re-exported: api, network
from .numeric_network import network_values as network_values

DIGITS = 50  #: the precision of a derivation's values
SIG = 6  #: significant digits printed
SHOWN = 6  #: entries of a vector printed; a longer one shows the first and last three and '…'


# -- printing numbers ---------------------------------------------------------------------------

def _digits(v, zeros: bool = False) -> str | None:
    """``v`` (a SymPy number or a float) to SIG significant digits, trailing zeros kept when
    ``zeros`` (a rounded value shows all its digits: 2.54030); None when not a finite real."""
    if isinstance(v, sp.Basic):
        if not (v.is_Number and v.is_finite and v.is_real):
            return None
        m = mpmath.mpf(sp.Float(v, DIGITS)._mpf_)
        if m != 0 and not 1e-300 < abs(m) < 1e300:
            return mpmath.nstr(m, SIG, strip_zeros=not zeros)  # beyond float64: softplus(-1000) = 5.07601e-435
        v = float(m)
    if not np.isfinite(v):
        return None
    s = f"{float(v):#.{SIG}g}" if zeros else f"{float(v):.{SIG}g}"
    return "0" if s == "-0" else s.removesuffix(".")  # '#' keeps a point after the digits: 123456.5 ≈ 123456.


def _exact(v, s: str) -> bool:
    """Whether ``s`` is exactly ``v``: a SymPy value is exact only as a Rational (sin(1) is
    not, and neither is softplus(1000), whose 50 digits all agree with 1000)."""
    if isinstance(v, sp.Basic):
        return isinstance(v, sp.Rational) and sp.Rational(s) == v
    return float(s) == float(v)


#: Values that are not numbers, in words a reader without SymPy knows (SymPy prints zoo, nan, oo).
_NOT_NUMBERS = {sp.zoo: ("undefined (±∞)", r"\text{undefined } (\pm\infty)"),
                sp.nan: ("undefined (NaN)", r"\text{undefined (NaN)}"), sp.oo: ("∞", r"\infty"),
                -sp.oo: ("-∞", r"-\infty")}


def number(v, latex: bool) -> str:
    """One value as printed; a value that is not a finite real number says so (undefined, ∞, or
    the complex value with "not real"), so a trace through log(0) shows where it breaks."""
    if isinstance(v, sp.Basic) and v in _NOT_NUMBERS:
        return _NOT_NUMBERS[v][latex]
    s = _digits(v)
    if s is None and isinstance(v, sp.Basic) and v.is_finite and v.is_real is False:  # log(-1): iπ
        v = sp.Float(sp.re(v), SIG) + sp.Float(sp.im(v), SIG) * sp.I  # to SIG digits, as the real ones
        return (sp.latex(v) if latex else str(v)) + (r"\ (\text{not real})" if latex else " (not real)")
    if s is None:
        return sp.latex(v) if latex else str(v)
    if not _exact(v, s):
        s = _digits(v, zeros=True)
    if latex and "e" in s:
        mant, exp = s.split("e")
        return r"%s \times 10^{%d}" % (mant, int(exp))
    return s


def shown(v, latex: bool) -> str:
    """``= 0.5`` or ``≈ 0.841471``: the relation and the value, for after a printed formula."""
    return f"{_relation([v], latex)} {number(v, latex)}"


def _relation(values, latex: bool) -> str:
    # None: zoo and nan, printed as they are (exact); a value that is not real is printed rounded
    exact = all((s := _digits(v)) is None and not (isinstance(v, sp.Basic) and v.is_finite and v.is_real is False)
                or s is not None and _exact(v, s) for v in values)
    return "=" if exact else (r"\approx" if latex else "≈")


def array(a: np.ndarray, latex: bool) -> str:
    """A network value: ``≈ 0.5`` for a scalar, ``≈ [0.1, -0.2, …, 0.3]`` for a vector (its first
    and last entries when long); a matrix, an image or a sequence the same way, its entries in
    row-major order, followed by its shape and its norm: ``≈ [0.1, …, 0.3] (2×4×4, ‖·‖ ≈ 1.2)``.

    >>> array(np.arange(12.0).reshape(2, 2, 3) / 4, latex=False)
    '= [0, 0.25, 0.5, …, 2.25, 2.5, 2.75] (2×2×3, ‖·‖ ≈ 5.62361)'
    """
    a = np.asarray(a, dtype=float)
    if a.size == 1:
        return shown(float(a.reshape(-1)[0]), latex)
    flat = a.reshape(-1)
    half = SHOWN // 2
    parts = [number(v, latex) for v in (flat if len(flat) <= SHOWN else flat[:half])]
    if len(flat) > SHOWN:  # only the shown entries are formatted: an image has thousands
        parts += [r"\ldots" if latex else "…"] + [number(v, latex) for v in flat[-half:]]
    sep = r",\ " if latex else ", "
    out = f"{_relation(flat, latex)} [{sep.join(parts)}]"
    if sum(d > 1 for d in a.shape) < 2:  # a vector (a column or a row)
        return out
    shape = (r" \times " if latex else "×").join(str(d) for d in a.shape)
    return out + (r"\ (%s,\ %s)" if latex else " (%s, %s)") % (shape, norm(a, latex))


def norm(a: np.ndarray, latex: bool, label: str = "") -> str:
    """``‖∂ℓ/∂W1‖ ≈ 0.123``: the Frobenius norm of ``a`` (``‖·‖`` when no label is given)."""
    inner = label or (r"\cdot" if latex else "·")
    bars = r"\|%s\|" % inner if latex else f"‖{inner}‖"
    a = np.asarray(a, dtype=np.float64)
    top = float(np.max(np.abs(a))) if a.size else 0.0
    # scaled: the squares of 1e200 overflowed, and a finite gradient printed ‖·‖ = inf
    value = top * float(np.linalg.norm(a / top)) if 0 < top < np.inf else float(np.linalg.norm(a))
    return f"{bars} {shown(value, latex)}"


# -- explain(..., at=): the point --------------------------------------------------------------

def resolve_point(at: object, expr: sp.Expr, wrt: Sequence[sp.Symbol]) -> dict[sp.Symbol, sp.Expr]:
    """``at`` as exact values keyed by the expression's own symbols: keys are Symbols or their
    names ("x"), matched by name; every variable of ``expr`` needs one value."""
    if not isinstance(at, Mapping):
        raise OptionError(f"at= takes a dict {{variable: number}}, got {type(at).__name__} {at!r:.60}. "
                          "Fix: e.g. explain(J, x, at={x: 1.0}).")
    symbols = {s.name: s for s in (expr.free_symbols | set(wrt)) if isinstance(s, sp.Symbol)}
    point: dict[sp.Symbol, sp.Expr] = {}
    for key, value in at.items():
        name = key if isinstance(key, str) else key.name if isinstance(key, sp.Symbol) else None
        if name is None:
            raise OptionError(f"at= keys are the expression's variables (Symbols, or their names such as 'x'), "
                              f"got {key!r} ({type(key).__name__}). Fix: e.g. at={{x: 1.0}}.")
        if name not in symbols:
            raise OptionError(f"at= gives a value for {name!r}, which is not a variable of {expr}. Its "
                              f"variables are {', '.join(sorted(symbols)) or 'none'}. Fix: drop {key!r} or "
                              "check its spelling.")
        if symbols[name] in point:
            raise OptionError(f"at= gives {name!r} twice (as a Symbol and as a name). Fix: keep one.")
        point[symbols[name]] = _exact_number(value, name)
        # SymPy simplified with the symbol's declaration (positive=True: sqrt(p**2) = p), as compile does
        checks = assumption_checks([symbols[name]])
        if checks:
            check_assumptions(checks, [np.array(float(point[symbols[name]]))], "point at=", [symbols[name]])
    missing = sorted(s.name for s in expr.free_symbols if isinstance(s, sp.Symbol) and s not in point)
    if missing:
        example = ", ".join(f"{n}: 1.0" for n in missing)
        raise OptionError(f"at= has no value for {', '.join(missing)}; a numeric trace needs every variable "
                          f"of the expression. Fix: add them, e.g. at={{..., {example}}}.")
    return point


def _exact_number(value: object, name: str) -> sp.Expr:
    """A real number as an exact SymPy number: a float as the decimal it prints as (0.1 is 1/10)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    out = None
    if isinstance(value, numbers.Rational) and not isinstance(value, bool):  # int, Fraction, np.int64
        out = sp.Rational(int(value.numerator), int(value.denominator))
    elif isinstance(value, (float, np.floating)) and np.isfinite(value):
        out = sp.Rational(repr(float(value)))
    elif isinstance(value, sp.Basic) and value.is_number:
        out = value
    elif type(value).__name__ in ("Decimal", "mpf") and value == value and abs(value) != float("inf"):
        out = sp.Rational(str(value))  # the decimal it holds, exactly
    if out is None or not (out.is_real and out.is_finite):
        raise OptionError(f"at[{name!r}] = {value!r:.40} is not a finite real number. Fix: pass a number, "
                          f"e.g. at={{{name}: 1.0}} (an int, a float, a Fraction or a SymPy number like sp.pi/4).")
    return out


class PointValues:
    """The exact values of a sweep's quantities (expressions in its seams and leaves) at a point."""

    def __init__(self, sweep, point: dict[sp.Symbol, sp.Expr]):
        self.point = point
        self.exact = dict(point) | {n.out: n.expr.xreplace(point) for n in sweep.nodes}
        self.memo: dict[sp.Basic, sp.Expr] = {}

    def __call__(self, e: sp.Expr) -> sp.Expr:
        e = sp.sympify(e)
        if e not in self.memo:
            exact = e.xreplace(self.exact)
            if not exact.is_Rational and exact.has(sp.Function):  # relu(1/2) is 1/2 by its definition
                defined = exact.rewrite(sp.Piecewise)
                exact = defined if defined.is_Rational else exact
            self.memo[e] = exact if exact.is_Rational else _evaluated(_near_one(exact))
        return self.memo[e]


class _Log1p(sp.Function):
    """log(1 + w) for a number w, evaluated as mpmath's log1p of w: SymPy's evalf of log(u) rounds u
    to its working precision first, so log(1 + 1e-60) came out an exact 0 (and J = log(1 + x²)/x²
    "= 0" at x = 1e-30, for 1)."""

    def _eval_evalf(self, prec):
        w = None
        for maxn in (1000, 10000, 100000):  # strict: past maxn, non-strict evalf returns a cancellation's leftover
            try:
                w = self.args[0].evalf(mpmath.libmp.prec_to_dps(prec) + 10, strict=True, maxn=maxn)
                break
            except sp.core.evalf.PrecisionExhausted:
                continue
        if w is None:
            raise sp.core.evalf.PrecisionExhausted  # _evaluated refuses the value with the fix
        if not (w.is_real and w > -1):  # log of 0 or of a negative number: as SymPy has it
            return sp.log(1 + self.args[0], evaluate=False)._eval_evalf(prec)
        with mpmath.workprec(prec + 20):
            return sp.Float(mpmath.log1p(mpmath.mpf(w)), precision=prec)


def _near_one(exact: sp.Expr) -> sp.Expr:
    """``exact`` (a number) with log(u) as log1p(u − 1), 1 ± erf(u) as erfc(∓u) and 1 − tanh² as
    1/cosh²: SymPy evaluates 1 + erf(−7071) by cancelling millions of digits (GELU's trace at −1e4
    did not end)."""
    from ..codegen.one_minus import Erfc, _erfc_sum
    from ..derive.tails import _accurate_sum
    from ..lang.ops import sigmoid

    exact = exact.replace(lambda n: n.is_Add and n.has(sp.erf, sp.erfc),
                          lambda n: (_erfc_sum(n, {}) or n).replace(Erfc, sp.erfc))
    # 1 − tanh(u)² as 1/cosh(u)², as the compiled code has it (σ's forms are for the compiler only)
    exact = exact.replace(lambda n: n.is_Add and n.has(sp.tanh) and not n.has(sigmoid), _accurate_sum)
    return exact.replace(lambda n: isinstance(n, sp.log) and len(n.args) == 1, lambda n: _Log1p(n.args[0] - 1))


def _evaluated(exact: sp.Expr) -> sp.Expr:
    """``exact`` to ``DIGITS`` correct digits. evalf's default gives up after 100 working digits
    and returns what is left of a cancellation as if it were the value (1 − tanh(200)² printed
    2.8e-160 for 7.7e-174): evaluated strictly, with more working digits until it holds."""
    for maxn in (110, 1000, 10000, 100000):
        try:
            return exact.evalf(DIGITS, strict=True, maxn=maxn)
        except sp.core.evalf.PrecisionExhausted:
            continue
    # SymPy's best past 100,000 digits was a leftover of the cancellation (1 − tanh(2e5)² printed
    # 5.2e-158257 for 6.4e-173718): refused, not printed as a value
    raise OptionError(f"a value of this derivation at the point cancels beyond 100,000 digits ({str(exact)[:80]}), "
                      "so symgrad cannot print it exactly. Fix: a point of smaller magnitude.")
