"""Input checks on user expressions: supported functions, real symbols, bindings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sympy as sp

from .errors import NonScalarLossError, UnboundSymbolError, UnsupportedFunctionError
from .ops import OPS

#: SymPy functions the code printer can emit, with their Numba spelling.
MATH_FUNCS: dict[type, str] = {
    sp.sin: "math.sin", sp.cos: "math.cos", sp.tan: "math.tan",
    sp.asin: "math.asin", sp.acos: "math.acos", sp.atan: "math.atan",
    sp.sinh: "math.sinh", sp.cosh: "math.cosh", sp.tanh: "math.tanh",
    sp.asinh: "math.asinh", sp.acosh: "math.acosh", sp.atanh: "math.atanh",
    sp.exp: "math.exp", sp.log: "math.log", sp.erf: "math.erf", sp.erfc: "math.erfc",
    sp.atan2: "math.atan2",
}

_STRUCTURAL = (sp.Add, sp.Mul, sp.Pow, sp.Piecewise, sp.Abs, sp.sign, sp.Max, sp.Min)

SUPPORTED_NAMES: tuple[str, ...] = tuple(
    sorted({f.__name__ for f in MATH_FUNCS} | set(OPS) | {"Abs", "sign", "Max", "Min", "sqrt"})
)


def check_functions(expr: sp.Basic) -> None:
    """Raise UnsupportedFunctionError for any function the codegen cannot emit."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Function) or isinstance(node, sp.core.function.AppliedUndef):
            f = type(node)
            if f in MATH_FUNCS or f.__name__ in OPS or issubclass(f, _STRUCTURAL):
                continue
            raise UnsupportedFunctionError(
                f"unsupported function {f.__name__}() in {expr}. "
                f"Supported: {', '.join(SUPPORTED_NAMES)}. "
                "Fix: rewrite it with these, or define it as a SymPy expression of them."
            )
        if isinstance(node, (sp.Derivative, sp.Integral, sp.Sum, sp.Product)):
            raise UnsupportedFunctionError(
                f"{type(node).__name__} in {expr} is not supported. Fix: call .doit() first "
                "or write the expression in closed form."
            )


def check_scalar(expr: object, what: str = "loss") -> sp.Expr:
    """Return expr as a scalar SymPy Expr, or raise NonScalarLossError."""
    if isinstance(expr, (int, float)):
        expr = sp.sympify(expr)
    if isinstance(expr, sp.MatrixBase) and expr.shape == (1, 1):
        expr = expr[0, 0]
    if isinstance(expr, sp.MatrixExpr) or isinstance(expr, sp.MatrixBase):
        raise NonScalarLossError(
            f"the {what} has shape {expr.shape}; it must be a scalar. "
            "Fix: reduce it, e.g. sg.mean(...), sg.msum(...), or take [0, 0] of a 1x1 result."
        )
    if not isinstance(expr, sp.Expr):
        raise NonScalarLossError(f"the {what} must be a SymPy scalar expression, got {type(expr)!r}")
    return expr


def check_bindings(expr: sp.Basic, wrt: Sequence[sp.Basic], data: Iterable[sp.Basic]) -> None:
    """Every free symbol must be a parameter or data; and none may be both."""
    wrt_set, data_set = set(wrt), set(data)
    both = wrt_set & data_set
    if both:
        raise UnboundSymbolError(
            f"{sorted(map(str, both))} are listed both in wrt and in data. Fix: list each once."
        )
    free = _free_leaves(expr)
    unbound = free - wrt_set - data_set
    if unbound:
        names = ", ".join(sorted(map(str, unbound)))
        raise UnboundSymbolError(
            f"free symbol(s) {names} are neither parameters (wrt=) nor data (data=). "
            f"Fix: add them to wrt=[...] or data=[...], or substitute a value with .subs()."
        )


def _free_leaves(expr: sp.Basic) -> set[sp.Basic]:
    # free_symbols holds plain Symbols and whole MatrixSymbols (not their shape symbols)
    return set(expr.free_symbols)


def realify(expr: sp.Expr) -> tuple[sp.Expr, dict[sp.Symbol, sp.Symbol]]:
    """Replace symbols that are not declared real by real twins.

    Why: with complex symbols, ``diff(Abs(x))`` yields re/im terms and ``sign`` turns into
    ``x/Abs(x)``. Returns the new expression and the map old -> new.
    """
    mapping = {
        s: sp.Symbol(s.name, real=True)
        for s in expr.free_symbols
        if isinstance(s, sp.Symbol) and not s.is_real
    }
    return (expr.xreplace(mapping) if mapping else expr), mapping
