"""A small, safe parser from text to SymPy: the input side of the CLI.

The text is read with :func:`ast.parse` and only a whitelist of node types is turned
into SymPy objects; nothing is ever passed to ``eval``, ``exec`` or ``sympify``, so a
string like ``__import__('os').system('...')`` is rejected, never run.

Grammar: numbers, names (real symbols; ``pi`` and ``E`` are the constants), ``+ - * / **``,
unary ``+``/``-``, parentheses, and calls of whitelisted functions with positional
arguments. ``1/2`` is the exact ``Rational(1, 2)``, as in SymPy.

The whitelist, the limits and the messages for refused syntax are tables in ``parse_tables``;
this module walks the tree.

>>> parse_expr("cos(sin(x**2) + 3*x**2)")
cos(3*x**2 + sin(x**2))
>>> parse_expr("sigmoid(a) - y").free_symbols == {sp.Symbol("a", real=True), sp.Symbol("y", real=True)}
True
>>> parse_expr("x^2")
Traceback (most recent call last):
    ...
symgrad.errors.ParseError: '^' is bitwise xor, not a power. Fix: write x**2 for powers (at column 2)
"""

from __future__ import annotations

import ast
import decimal
from collections.abc import Callable, Mapping, Sequence

import sympy as sp

from ..errors import ParseError
from ..front.validate import GRAD_MAX_ARGS
from .parse_tables import (
    BAD_BINOPS,
    BAD_NODES,
    CONSTANTS,
    FUNCTIONS,
    MAX_CONST_EXPONENT,
    MAX_DEPTH,
    MAX_INT_BITS,
    MAX_LENGTH,
    Arity,
    e_power_fix,
    function_table,
    supported_names,
    syntax_message,
    unknown_function_fix,
)

__all__ = ["CONSTANTS", "FUNCTIONS", "MAX_CONST_EXPONENT", "MAX_DEPTH", "MAX_INT_BITS", "MAX_LENGTH", "parse_expr"]


