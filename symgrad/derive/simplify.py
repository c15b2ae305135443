"""Targeted, cheap simplification: never ``sympy.simplify`` on a whole model.

Each candidate is an algebraic identity (expand, factor_terms, collect), so it is
exact by construction; we keep whichever has the fewest operations. Powers of sums are never
multiplied out: the code computes the gradients tidied here, and (a − b)ⁿ expanded cancels.
"""

from __future__ import annotations

import sympy as sp

#: Above this many operations we skip ``expand`` (it can blow up polynomially).
EXPAND_LIMIT = 400

#: Above this many tree nodes (``_larger_than``) ``tidy`` returns its input unchanged.
#: Why: every candidate costs time linear in the expression (count_ops, factor_terms, expand:
#: ~0.1-0.2 ms a node, measured), and a model with N parameters has N gradients that each hold
#: the whole model, so tidying them all cost ~N^2: most of the minutes that a 50-200 term
#: cosine series took to compile. Tidying is for reading (``grad``, ``explain``); the generated
#: code shares subexpressions by CSE either way. Measured on that series (python backend,
#: whole compile): with 400 the worst N is ~50 at ~4 s (600: N ~60-80 at 5-7 s; 300: ~3 s).
#: In the test suite tidy's inputs have at most ~300 nodes, except many-parameter
#: Hessian-vector products (~4,300 nodes, where expand was skipped already).
TIDY_LIMIT = 400


def _larger_than(e: sp.Basic, limit: int) -> bool:
    """Whether ``e``'s tree (shared subtrees counted each time) has more than ``limit`` nodes.

    Stops after ``limit`` nodes, so it costs O(limit) however big ``e`` is.
    """
    stack, n = [e], 0
    while stack:
        n += 1
        if n > limit:
            return True
        stack.extend(stack.pop().args)
    return False


def _square_of_sum(e: sp.Basic) -> bool:
    return isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 1 and e.base.has(sp.Add)


def _nested_square_of_sum(e: sp.Basic) -> bool:
    """Whether a power of a sum holds another one: expand multiplies such nests out level by
    level, and a 300-node gradient of nested rational functions (found by the corpus) did not
    finish in minutes; the candidate would have been thrown away as too long anyway."""
    outer = [p for p in sp.preorder_traversal(e) if _square_of_sum(p)]
    return any(any(_square_of_sum(q) for q in sp.preorder_traversal(p.base)) for p in outer)


def tidy(e: sp.Expr, expand: bool = True) -> sp.Expr:
    """Return the cheapest of a few exact rewrites of ``e`` (by ``count_ops``).

    Expressions of more than TIDY_LIMIT nodes are returned as they are. Without ``expand``, the
    rewrites leave products of sums as they are (compiled code: (2x − 11)·(5x⁸ − ...) multiplied
    out cancels where the factors do not).

    >>> x, y = sp.symbols("x y", real=True)
    >>> tidy(x*y + x*(1 - y))
    x
    """
    e = sp.sympify(e)
    if e.is_Atom or _larger_than(e, TIDY_LIMIT):
        return e
    n = sp.count_ops(e)
    candidates = {e: n}  # candidate -> its count_ops, in order; an equal candidate is not added
    _add(candidates, sp.factor_terms(e))
    if expand and n <= EXPAND_LIMIT and not _nested_square_of_sum(e):
        # products distributed, powers of sums kept: (1 − x²)⁻² multiplied out as 1/(x⁴ − 2x² + 1)
        # cancels near x = 1 (the gradient of 1/(1 − x²) was 10% off at 0.99999999, 33% in float32)
        expanded = sp.expand(e, power_base=False, power_exp=False, log=False, multinomial=False)
        # expand can multiply out powers of sums into thousands of terms: keep it only if small
        k = candidates[expanded] if expanded in candidates else sp.count_ops(expanded)
        if k <= 2 * n:
            candidates.setdefault(expanded, k)
            _add(candidates, sp.factor_terms(expanded))
    # The first candidate with the fewest operations, then the shortest text. The same choice as
    # min(key=(count_ops, len(str))), but printing only ties: str was ~40% of tidy's time.
    fewest = min(candidates.values())
    best = [c for c, k in candidates.items() if k == fewest]
    return best[0] if len(best) == 1 else min(best, key=lambda c: len(str(c)))


def _add(candidates: dict[sp.Expr, int], c: sp.Expr) -> int:
    """Add ``c`` with its count_ops unless an equal candidate is there; return its count."""
    if c not in candidates:
        candidates[c] = sp.count_ops(c)
    return candidates[c]
