"""The public entry points: ``grad``, ``explain`` and ``compile``."""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from .derive import sweep
from .errors import SymgradError
from .formulas import Derivation
from .rewrite import stabilize
from .validate import check_functions, check_scalar, realify


def _max_to_piecewise(e: sp.Expr) -> sp.Expr:
    """Max/Min as Piecewise: SymPy differentiates Max into Heaviside, whose value at 0 is 1/2."""

    def conv(m):
        a, rest = m.args[0], m.func(*m.args[1:]) if len(m.args) > 2 else m.args[1]
        cond = a > rest if isinstance(m, sp.Max) else a < rest
        return sp.Piecewise((a, cond), (rest, True))

    return e.replace(lambda x: isinstance(x, (sp.Max, sp.Min)), conv)


def prepare(expr: object, variables: Sequence[sp.Basic]) -> tuple[sp.Expr, list[sp.Symbol], list[str], sp.Expr]:
    """Validate, make symbols real, and stabilise. Returns (stable, variables, rules, original)."""
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


def grad(expr: sp.Expr, wrt: sp.Symbol | Sequence[sp.Symbol]) -> sp.Expr | list[sp.Expr]:
    """The simplified, stabilised gradient of a scalar expression.

    One reverse sweep gives every partial; SymPy only differentiates single nodes.

    >>> x = sp.Symbol("x", real=True)
    >>> grad(sp.cos(sp.sin(x**2) + 3*x**2), x)
    -2*x*(cos(x**2) + 3)*sin(3*x**2 + sin(x**2))
    """
    single = isinstance(wrt, sp.Basic)
    stable, variables, _, _ = prepare(expr, [wrt] if single else list(wrt))
    s = sweep(stable)
    out = [s.gradient(v) for v in variables]
    return out[0] if single else out


def explain(
    expr: sp.Expr,
    wrt: sp.Symbol | Sequence[sp.Symbol],
    names: dict[sp.Expr, str] | None = None,
    output: str = "J",
) -> Derivation:
    """The derivation of ``d expr / d wrt``: forward trace, adjoint steps, result.

    ``names`` maps subexpressions to the names used in the printout (default v1, v2, ...).

    >>> x = sp.Symbol("x", real=True)
    >>> print(explain(sp.sin(x**2), x, names={x**2: "t"}))  # doctest: +NORMALIZE_WHITESPACE
    Forward
      t = x**2
      J = sin(t)
    Backward (adjoint steps)
      dJ/dt += cos(t)
      dJ/dx += dJ/dt * dt/dx,   dt/dx = 2*x
    Collected adjoints
      dJ/dt = cos(t)
    Result
      dJ/dx = 2*x*cos(x**2)
    """
    single = isinstance(wrt, sp.Basic)
    stable, variables, rules, original = prepare(expr, [wrt] if single else list(wrt))
    _, mapping = realify(sp.Tuple(*(names or {}).keys()))
    real_names = {k.xreplace(mapping): v for k, v in (names or {}).items()}
    s = sweep(stable, real_names, output)
    d = Derivation(original, stable, rules, s, variables)
    d.gradients = [s.gradient(v) for v in variables]
    return d
