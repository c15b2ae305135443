"""The front end of every route: validate, make symbols real, rewrite Max/Min, stabilise."""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from ..errors import SymgradError
from .rewrite import stabilize
from .validate import check_functions, check_scalar, realify


def _fold_extremum(is_max: bool, args: list[sp.Expr]) -> sp.Expr:
    """max(a1, ..., an) as nested Piecewise with the convention of ops.KINK_CONVENTIONS['Max']:
    strict comparisons, so a tie goes to the later argument, and constants are placed last,
    so d max(x, 0)/dx = 0 at x = 0 (as relu'(0))."""
    args = sorted(args, key=lambda a: (not a.free_symbols, sp.default_sort_key(a)))
    acc = args[-1]
    for a in reversed(args[:-1]):
        acc = sp.Piecewise((a, a > acc if is_max else a < acc), (acc, True))
    return acc


def _max_to_piecewise(e: sp.Expr) -> sp.Expr:
    """Max/Min as Piecewise: SymPy differentiates Max into Heaviside, whose value at 0 is 1/2."""
    if e.is_Atom:
        return e
    args = [_max_to_piecewise(a) for a in e.args]
    if isinstance(e, (sp.Max, sp.Min)):
        return _fold_extremum(isinstance(e, sp.Max), args)
    return e.func(*args) if args != list(e.args) else e


def prepare(expr: object, variables: Sequence[sp.Basic]) -> tuple[sp.Expr, list[sp.Symbol], list[str], sp.Expr]:
    """Validate, make symbols real, and stabilise. Returns (stable, variables, rules, original).

    Symbols not declared real are replaced by real twins (``validate.realify``); use
    :func:`unrealify` to hand results back in the caller's symbols.
    """
    if is_tensor(expr) and not isinstance(expr, sp.MatrixBase):
        check_scalar(expr, "expression")  # a matrix expression: NonScalarLossError
        raise SymgradError("grad/explain work on scalar formulas; for matrix models use sg.formulas()")
    e = check_scalar(expr, "expression")
    check_functions(e)
    e, mapping = realify(e)
    out_vars = []
    for v in variables:
        if not isinstance(v, sp.Symbol):
            raise SymgradError(f"can only differentiate with respect to a Symbol, got {v!r} ({type(v).__name__})")
        out_vars.append(mapping.get(v, v))
    original = e
    e = _max_to_piecewise(e)
    stable, rules = stabilize(e)
    return stable, out_vars, rules, original


def unrealify(result: sp.Expr, user_expr: sp.Basic) -> sp.Expr:
    """Put the caller's own (possibly non-real) symbols back into a result."""
    back = {sp.Symbol(s.name, real=True): s for s in getattr(user_expr, "free_symbols", ())
            if isinstance(s, sp.Symbol) and not s.is_real}
    return result.xreplace(back) if back else result


def is_tensor(expr: object) -> bool:
    if isinstance(expr, (sp.MatrixExpr, sp.MatrixBase)):
        return True
    return isinstance(expr, sp.Basic) and bool(expr.atoms(sp.MatrixSymbol))
