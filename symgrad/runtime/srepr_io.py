"""SymPy expressions to text and back without ``eval``: the model files' expression format.

A saved model stores its expressions as ``sympy.srepr`` strings. ``sympify`` would read them
back with ``eval``, which runs whatever a crafted file says; :func:`read_srepr` instead walks
the parsed syntax tree and allows only calls of SymPy's and symgrad's own expression classes
on literal arguments, so a file can build an expression and nothing else.

>>> import sympy as sp
>>> x = sp.Symbol("x", real=True)
>>> read_srepr(write_srepr(sp.tanh(x) + 1)) == sp.tanh(x) + 1
True
"""

from __future__ import annotations

import ast
import functools

import sympy as sp

from ..errors import ModelFileError

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
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise ModelFileError(f"a stored expression does not parse ({exc}); the file is corrupt. "
                             "Fix: save the model again.") from exc
    names = _namespace(_count_basic())
    with sp.evaluate(False):  # rebuild the tree as printed (see write_srepr), not re-canonicalised
        return _build(tree.body, names)


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
