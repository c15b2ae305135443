"""The tensor IR and lowering from SymPy matrix expressions.

Every node is a per-sample value of fixed ``shape``; ``batched`` nodes carry one such
value per sample and are stored as ``(B, rows*cols)`` arrays, unbatched ones (parameters
and what depends only on them) as flat arrays. Layers stay tensors: a 128x64 weight is
one node, never 8,192 symbols.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct
from sympy.matrices.expressions.matexpr import MatrixElement

from ..errors import ShapeError, UnboundSymbolError, UnsupportedModelError
from ..front.rewrite import log_sum_exp, stabilize
from ..front.validate import check_functions


@dataclass(eq=False)
class TNode:
    """One IR node. ``kind`` is "leaf" (a parameter or data) or a name in ``symgrad.kinds.KINDS``."""

    kind: str
    name: str
    shape: tuple[int, int]
    batched: bool
    inputs: list[TNode] = field(default_factory=list)
    body: sp.Expr | None = None  # map: scalar body in lane symbols
    lanes: tuple[sp.Symbol, ...] = ()
    partials: tuple[sp.Expr, ...] = ()
    trans: tuple[bool, bool] = (False, False)  # matmul: operand is an unbatched transpose
    index: int = 0  # select: flat index
    geom: tuple[int, ...] = ()  # conv2d, pooling: the image geometry (symgrad.lang.conv)
    role: str = ""  # leaf: param | data
    label: str = ""  # readable name for formulas (z1, a1, W1, ...)

    @property
    def length(self) -> int:
        return self.shape[0] * self.shape[1]


#: The output symbol of a Map body, used to express derivatives through the output.
OUT = sp.Symbol("y", real=True)
_partials_memo: dict[sp.Expr, tuple[sp.Expr, ...]] = {}


def map_partials(body: sp.Expr, lanes: tuple[sp.Symbol, ...]) -> tuple[sp.Expr, ...]:
    """d body / d lane for each lane, through the output where that is exact.

    Memoized: a 32-layer net has 32 identical activation bodies, derived once.
    """
    key = sp.Tuple(body, *lanes)
    if key not in _partials_memo:
        from .partials import _clean_partial, complements, with_chosen_branches
        from .simplify import tidy

        body = with_chosen_branches(body)
        _partials_memo[key] = tuple(complements(tidy(_clean_partial(sp.diff(body, s)).xreplace({body: OUT})))
                                    for s in lanes)
    return _partials_memo[key]


#: The fix for a matrix expression the tensor IR does not take, by its SymPy class.
_UNLOWERED = {
    "Identity": "I·x is x: write it without the identity, e.g. (A + I)·x as A·x + x.",
    "OneMatrix": "sg.msum(v) sums v's entries; a vector of ones is data (np.ones) if needed.",
    "Adjoint": "SymPy writes f of a 1×1 matrix M as a whole (Abs(M) as sqrt(M·Mᴴ)): use sg.elementwise(f, M), "
               "which keeps f entrywise.",
    "": "write it with the supported operations (a matrix inverse, power, trace or determinant of a parameter: "
        "with its elements, e.g. A[0, 0] + A[1, 1] for Trace(A), or sg.compile of the entries as Symbols).",
}


class Lowerer:
    """Turns a scalar SymPy loss over MatrixSymbols into a list of TNodes (topological)."""

    def __init__(self, params: list[sp.Basic], data: list[sp.Basic], labels: dict[sp.Basic, str] | None = None):
        self.nodes: list[TNode] = []
        self.memo: dict[sp.Basic, TNode] = {}
        self.labels = labels or {}
        from ..codegen.printer import leaf_ident  # the generated code's names; codegen imports derive

        taken: set[str] = set()
        for role, syms in (("param", params), ("data", data)):
            for s in syms:
                shape = tuple(int(d) for d in s.shape) if isinstance(s, sp.MatrixSymbol) else (1, 1)
                node = TNode("leaf", leaf_ident(str(s), taken), shape, role == "data", role=role, label=str(s))
                self.memo[s] = node
                self.nodes.append(node)

    def _add(self, node: TNode, key: sp.Basic) -> TNode:
        node.name = f"v{len(self.nodes)}"
        node.label = self.labels.get(key, node.name)
        self.nodes.append(node)
        self.memo[key] = node
        return node

    # -- matrices --------------------------------------------------------------
    def matrix(self, e: sp.Basic) -> TNode:
        if e in self.memo:
            return self.memo[e]
        kind = lowering_kind(e)
        if kind is not None:  # a registered kind that lowers this SymPy class itself
            return kind.lower(self, e)
        if isinstance(e, sp.MatrixSymbol):
            raise UnboundSymbolError(
                f"matrix symbol {e} is neither a parameter nor data. Fix: add it to wrt=[...] or data=[...]."
            )
        if isinstance(e, sp.MatMul):  # memoised whole too: a product used twice is computed once
            self.memo[e] = self._matmul(e)
            if e in self.labels and self.memo[e].kind == "matmul":  # a layer without bias: z = W x
                self.memo[e].label = self.labels[e]
            return self.memo[e]
        if isinstance(e, sp.MatAdd):
            return self._map(e, self._regroup(e), lambda s: sp.Add(*s))
        if isinstance(e, HadamardProduct):
            return self._map(e, list(e.args), lambda s: sp.Mul(*s))
        if isinstance(e, HadamardPower):
            return self._map(e, [e.base], lambda s: s[0] ** e.exp)
        if isinstance(e, ElementwiseApplyFunction):
            f = e.function
            return self._map(e, [e.expr], lambda s: f(s[0]))
        if isinstance(e, sp.MatPow) and e.shape == (1, 1):  # SymPy's form of z**p for a 1x1 z
            return self._map(e, [e.base], lambda s: s[0] ** e.exp)
        if isinstance(e, sp.Transpose) and 1 in e.arg.shape:
            inner = self.matrix(e.arg)  # a vector's transpose has the same flat storage
            alias = TNode("map", "", (e.shape[0], e.shape[1]), inner.batched, [inner], body=_lane(0),
                          lanes=(_lane(0),), partials=(sp.S.One,))
            return self._add(alias, e)
        raise UnsupportedModelError(
            f"cannot lower {type(e).__name__} ({e}) to the tensor IR. Supported: matrix products with a parameter, "
            "+, Hadamard products/powers, elementwise functions (sg.elementwise, applyfunc), vector transposes. "
            f"Fix: {_UNLOWERED.get(type(e).__name__, _UNLOWERED[''])}")

    def _regroup(self, e: sp.MatAdd) -> list:
        """SymPy flattens (W a + b) - y into one sum; keep a named layer W a + b as one operand."""
        args = list(e.args)
        for key in self.labels:
            if isinstance(key, sp.MatAdd) and key != e and set(key.args) <= set(args):
                rest = [a for a in args if a not in key.args]
                return [key, *rest]
        return args

    def _map(self, key: sp.Basic, operands: list, make_body) -> TNode:
        lanes_nodes, lane_syms, consts = [], [], []
        for op in operands:
            if isinstance(op, sp.MatrixExpr) or (isinstance(op, sp.Basic) and op.free_symbols):
                node = self.matrix(op) if isinstance(op, sp.MatrixExpr) else self.scalar(op)
                lanes_nodes.append(node)
                lane_syms.append(_lane(len(lane_syms)))
                consts.append(lane_syms[-1])
            else:
                consts.append(op)
        body = make_body(consts)
        return self._map_node(key, lanes_nodes, tuple(lane_syms), body, tuple(int(d) for d in key.shape))

    def _map_node(self, key, lanes_nodes, lane_syms, body, shape) -> TNode:
        check_functions(body)
        body, _ = stabilize(body)
        # a scalar parameter or datum inside the function (tanh(s*z), z**p, an element c[0, 0]) is a lane
        # of its own, broadcast: it was printed as a bare name, which read the kernel's loop index j
        elements = sorted(body.atoms(MatrixElement), key=str)
        held = {el: sp.Dummy() for el in elements}  # c of c[0, 0] is not a lane: its element is
        extra = elements + sorted(body.xreplace(held).free_symbols - set(lane_syms) - set(held.values()), key=str)
        if extra:
            lanes_nodes, lane_syms = list(lanes_nodes), list(lane_syms)
            repl = {}
            for sym in extra:
                lanes_nodes.append(self.scalar(sym))  # a parameter or datum, or UnboundSymbolError
                repl[sym] = _lane(len(lane_syms))
                lane_syms.append(repl[sym])
            body, lane_syms = body.xreplace(repl), tuple(lane_syms)
        for n in lanes_nodes:
            if n.length not in (1, shape[0] * shape[1]):
                raise ShapeError(f"operand {n.label} of shape {n.shape} does not match {shape} in {key}")
        node = TNode("map", "", shape, any(n.batched for n in lanes_nodes), lanes_nodes, body=body,
                     lanes=lane_syms, partials=map_partials(body, lane_syms))
        return self._add(node, key)

    def _matmul(self, e: sp.MatMul) -> TNode:
        coeff, mats = e.as_coeff_matrices()
        if coeff.free_symbols:  # a scale holding symbols (learnable): a second lane of a map over the product
            return self._map(e, [coeff, sp.MatMul(*mats)] if len(mats) > 1 else [coeff, mats[0]], lambda s: sp.Mul(*s))
        # right-associate so that W2*W1*x stays a chain of matrix-vector products (the product was made
        # before the scale's map above, which made it again: an unused product, and 0·v6ᵀ in formulas)
        acc = self._operand(mats[-1])
        for m in reversed(mats[:-1]):
            acc = self._product(self._operand(m), acc, m, e)
        if coeff != 1:
            return self._map_node(e, [acc[0]], (_lane(0),), coeff * _lane(0), acc[0].shape)
        return acc[0]

    def _operand(self, m) -> tuple[TNode, bool]:
        if isinstance(m, sp.Transpose) and 1 not in m.arg.shape:
            return self.matrix(m.arg), True
        return self.matrix(m), False

    def _product(self, left, right, lm, whole) -> tuple[TNode, bool]:
        (a, ta), (b, tb) = left, right
        ash = a.shape[::-1] if ta else a.shape
        bsh = b.shape[::-1] if tb else b.shape
        ok = (not a.batched and not b.batched) or (not a.batched and bsh[1] == 1) or (not b.batched and ash[0] == 1)
        if not ok or ash[1] != bsh[0]:
            raise UnsupportedModelError(
                f"unsupported product in {whole}: {ash} x {bsh} (batched: {a.batched}, {b.batched}). "
                "Supported: parameter x per-sample column vector, per-sample row vector x parameter."
            )
        node = TNode("matmul", "", (ash[0], bsh[1]), a.batched or b.batched, [a, b], trans=(ta, tb))
        return self._add(node, sp.MatMul(lm, sp.Symbol(f"_acc{len(self.nodes)}"))), False

    # -- scalars -----------------------------------------------------------------
    def scalar(self, e: sp.Expr) -> TNode:
        """A scalar expression possibly containing reductions of matrices."""
        if e in self.memo:
            return self.memo[e]
        kind = lowering_kind(e)
        if kind is not None:  # reductions, losses, matrix elements: registered kinds
            return kind.lower(self, e)
        if isinstance(e, sp.Symbol):
            raise UnboundSymbolError(f"symbol {e} is neither a parameter nor data. Fix: add it to wrt or data.")
        return self._scalar_map(e)

    def _scalar_map(self, e: sp.Expr) -> TNode:
        tensor_atoms = list(_tensor_atoms(e, self.memo))
        repl, lanes_nodes, lane_syms = {}, [], []
        for a in tensor_atoms:
            if a in repl:
                continue
            node = self.memo[a] if a in self.memo else self.scalar(a)
            repl[a] = _lane(len(lane_syms))
            lane_syms.append(repl[a])
            lanes_nodes.append(node)
        body = e.xreplace(repl)
        if body.atoms(sp.MatrixSymbol):
            funcs = sorted({type(m).__name__ for m in body.atoms(sp.Trace, sp.Determinant)})
            why = (f"{' and '.join(funcs)} of a matrix is not supported here. Fix: {_UNLOWERED['']}" if funcs else
                   "a matrix appears outside msum/mean/losses (a loss must be a number, and SymPy reads "
                   "(pred - target)**2 as a matrix power). Fix: reduce entrywise terms to a number, e.g. "
                   "sg.msum(sg.elementwise(lambda z: z**2, pred - target)), or use sg.losses.mse.")
            raise UnsupportedModelError(f"could not lower {e}: {why}")
        unbound = body.free_symbols - set(lane_syms)
        if unbound:
            raise UnboundSymbolError(
                f"symbol(s) {sorted(map(str, unbound))} are neither parameters nor data. "
                "Fix: add them to wrt=[...] or data=[...]."
            )
        if len(lane_syms) == 1 and body == lane_syms[0]:
            return lanes_nodes[0]
        return self._map_node(e, lanes_nodes, tuple(lane_syms), body, (1, 1))


class Lane(sp.Symbol):
    """A map's k-th input inside its body. A class of its own: a user's symbol named s0 inside an
    elementwise function was the same Symbol as the lane, and silently read the map's operand."""