class _Builder:
    def __init__(self, text: str, functions: dict[str, tuple[Callable[..., object], Arity]], lead: int = 0):
        self.text = text  # the stripped text that was parsed
        self.functions = functions
        self.lead = lead  # characters stripped from the front, to report columns in the original
        self.multiline = "\n" in text

    def _column(self, line: int | None, col: int) -> str:
        if self.multiline:
            return f" (at line {line}, column {col + 1 + (self.lead if line == 1 else 0)})"
        return f" (at column {col + 1 + self.lead})"

    # -- errors ----------------------------------------------------------------
    def _where(self, node: ast.AST) -> str:
        col = getattr(node, "col_offset", None)
        return "" if col is None else self._column(getattr(node, "lineno", None), col)

    def _src(self, node: ast.AST) -> str:
        s = ast.get_source_segment(self.text, node) or type(node).__name__
        return s if len(s) <= 60 else s[:57] + "..."

    def fail(self, node: ast.AST, msg: str) -> ParseError:
        return ParseError(f"{msg}{self._where(node)}")

    # -- numbers ---------------------------------------------------------------
    def check_size(self, node: ast.AST, e: sp.Expr) -> sp.Expr:
        for r in e.atoms(sp.Rational) if not e.is_Atom else [e]:
            if isinstance(r, sp.Rational) and max(int(r.p).bit_length(), int(r.q).bit_length()) > MAX_INT_BITS:
                raise self.fail(
                    node,
                    f"number too large in {self._src(node)!r} (over {MAX_INT_BITS} bits). "
                    "Fix: use a float like 1e300, or rescale the expression",
                )
        return e

    def constant(self, node: ast.Constant) -> sp.Expr:
        v = node.value
        if isinstance(v, bool) or v is None or v is Ellipsis:
            raise self.fail(node, f"{v!r} is not a number. Fix: use a number or a variable name")
        if isinstance(v, int):
            return self.check_size(node, sp.Integer(v))
        if isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                raise self.fail(node, f"{self._src(node)!r} is not a finite number. Fix: use a finite number, e.g. 1e300")
            if v == 0 and decimal.Decimal(self._src(node).replace("_", "")) != 0:  # 1e-400 reads as 0.0
                raise self.fail(node, f"{self._src(node)!r} is below the smallest float (it would read as 0). "
                                "Fix: rescale the expression, or write 0 if 0 is meant")
            return sp.Float(v)
        if isinstance(v, complex):
            raise self.fail(node, f"complex number {self._src(node)!r} is not supported; symgrad is real-valued. "
                            "Fix: model the real and imaginary parts as two real variables")
        if isinstance(v, (str, bytes)):
            raise self.fail(node, f"string literal {self._src(node)!r} is not allowed. Fix: remove the quotes")
        raise self.fail(node, f"constant {self._src(node)!r} is not allowed. Fix: use a number or a variable name")

    # -- tree walk -------------------------------------------------------------
    def build(self, node: ast.AST, depth: int = 0) -> sp.Expr:
        if depth > MAX_DEPTH:
            raise self.fail(
                node, f"expression nested deeper than {MAX_DEPTH} levels. Fix: split it into named parts"
            )
        d = depth + 1
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.build(node.operand, d)
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand, d)
            op = "not" if isinstance(node.op, ast.Not) else "~"
            raise self.fail(node, f"unary '{op}' is not allowed. Fix: use '-' or rewrite the expression")
        if isinstance(node, ast.BinOp):
            return self.binop(node, d)
        if isinstance(node, ast.Call):
            return self.call(node, d)
        msg = BAD_NODES.get(type(node), f"{type(node).__name__} syntax is not allowed. Fix: use numbers, names, + - * / ** and calls")
        raise self.fail(node, f"{self._src(node)!r}: {msg}")

    def name(self, node: ast.Name) -> sp.Expr:
        n = node.id
        if n.startswith("_"):
            raise self.fail(node, f"name {n!r} is not allowed: names may not start with '_'. Fix: rename it")
        if n in CONSTANTS:
            return CONSTANTS[n]
        if n in self.functions:
            raise self.fail(node, f"{n!r} is a function. Fix: call it, as in {n}(x), or pick another variable name")
        return sp.Symbol(n, real=True)

    def binop(self, node: ast.BinOp, d: int) -> sp.Expr:
        op = type(node.op)
        if op is ast.BitXor:
            left, right = self._src(node.left), self._src(node.right)
            col = node.left.end_col_offset
            where = "" if col is None else self._column(node.left.end_lineno, col)
            fix = f"exp({right}) for e^{right}" if left == "e" else f"{left}**{right} for powers"
            raise ParseError(f"'^' is bitwise xor, not a power. Fix: write {fix}{where}")
        if op in BAD_BINOPS:
            raise self.fail(node, f"{self._src(node)!r}: {BAD_BINOPS[op]}")
        if op in (ast.Add, ast.Sub):
            # flatten the left-associated chain a + b - c + ... into one Add
            terms = []
            cur: ast.AST = node
            while isinstance(cur, ast.BinOp) and isinstance(cur.op, (ast.Add, ast.Sub)):
                t = self.build(cur.right, d)
                terms.append(-t if isinstance(cur.op, ast.Sub) else t)
                cur = cur.left
            terms.append(self.build(cur, d))
            return self.check_size(node, sp.Add(*reversed(terms)))
        if op in (ast.Mult, ast.Div):
            factors = []
            cur = node
            while isinstance(cur, ast.BinOp) and isinstance(cur.op, (ast.Mult, ast.Div)):
                f = self.build(cur.right, d)
                factors.append(sp.Pow(f, -1) if isinstance(cur.op, ast.Div) else f)
                cur = cur.left
            factors.append(self.build(cur, d))
            return self.check_size(node, sp.Mul(*reversed(factors)))
        if op is ast.Pow:
            base, exp = self.build(node.left, d), self.build(node.right, d)
            if isinstance(node.left, ast.Name) and node.left.id == "e" and exp.free_symbols:
                raise self.fail(node, f"{self._src(node)!r}: {e_power_fix(self._src(node.right))}")
            if base.is_number and exp.is_Number and abs(exp) > MAX_CONST_EXPONENT and base not in (0, 1, -1):
                raise self.fail(
                    node,
                    f"exponent in {self._src(node)!r} is too large for a constant base "
                    f"(limit {MAX_CONST_EXPONENT}). Fix: use exp(k*log(b)) or a float",
                )
            return self.check_size(node, sp.Pow(base, exp))
        raise self.fail(node, f"operator {type(node.op).__name__} is not allowed. Fix: use + - * / **")  # pragma: no cover

    def call(self, node: ast.Call, d: int) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            func = self._src(node.func)
            if isinstance(node.func, (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Call)):  # 2(x+1), (a+b)(c+d)
                func = func if isinstance(node.func, (ast.Constant, ast.Call)) else f"({func})"
                args = ", ".join(self._src(a) for a in node.args)
                raise self.fail(node, f"{func!r} cannot be called. Fix: write {func}*({args}) for a product "
                                "(there is no implicit multiplication)")
            raise self.fail(
                node,
                f"{func!r} cannot be called: only plain function names are allowed. "
                f"Supported: {supported_names(self.functions)}. Fix: call a function by its name, as in sin(x)",
            )
        fname = node.func.id
        if fname.startswith("_"):
            raise self.fail(node, f"name {fname!r} is not allowed: names may not start with '_'. "
                            "Fix: call one of the supported functions, as in sin(x)")
        if fname not in self.functions:
            fix = unknown_function_fix(fname, [self._src(a) for a in node.args], self.functions)
            if fix:
                raise self.fail(node, f"unknown function {fname!r}. Fix: {fix}. "
                                f"Supported: {supported_names(self.functions)}")
            raise self.fail(
                node,
                f"unknown function {fname!r}; supported: {supported_names(self.functions)}. "
                "Fix: rewrite it with these (in Python, parse_expr(text, extra_functions={name: function}) adds one)",
            )
        if node.keywords:
            raise self.fail(node, f"{fname}() takes positional arguments only. Fix: drop the 'name=' parts")
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.fail(a, f"'*' unpacking in {fname}() is not allowed. Fix: pass arguments one by one")
        func, (lo, hi) = self.functions[fname]
        n = len(node.args)
        if fname in ("Max", "Min", "max", "min") and n > GRAD_MAX_ARGS:  # SymPy builds it in quadratic time
            raise self.fail(node, f"{fname}() of {n} arguments: symgrad takes up to {GRAD_MAX_ARGS} (building and "
                            "differentiating a Max takes time that grows faster than its arguments: 200 took over "
                            "a minute). Fix: a smooth maximum (logsumexp), or the values as rows of a data array")
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise self.fail(node, f"{fname}() takes {want} argument(s), got {n}. Fix: pass {want} argument(s)")
        args = [self.build(a, d) for a in node.args]
        try:
            out = func(*args)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise self.fail(node, f"cannot apply {fname}() to {self._src(node)!r}: {exc}. Fix: check its "
                            "arguments") from None
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            out = sp.Integer(out) if isinstance(out, int) else sp.Float(out)
        if not isinstance(out, sp.Expr):
            raise self.fail(node, f"{fname}() returned {type(out).__name__}, not a SymPy expression. Fix: make "
                            "it return one (extra_functions= takes SymPy functions)")
        return self.check_size(node, out)


