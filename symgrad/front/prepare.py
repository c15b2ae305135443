"""The front end of every route: validate, make symbols real, stabilise (Max/Min stay: the
sweep differentiates them with the kink convention, derive/partials._extremum_partials)."""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from ..errors import SymgradError
from ..lang.ops import textbook_signs
from ..runtime.assumptions import refuse_unreal
from .rewrite import stabilize
from .validate import check_functions, check_one_symbol_per_name, check_scalar, realify


def prepare(expr: object, variables: Sequence[sp.Basic]) -> tuple[sp.Expr, list[sp.Symbol], list[str], sp.Expr]:
    """Validate, make symbols real, and stabilise. Returns (stable, variables, rules, original).

    Symbols not declared real are replaced by real twins (``validate.realify``); use
    :func:`unrealify` to hand results back in the caller's symbols.
    """
    if is_tensor(expr) and not isinstance(expr, sp.MatrixBase):
        check_scalar(expr, "expression")  # a matrix expression: NonScalarLossError
        raise SymgradError("grad/explain work on scalar formulas. Fix: for matrix models (networks) use "
                           "sg.formulas(net, loss); or write the formula with scalar symbols.")
    e = check_scalar(expr, "expression")
    refuse_unreal(e.free_symbols)  # before the function checks: SymPy made re(z) of an imaginary z 0
    check_functions(e)
    check_one_symbol_per_name(e)
    e, mapping = realify(e)
    out_vars = []
    for v in variables:
        if isinstance(v, sp.MatrixSymbol):  # the route for formulas of matrices needs them in the formula
            raise SymgradError(f"{v} is a matrix, and the formula {e} holds no matrix. Fix: write the formula with "
                               f"{v} in it (e.g. sg.msum(...) of a product with it), or drop it from wrt.")
        if not isinstance(v, sp.Symbol):
            raise SymgradError(f"can only differentiate with respect to a Symbol, got {v!r} ({type(v).__name__}). "
                               "Fix: pass the Symbols themselves, e.g. grad(expr, [x, y]); name a subexpression "
                               "for the printout with explain(..., names={...}) instead.")
        # a variable not declared real stands for the real twin its name gets in the expression
        out_vars.append(mapping.get(v) or (realify(v)[0] if not v.is_real else v))
    original = e
    stable, rules = stabilize(e)
    return stable, out_vars, rules, original


def unrealify(result: sp.Expr, user_expr: sp.Basic) -> sp.Expr:
    """Put the caller's own (possibly non-real) symbols back into a result, with σ(−a) written
    1 − σ(a) as the notes write it (dJ/da = σ(a) − 1): compiled code keeps σ(−a), which does not
    cancel, but a formula handed back is for reading."""
    back = {sp.Symbol(s.name, real=True): s for s in getattr(user_expr, "free_symbols", ())
            if isinstance(s, sp.Symbol) and not s.is_real}
    return textbook_signs(result.xreplace(back) if back else result)


def is_tensor(expr: object) -> bool:
    if isinstance(expr, sp.MatrixBase) and expr.shape == (1, 1) and not expr[0, 0].atoms(sp.MatrixSymbol):
        return False  # a scalar formula in a 1x1 Matrix: check_scalar unwraps it
    if isinstance(expr, (sp.MatrixExpr, sp.MatrixBase)):
        return True
    return isinstance(expr, sp.Basic) and bool(expr.atoms(sp.MatrixSymbol))