def _lane(k: int) -> sp.Symbol:
    return Lane(f"s{k}", real=True)


def lowering_kind(e: sp.Basic):
    """The registered tensor kind that lowers ``e`` (``symgrad/kinds``), if any."""
    from ..kinds import lowering_kind as find  # the kinds import this module: bind late

    return find(e)


def _tensor_atoms(e: sp.Basic, memo: dict):
    """Reductions, matrix elements and bound scalar symbols, not looking inside reductions."""
    if (not isinstance(e, sp.MatrixExpr) and lowering_kind(e) is not None) or (isinstance(e, sp.Symbol) and e in memo):
        yield e
        return
    for a in e.args:
        yield from _tensor_atoms(a, memo)


def lower(loss: sp.Expr, params, data, labels=None) -> tuple[list[TNode], TNode]:
    """Lower a scalar loss to IR nodes; returns (nodes in topological order, output node)."""
    low = Lowerer(list(params), list(data), labels)
    out = low.scalar(log_sum_exp(loss))
    return low.nodes, out


def lower_matrix(expr: sp.MatrixExpr, params, data, labels=None) -> tuple[list[TNode], TNode]:
    """Lower a matrix-valued model output (for predict)."""
    low = Lowerer(list(params), list(data), labels)
    out = low.matrix(expr)
    return low.nodes, out
