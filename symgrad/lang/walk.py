"""Walks over a SymPy expression that visit each shared subexpression once.

SymPy's ``atoms``, ``has`` and ``preorder_traversal`` walk a subtree every time it appears: a
residual block uses its input twice, so on a transformer's expression they take time exponential
in its depth (a 6-layer one: seconds, 8 layers: minutes).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator
from typing import TypeVar

import sympy as sp
from sympy.core.cache import clear_cache


def forget_other_models() -> None:
    """Empty SymPy's cache before a network is built or lowered. SymPy compares two equal
    expressions that are different objects argument by argument, a residual block's input once
    per path to it; its cache holds the last model's nodes, which a deeper model of the same
    names equals layer by layer, so building a 14-layer transformer after a 12-layer one spent
    minutes comparing them (alone: 0.05 s). Nothing symgrad keeps lives in that cache."""
    clear_cache()


def nodes(e: sp.Basic) -> Iterator[sp.Basic]:
    """Each distinct subexpression of ``e``, once, in depth-first order (a shared one may come
    before some of its parents: :func:`postorder` orders arguments first).

    >>> x = sp.Symbol("x")
    >>> sum(1 for _ in nodes(sp.sin(sp.cos(x)) * sp.cos(x)))
    4
    """
    seen, stack = set(), [e]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        yield node
        stack.extend(reversed(node.args))


def postorder(e: sp.Basic) -> list[sp.Basic]:
    """Each distinct subexpression of ``e``, once, every one after all of its arguments.

    >>> x = sp.Symbol("x")
    >>> postorder(sp.sin(x) + x)[-1] == sp.sin(x) + x
    True
    """
    done, out, stack = set(), [], [(e, False)]
    while stack:
        node, expanded = stack.pop()
        if node in done:
            continue
        if expanded:
            done.add(node)
            out.append(node)
            continue
        stack.append((node, True))
        stack.extend((a, False) for a in reversed(node.args) if a not in done)
    return out


def find(e: sp.Basic, *types: type) -> set[sp.Basic]:
    """The subexpressions of ``e`` that are instances of ``types``.

    >>> x = sp.Symbol("x")
    >>> sorted(find(sp.sin(sp.cos(x) + 1) * sp.cos(x), sp.cos), key=str)
    [cos(x)]
    """
    return {n for n in nodes(e) if isinstance(n, types)}


def holds(e: sp.Basic, *types: type) -> bool:
    """Whether some subexpression of ``e`` is an instance of ``types`` (stops at the first).

    >>> holds(sp.MatrixSymbol("W", 2, 2) * sp.Identity(2), sp.MatrixSymbol)
    True
    """
    return any(isinstance(n, types) for n in nodes(e))


def digest(e: sp.Basic) -> str:
    """A hash of ``e``'s structure, each distinct subexpression hashed once: what ``srepr`` would
    key, without printing a tree whose text doubles with each residual block.

    >>> x, y = sp.symbols("x y", real=True)
    >>> digest(sp.sin(x) + y) == digest(y + sp.sin(x)), digest(sp.sin(x)) == digest(sp.sin(y))
    (True, False)
    """
    memo: dict[sp.Basic, str] = {}
    for node in postorder(e):
        if not node.args:  # an atom: its full description, assumptions included
            text = sp.srepr(node)
        else:
            text = type(node).__name__ + "(" + ",".join(memo[a] for a in node.args) + ")"
        memo[node] = hashlib.sha256(text.encode()).hexdigest()[:32]
    return memo[e]


R = TypeVar("R")


def per_object(fn: Callable[..., R]) -> Callable[..., R]:
    """Memoise ``fn`` on its arguments' identity, for functions of a model's expression. A dict
    or ``lru_cache`` keyed by the expression compares an equal copy (an unpickled or reloaded
    model's) with the one it holds node by node, once per path: exponential in a residual
    network's depth. Holds the last 128 argument tuples alive, as ``lru_cache`` would.

    >>> calls = []
    >>> size = per_object(lambda e: calls.append(e) or tree_size(e))
    >>> e = sp.sin(sp.Symbol("x"))
    >>> size(e), size(e), len(calls)
    (2, 2, 1)
    """
    memo: dict[tuple[int, ...], tuple[tuple, R]] = {}

    @functools.wraps(fn)
    def wrapper(*args):
        k = tuple(map(id, args))
        hit = memo.get(k)
        if hit is not None and all(a is b for a, b in zip(hit[0], args)):
            return hit[1]
        if len(memo) >= 128:
            memo.pop(next(iter(memo)))
        out = fn(*args)
        memo[k] = (args, out)
        return out

    return wrapper


#: :func:`digest`, computed once per expression object: what memo keys hold instead of the
#: expression, so that looking one up never compares two deep expressions.
fingerprint = per_object(digest)


def tree_size(e: sp.Basic) -> int:
    """How many nodes ``e`` has as a tree (what printing it walks), counted over its DAG.

    >>> x = sp.Symbol("x")
    >>> tree_size(sp.sin(x) * sp.cos(x) + sp.sin(x))
    8
    """
    size: dict[sp.Basic, int] = {}
    for node in postorder(e):
        size[node] = 1 + sum(size[a] for a in node.args)
    return size[e]
