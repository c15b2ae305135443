"""Checks of single nodes of a user expression, besides its functions (``validate.check_functions``):
real finite constants, exponents floating point can hold, a Piecewise defined everywhere, and no
unevaluated SymPy operation (``Subs``, ``Limit``, ...) that a derivative would not see through.

>>> a, t = sp.symbols("a t", real=True)
>>> check_form(a**2, a**2)
>>> check_form(sp.Subs(a**2 * t, t, 2), a)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
symgrad.errors.UnsupportedFunctionError: Subs in a is not supported. Fix: call .doit() first ...
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

from ..errors import UnsupportedFunctionError

_NOT_REAL = (sp.I, sp.oo, -sp.oo, sp.zoo, sp.nan)

#: The expression nodes compiled code is made of (besides the functions of the table).
_EXPR_NODES = (sp.Add, sp.Mul, sp.Pow, sp.core.function.Application, sp.Indexed, sp.Idx,
               sp.IndexedBase, MatrixElement, sp.MatrixExpr)
#: Conditions (of a Piecewise): comparisons and their logic.
_CONDITIONS = (sp.core.relational.Relational, sp.logic.boolalg.BooleanAtom, sp.And, sp.Or, sp.Not, sp.Xor,
               sp.ITE)


def _unevaluated(node: sp.Basic) -> bool:
    """An expression node that is none of the compiled ones: an unevaluated operation."""
    return isinstance(node, sp.Expr) and not node.is_Atom and not isinstance(node, _EXPR_NODES)


def check_form(node: sp.Basic, expr: sp.Basic) -> None:
    """Raise UnsupportedFunctionError if ``node`` (a node of ``expr``) cannot be compiled as it is."""
    if node.is_Atom and (node in _NOT_REAL or node.is_number and node.is_extended_real is False):
        # compiled code is real arithmetic: I would be silently dropped by the Python backend
        # (a wrong gradient) and oo/nan fail inside the generated code
        raise UnsupportedFunctionError(
            f"the constant {node} in {expr} is not a finite real number; symgrad compiles real "
            "arithmetic. Fix: write the formula with finite real constants (split complex "
            "quantities into real and imaginary parts, each its own expression).")
    if isinstance(node, sp.Pow) and node.base.is_zero and not node.exp.is_number:
        raise UnsupportedFunctionError(
            f"{node} in {expr} is 0 for a positive exponent, 1 at 0 and infinite below: its derivative "
            "is undefined (0**a*log(0)). Fix: write the value meant, e.g. Piecewise((1, Eq(a, 0)), (0, True)).")
    if _constant(node):
        approx = node if node.is_Number else node.evalf(20)
        if not node.is_Number and approx.is_number and sp.im(approx) != 0:
            # asin(2), (-1)**(1/3): SymPy's principal values are complex, and the code computed NaN
            raise UnsupportedFunctionError(
                f"the constant {node} in {expr} is not real (≈ {sp.N(approx, 6)}); symgrad compiles real "
                "arithmetic. Fix: write the real number meant (for a real cube root of a negative number, "
                "sp.real_root(-1, 3) = -1; a function inside its real domain, e.g. asin of |v| <= 1).")
        check_range(node, expr, sp.re(approx), np.float64)  # sp.re: relu(-2) is 0, not an underflow
    if isinstance(node, sp.Pow) and node.exp.is_Integer and abs(node.exp) > 2**53:
        # a float exponent: odd and even powers of -1 are the same number beyond 2**53
        raise UnsupportedFunctionError(
            f"the exponent of {node} in {expr} is beyond 2**53, where floating point loses its parity "
            "(and x**k is 0 or infinite unless |x| = 1). Fix: write the power with an exponent within "
            "2**53 (the value is the same at every float but |x| = 1).")
    if isinstance(node, sp.Piecewise) and node.args[-1].cond != True:  # noqa: E712 - SymPy's true
        raise UnsupportedFunctionError(
            f"{node} has no final (value, True) branch, so it is undefined where no condition "
            "holds. Fix: add one, e.g. Piecewise(..., (0, True)).")
    if isinstance(node, (sp.Derivative, sp.Integral, sp.Sum, sp.Product)) or _unevaluated(node):
        # Subs, Limit, Order, Lambda, RootOf, UnevaluatedExpr: SymPy's own diff sees through
        # none of them, so a derivative would be silently wrong (d/da Subs(a**2*t, t, 2) = 2*a*t)
        fix = ("drop it with .removeO()" if isinstance(node, sp.Order) else "replace it by its value (.evalf())"
               if isinstance(node, sp.RootOf) else "call .doit() first or write the expression in closed form")
        raise UnsupportedFunctionError(f"{type(node).__name__} in {expr} is not supported. Fix: {fix}.")
    if isinstance(node, sp.logic.boolalg.Boolean) and not isinstance(node, (sp.Expr, *_CONDITIONS)):
        raise UnsupportedFunctionError(
            f"the condition {node} in {expr} is not supported. Fix: write it with comparisons joined by "
            "& | ~, e.g. (0 <= a) & (a <= 1) instead of Contains(a, Interval(0, 1)).")


def check_float32_constants(expr: sp.Basic) -> None:
    """Refuse a constant that float32 holds as 0 or infinity where float64 does not (``exp(-120)``
    in ``1e30*exp(-120)*x``: each factor is rounded to float32 alone, and the value was 0)."""
    for node in sp.preorder_traversal(expr):
        if _constant(node):
            check_range(node, expr, sp.re(node.evalf(20)), np.float32)


def _constant(node: sp.Basic) -> bool:
    """A number, or a function or power of numbers (exp(1000)): compiled as one constant."""
    return node.is_Number or isinstance(node, (sp.Function, sp.Pow)) and node.is_number


def check_range(node: sp.Basic, expr: sp.Basic, exact: sp.Expr, dtype: type) -> None:
    """Refuse a constant (``exact``, the value of ``node``) that ``dtype`` holds as 0 or infinity,
    or as a subnormal number: 1e-44 in float32 is 9.8e-45, a few bits (2% off)."""
    with np.errstate(over="ignore", under="ignore"):
        value = float(dtype(float(exact)))
    if abs(value) != float("inf") and not (exact != 0 and abs(value) < np.finfo(dtype).tiny):
        return
    name = np.dtype(dtype).name
    fix = ("rescale the formula so that its constants lie within 1e-300..1e300" if dtype is np.float64 else
           "compile with dtype='float64', or rescale the formula so that its constants lie within 1e-37..1e38")
    raise UnsupportedFunctionError(
        f"the constant {sp.N(node, 3) if node.is_Number else f'{node} (≈ {sp.N(node, 3)})'} in {expr} is beyond "
        f"{name}'s range of full precision (it would compile as {value:.6g}). Fix: {fix}.")
