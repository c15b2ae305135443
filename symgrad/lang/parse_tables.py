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
import difflib
import io
import keyword
import re
import tokenize
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
    ast.List: "list literals are not allowed; expressions are scalar. Fix: pass one expression",
    ast.Tuple: "tuples are not allowed; expressions are scalar. Fix: pass one expression",
    ast.Set: "set literals are not allowed; expressions are scalar. Fix: pass one expression",
    ast.Dict: "dict literals are not allowed; expressions are scalar. Fix: pass one expression",
    ast.Compare: "comparisons are not allowed. Fix: use Max, Min, Abs, sign or relu for kinks",
    ast.BoolOp: "'and'/'or' are not allowed. Fix: use Max/Min",
    ast.IfExp: "conditional expressions (a if c else b) are not allowed. Fix: use Max, Min or relu",
    ast.NamedExpr: "':=' is not allowed. Fix: write the expression itself",
    ast.JoinedStr: "f-strings are not allowed. Fix: write the expression itself",
    ast.Starred: "'*args' unpacking is not allowed. Fix: pass arguments one by one",
    ast.Await: "'await' is not allowed. Fix: write the expression itself",
    ast.Yield: "'yield' is not allowed. Fix: write the expression itself",
    ast.YieldFrom: "'yield' is not allowed. Fix: write the expression itself",
    ast.Slice: "slices are not allowed. Fix: use a plain name like x0 instead of x[0:1]",
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
            raise ParseError(f"extra_functions key {name!r} clashes with the constant {name}. Fix: name it otherwise")
        if not callable(f):
            raise ParseError(f"extra_functions[{name!r}] is not callable (got {type(f).__name__}). Fix: map the "
                             "name to a function, e.g. {'f': sp.sin}")
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
    word = _keyword_name(stripped)
    if word is not None:  # lambda*x: Python's parser only says where it stopped
        return (f"invalid syntax: '{word}' is a Python keyword, so it cannot be a name in a string formula. Fix: "
                f"rename it (e.g. {word}_), or build the formula in Python with sp.Symbol('{word}', real=True)")
    # a slip the table knows, else the general rule (x***2 and a dangling x** named none)
    fix = syntax_fix(stripped, exc.offset) or ("write the expression in Python's syntax: ** for powers, * for "
                                              "every product, balanced parentheses, an operand after each operator")
    if "too many nested parentheses" in exc.msg:  # balanced, but past the parser's limit (200)
        fix = "remove redundant parentheses; Python's parser takes at most 200 open at once"
    if exc.offset is None:
        return msg + (f". Fix: {fix}" if fix else "")
    line = exc.lineno or 1
    if "\n" in stripped:
        return f"{msg} (at line {line}, column {max(exc.offset, 1) + (lead if line == 1 else 0)}). Fix: {fix}"
    if exc.offset < 1:  # Python reports 0 when the input ends too early
        msg += " (at the end of the input)"
        col = len(text.rstrip()) + 1
    else:
        col = exc.offset + lead
        msg += f" (at column {col})"
    if fix:
        msg += f". Fix: {fix}"
    if len(text) <= 120:
        msg += f"\n  {text.rstrip()}\n  {' ' * (col - 1)}^"
    return msg


def _keyword_name(text: str) -> str | None:
    """A Python keyword written where a formula has names (lambda, if without else, class)."""
    try:
        words = [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.NAME]
    except (tokenize.TokenError, SyntaxError):
        return None
    allowed = {"and", "or", "not", "True", "False", "None"} | ({"if", "else"} if {"if", "else"} <= set(words) else set())
    return next((w for w in words if keyword.iskeyword(w) and w not in allowed), None)


# -- hints for common mistakes -----------------------------------------------------------------

#: Names from other notations (maths, NumPy, other systems) -> what to write instead. In the
#: template, {a} is the call's arguments, {a0} the first, {w0} and {w1} the first two parenthesised.
FUNCTION_ALIASES: dict[str, str] = {
    "ln": "log({a}); log is the natural logarithm",
    "log10": "log({a0}, 10)",
    "log2": "log({a0}, 2)",
    **{f"arc{f}": f"a{f}({{a}})" for f in ("sin", "cos", "tan", "sinh", "cosh", "tanh", "tan2")},
    "sgn": "sign({a})",
    "fabs": "Abs({a})",
    "absolute": "Abs({a})",
    "logistic": "sigmoid({a})",
    "expit": "sigmoid({a})",
    "maximum": "Max({a})",
    "minimum": "Min({a})",
    "pow": "{w0}**{w1}",
    "power": "{w0}**{w1}",
    "cbrt": "{w0}**(1/3)",
    "square": "{w0}**2",
    "exp2": "2**{w0}",
    "log1p": "log(1 + {a})",
    "expm1": "exp({a}) - 1",
}

