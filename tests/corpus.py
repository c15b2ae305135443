"""A generator of random scalar expressions covering every form symgrad's code printer emits.

Functions: every entry of ``validate.MATH_FUNCS``, symgrad's ops, Abs, sign, Max, Min, sqrt,
Piecewise, log with a base, 1 ± erf(u). Operators: sums, products, nested divisions, integer powers from
-6 to 6 (the x*x and helper forms, and the float power beyond), rational and symbolic exponents,
compound bases and exponents, repeated subexpressions. Names: symbols are drawn from Python's
keywords and builtins, the generated code's own vocabulary and non-ASCII letters.

The generator takes a ``pick(options)`` callable, so that hypothesis (``st.data``) and a seeded
``random.Random`` (for batches compiled once under Numba) drive the same code.
"""

from __future__ import annotations

import builtins
import keyword
from collections.abc import Callable, Sequence

import sympy as sp

from symgrad import ops
from symgrad.front.validate import MATH_FUNCS

Pick = Callable[[Sequence], object]

NAME_POOL = sorted(
    set(keyword.kwlist) | {n for n in dir(builtins) if not n.startswith("_")}
    | {"acc", "n", "i", "v", "F", "math", "np", "vm", "huge", "out", "grad_out", "value_out", "theta", "data_x",
       "t0", "p_a", "d_x", "g_p_a", "v_p_a", "h_0_0", "radd", "pow2", "sigmoid", "TRIG_MAX", "θ", "β", "x", "y",
       "v1", "v2", "J", "J_"}  # the sweep's own names: seams v1, v2, ... and the output J
)

# Arguments that keep a function inside its domain; the printer sees the function either way.
_POSITIVE = [lambda u: u**2 + sp.Rational(1, 2), lambda u: sp.exp(u / 2), lambda u: 1 + sp.Abs(u)]
_UNIT = [lambda u: sp.tanh(u) / 2, lambda u: sp.sin(u) / 3]

_DOMAIN = {sp.log: _POSITIVE, sp.acosh: [lambda u: 1 + u**2], sp.asin: _UNIT, sp.acos: _UNIT, sp.atanh: _UNIT}
UNARY = [f for f in MATH_FUNCS if f is not sp.atan2] + [sp.sqrt, sp.Abs, sp.sign, ops.sigmoid, ops.softplus,
                                                        ops.relu]


def _unary(pick: Pick, u: sp.Expr) -> sp.Expr:
    f = pick(UNARY + ["leaky_relu", "elu", "log10", "cdf"])
    if f == "cdf":  # 1 ± erf(u), computed as erfc(∓u) (codegen/accurate.py)
        return (1 + pick([1, -1]) * sp.erf(u)) / 2
    if f == "leaky_relu":
        return ops.leaky_relu(u, sp.Rational(1, 10))
    if f == "elu":
        return ops.elu(u, pick([sp.S.One, sp.Rational(1, 2)]))
    if f == "log10":
        return sp.log(pick(_POSITIVE)(u), 10)
    if f is sp.sqrt:
        return sp.sqrt(pick(_POSITIVE)(u))
    if f in _DOMAIN:
        return f(pick(_DOMAIN[f])(u))
    return f(u)


def _power(pick: Pick, u: sp.Expr, w: sp.Expr) -> sp.Expr:
    kind = pick(["int", "int", "rational", "symbolic", "compound"])
    if kind == "int":
        return u ** pick([-6, -4, -3, -2, -1, 2, 3, 4, 5, 6])
    base = pick(_POSITIVE)(u)
    if kind == "rational":
        return base ** pick([sp.Rational(1, 2), sp.Rational(-1, 2), sp.Rational(1, 3), sp.Rational(-3, 2),
                             sp.Rational(5, 2), sp.Rational(-2, 3)])
    if kind == "symbolic":
        return base ** pick(_POSITIVE)(w) if pick([True, False]) else base ** sp.tanh(w)
    return base ** (2 * sp.tanh(w) - 1)  # a compound exponent


def _binary(pick: Pick, u: sp.Expr, w: sp.Expr, data: sp.Symbol) -> sp.Expr:
    op = pick(["add", "sub", "mul", "div", "nested div", "pow", "atan2", "max", "min", "piecewise", "bce",
               "repeat"])
    if op == "add":
        return u + w
    if op == "sub":
        return u - 2 * w
    if op == "mul":
        return u * w
    if op == "div":
        return u / pick(_POSITIVE)(w)
    if op == "nested div":
        return u / (1 + w**2 / (1 + u**2)) - 1 / (2 + sp.Abs(w))
    if op == "pow":
        return _power(pick, u, w)
    if op == "atan2":
        return sp.atan2(u, pick(_POSITIVE)(w))
    if op in ("max", "min"):
        return (sp.Max if op == "max" else sp.Min)(u, w, pick([sp.S.Zero, sp.Rational(1, 3)]))
    if op == "piecewise":
        return sp.Piecewise((u * w, u > w), (u - w, True))
    if op == "bce":
        return ops.bce_logits(u, sp.tanh(data) ** 2)  # a target in [0, 1)
    return u * sp.sin(u) + w / (1 + u**2)  # one subexpression used several times


def expression(pick: Pick, params: list[sp.Symbol], data: sp.Symbol, depth: int = 3) -> sp.Expr:
    """A random expression in ``params`` and ``data`` of nesting ``depth`` at most."""
    if depth == 0 or pick([False, False, True]):
        leaf = pick([*params, data, *params])
        return leaf * pick([sp.S.One, sp.Integer(2), sp.Rational(-3, 2), sp.Float(0.7)])
    if pick([True, False]):
        return _unary(pick, expression(pick, params, data, depth - 1))
    return _binary(pick, expression(pick, params, data, depth - 1), expression(pick, params, data, depth - 1), data)


def symbols(pick: Pick) -> tuple[list[sp.Symbol], sp.Symbol]:
    """Two parameters and one data symbol with distinct names drawn from ``NAME_POOL``."""
    first = pick(NAME_POOL)
    second = pick([n for n in NAME_POOL if n != first])
    third = pick([n for n in NAME_POOL if n not in (first, second)])
    return [sp.Symbol(first, real=True), sp.Symbol(second, real=True)], sp.Symbol(third, real=True)
