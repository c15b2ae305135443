"""Readable derivations: the forward trace and the adjoint steps, as text and LaTeX."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import sympy as sp

from ..derive.reverse import Sweep
from ..derive.simplify import tidy
from ..errors import NameClashError, NamingError, SymgradError
from ..lang.parse import parse_expr
from .display import Printout, Row, Style
from .limits import removable_values, undefined
from .numeric import PointValues
from .tex_names import reads_as


@dataclass
class Derivation(Printout):
    """The derivation of ``∂J/∂(wrt)`` for a scalar expression.

    ``print(d)`` shows the forward trace, the backward adjoint steps and the result;
    ``d.latex()`` gives the same as a LaTeX ``aligned`` block, ``d.latex_lines()`` one
    formula per line (for matplotlib), and a notebook shows it typeset (``_repr_latex_``).
    With a ``point`` (``explain(..., at={x: 1.0})``) every forward value, adjoint step and
    adjoint is followed by its value there, computed exactly (SymPy, 50 digits), shown to 6 digits.
    """

    original: sp.Expr
    stable: sp.Expr
    rules: list[str]
    sweep: Sweep
    wrt: list[sp.Symbol]
    gradients: list[sp.Expr] = field(default_factory=list)
    point: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)
    textbook: bool = False  # derived as written; the stable form and its agreement at the end
    stable_gradients: list[sp.Expr] = field(default_factory=list)
    stable_raw: list[sp.Expr] = field(default_factory=list)  # the same in the real symbols
    agreement: list[str] = field(default_factory=list)

    @cached_property
    def _values(self) -> PointValues | None:
        return PointValues(self.sweep, self.point) if self.point else None

    def _num(self, s: Style, e: sp.Expr, printed: sp.Expr | None = None) -> str:
        """`` ≈ 0.841471``, the value of ``e`` at the point; nothing without one, or when the
        formula ``printed`` before it is a number already."""
        if not self.point or (printed if printed is not None else e).is_Number:
            return ""
        return s.value(self._values(e))

    def _gradient_at(self, w: sp.Symbol) -> sp.Expr:
        return self.sweep.adjoint.get(w, sp.S.Zero) if w in self.sweep.leaves else sp.S.Zero

    # -- what is shown -------------------------------------------------------
    def _forward(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        return [(n.out, n.body if n.shown is None else n.shown) for n in self.sweep.nodes]

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

    # -- the printout, for text and LaTeX alike ------------------------------
    def _rows(self, s: Style) -> list[Row]:
        rows = []
        if self.rules and not self.textbook:
            rows += self._stabilised(s) + [Row("blank")]
        if self.point:
            at = s.pick(", ", r",\ ").join(s.name(k) + s.value(self._values(v)) for k, v in self.point.items())
            rows.append(Row("head", s.words("At ") + at + s.words(" (values to 6 significant digits)")))
        rows.append(s.head("Forward"))
        rows += [s.eq(s.expr(o), "=", s.expr(b) + self._num(s, o)) for o, b in self._forward()]
        rows.append(s.head("Backward (adjoint steps)"))
        rows += self._step_rows(s)
        j = self.sweep.output
        totals = [s.eq(s.d(j, v), "=", s.expr(e) + self._num(s, e)) for v, e in self._totals()]
        # each += adds one path's contribution (∂J/∂t twice in the notes' example): these are their sums
        rows += [s.head("Collected adjoints (the sums of the += steps)"), *totals] if totals else []
        rows.append(s.head("Result"))
        rows += [s.eq(s.d(j, w), "=", s.expr(g) + self._num(s, self._result_at(w, g), g))
                 for w, g in zip(self.wrt, self.gradients)]
        rows += self._limit_rows(s)
        if self.textbook and self.rules:
            rows += [Row("blank"), *self._stabilised(s, "What symgrad compiles: the stable form")]
            rows += [s.eq(s.d(j, w), "=", s.expr(g) + self._num(s, raw, g))
                     for w, g, raw in zip(self.wrt, self.stable_gradients, self.stable_raw)]
            rows.append(s.head("Agreement: the derivative as written minus the stable one"))
            rows += [s.eq(s.d(j, w), s.words(": "), s.words(a)) for w, a in zip(self.wrt, self.agreement)]
        return rows + s.kink_note(self.original, self.stable)

    def _result_at(self, w: sp.Symbol, printed: sp.Expr) -> sp.Expr:
        """The value after a result: the trace's, or the printed formula's where only that is defined (x**λ/x)."""
        traced = self._gradient_at(w)
        if self.point and undefined(self._values(traced)) and not undefined(self._values(printed)):
            return printed
        return traced

    def _limit_rows(self, s: Style) -> list[Row]:
        """Where the result as written is undefined at the point but the formula has a finite
        limit there (a removable 0/0), the limit, which is what the compiled functions return."""
        if not self.point or not any(undefined(self._values(self._gradient_at(w))) for w in self.wrt):
            return []
        got = removable_values(self.original, self.wrt, self.point)
        if got is None:
            return []
        names = [s.name(self.sweep.output)] + [s.d(self.sweep.output, w) for w in self.wrt]
        return [s.head("Written this way the formula is 0/0 at this point, a removable singularity; "
                       "symgrad's compiled functions return its limit there:"),
                *[s.eq(n, *s.value(v).strip().split(" ", 1)) for n, v in zip(names, got)]]

    def _stabilised(self, s: Style, head: str = "Stabilised before differentiating") -> list[Row]:
        return [s.head(f"{head} (" + ", ".join(dict.fromkeys(self.rules)) + "):"),
                s.eq("", "", s.expr(self.original)), s.eq("", s.pick("->", r"\to"), s.expr(self.stable))]

    def _step_rows(self, s: Style) -> list[Row]:
        """∂J/∂t += ∂J/∂u · ∂u/∂t, with the local derivative ∂u/∂t beside it (and, at a point,
        the value of the product and of the local derivative)."""
        j = self.sweep.output
        times, aside, plus = s.pick(" * ", r" \, "), s.pick(",   ", r", \quad "), s.pick("+=", "{+}{=}")
        rows = []
        for st in self._steps():
            rhs = s.expr(st.local) + self._num(s, st.local)
            if st.source != j:
                local = s.d(st.source, st.target)
                term = self._num(s, self.sweep.adjoint.get(st.source, sp.S.Zero) * st.local)
                rhs = f"{s.d(j, st.source)}{times}{local}{term}{aside}{local} = {rhs}"
            rows.append(s.eq(s.d(j, st.target), plus, rhs))
        return rows

    def __repr__(self) -> str:
        return f"<Derivation ∂{self.sweep.output}/∂{', '.join(map(str, self.wrt))}: {len(self.sweep.steps)} steps>"


# -- names= for the printout ------------------------------------------------------------------
# The sweep names each node by a plain Symbol, so two quantities with one name are one symbol
# to SymPy: a clash does not fail, it silently mixes up adjoints and prints a wrong result.


def resolve_names(names: Mapping | None, original: sp.Expr, stable: sp.Expr,
                  prepare: Callable[[sp.Expr], list[sp.Expr]], output: str) -> dict[sp.Expr, tuple[str, object]]:
    """``names=`` keyed by the node each key denotes: {node: (name, the user's key)}.

    A key may be a string ("x**2") or an expression in the user's own form (1/(1+exp(-a))):
    it is read with the expression's own symbols and ``prepare``d as the expression was, so it
    matches the node the sweep sees. Refuses a name taken by a variable, the output or another key.
    """
    if (reads := reads_as(output, stable)) is not None:  # ∂sin/∂x, ∂pi/∂x
        raise NamingError(f"output={output!r} reads as {reads} in the printout. Fix: another name, e.g. output='L'.")
    if not names:
        return {}
    if not isinstance(names, Mapping):
        raise NamingError(f"names must be a dict {{subexpression: name}}, got {type(names).__name__}. "
                          "Fix: e.g. names={x**2: 't'}.")
    symbols = {s.name: s for s in original.free_symbols if isinstance(s, sp.Symbol)}
    subexprs = set(sp.preorder_traversal(stable))
    taken = {n: f"the variable {n}" for n in symbols} | {output: f"the output (output={output!r})"}
    out: dict[sp.Expr, tuple[str, object]] = {}
    for key, name in names.items():
        node = _name_node(key, symbols, stable, subexprs, prepare)
        if not isinstance(name, str) or not name or name != "".join(name.split()):
            raise NamingError(f"names[{key!r}] = {name!r} is not a name. Fix: use a string such as 't1'")
        if not name.isidentifier():
            raise NamingError(f"names[{key!r}] = {name!r} is not a valid name: the printout (and the code written "
                              "from it) needs letters, digits and '_', not starting with a digit. Fix: e.g. 't1'.")
        if (reads := reads_as(name, stable)) is not None:
            raise NamingError(f"names[{key!r}] = {name!r} reads as {reads} in the printout. Fix: another name, e.g. 't1'.")
        if node in out:  # two spellings of one subexpression: fine when they agree
            if out[node][0] == name:
                continue
            raise NameClashError(f"names gives the same subexpression {node} two names, {out[node][0]!r} "
                                 f"(key {out[node][1]!r}) and {name!r} (key {key!r}). Fix: keep one.")
        if name in taken:
            raise NameClashError(f"names gives {name!r} to {key}, but {name!r} is already {taken[name]}; "
                                 f"the derivation would mix the two up. Fix: choose another name for {key}.")
        taken[name] = f"the name of {key}"
        out[node] = (name, key)
    return out


def _name_node(key: object, symbols: dict[str, sp.Symbol], stable: sp.Expr, subexprs: set,
               prepare: Callable[[sp.Expr], list[sp.Expr]]) -> sp.Expr:
    if isinstance(key, str):
        e = parse_expr(key)
    elif isinstance(key, sp.Basic):
        e = key
    else:
        raise NamingError(f"names keys must be SymPy expressions or strings such as 'x**2', got {key!r} "
                          f"({type(key).__name__}). Fix: e.g. names={{x**2: 't'}} or names={{'x**2': 't'}}.")
    # by name: the user's x, a parsed real x and a positive x are one variable to the reader
    e = e.xreplace({s: symbols[s.name] for s in e.free_symbols if isinstance(s, sp.Symbol) and s.name in symbols})
    if isinstance(e, sp.Symbol) and e.name not in symbols:
        raise NamingError(f"names key {key!r} is not in the expression (its variables: "
                          f"{', '.join(sorted(symbols))}). Fix: name a subexpression of it, e.g. names={{'x**2': 't'}}.")
    if isinstance(e, sp.Symbol):
        raise NamingError(f"names key {key!r} is a variable; variables keep their own names. "
                          "Fix: name a subexpression, or rename the Symbol itself.")
    if not e.free_symbols:
        raise NamingError(f"names key {key!r} is a constant, which is not a step of the derivation. "
                          "Fix: name a subexpression that holds a variable.")
    forms = prepare(e)
    node = next((f for f in forms if f in subexprs), forms[0])
    if node == stable:
        raise NamingError(f"names key {key!r} is the whole expression, which is named by output= (J unless "
                          "given). Fix: leave it out of names (in Python, pass its name as output=, e.g. output='L').")
    return node


def check_trace_names(s: Sweep, named: dict[sp.Expr, tuple[str, object]], stable: sp.Expr,
                      stabilised: bool) -> None:
    """After the sweep: every key named a node, and no two quantities share a name (an automatic
    name v3 can meet a user's name or a variable called v3; the output J a variable J)."""
    nodes = {n.expr for n in s.nodes}
    for node, (_, key) in named.items():
        if node not in nodes:
            steps = [str(n.expr) for n in s.nodes[:-1]]
            options = ", ".join(steps[:8]) + (f" and {len(steps) - 8} more" if len(steps) > 8 else "") \
                or "none, it is one step"
            form = f" (stabilised first: {stable})" if stabilised else ""
            written = (" or explain(..., textbook=True), which derives the expression as written" if stabilised
                       else "")
            raise NamingError(f"names key {key!r} matches no subexpression of the expression as it is "
                              f"differentiated{form}. Subexpressions that can be named: {options}. "
                              f"Fix: use one of these as the key (a string such as 'x**2' works too){written}.")
    seen: dict[str, tuple[str, str]] = {}
    for name, kind, what in _trace_names(s, named):
        if name in seen:
            kinds = {seen[name][0], kind}
            raise NameClashError(f"{name!r} would name both {seen[name][1]} and {what}, so the derivation "
                                 f"would mix them up. Fix: {_clash_fix(kinds, what, name)}")
        seen[name] = (kind, what)


def _trace_names(s: Sweep, named: dict[sp.Expr, tuple[str, object]]):
    """(name, kind, description) of every quantity of the trace, in the order the sweep made them."""
    for leaf in s.leaves:
        yield leaf.name, "variable", f"the variable {leaf}"
    for n in s.nodes:
        if n.out == s.output:
            yield n.out.name, "output", f"the output (output={n.out.name!r})"
        elif n.expr in named:
            yield n.out.name, "named", f"{n.expr} (named in names=)"
        else:
            yield n.out.name, "automatic", f"{n.expr} (its automatic name)"


def _clash_fix(kinds: set[str], what: str, name: str) -> str:
    if "output" in kinds:
        return f"pass another output=, e.g. output={'L' if name != 'L' else 'J'!r}."
    if "named" in kinds:
        return "choose another name in names= (automatic names are v1, v2, ...)."
    sub = what.removesuffix(" (its automatic name)")
    return f"rename the variable, or name the subexpression yourself: names={{{sub}: 't1'}}."


def agreement(written: sp.Expr, stable: sp.Expr, symbols) -> str:
    """How a derivative as written agrees with the stable form's: their difference simplified to
    0, or equal at five random points to 25 digits. A disagreement is a bug, and raised."""
    diff = written - stable
    try:
        if sp.simplify(diff) == 0:
            return "0 (simplified)"
    except (TypeError, ValueError, NotImplementedError, RecursionError):  # SymPy gives up; measure instead
        pass
    rng = random.Random(0)
    worst = 0.0
    for _ in range(5):
        # in (0.05, 0.95): inside the domain of log(x), log(1 - x), sqrt(x) as written
        point = {v: sp.Rational(rng.randint(5, 95), 100) for v in symbols}
        scale = max(1.0, abs(complex(sp.N(stable.xreplace(point), 40))))
        worst = max(worst, abs(complex(sp.N(diff.xreplace(point), 40))) / scale)
    # a Float holds its own precision only (53 bits: 0.3 + 0.7 rounds to 1.0, 1e-17 away), exact
    # numbers 25 digits; the rounding of the largest Float bounds what the stabilisation may move
    floats = written.atoms(sp.Float) | stable.atoms(sp.Float)
    tol = max([1e-25] + [1e3 * 2.0 ** -f._prec * abs(float(f)) for f in floats])
    if not worst < tol:
        raise SymgradError(f"the derivative as written and the stable form's disagree (relative difference "
                             f"{worst:.3g}): {written} vs {stable}. This is a bug in symgrad's stabilisation: "
                             "please report it.")
    return f"0 at 5 random points (relative difference below {tol:.2g})"