#: Non-ASCII operators pasted from a document, and the ASCII to write.
UNICODE_OPERATORS = {"²": "**2", "³": "**3", "·": "*", "⋅": "*", "×": "*", "∗": "*", "−": "-", "–": "-",
                     "÷": "/"}

_NUMBER_THEN_NAME = re.compile(r"(?<![\w.])(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?=[^\W\d])")


def _wrap(s: str) -> str:
    return s if re.fullmatch(r"[\w.]+(\(.*\))?", s) else f"({s})"


def unknown_function_fix(fname: str, args: list[str], functions: Mapping[str, object]) -> str | None:
    """What to write instead of the unknown function ``fname`` called on ``args`` (source texts):
    the usual name from another notation (ln -> log), a name in other case (Sin -> sin), a close
    spelling (sigmod -> sigmoid), or, for a variable-like name, the product x*(...)."""
    a = ", ".join(args) or "x"
    w = [_wrap(s) for s in args] + ["x", "y"][len(args):]
    if fname in FUNCTION_ALIASES:
        return "write " + FUNCTION_ALIASES[fname].format(a=a, a0=(args or ["x"])[0], w0=w[0], w1=w[1])
    same = [n for n in functions if n.lower() == fname.lower()]  # Sin, ReLU
    swapped = [n for n in functions if sorted(n.lower()) == sorted(fname.lower())]  # tahn
    close = same or swapped or difflib.get_close_matches(fname, list(functions), n=1, cutoff=0.7)
    if close:
        return f"did you mean {close[0]}? Write {close[0]}({a})"
    if re.fullmatch(r"[A-Za-z](_?\d+)?", fname):
        return (f"if {fname}(...) is a product, write {fname}*({a}) (there is no implicit multiplication); "
                "for a function of your own, pass extra_functions= to parse_expr")
    return None


def e_power_fix(exponent: str) -> str:
    """``e**x`` reads ``e`` as a variable: the fix names exp."""
    return (f"'e' is read as a variable named e, not Euler's number. Fix: write exp({exponent}) "
            f"(or E**{_wrap(exponent)}); rename the variable if you mean one")


def _group_end(s: str, j: int) -> int:
    """The index after the parenthesised group that opens at s[j] (the end of s if unclosed)."""
    depth = 0
    for k in range(j, len(s)):
        depth += {"(": 1, ")": -1}.get(s[k], 0)
        if depth == 0:
            return k + 1
    return len(s)


def _operand_after(s: str, j: int) -> str:
    m = re.match(r"[\w.]*", s[j:])
    k = j + (m.end() if m else 0)
    if k < len(s) and s[k] == "(":
        k = _group_end(s, k)
    return s[j:k]


def _operand_before(s: str) -> str:
    """The operand that ``s`` ends with: a name or number, or a call or group in parentheses."""
    k = len(s)
    if s.endswith(")"):
        depth = 0
        for k in range(len(s) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(s[k], 0)
            if depth == 0:
                break
    m = re.search(r"[\w.]*$", s[:k])
    return s[m.start() if m else k:]


def syntax_fix(s: str, offset: int | None) -> str | None:
    """The fix for a syntax error at ``offset`` (1-based) in ``s``, for the usual slips:
    implicit products (2x, x y), non-ASCII operators (x², 3·x) and |x| for Abs(x)."""
    i = max((offset or 1) - 1, 0)
    if any(c in s for c in UNICODE_OPERATORS):
        fixed = "".join(UNICODE_OPERATORS.get(c, c) for c in s)
        return f"write {fixed} (ASCII operators: + - * / **)" if len(fixed) <= 80 else \
            "write the operators in ASCII: + - * / ** (x**2 for x², * for · and ×, - for −)"
    if s.count("|") >= 2:
        a = s.index("|")
        inner = s[a + 1:s.index("|", a + 1)].strip() or "x"
        return f"write Abs({inner}) for |{inner}|"
    product = None
    m = next((m for m in _NUMBER_THEN_NAME.finditer(s) if m.start() <= i <= m.end()), None)
    if m:
        product = (m.group(), _operand_after(s, m.end()))
    elif 0 < i < len(s) and s[i - 1].isspace() and (s[i].isalnum() or s[i] in "_("):
        before = s[:i].rstrip()
        if before and (before[-1].isalnum() or before[-1] in "_)."):
            product = (_operand_before(before), _operand_after(s, i))
    if product and not any(keyword.iskeyword(re.sub(r"\(.*", "", p)) for p in product) and all(product):
        return f"write {product[0]}*{product[1]} (there is no implicit multiplication)"
    return None
