"""SymPy expressions to text and back without ``eval``: the model files' expression format.

A saved model stores its expressions as ``sympy.srepr`` text, one line per distinct
subexpression (:func:`write_nodes`; files of format 1 hold one ``srepr`` string each).
``sympify`` would read them back with ``eval``, which runs whatever a crafted file says;
:func:`read_srepr` instead walks the parsed syntax tree and allows only calls of SymPy's and
symgrad's own expression classes on literal arguments (and earlier lines), so a file can build
an expression and nothing else.

>>> import sympy as sp
>>> x = sp.Symbol("x", real=True)
>>> read_srepr(write_srepr(sp.tanh(x) + 1)) == sp.tanh(x) + 1
True
"""

from __future__ import annotations

import ast
import functools
from collections import ChainMap
from collections.abc import Sequence

import sympy as sp
from sympy.printing.repr import ReprPrinter

from ..errors import ModelFileError
from ..lang.walk import postorder

_LITERALS = (str, int, float, bool, type(None))
_TEXT_ARGS = {"Symbol", "Dummy", "Str", "Float", "Wild", "Function"}


@functools.lru_cache(maxsize=1)
def _namespace(n_classes: int) -> dict[str, object]:
    """Names srepr may print: SymPy's and symgrad's expression classes and singletons.

    Keyed on the number of Basic subclasses, so classes imported later (a new symgrad op)
    are found too. Other packages' classes are left out: their constructors are theirs.
    """
    del n_classes
    names: dict[str, object] = {}
    stack = [sp.Basic]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if (getattr(cls, "__module__", None) or "").startswith(("sympy.", "symgrad.")):  # some are None
            names.setdefault(cls.__name__, cls)
    for name in dir(sp):  # SymPy's own spelling wins a name clash; singletons such as true, pi
        obj = getattr(sp, name)
        if isinstance(obj, sp.Basic) or (isinstance(obj, type) and issubclass(obj, sp.Basic)):
            names[name] = obj
    return names


def _count_basic() -> int:
    count, stack = 0, [sp.Basic]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        count += 1
    return count


def write_srepr(expr: sp.Basic) -> str:
    """``expr`` as ``srepr`` text in its stored argument order: the default sorts the terms of
    sums, and an unevaluated sum (a loss's ``pred − y``) read back sorted is another tree."""
    return sp.srepr(expr, order="none")


def read_srepr(text: str) -> sp.Basic:
    """The expression ``text`` (made by ``sympy.srepr``) describes, built without ``eval``.

    Raises :class:`ModelFileError` for anything else than SymPy constructors and literals.
    """
    names = _namespace(_count_basic())
    with sp.evaluate(False):  # rebuild the tree as printed (see write_srepr), not re-canonicalised
        return _build(_parse(text).body, names)


class _NodePrinter(ReprPrinter):
    """``srepr`` of one node whose arguments, written on earlier lines, print as ``_k``."""

    def __init__(self, index: dict[sp.Basic, int]):
        super().__init__({"order": "none"})
        self.index, self.current = index, None

    def line(self, node: sp.Basic) -> str:
        self.current = node
        return self.doprint(node)

    def _print(self, expr, **kwargs):
        if expr is not self.current and isinstance(expr, sp.Basic) and expr in self.index:
            return f"_{self.index[expr]}"
        return super()._print(expr, **kwargs)


def write_nodes(*exprs: sp.Basic) -> tuple[list[str], list[int]]:
    """``exprs`` as one line per distinct subexpression, arguments first, each naming the lines
    of its arguments ``_k``; and the line of each of ``exprs``. Plain ``srepr`` prints a shared
    subexpression once per path to it: a saved 6-layer transformer was 142 MB.

    >>> x = sp.Symbol("x", real=True)
    >>> write_nodes(sp.sin(x) * sp.sin(x) + x)
    (["Symbol('x', real=True)", 'sin(_0)', 'Integer(2)', 'Pow(_1, _2)', 'Add(_0, _3)'], [4])
    """
    index: dict[sp.Basic, int] = {}
    printer, lines = _NodePrinter(index), []
    for e in exprs:
        for node in postorder(e):
            if node not in index:
                lines.append(printer.line(node))
                index[node] = len(lines) - 1
    return lines, [index[e] for e in exprs]


def read_nodes(lines: Sequence[str], roots: Sequence[int]) -> list[sp.Basic]:
    """The expressions :func:`write_nodes` wrote, built without ``eval`` (as :func:`read_srepr`).

    >>> x = sp.Symbol("x", real=True)
    >>> read_nodes(*write_nodes(sp.sin(x) + x, x)) == [sp.sin(x) + x, x]
    True
    """
    built: dict[str, object] = {}
    names = ChainMap(built, _namespace(_count_basic()))
    with sp.evaluate(False):
        for k, text in enumerate(lines):
            built[f"_{k}"] = _build(_parse(str(text)).body, names)
    bad = [r for r in roots if not (type(r) is int and f"_{r}" in built)]
    if bad:
        raise ModelFileError(f"a stored expression is line {bad[0]!r}, not one of the {len(lines)} lines "
                             "written; the file is corrupt or altered. Fix: save the model again.")
    return [built[f"_{r}"] for r in roots]


def _parse(text: str) -> ast.Expression:
    try:
        return ast.parse(text, mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise ModelFileError(f"a stored expression does not parse ({exc}); the file is corrupt. "
                             "Fix: save the model again.") from exc


def _build(node: ast.AST, names: dict[str, object]) -> object:
    if isinstance(node, ast.Constant) and isinstance(node.value, _LITERALS):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):  # srepr prints -1 as Integer(-1)
        value = _build(node.operand, names)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_build(e, names) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Name) and isinstance(names.get(node.id), sp.Basic):  # true, pi, oo
        return names[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and isinstance(names.get(node.func.id), type):
        return _call(names[node.func.id], node, names)
    raise _refuse(ast.unparse(node)[:80])


def _call(cls: type, node: ast.Call, names: dict[str, object]) -> object:
    args = [_build(a, names) for a in node.args]
    kwargs = {k.arg: _build(k.value, names) for k in node.keywords}
    # Many constructors sympify their arguments, and sympify evaluates strings: text reaches
    # only the classes whose srepr holds names or digits, never the others.
    if cls.__name__ not in _TEXT_ARGS and _has_text(args):
        raise _refuse(f"{cls.__name__}(<text>)")
    if None in kwargs or not all(isinstance(v, (bool, int)) for v in kwargs.values()):
        raise _refuse(f"{cls.__name__}(<keyword>)")
    try:
        return cls(*args, **kwargs)
    except Exception as exc:  # any constructor failure means the file does not hold this model
        raise ModelFileError(f"a stored expression could not be rebuilt ({cls.__name__}: {exc}); the "
                             "file is corrupt or was written by another SymPy. Fix: save the model "
                             "again.") from exc


def _has_text(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_has_text(v) for v in value)
    return isinstance(value, str)


def _refuse(what: str) -> ModelFileError:
    return ModelFileError(f"a stored expression contains {what!r}, which is not a SymPy or symgrad "
                          "expression; the file was not written by symgrad or was altered. "
                          "Fix: load only files written by Trained.save, or save the model again.")
