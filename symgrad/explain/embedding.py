"""The notation of token embeddings in the printed formulas (modelled on ``attention``).

The forward line of an embedding layer is ``h1 = E1[x] + P1`` (row x_t of the table for each
position t, plus the learned positional embedding when there is one); its backward is a
scatter-add, printed row by row,

    ∂ℓ/∂E1 = Σ_{t: x_t = k} δ_h1[t]   (row k),      ∂ℓ/∂P1 = δ_h1,

and the legend (listed by ``imaging.legends`` in the "Embedding" family) states the rule as
``∂ℓ/∂E[k] = Σ_{t: id_t = k} δ_h[t]``: repeated ids accumulate, and the ids get no gradient.

>>> E, x, P, d = sp.Symbol("E1"), sp.Symbol("x"), sp.Symbol("P1"), sp.Symbol("δ_h1")
>>> print(text(Gather(E, x, P)))
E1[x] + P1
>>> print(text(ScatterRows(x, d)))
Σ_{t: x_t = k} δ_h1[t]   (row k)
>>> print(tex(ScatterRows(x, d)))
\\sum_{t:\\, x_{t} = k} \\delta_{h_{1}}[t] \\quad \\text{(row } k \\text{)}
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from .imaging import add_legends
from .printing import tex, text  # noqa: F401 (the examples above print with them)


def _m(s: str, latex: str) -> tuple[str, str]:
    return (s, latex)


class Gather(sp.Function):
    """E[ids] (+ P): args the table, the ids, and the positional embedding (0 when none)."""

    nargs = 3
    family = "Embedding"
    legend = (_m("E[ids]", r"E[\mathrm{ids}]"), " stacks row ", _m("id_t", r"\mathrm{id}_t"), " of the table ",
              _m("E", "E"), " for each position ", _m("t", "t"), " (a ", _m("T × d", r"T \times d"), " sequence); ", _m("+ P", "+ P"),
              " adds a learned row per position")

    @property
    def precedence(self):
        return PRECEDENCE["Add"] if self.args[2] != 0 else PRECEDENCE["Atom"]

    def _sympystr(self, p):
        E, ids, P = self.args
        return f"{p._print(E)}[{p._print(ids)}]" + ("" if P == 0 else f" + {p._print(P)}")

    def _latex(self, p):
        E, ids, P = self.args
        return f"{p._print(E)}[{p._print(ids)}]" + ("" if P == 0 else f" + {p._print(P)}")


class ScatterRows(sp.Function):
    """Row k of the table's gradient: the deltas of the positions whose id is k, summed (args
    the ids and the layer's delta)."""

    nargs = 2
    family = "Embedding"
    legend = (_m("∂ℓ/∂E[k] = Σ_{t: id_t = k} δ_h[t]", r"\partial\ell/\partial E[k] = \sum_{t:\, \mathrm{id}_t = k} "
                 r"\delta_h[t]"), ": each position's delta is added into its token's row (repeated ids accumulate, "
              "rows of absent tokens get 0); the ids get no gradient")

    @property
    def precedence(self):
        return PRECEDENCE["Add"]

    def _sympystr(self, p):
        ids, d = self.args
        return f"Σ_{{t: {p._print(ids)}_t = k}} {p._print(d)}[t]   (row k)"

    def _latex(self, p):
        ids, d = self.args
        return r"\sum_{t:\, %s_{t} = k} %s[t] \quad \text{(row } k \text{)}" % (p._print(ids), p._print(d))


def forward(E, ids, P) -> sp.Expr:
    """The layer's value, E[ids] (+ P): P is 0 when there is no positional embedding."""
    return Gather(E, ids, P)


add_legends(Gather, ScatterRows)
