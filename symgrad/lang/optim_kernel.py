"""The Numba source of an optimizer step: its rules as one elementwise loop over flat arrays.

Scalars that are the same for every element (bias corrections, lr·λ, 1 − β1) are hoisted
before the loop and computed in float64; the loop body is the CSE of the final values.

Hyperparameters (β1, ε, λ, ...) are read from the ``hyper`` argument, never baked in as
constants: a new value of one compiles nothing (a grid over weight_decay compiled a module
per value).

>>> from symgrad.lang.update_rules import G, LR, P, sym
>>> print(update_source("momentum", {"p": P - LR * sym("beta") * G}, (), ["beta"]), end="")
@jit
def momentum(p, g, lr, t, hyper):
    c0 = F(-hyper[0]*lr)
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
    """Prints the per-call scalars, each hyperparameter as its entry of the float64 ``hyper``.

    These run in float64 and are cast with ``F(...)`` once: in float32, ``1 − F(0.999)``
    is off by 1.3e-5 relative, while PyTorch computes such scalars in double too.
    """

    def __init__(self, hyper: list[str]):
        super().__init__({"standard": "python3"})
        self.index = {h: k for k, h in enumerate(hyper)}

    def _print_Symbol(self, e):
        return f"hyper[{self.index[e.name]}]" if e.name in self.index else py_name(e)


def update_source(name: str, finals: dict[str, sp.Expr], state: tuple[str, ...], hyper: list[str]) -> str:
    """Source of ``name(p, g, *state, lr, t, hyper)``, writing each array of ``finals`` in place.

    ``finals``: the new value of each written array in terms of the old ones; ``hyper``: the
    hyperparameters' names, in the order of the ``hyper`` array the function takes.
    """
    arrays = ["p", "g", *state]
    scalars = {sym(a): sym(f"{a}_i") for a in arrays}
    table: dict[sp.Expr, sp.Symbol] = {}
    invariant = {LR, T, *map(sym, hyper)}
    outs = [_hoist(e.xreplace(scalars), invariant, table) for e in finals.values()]
    host, pr = _HostPrinter(list(hyper)), NumbaPrinter()
    lines = ["@jit", f"def {name}({', '.join([*arrays, 'lr', 't', 'hyper'])}):"]
    prelude = sorted(table.items(), key=lambda ec: ec[0] != ec[1])  # named hyperparameters first
    lines += [f"    {py_name(c)} = F({host.doprint(e)})" for e, c in prelude]
    lines += ["    for i in range(p.shape[0]):"] + [f"        {a}_i = {a}[i]" for a in arrays]
    repl, reduced = sp.cse(outs, symbols=sp.numbered_symbols("x", real=True), order="none")
    lines += [f"        {py_name(s)} = {pr.doprint(v)}" for s, v in repl]
    lines += [f"        {a}[i] = {pr.doprint(r)}" for a, r in zip(finals, reduced, strict=True)]
    return "\n".join(lines) + "\n"