def parse_expr(text: str, extra_functions: Mapping[str, Callable[..., object]] | Sequence[Callable[..., object]]
               | None = None) -> sp.Expr:
    """Parse ``text`` into a SymPy expression, safely (no eval, exec or sympify).

    Names become real symbols (``Symbol(name, real=True)``); ``pi`` and ``E`` are the
    constants. Functions: the math functions (sin ... atanh, exp, log, erf, erfc, atan2,
    sqrt, Abs/abs, sign, Max/Min/max/min), symgrad's ops (sigmoid, softplus, relu,
    leaky_relu, elu, bce_logits) and the composites gelu, silu and swish.
    ``extra_functions`` adds (or overrides) functions by name: a dict ``{name: function}``, or a
    list of functions (SymPy function classes, Python functions) named by their ``__name__``.

    Raises :class:`~symgrad.errors.ParseError` naming the offending construct and the fix.

    >>> from symgrad.ops import relu
    >>> x = sp.Symbol("x", real=True)
    >>> parse_expr("2*x**2 + relu(x) / 3") == 2*x**2 + relu(x) / 3
    True
    >>> parse_expr("foo(x)")
    Traceback (most recent call last):
        ...
    symgrad.errors.ParseError: unknown function 'foo'; supported: ...
    """
    if not isinstance(text, str):
        raise ParseError(f"expected the expression as a str, got {type(text).__name__}. Fix: quote it, as in "
                         "parse_expr('x**2 + 1'), or pass a SymPy expression to sg.grad/sg.compile directly")
    if len(text) > MAX_LENGTH:
        raise ParseError(
            f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}. "
            "Fix: build large expressions in Python with SymPy instead"
        )
    functions = function_table(extra_functions)
    stripped = text.strip()
    if not stripped:
        raise ParseError("empty expression. Fix: pass an expression such as 'x**2 + 1'")
    lead = len(text) - len(text.lstrip())
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        raise ParseError(syntax_message(text, stripped, lead, exc)) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ParseError(
            f"expression is too deeply nested or too complex to parse ({type(exc).__name__}). "
            "Fix: split it into smaller parts"
        ) from None

    builder = _Builder(stripped, functions, lead)
    try:
        out = builder.build(tree.body)
    except RecursionError:
        raise ParseError(
            "expression is too deeply nested to build. Fix: split it into smaller parts"
        ) from None
    if out.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise ParseError(f"{stripped!r} evaluates to an infinity or NaN (a division by zero?). Fix: remove the "
                         "constant division by zero")
    return out

