"""What the compiled functions return where a formula as written is 0/0.

``explain(at=)`` evaluates each step as written, so at a removable point of (e^a − 1)/a (a = 0)
the trace is honestly undefined, while ``compile``'s functions return the limit, 1 and 1/2
(``derive/removable.py``). A reader who sees NaN in the printout and 0.5 from the code could
take either for a bug: the printout says which value the code gives and why.

>>> a = sp.Symbol("a", real=True)
>>> removable_values((sp.exp(a) - 1) / a, [a], {a: sp.S.Zero})
[1, 1/2]
"""

from __future__ import annotations

import sympy as sp

from ..derive.removable import isolate
from .numeric import _evaluated, _near_one


def undefined(v: sp.Expr) -> bool:
    """NaN, ±∞ or holding one (a value the printout shows as undefined)."""
    return v.has(sp.nan, sp.zoo) or not v.is_finite


def removable_values(expr: sp.Expr, wrt: list[sp.Symbol], point: dict) -> list[sp.Expr] | None:
    """[J, ∂J/∂w for each w] at ``point`` with each removable node as its Taylor polynomial, as
    the compiled code computes it there; None where the formula has no removable node or a value
    is still undefined (a pole, log(0), which the code does not remove either)."""
    variables = sorted(expr.free_symbols, key=str)
    if not set(variables) <= set(point):
        return None
    try:
        iso, nodes = isolate(expr, variables)
        if not nodes:
            return None
        out = []
        for e in [iso, *(sp.diff(iso, w) for w in wrt)]:
            v = _put_back(e, nodes, point).xreplace(point)
            v = v if v.is_Rational else _evaluated(_near_one(v))
            if undefined(v) or v.is_extended_real is False or v.has(sp.I):
                return None  # not real (Box-Cox at t < 0: log(t)): the compiled code gives NaN, not this limit
            out.append(v)
    except Exception:  # noqa: BLE001 - the note is an aside: SymPy failing on it must not cost the printout
        return None
    return out


def _put_back(e: sp.Expr, nodes: list, point: dict) -> sp.Expr:
    """``e`` with each node's partial as its Taylor polynomial where the point is the node's
    own (there the polynomial's value is exact: every power of s − s0 is 0) and as written
    elsewhere (where a truncated polynomial would be a few digits off)."""
    apps = [a for a in e.atoms(sp.Function) if getattr(a.func, "node", None) in nodes]
    if not apps:
        return e
    got = {}
    for a in apps:
        node = a.func.node
        written, poly = node.forms(a.func.alpha)
        at = (node.s - node.s0).xreplace(point) == 0
        got[a] = poly.xreplace({node.d: node.s - node.s0}) if at else written
    return _put_back(e.xreplace(got), nodes, point)  # a node inside another's written form
