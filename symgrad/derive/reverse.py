"""The reverse sweep for scalar expressions (the adjoint method of the lecture notes).

The expression DAG is cut into nodes, each with a fresh *seam* symbol. SymPy only ever
differentiates one node's small body with respect to its lanes; the chain rule across
nodes is ours. The same sweep yields the gradient and the readable adjoint steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp
from sympy.core.parameters import distribute

from .partials import _extremum_partials, _partials
from .simplify import tidy


@dataclass
class Node:
    """One forward step ``out = body(lanes)``, with ``partials[i] = d body / d lanes[i]``."""

    out: sp.Symbol
    expr: sp.Expr  # the original subexpression, in leaves
    body: sp.Expr  # the op applied to lane symbols and constants
    lanes: tuple[sp.Symbol, ...]
    partials: tuple[sp.Expr, ...]
    shown: sp.Expr | None = None  # how the forward line prints, when not ``body`` (a Sum: derive/indexed.py)


@dataclass
class Step:
    """One backward step: ``adj[target] += adj[source] * local``."""

    target: sp.Symbol
    source: sp.Symbol
    local: sp.Expr


@dataclass
class Sweep:
    """The result of a reverse sweep over one scalar expression."""

    nodes: list[Node]
    leaves: list[sp.Symbol]
    output: sp.Symbol
    steps: list[Step] = field(default_factory=list)
    adjoint: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)  # in seam symbols
    #: substitutions already made by gradient(), shared by all leaves (see _substitute_memo)
    _memo: dict[sp.Basic, tuple[sp.Basic, bool]] = field(default_factory=dict, repr=False, compare=False)

    def forward_map(self) -> dict[sp.Symbol, sp.Expr]:
        """seam -> full expression in leaves."""
        return {n.out: n.expr for n in self.nodes}

    def gradient(self, leaf: sp.Symbol, factors: bool = False) -> sp.Expr:
        """dJ/dleaf as an expression in the leaves, tidied (0 for a symbol not in the expression:
        it may share its name with a seam or the output, J, whose adjoint is not its own).

        With ``factors``, a number times a seam keeps the seam's body as a factor where SymPy
        would distribute the number over it: c_k·(4T − 2), for each term c_k·x^k of a polynomial
        T, multiplied out squared the cancellation of the compiled code (Chebyquad's gradient was
        1e-3 off at n = 10, torch's 4e-10); kept, CSE computes 4T − 2 once."""
        if leaf not in self.leaves:
            return sp.S.Zero
        adj = self.adjoint.get(leaf, sp.S.Zero)
        if factors:
            try:
                with distribute(False):
                    return tidy(self._substituted(adj), expand=False)
            except RecursionError:  # SymPy's own rewrites (Abs's signsimp) can loop on undistributed products
                pass
        return tidy(self._substituted(adj))

    def _substituted(self, adj: sp.Expr) -> sp.Expr:
        if len(self.nodes) <= STEPWISE_MAX_NODES:
            return _substitute_forward(adj, self.nodes)
        if not self._memo:
            self._memo.update({out: (e, True) for out, e in self.forward_map().items()})
        return _substitute_memo(adj, self._memo)[0]


#: Sweeps of up to this many nodes substitute seams one node at a time (_substitute_forward),
#: larger ones in one cached pass (_substitute_memo). Both are exact, but they can print
#: differently: one node at a time, SymPy evaluates each body over real seam symbols first, so
#: log(exp(v)) becomes v, where the original subexpression (not known to be real) stays
#: log(exp(...)). Small formulas thus print as they always did (every sweep in the test suite
#: has at most 96 nodes). The stepwise way costs nodes x size per gradient, ~N^3 for N
#: parameters; at this limit (a 31-term cosine series) both ways compile in ~3 s.
STEPWISE_MAX_NODES = 128


def _substitute_forward(e: sp.Expr, nodes: list[Node]) -> sp.Expr:
    """``e`` with every seam replaced by its node's body, one node at a time from the last back
    (later nodes refer to earlier seams).

    Seams are replaced in batches: a node joins the current batch unless its seam occurs in a
    body already in the batch (then that seam must be replaced after the batch, so the batch is
    flushed first). One xreplace per batch instead of one per node: the same results on 1,200
    corpus gradients and second derivatives, in ~0.45x the time.
    """
    seams = {n.out for n in nodes}
    pending = e.free_symbols & seams
    batch: dict[sp.Symbol, sp.Expr] = {}
    inside: set[sp.Symbol] = set()  # seams in the bodies of the current batch
    for n in reversed(nodes):
        if n.out not in pending:
            continue
        if n.out in inside:
            e, batch, inside = e.xreplace(batch), {}, set()
        batch[n.out] = n.body
        body_seams = n.body.free_symbols & seams
        inside |= body_seams
        pending |= body_seams
    return e.xreplace(batch) if batch else e


def _substitute_memo(e: sp.Basic, memo: dict) -> tuple[sp.Basic, bool]:
    """(``e`` with every seam replaced by its node's expression in leaves, whether it changed).

    This is ``e.xreplace(forward_map)`` (node expressions are already in leaves, so one pass
    suffices) with a cache: ``memo`` starts as the forward map and keeps every subexpression
    substituted since. The adjoints of many leaves share subexpressions (a model's sum is in
    every parameter's gradient), so each gradient costs only its own new nodes; the stepwise
    substitution over each whole gradient made N parameters cost ~N^3 (an N = 200 cosine
    series took minutes).
    """
    hit = memo.get(e)
    if hit is not None:
        return hit
    changed = False
    if isinstance(e, sp.Basic) and e.args:
        args = []
        for a in e.args:
            b, c = _substitute_memo(a, memo)
            args.append(b)
            changed |= c
    out = (e.func(*args) if changed else e, changed)
    memo[e] = out
    return out


def _is_const(e: sp.Basic) -> bool:
    return not e.free_symbols


_BASIC_FREE_SYMBOLS = sp.Basic.free_symbols


class _Builder:
    def __init__(self, names: dict[sp.Expr, str], output_name: str, taken: set[str] = frozenset()):
        self.names = names
        self.output_name = output_name
        # names the automatic ones (v1, v2, ...) must skip: a variable called v1 would otherwise
        # be the same Symbol as the seam v1, and its adjoint would be mixed with the seam's
        self.taken = set(taken) | set(names.values()) | {output_name}
        self.auto = 0
        self.nodes: list[Node] = []
        self.leaves: list[sp.Symbol] = []
        self.seam: dict[sp.Expr, sp.Symbol] = {}
        self.const: dict[sp.Basic, bool] = {}

    def is_const(self, e: sp.Basic) -> bool:
        """``_is_const(e)``, remembered for every subexpression: free_symbols walks the whole
        subtree each time, and the sum of a model's gradients (the Hessian-vector product's
        sweep) holds the model once per parameter, so that cost ~N^2."""
        c = self.const.get(e)
        if c is None:
            if type(e).free_symbols is _BASIC_FREE_SYMBOLS:  # the union over args
                c = all(self.is_const(a) for a in e.args)
            else:
                c = _is_const(e)
            self.const[e] = c
        return c

    def visit(self, e: sp.Expr, is_root: bool = False) -> sp.Symbol:
        if e in self.seam:
            return self.seam[e]
        if isinstance(e, sp.Symbol):
            self.leaves.append(e)
            self.seam[e] = e
            return e
        if isinstance(e, sp.Add) and e not in self.names and -e in self.names:
            return self._negated(e, is_root)
        lanes: list[sp.Symbol] = []
        extremum = isinstance(e, (sp.Max, sp.Min))
        if extremum:
            ordered = self._extremum_args(e, lanes)
            body = e.func(*ordered, evaluate=False)
        else:
            body = self._body(e, lanes)
        name = self.output_name if is_root else self.names.get(e) or self._auto_name()
        out = sp.Symbol(name, real=True)
        partials = (_extremum_partials(isinstance(e, sp.Max), ordered, lanes) if extremum
                    else _partials(body, lanes, out))
        node = Node(out, e, body, tuple(lanes), partials)
        self.nodes.append(node)
        self.seam[e] = out
        return out

    def _negated(self, e: sp.Add, is_root: bool) -> sp.Symbol:
        """``e = -a`` for a named ``a`` that SymPy distributed (``exp(-a)`` with a = w·x + b holds
        -b - w·x, where ``a`` is no subexpression): ``a`` becomes a node of its own, e one step after."""
        inner = self.visit(-e)
        out = sp.Symbol(self.output_name if is_root else self._auto_name(), real=True)
        self.nodes.append(Node(out, e, -inner, (inner,), (sp.S.NegativeOne,)))
        self.seam[e] = out
        return out

    def _auto_name(self) -> str:
        self.auto = max(self.auto, len(self.nodes)) + 1
        while f"v{self.auto}" in self.taken:
            self.auto += 1
        return f"v{self.auto}"

    def _extremum_args(self, e: sp.Expr, lanes: list[sp.Symbol]) -> list[sp.Expr]:
        """Max/Min's arguments in the order of the kink convention (ops.KINK_CONVENTIONS['Max']):
        constants last, the rest by SymPy's sort key; non-constant ones as seams (lanes)."""
        seen = set(lanes)
        return [self._arg(a, lanes, seen)
                for a in sorted(e.args, key=lambda a: (self.is_const(a), sp.default_sort_key(a)))]

    def _arg(self, a: sp.Expr, lanes: list[sp.Symbol], seen: set) -> sp.Expr:
        """A constant argument as it is; any other as its seam, added once to ``lanes``."""
        if self.is_const(a):
            return a
        s = self.visit(a)
        if s not in seen:
            seen.add(s)
            lanes.append(s)
        return s

    def _body(self, e: sp.Expr, lanes: list[sp.Symbol]) -> sp.Expr:
        if isinstance(e, sp.Piecewise):
            return self._piecewise_body(e, lanes)
        seen = set(lanes)  # a set beside the list: an Add of N terms has N lanes
        return e.func(*[self._arg(a, lanes, seen) for a in e.args])

    def _piecewise_body(self, e: sp.Piecewise, lanes: list[sp.Symbol]) -> sp.Expr:
        # Pieces and the two sides of each condition become lanes; conditions carry no gradient.
        repl: dict[sp.Expr, sp.Symbol] = {}
        for piece, cond in e.args:
            parts = [piece] + (list(cond.args) if isinstance(cond, sp.core.relational.Relational) else [])
            for p in parts:
                if not self.is_const(p) and p not in repl:
                    s = self.visit(p)
                    repl[p] = s
                    if s not in lanes:
                        lanes.append(s)
        return e.xreplace(repl)


def sweep(expr: sp.Expr, names: dict[sp.Expr, str] | None = None, output_name: str = "J",
          rename_output: bool = True, builder=None, factors: bool = False) -> Sweep:
    """Build the forward trace of ``expr`` and run the reverse (adjoint) sweep (``factors``: as
    in :meth:`Sweep.gradient`, for its adjoints too).

    Automatic names (v1, v2, ...) skip the names of ``expr``'s symbols; so does the output's
    (J, then J_, ...) unless ``rename_output`` is False (``explain``, which refuses the clash).
    ``builder`` makes the trace's nodes (``derive.indexed.builder`` for Sum and Indexed).

    >>> x = sp.Symbol("x", real=True)
    >>> s = sweep(sp.cos(x**2))
    >>> s.gradient(x)
    -2*x*sin(x**2)
    """
    taken = {str(v) for v in expr.free_symbols}
    if rename_output:
        while output_name in taken:
            output_name += "_"
    b = (builder or _Builder)(dict(names or {}), output_name, taken)
    if _is_const(expr):
        out = sp.Symbol(output_name, real=True)
        return Sweep([Node(out, expr, expr, (), ())], [], out, [], {out: sp.S.One})
    root = b.visit(expr, is_root=True)
    result = Sweep(b.nodes, b.leaves, root)
    if isinstance(expr, sp.Symbol):
        result.adjoint[root] = sp.S.One
        return result
    # Each adjoint's terms are collected and added once, when it is complete (all consumers of a
    # node come after it in b.nodes): adding them one at a time rebuilt a k-term sum k times,
    # quadratic for a leaf used by many nodes (w in sum(c_k*cos(k*w*t))). Add is canonical, so
    # the sum is the same expression.
    terms: dict[sp.Symbol, list[sp.Expr]] = {root: [sp.S.One]}
    for node in reversed(b.nodes):
        ts = terms.pop(node.out, None)
        src = sp.S.Zero if ts is None else sp.Add(*ts)
        if ts is not None:
            result.adjoint[node.out] = src
        for lane, local in sorted(zip(node.lanes, node.partials), key=lambda t: t[0].name):
            if local == 0:
                continue
            result.steps.append(Step(lane, node.out, local))
            with distribute(not factors):  # factors: c_k·(a sum) stays one (Sweep.gradient)
                terms.setdefault(lane, []).append(src * local)
    for lane, ts in terms.items():
        result.adjoint[lane] = sp.Add(*ts)
    return result
