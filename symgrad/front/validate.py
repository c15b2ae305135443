"""Input checks on user expressions: supported functions, real symbols, bindings."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

from ..errors import (
    NamingError,
    NonScalarLossError,
    UnboundSymbolError,
    UnsupportedFunctionError,
    UnsupportedModelError,
)
from ..lang.constants import RuntimeConstant
from ..lang.math_functions import COMPOSITE, MATH_FUNCS, OP, STRUCTURAL, TABLE
from ..lang.walk import find
from ..runtime.assumptions import assumption_checks
from .forms import check_form

# lang/math_functions.py is the one table of supported functions: the lists below are read off it.

#: symgrad's own ops, by class: sp.Function("sigmoid") is another function of the same name
_OPS = frozenset(e.node for e in TABLE if e.kind == OP)

#: Nodes printed by a method for the node: arithmetic, and the table's structural functions.
_STRUCTURAL = tuple(dict.fromkeys((sp.Add, sp.Mul, sp.Pow, sp.Piecewise, *(e.node for e in TABLE if e.kind == STRUCTURAL))))

#: The names in our error message: the table's functions, less parser aliases and shorthands.
SUPPORTED_NAMES: tuple[str, ...] = tuple(sorted(e.name for e in TABLE if e.kind != COMPOSITE))


def check_functions(expr: sp.Basic) -> None:
    """Raise UnsupportedFunctionError for any function the codegen cannot emit."""
    for node in sp.preorder_traversal(expr):
        check_form(node, expr)
        if isinstance(node, sp.Function) or isinstance(node, sp.core.function.AppliedUndef):
            f = type(node)
            if f in MATH_FUNCS or f in _OPS or issubclass(f, (*_STRUCTURAL, RuntimeConstant)):
                continue
            if any(f.__name__ == op.__name__ for op in _OPS):  # an undefined sp.Function("sigmoid")
                raise UnsupportedFunctionError(
                    f"{node} in {expr} is an undefined SymPy function named {f.__name__}, not symgrad's "
                    f"{f.__name__} (SymPy knows nothing of it: no derivative). Fix: use sg.ops.{f.__name__}"
                    f"(...) (from symgrad.ops import {f.__name__}) instead of sp.Function({f.__name__!r}).")
            if f.__name__ in ("msum", "mean", "logsumexp"):  # inside sg.elementwise's function: entry by entry
                raise UnsupportedFunctionError(f"{node} inside {expr}: an elementwise function sees one entry, and "
                                               f"{f.__name__} a matrix. Fix: reduce outside it, e.g. h - sg.mean(h)*ones "
                                               "(ones a data column of 1s), or sg.layernorm(h).")
            u, at_0 = (*node.args, sp.S.Half, sp.S.Half)[:2]  # Heaviside(u, H(0)); SymPy's H(0) is 1/2
            fix = (f"write {node} as Piecewise((0, {u} < 0), ({at_0}, Eq({u}, 0)), (1, True))" if f is sp.Heaviside
                   else "rewrite it with these, or define it as a SymPy expression of them")
            raise UnsupportedFunctionError(f"unsupported function {f.__name__}() in {expr}. Supported: "
                                           f"{', '.join(SUPPORTED_NAMES)}, and Piecewise of them. Fix: {fix}.")


def check_scalar(expr: object, what: str = "loss") -> sp.Expr:
    """Return expr as a scalar SymPy Expr, or raise NonScalarLossError."""
    if isinstance(expr, (int, float)):
        expr = sp.sympify(expr)
    if isinstance(expr, sp.MatrixBase) and expr.shape == (1, 1):
        expr = expr[0, 0]
    if isinstance(expr, sp.MatrixExpr) or isinstance(expr, sp.MatrixBase):
        raise NonScalarLossError(
            f"the {what} has shape {expr.shape}; it must be a scalar. "
            "Fix: reduce it, e.g. sg.mean(...) or sg.msum(...) (also for a 1x1 product such as "
            "w.T*x: sg.msum(w.T*x) stays a matrix product, while (w.T*x)[0, 0] is expanded into "
            "one term per element)."
        )
    if isinstance(expr, sp.logic.boolalg.Boolean) and not isinstance(expr, sp.Expr):  # a Symbol is both
        raise NonScalarLossError(f"the {what} is a condition ({expr}), not a number. Fix: an indicator, "
                                 f"Piecewise((1, {expr}), (0, True)), is 1 where it holds and 0 elsewhere.")
    if not isinstance(expr, sp.Expr):
        raise NonScalarLossError(f"the {what} must be a SymPy scalar expression, got {type(expr)!r}. Fix: build it "
                                 "from SymPy symbols, e.g. x = sp.Symbol('x', real=True); or read a string with "
                                 "sg.parse_expr('sin(x)**2').")
    return expr


#: A scalar loss may index at most this many distinct matrix elements (``m[i, j]``).
#: Why: SymPy expands an element of a product when it is indexed, ``(w.T*X)[0, 0]`` into
#: ``w[0, 0]*X[0, 0] + ... + w[n-1, 0]*X[n-1, 0]``, and the tensor path then compiles one lane per
#: element, whose derivatives cost ~elements^2 (measured on ``((w.T*X)[0, 0] - y)**2``, python
#: backend: 16 elements 0.7 s, 32 2.3 s, 64 8.9 s, 128 35 s; 500 elements took minutes), where
#: ``sg.msum(w.T*X)`` compiles in 0.15 s at any size. The tests index at most 6.
MAX_MATRIX_ELEMENTS = 32


def check_matrix_elements(expr: sp.Basic, limit: int = MAX_MATRIX_ELEMENTS) -> None:
    """Raise UnsupportedModelError if ``expr`` indexes more than ``limit`` distinct elements of
    matrices (``MatrixElement``, e.g. what ``(w.T*X)[0, 0]`` expands into).

    Call it on a scalar loss that holds MatrixSymbols, before lowering it. It visits each
    distinct subexpression once and stops at the first element past ``limit``, so it costs at
    most the size of the expression, which SymPy has built already.

    >>> w, x = sp.MatrixSymbol("w", 3, 1), sp.MatrixSymbol("x", 3, 1)
    >>> check_matrix_elements((w.T * x)[0, 0] ** 2)  # 6 elements: fine
    >>> check_matrix_elements((w.T * x)[0, 0], limit=4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symgrad.errors.UnsupportedModelError: the loss indexes more than 4 matrix elements one by one ...
    """
    found: set[sp.Basic] = set()
    seen: set[sp.Basic] = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, MatrixElement):
            found.add(e)
            if len(found) > limit:
                _too_many_elements(found, limit)
            continue
        if not isinstance(e, sp.Basic) or e in seen:
            continue
        seen.add(e)
        stack.extend(e.args)


def _too_many_elements(found: set[sp.Basic], limit: int) -> None:
    parents = sorted({str(m.parent) for m in found})
    raise UnsupportedModelError(
        f"the loss indexes more than {limit} matrix elements one by one (of {', '.join(parents)}), "
        "e.g. (w.T*X)[0, 0], which SymPy expands into a sum of one product per element; each would "
        "be compiled separately, per weight. Fix: write the model with matrix operations and "
        "reduce with sg.msum(...) or sg.mean(...) instead of indexing elements: "
        "sg.msum(w.T*X) instead of (w.T*X)[0, 0], sg.msum(sp.HadamardProduct(w, x)) for an elementwise product.")


def _elements(v, what: str) -> str:
    return f"its elements, {what}=[{v}[i] for i in range(n)]; or " if isinstance(v, sp.IndexedBase) else ""


def symbol_list(value: object, what: str) -> list[sp.Basic]:
    """``wrt=`` or ``data=`` as a list: one symbol alone is accepted as a list of one.

    >>> symbol_list(sp.Symbol("a"), "wrt")
    [a]
    """
    if isinstance(value, (sp.Symbol, sp.MatrixSymbol)):
        return [value]
    if isinstance(value, (str, sp.Basic)) or not isinstance(value, Iterable):
        raise UnboundSymbolError(f"{what}= takes symbols (a Symbol, a MatrixSymbol, or a list of them), got {value!r}. "
                                 f"Fix: {_elements(value, what)}e.g. {what}=[a, b] with a, b = sp.symbols('a b', real=True).")
    out = list(value)
    for v in out:  # an Indexed (theta[0] of an expanded sum) is a symbol to compile (build.py)
        if not isinstance(v, (sp.Symbol, sp.MatrixSymbol, sp.Indexed)):
            raise UnboundSymbolError(f"{what}= holds {v!r} ({type(v).__name__}), which is not a symbol. Fix: {_elements(v, what)}"
                                     "list symbols only; to use an expression such as 2*a, give it a symbol and substitute.")
    return out


def check_bindings(expr: sp.Basic, wrt: Sequence[sp.Basic], data: Iterable[sp.Basic]) -> None:
    """Every free symbol must be a parameter or data; none may be both, or listed twice."""
    wrt, data = list(wrt), list(data)
    for what, syms in (("wrt", wrt), ("data", data)):
        twice = sorted({str(s) for s in syms if syms.count(s) > 1})
        if twice:
            raise UnboundSymbolError(f"{twice} listed more than once in {what}=. Fix: list each symbol once "
                                     "(a repeated symbol would be bound to two values, or get two gradient entries).")
    wrt_set, data_set = set(wrt), set(data)
    both = wrt_set & data_set
    if both:
        raise UnboundSymbolError(
            f"{sorted(map(str, both))} are listed both in wrt and in data. Fix: list each once."
        )
    free = _free_leaves(expr)
    unused = [str(s) for s in wrt if s not in free]
    if unused:  # a typo's parameter got gradient 0 and "fitted" to its start, success=True
        from ..runtime.epochs import user_level

        warnings.warn(f"wrt= holds {', '.join(unused)}, which the formula does not contain: its gradient is 0 and a "
                      "fit leaves it where it starts. Fix: drop it from wrt=, or check the formula for a typo.",
                      UserWarning, stacklevel=user_level())
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


def check_one_symbol_per_name(expr: sp.Basic) -> None:
    """Refuse two different symbols of one name (``Symbol('a')`` and ``Symbol('a', real=True)``, or
    a Dummy): SymPy keeps them apart, and making both real merged them into one variable."""
    seen: dict[str, sp.Symbol] = {}
    def order(s):  # the plain Symbol first, then by what was declared: the same message every run
        given = sorted((getattr(s, "_assumptions_orig", None) or {}).items())
        return s.name, type(s) is not sp.Symbol, len(given), str(given)

    for s in sorted((s for s in expr.free_symbols if isinstance(s, sp.Symbol)), key=order):
        other = seen.setdefault(s.name, s)
        if other != s:
            def said(t):  # as the user wrote it
                given = getattr(t, "_assumptions_orig", None) or {}
                return f"{type(t).__name__}({t.name!r}{''.join(f', {k}={v}' for k, v in given.items())})"
            raise NamingError(f"the expression holds two different symbols named {s.name!r}: {said(other)} and "
                              f"{said(s)}, which SymPy treats as two variables. Fix: make the symbol once "
                              f"({s.name} = sp.Symbol({s.name!r}, real=True)) and use it everywhere.")


def realify(expr: sp.Expr) -> tuple[sp.Expr, dict[sp.Symbol, sp.Symbol]]:
    """Replace symbols that are not declared real by real twins.

    Why: with complex symbols, ``diff(Abs(x))`` yields re/im terms and ``sign`` turns into
    ``x/Abs(x)``. Returns the new expression and the map old -> new.
    """
    mapping = {s: sp.Symbol(s.name, real=True, **_facts(s))
               for s in expr.free_symbols if isinstance(s, sp.Symbol) and not s.is_real}
    return (expr.xreplace(mapping) if mapping else expr), mapping


def _facts(s: sp.Symbol) -> dict[str, bool]:
    """What SymPy may already have simplified with (``extended_positive=True``: sqrt(p**2) = p), so
    that the real twin keeps it and its values are checked: the facts the call-time checks read
    (runtime/assumptions.py), the strongest sign and the parity or integrality; on a real symbol
    extended_positive is positive."""
    return {name.removeprefix("extended_"): True for _, name, _, _ in assumption_checks([s])}


#: The deepest formula ``compile`` derives: nesting depth costs it more than linear time (its
#: gradients are substituted back into the variables, and re-derived for the Hessian-vector
#: product): sin nested 20 deep compiled in 0.7 s, 40 in 12 s, 60 in 50 s (docs/decisions.md).
FORMULA_MAX_DEPTH = 64


def depth(e: sp.Basic) -> int:
    """The nesting depth of ``e`` (a symbol: 1), without recursion, each shared node once.

    >>> x = sp.Symbol("x")
    >>> depth(sp.sin(sp.cos(x) + 1))
    4
    """
    memo: dict[sp.Basic, int] = {}
    stack = [(e, False)]
    while stack:
        node, ready = stack.pop()
        if node in memo:
            continue
        if ready or not node.args:
            memo[node] = 1 + max((memo[a] for a in node.args), default=0)
            continue
        stack.append((node, True))
        stack.extend((a, False) for a in node.args if a not in memo)
    return memo[e]


def check_depth(e: sp.Basic, limit: int = FORMULA_MAX_DEPTH) -> None:
    """Refuse, up front, a formula nested deeper than ``limit``: its derivation would take minutes.
    Anything but a SymPy object is left to the other checks, which name what it is."""
    if not isinstance(e, sp.Basic):
        return
    d = depth(e)
    if d > limit:
        raise UnsupportedModelError(
            f"this formula is nested {d} levels deep; sg.compile derives formulas up to {limit} levels (the cost "
            "grows faster than the depth: 40 levels took 12 s, 60 levels 50 s). Fix: name intermediate results as "
            "data or parameters (compile the inner part separately), or write the model with matrices "
            "(MatrixSymbol layers compile in time linear in depth).")


#: The largest formula ``compile`` derives, in SymPy's ``count_ops``, and the most arguments of
#: one Max or Min: a sum of 100 terms (786 operations) compiled in 4 s, 300 (2,377) in 21 s,
#: 1,000 (7,979) in 126 s; a Max of 20 arguments in 9 s, of 40 in 67 s (its derivative has a
#: branch per argument, each with a condition per argument; docs/decisions.md).
FORMULA_MAX_OPS = 3000
FORMULA_MAX_ARGS = 24
#: ``grad`` and ``explain`` (no code to generate): a Max of 50 arguments took 3 s, 100 7 s, 200
#: 42 s, and SymPy itself needs 31 s to build a Max of 200 (the parser refuses more at once).
GRAD_MAX_ARGS = 64


def check_size(e: sp.Basic, ops: int | None = FORMULA_MAX_OPS, args: int = FORMULA_MAX_ARGS) -> None:
    """Refuse, up front, a formula whose derivation would take minutes: more than ``ops``
    operations (None: any), or a Max/Min of more than ``args`` arguments."""
    if not isinstance(e, sp.Basic):
        return
    n = sp.count_ops(e) if ops is not None else 0
    if ops is not None and n > ops:
        raise UnsupportedModelError(
            f"this formula has {n} operations; sg.compile derives formulas of up to {ops} (the build time grows "
            "faster than the size: 800 operations took 4 s, 8,000 over 2 minutes). Fix: write repeated terms as a "
            "sum over data (x and y as data=[...] arrays, one row per term) or with matrices (MatrixSymbol), "
            "whose build time does not grow with the number of terms.")
    wide = max((len(m.args) for m in find(e, sp.Max, sp.Min)), default=0)
    if wide > args:
        raise UnsupportedModelError(
            f"this formula takes a Max or Min of {wide} arguments; symgrad derives up to {args} here (the derivative "
            "has a branch per argument, each with a condition per argument, so its cost grows much faster). "
            "Fix: a smooth maximum (sg.logsumexp of a vector), or the Max over a data array.")
