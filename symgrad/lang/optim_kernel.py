"""The Numba source of an optimizer step: its rules as one elementwise loop over flat arrays.

Scalars that are the same for every element (bias corrections, lr·λ, 1 − β1) are hoisted
before the loop and computed in float64; the loop body is the CSE of the final values.

>>> from symgrad.lang.update_rules import G, LR, P
>>> print(update_source("sgd", {"p": P - LR * G}, (), {}), end="")
@jit
def sgd(p, g, lr, t):
    c0 = F(-lr)
    for i in range(p.shape[0]):
        p_i = p[i]
        g_i = g[i]
        p[i] = c0*g_i + p_i
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ..codegen.printer import NumbaPrinter, py_name
from .update_rules import LR, T, sym


def _hoist(e: sp.Expr, invariant: set, table: dict) -> sp.Expr:
    """Replace the parts of ``e`` that depend only on ``invariant`` symbols by new symbols.

    They are the same for every element (bias corrections, lr·λ, 1 − β1), so they are
    computed once before the loop, instead of a ``pow`` per element.
    """
    if not e.free_symbols:
        return e
    if e.free_symbols <= invariant:
        if e not in table:
            named = e.is_Symbol and e not in (LR, T)  # a lone hyperparameter keeps its name: beta1
            table[e] = e if named else sym(f"c{sum(k != v for k, v in table.items())}")
        return table[e]
    if e.is_Atom:
        return e
    if isinstance(e, (sp.Add, sp.Mul)):
        fixed = [a for a in e.args if a.free_symbols <= invariant]
        if any(a.free_symbols for a in fixed):  # group lr·c·… into one hoisted factor
            rest = [_hoist(a, invariant, table) for a in e.args if a not in fixed]
            return e.func(_hoist(e.func(*fixed), invariant, table), *rest)
    return e.func(*[_hoist(a, invariant, table) for a in e.args])


class _HostPrinter(PythonCodePrinter):
    """Prints the per-call scalars with hyperparameters baked in as Python floats.

    These run in float64 and are cast with ``F(...)`` once: in float32, ``1 − F(0.999)``
    is off by 1.3e-5 relative, while PyTorch computes such scalars in double too.
    """

    def __init__(self, hyper: dict[str, float]):
        super().__init__({"standard": "python3"})
        self.hyper = hyper

    def _print_Symbol(self, e):
        return repr(self.hyper[e.name]) if e.name in self.hyper else py_name(e)


def update_source(name: str, finals: dict[str, sp.Expr], state: tuple[str, ...],
                  hyper: dict[str, float]) -> str:
    """Source of ``name(p, g, *state, lr, t)``, writing each array of ``finals`` in place.

    ``finals``: the new value of each written array in terms of the old ones.
    """
    arrays = ["p", "g", *state]
    scalars = {sym(a): sym(f"{a}_i") for a in arrays}
    table: dict[sp.Expr, sp.Symbol] = {}
    invariant = {LR, T, *map(sym, hyper)}
    outs = [_hoist(e.xreplace(scalars), invariant, table) for e in finals.values()]
    host, pr = _HostPrinter(hyper), NumbaPrinter()
    lines = ["@jit", f"def {name}({', '.join([*arrays, 'lr', 't'])}):"]
    prelude = sorted(table.items(), key=lambda ec: ec[0] != ec[1])  # named hyperparameters first
    lines += [f"    {py_name(c)} = F({host.doprint(e)})" for e, c in prelude]
    lines += ["    for i in range(p.shape[0]):"] + [f"        {a}_i = {a}[i]" for a in arrays]
    repl, reduced = sp.cse(outs, symbols=sp.numbered_symbols("x", real=True), order="none")
    lines += [f"        {py_name(s)} = {pr.doprint(v)}" for s, v in repl]
    lines += [f"        {a}[i] = {pr.doprint(r)}" for a, r in zip(finals, reduced, strict=True)]
    return "\n".join(lines) + "\n"
