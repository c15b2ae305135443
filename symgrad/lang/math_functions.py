"""The one table of supported functions: what the parser accepts, the validator lets through and
the code printer emits.

Each ``Entry`` is one function, written once: its name (and parser aliases), its SymPy
constructor, its arity in the parser, how it is printed (``kind``) and, for a plain math function,
its Numba spelling. The parser's ``parse_tables.FUNCTIONS``, the validator's ``MATH_FUNCS`` and
``SUPPORTED_NAMES``, and the printer's ``_print_<name>`` registrations are all read off ``TABLE``,
so supporting another SymPy function that Numba's ``math`` module has is one ``_math(...)`` line.

Why here, in ``lang/``: its three readers sit in ``lang/`` (the parser), ``front/`` (the validator)
and ``codegen/`` (the printer), and imports in symgrad only point down the pipeline
(lang < front < derive < codegen), so the table must live in the lowest of them.

>>> [(e.name, e.arity, e.numba) for e in TABLE if e.name in ("log", "atan2")]
[('log', (1, 2), 'math.log'), ('atan2', (2, 2), 'math.atan2')]
>>> [(e.name, e.aliases, e.node.__name__) for e in TABLE if e.kind == STRUCTURAL]
[('sqrt', (), 'Pow'), ('Abs', ('abs',), 'Abs'), ('sign', (), 'sign'), ('Max', ('max',), 'Max'), ('Min', ('min',), 'Min')]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import sympy as sp

from .ops import OPS, gelu, silu, swish

Arity = tuple[int, "int | None"]  # (min, max) arguments in the parser; max None = any number

#: Kinds of entry, by who prints them.
MATH = "math"  # one call to its Numba spelling, printed by NumbaPrinter._print_math (or its own method)
STRUCTURAL = "structural"  # printed by NumbaPrinter's own method for ``node`` (_print_Abs, _print_Pow, ...)
OP = "op"  # a symgrad op (lang/ops.py): printed as a call to its Numba helper
COMPOSITE = "composite"  # parser shorthand that builds an expression of the others; never reaches codegen


class Entry(NamedTuple):
    name: str  # the name in the parser, and in the validator's list of supported names
    make: Callable[..., sp.Expr]  # what the parser calls
    arity: Arity
    kind: str  # MATH, STRUCTURAL, OP or COMPOSITE
    node: type | None = None  # the SymPy class of what ``make`` builds (None for COMPOSITE)
    numba: str | None = None  # the Numba spelling (MATH only)
    aliases: tuple[str, ...] = ()  # more names for it in the parser

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def _math(f: type, arity: Arity = (1, 1), numba: str | None = None) -> Entry:
    return Entry(f.__name__, f, arity, MATH, f, numba or f"math.{f.__name__}")


def _op_arity(cls: type) -> Arity:
    n = cls.nargs
    if isinstance(n, sp.FiniteSet):
        counts = sorted(int(k) for k in n)
        return getattr(cls, "least_args", counts[0]), counts[-1]  # elu(z): α has a default
    return 0, None


#: Every supported function, once.
TABLE: tuple[Entry, ...] = (
    *(_math(f) for f in (
        sp.sin, sp.cos, sp.tan, sp.asin, sp.acos, sp.atan,
        sp.sinh, sp.cosh, sp.tanh, sp.asinh, sp.acosh, sp.atanh,
        sp.exp,
    )),
    _math(sp.log, (1, 2)),  # log(x, b) is log(x)/log(b) in SymPy
    _math(sp.erf), _math(sp.erfc),
    _math(sp.atan2, (2, 2)),
    Entry("sqrt", sp.sqrt, (1, 1), STRUCTURAL, sp.Pow),  # sqrt(x) is Pow(x, 1/2)
    Entry("Abs", sp.Abs, (1, 1), STRUCTURAL, sp.Abs, aliases=("abs",)),
    Entry("sign", sp.sign, (1, 1), STRUCTURAL, sp.sign),
    Entry("Max", sp.Max, (2, None), STRUCTURAL, sp.Max, aliases=("max",)),
    Entry("Min", sp.Min, (2, None), STRUCTURAL, sp.Min, aliases=("min",)),
    *(Entry(name, cls, _op_arity(cls), OP, cls) for name, cls in OPS.items()),
    Entry("gelu", gelu, (1, 1), COMPOSITE),
    Entry("silu", silu, (1, 1), COMPOSITE),
    Entry("swish", swish, (1, 1), COMPOSITE),
)

#: SymPy math functions the code printer emits as one call, with their Numba spelling.
MATH_FUNCS: dict[type, str] = {e.node: e.numba for e in TABLE if e.kind == MATH}
