"""Readable derivations: the forward trace and the adjoint steps, as text and LaTeX."""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .derive import Sweep
from .ops import KINK_CONVENTIONS
from .simplify import tidy


def _kinks(*exprs: sp.Expr) -> list[str]:
    names = {type(f).__name__ for e in exprs for f in e.atoms(sp.Function)}
    names |= {"Max"} if any(e.has(sp.Max, sp.Min) for e in exprs) else set()
    return [KINK_CONVENTIONS[n] for n in sorted(names) if n in KINK_CONVENTIONS]


@dataclass
class Derivation:
    """The derivation of ``dJ/d(wrt)`` for a scalar expression.

    ``print(d)`` shows the forward trace, the backward adjoint steps and the result;
    ``d.latex()`` gives the same as a LaTeX ``aligned`` block.
    """

    original: sp.Expr
    stable: sp.Expr
    rules: list[str]
    sweep: Sweep
    wrt: list[sp.Symbol]
    gradients: list[sp.Expr] = field(default_factory=list)

    # -- pieces shared by both renderings ----------------------------------
    def _forward(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        return [(n.out, n.body) for n in self.sweep.nodes]

    def _totals(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        """Collected adjoint of each intermediate, in forward seams, simplified."""
        out = []
        shown = {st.target for st in self._steps()}
        for n in reversed(self.sweep.nodes[:-1]):
            if n.out in shown:
                out.append((n.out, tidy(self.sweep.adjoint.get(n.out, sp.S.Zero))))
        return out

    def _steps(self):
        """Only the steps on a path to a requested variable: adjoints of data symbols and of
        branches that do not lead to ``wrt`` are computed by the sweep but not shown."""
        relevant = set(self.wrt)
        for n in self.sweep.nodes:
            if relevant & set(n.lanes):
                relevant.add(n.out)
        return [st for st in self.sweep.steps if st.target in relevant]

    def _d(self, v: sp.Basic, latex: bool) -> str:
        j = self.sweep.output
        if latex:
            return r"\frac{d %s}{d %s}" % (sp.latex(j), sp.latex(v))
        return f"d{j}/d{v}"

    # -- text ----------------------------------------------------------------
    def __str__(self) -> str:
        lines = []
        if self.rules:
            lines += ["Stabilised before differentiating (" + ", ".join(dict.fromkeys(self.rules)) + "):",
                      f"  {self.original}", f"  -> {self.stable}", ""]
        lines.append("Forward")
        lines += [f"  {o} = {b}" for o, b in self._forward()]
        lines.append("Backward (adjoint steps)")
        j = self.sweep.output
        for st in self._steps():
            tgt = self._d(st.target, False)
            if st.source == j:
                lines.append(f"  {tgt} += {st.local}")
            else:
                local = f"d{st.source}/d{st.target}"
                lines.append(f"  {tgt} += {self._d(st.source, False)} * {local},   {local} = {st.local}")
        lines.append("Collected adjoints")
        lines += [f"  {self._d(v, False)} = {e}" for v, e in self._totals()]
        lines.append("Result")
        lines += [f"  {self._d(w, False)} = {g}" for w, g in zip(self.wrt, self.gradients)]
        kinks = _kinks(self.original, self.stable)
        if kinks:
            lines.append("Conventions at kinks: " + "; ".join(kinks))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Derivation d{self.sweep.output}/d{', '.join(map(str, self.wrt))}: {len(self.sweep.steps)} steps>"

    # -- LaTeX ---------------------------------------------------------------
    def latex(self) -> str:
        """The derivation as a LaTeX ``aligned`` environment (for notebooks and notes)."""
        L = sp.latex
        rows = [r"&\textbf{Forward}"]
        rows += [rf"{L(o)} &= {L(b)}" for o, b in self._forward()]
        rows.append(r"&\textbf{Backward}")
        j = self.sweep.output
        for st in self._steps():
            tgt = self._d(st.target, True)
            if st.source == j:
                rows.append(rf"{tgt} &\mathrel{{+}}= {L(st.local)}")
            else:
                local = r"\frac{d %s}{d %s}" % (L(st.source), L(st.target))
                rows.append(
                    rf"{tgt} &\mathrel{{+}}= {self._d(st.source, True)} {local}, \quad {local} = {L(st.local)}"
                )
        rows.append(r"&\textbf{Result}")
        rows += [rf"{self._d(w, True)} &= {L(g)}" for w, g in zip(self.wrt, self.gradients)]
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"
