"""The parser's tables: what it accepts, and what it says about what it refuses.

Accepted: the whitelisted functions with their arities (read off the one function table,
``math_functions.TABLE``), the constants, and size limits that keep SymPy's exact arithmetic
fast. Refused: each disallowed operator and syntax node maps to a message naming the fix, and
a ``SyntaxError`` becomes a message with a caret.

>>> FUNCTIONS["atan2"][1], FUNCTIONS["Max"][1], sorted(CONSTANTS)
((2, 2), (2, None), ['E', 'pi'])
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Callable, Mapping

import sympy as sp

from ..errors import ParseError
from .math_functions import TABLE, Arity

#: Longest accepted input, in characters.
MAX_LENGTH = 10_000
#: Deepest accepted nesting of operators and calls (chains of ``+``/``-`` and of ``*``/``/``
#: count as one level, so long sums and products are fine).
MAX_DEPTH = 200
#: Largest integer (numerator or denominator) allowed anywhere, in bits. Bigger numbers
#: make SymPy's exact number theory (perfect powers, factoring) slow enough for a DoS.
MAX_INT_BITS = 1024
#: Largest exponent applied to a constant base (``2**5000`` would be computed exactly).
MAX_CONST_EXPONENT = 1000

#: The whitelist: name -> (SymPy constructor, arity), every name and alias of the one function
#: table (lang/math_functions.py), which the validator and the code printer read too.
FUNCTIONS: dict[str, tuple[Callable[..., sp.Expr], Arity]] = {
    name: (e.make, e.arity) for e in TABLE for name in e.names
}

CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}

#: Friendly names and fixes for the operators we refuse.
BAD_BINOPS: dict[type, str] = {
    ast.FloorDiv: "'//' (floor division) is not supported. Fix: use '/'",
    ast.Mod: "'%' (modulo) is not supported. Fix: rewrite without it",
    ast.MatMult: "'@' (matrix product) is not supported; expressions are scalar. Fix: use '*'",
    ast.LShift: "'<<' is not supported. Fix: use '*' and '**'",
    ast.RShift: "'>>' is not supported. Fix: use '/' and '**'",
    ast.BitOr: "'|' is not supported. Fix: use Max(a, b) or '+'",
    ast.BitAnd: "'&' is not supported. Fix: use Min(a, b) or '*'",
}

#: Friendly names (and fixes) for node types we refuse outright.
BAD_NODES: dict[type, str] = {
    ast.Attribute: "attribute access is not allowed. Fix: write plain names and calls like sin(x)",
    ast.Subscript: "indexing/subscripts are not allowed. Fix: use a plain name like x0 instead of x[0]",
    ast.Lambda: "lambda is not allowed. Fix: write the expression itself",
    ast.ListComp: "comprehensions are not allowed. Fix: write the expression out",
    ast.SetComp: "comprehensions are not allowed. Fix: write the expression out",
    ast.DictComp: "comprehensions are not allowed. Fix: write the expression out",
    ast.GeneratorExp: "generator expressions are not allowed. Fix: write the expression out",
    ast.List: "list literals are not allowed; expressions are scalar",
    ast.Tuple: "tuples are not allowed; expressions are scalar. Fix: pass one expression",
    ast.Set: "set literals are not allowed; expressions are scalar",
    ast.Dict: "dict literals are not allowed; expressions are scalar",
    ast.Compare: "comparisons are not allowed. Fix: use Max, Min, Abs, sign or relu for kinks",
    ast.BoolOp: "'and'/'or' are not allowed. Fix: use Max/Min",
    ast.IfExp: "conditional expressions (a if c else b) are not allowed. Fix: use Max, Min or relu",
    ast.NamedExpr: "':=' is not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Starred: "'*args' unpacking is not allowed. Fix: pass arguments one by one",
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed",
    ast.YieldFrom: "'yield' is not allowed",
    ast.Slice: "slices are not allowed",
}


def supported_names(functions: Mapping[str, object]) -> str:
    return ", ".join(sorted(functions))


def function_table(extra: object) -> dict[str, tuple[Callable[..., object], Arity]]:
    table: dict[str, tuple[Callable[..., object], Arity]] = dict(FUNCTIONS)
    for name, f in _named(extra):
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_") or keyword.iskeyword(name):
            raise ParseError(
                f"extra_functions key {name!r} is not a valid name. Fix: use an identifier not starting with '_'"
            )
        if name in CONSTANTS:
            raise ParseError(f"extra_functions key {name!r} clashes with the constant {name}")
        if not callable(f):
            raise ParseError(f"extra_functions[{name!r}] is not callable (got {type(f).__name__})")
        table[name] = (f, (0, None))
    return table


def _named(extra: object) -> list[tuple[object, object]]:
    """``extra_functions`` as (name, function) pairs: a mapping's items, or functions (SymPy
    function classes, Python functions; one or a list) under their ``__name__``."""
    if extra is None:
        return []
    if isinstance(extra, Mapping):
        return list(extra.items())
    fs = [extra] if callable(extra) or isinstance(extra, (str, bytes)) else extra
    try:
        fs = list(fs)
    except TypeError:
        fs = [fs]
    unnamed = [f for f in fs if not callable(f) or not isinstance(getattr(f, "__name__", None), str)]
    if unnamed:
        raise ParseError(f"extra_functions holds {unnamed[0]!r}, which is not a named function. Fix: pass "
                         "functions such as [sp.sin, my_func] (used by their __name__), or a dict "
                         "{'name': function}.")
    return [(f.__name__, f) for f in fs]


def syntax_message(text: str, stripped: str, lead: int, exc: SyntaxError) -> str:
    msg = f"invalid syntax: {exc.msg}"
    if exc.offset is None:
        return msg
    line = exc.lineno or 1
    if "\n" in stripped:
        return f"{msg} (at line {line}, column {max(exc.offset, 1) + (lead if line == 1 else 0)})"
    if exc.offset < 1:  # Python reports 0 when the input ends too early
        msg += " (at the end of the input)"
        col = len(text.rstrip()) + 1
    else:
        col = exc.offset + lead
        msg += f" (at column {col})"
    if len(text) <= 120:
        msg += f"\n  {text.rstrip()}\n  {' ' * (col - 1)}^"
    return msg
