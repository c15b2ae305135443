"""Tensor IR -> one readable Numba module: BLAS for contractions, loops for maps.

Elementwise kernels are deduplicated by (body, lane layout), so an 8-layer ReLU net
compiles one ReLU kernel, and the source size depends on depth, never on width.
"""

from __future__ import annotations

import sympy as sp

from ..derive.ir import OUT, TNode
from ..lang.constants import RuntimeConstant
from ..lang.ops import EXP_FIRST, HELPERS
from .printer import NumbaPrinter, py_name
from .scalar import _block

# Contractions go through two shared functions (with dozens of layers, lowering a product at
# every call site dominated compile time), each one BLAS call (symgrad/native/blas.py).
MM_HELPERS = '''
@jit
def mm(a, b, out):
    blas.gemm(a, b, out, F(0.0))


@jit
def mm_acc(a, b, out):
    blas.gemm(a, b, out, F(1.0))


@jit
def fill0(a):
    a[...] = F(0.0)


@jit
def fill(a, v):
    a[...] = v


''' + HELPERS["radd"] + '''

@jit_reduce
def vsum(a):
    # a float64 total whatever F is: float32 running sums over many rows lose digits
    flat = a.reshape(-1)
    s = np.float64(0.0)
    for k in range(flat.shape[0]):
        s += flat[k]
    return F(s)
'''

def _exp_first(exprs: list[sp.Expr]) -> tuple[list[sp.Expr], list[tuple[sp.Symbol, sp.Expr]]]:
    """``exprs`` with each op that computes e^-|a| first (``ops.EXP_FIRST``) in its form that
    takes it as an argument, and the (symbol, a) pairs, one per distinct a."""
    found = sorted({f.args[0] for e in exprs for f in e.atoms(*EXP_FIRST)}, key=sp.default_sort_key)
    first = [(sp.Symbol(f"e{k}", real=True), a) for k, a in enumerate(found)]
    sym = {a: e for e, a in first}
    swap = {f: EXP_FIRST[type(f)](*f.args, sym[f.args[0]]) for e in exprs for f in e.atoms(*EXP_FIRST)}
    return [e.xreplace(swap) for e in exprs], first


def runtime_constants(node: TNode) -> list[RuntimeConstant]:
    """The run-time constants (Huber's δ) in a map's body and partials, in the order its kernel
    takes them: each is a kernel argument ``c0, c1, ...``, so the text never holds its value."""
    found = set().union(*(e.atoms(RuntimeConstant) for e in [node.body, *node.partials]))
    return sorted(found, key=lambda c: (type(c).__name__, c.value))


def _as_arguments(node: TNode, exprs: list[sp.Expr]) -> tuple[list[sp.Expr], list[str]]:
    """``exprs`` with the node's run-time constants as the symbols ``c0, c1, ...``, and those names."""
    names = {c: sp.Symbol(f"c{k}", real=True) for k, c in enumerate(runtime_constants(node))}
    return [e.xreplace(names) for e in exprs], [str(s) for s in names.values()]


def _idx(node: TNode, out_batched: bool) -> str:
    if node.batched:
        return "[i, 0]" if node.length == 1 else "[i, j]"
    return "[0]" if node.length == 1 else "[j]"


class MapKernels:
    """Generates and deduplicates elementwise kernels."""

    def __init__(self, printer: NumbaPrinter):
        self.p = printer
        self.sources: list[str] = []
        self.names: dict[tuple, str] = {}
        self.exp_buffers: dict[str, int] = {}  # kernel -> how many e^-|a| buffers it takes

    def _exp_loop(self, node: TNode, loops: list[str], ind: str, first: list) -> list[str]:
        """A loop of its own that stores e^-|a| for every sample, for each a in ``first``:
        where exp feeds log1p in one loop body (softplus, BCE), that loop is bound by their
        chained latency; apart, both loops run at the CPU's throughput (docs/decisions.md)."""
        used = set().union(*(a.free_symbols for _, a in first))
        stores = [f"{ind}ebuf{k}[i, 0] = {self.p.doprint(sp.exp(-sp.Abs(a)))}" for k, (_, a) in enumerate(first)]
        return [*loops, *self._loads(node, ind, used), *stores]

    @staticmethod
    def _loads(node: TNode, ind: str, used: set | None = None) -> list[str]:
        """Each lane's value at this sample (only those in ``used``, if given)."""
        return [f"{ind}{py_name(s)} = l{k}{_idx(n, node.batched)}"
                for k, (s, n) in enumerate(zip(node.lanes, node.inputs)) if used is None or s in used]

    def _loops(self, node: TNode, over: str = "out") -> tuple[list[str], str, str]:
        """The loops over ``over``'s entries (the output, or a lane when there is none)."""
        if node.batched and node.length == 1:  # one loop over samples, so that it vectorises
            return [f"    for i in range({over}.shape[0]):"], " " * 8, "[i, 0]"
        if node.batched:
            return ([f"    for i in range({over}.shape[0]):", f"        for j in range({over}.shape[1]):"],
                    " " * 12, "[i, j]")
        return [f"    for j in range({over}.shape[0]):"], " " * 8, "[j]"

    def forward(self, node: TNode) -> str:
        key = ("f", sp.srepr(node.body), node.batched, tuple((n.batched, n.length == 1) for n in node.inputs))
        if key not in self.names:
            name = f"map{len(self.names)}_fwd"
            args = [f"l{k}" for k in range(len(node.inputs))]
            (expr,), consts = _as_arguments(node, [node.body])
            loops, ind, oi = self._loops(node)
            lines = ["@jit", f"def {name}({', '.join(args + ['out', *consts])}):", f"    # out = {node.body}", *loops]
            lines += self._loads(node, ind)
            body, (final,) = _block(self.p, [expr], ind)
            lines += body + [f"{ind}out{oi} = {final}"]
            self.sources.append("\n".join(lines))
            self.names[key] = name
        return self.names[key]

    def backward(self, node: TNode, need: list[bool], fused: bool = False, reduced: bool = False,
                 assign: tuple[int, ...] = ()) -> str:
        """The adjoint kernel of a map. ``fused`` also computes the forward value in the same
        loop (for the loss node, whose seed is known before its forward): the data is read once,
        and the subexpressions that the value and its partials share are computed once.
        ``reduced`` (a fused loss node of one value per sample, whose seed is the same for every
        sample) takes the seed as a number and returns the sum of the values: neither the values
        nor the seed are stored. Lanes in ``assign`` have no other contribution to their
        adjoint, which is written (``=``), not added to, so that it needs no zeros first."""
        key = ("b", sp.srepr(node.body), node.batched, tuple((n.batched, n.length == 1) for n in node.inputs),
               tuple(need), fused, reduced, assign)
        if key not in self.names:
            name = f"map{len(self.names)}_{'fwdbwd' if fused else 'bwd'}"
            # reduced: no out array, so the loop runs over a batched lane's rows
            over = next(f"l{k}" for k, n in enumerate(node.inputs) if n.batched) if reduced else "out"
            loops, ind, oi = self._loops(node, over)
            wanted = [k for k, nd in enumerate(need) if nd]
            # a length-1 node's loop runs over samples, so an unbatched lane's adjoint is a sum
            # over that loop: kept in a local and added with radd, so that the loop vectorises
            summed = [k for k in wanted if node.batched and node.length == 1 and not node.inputs[k].batched]
            exprs = [node.partials[k] for k in wanted]
            if fused:  # the value first; partials that name it use the same subexpressions
                exprs = [node.body] + [e.xreplace({OUT: node.body}) for e in exprs]
            exprs, consts = _as_arguments(node, exprs)
            first: list[tuple[sp.Symbol, sp.Expr]] = []
            if reduced:
                exprs, first = _exp_first(exprs)
                self.exp_buffers[name] = len(first)
            ebufs = [f"ebuf{k}" for k in range(len(first))]
            args = [f"l{k}" for k in range(len(node.inputs))] + (["seed", *ebufs] if reduced else ["out", "dout"])
            args += [f"d{k}" for k in wanted] + consts
            lines = ["@jit", f"def {name}({', '.join(args)}):"]
            lines += self._exp_loop(node, loops, ind, first) if first else []
            # float64 totals (as in vsum) whatever F is
            lines += [f"    acc{k} = np.float64(0.0)" for k in summed]
            lines += ["    total = np.float64(0.0)", "    g = seed"] if reduced else []
            lines += loops + self._loads(node, ind)
            lines += [] if fused else [f"{ind}{py_name(OUT)} = out{oi}"]
            lines += [f"{ind}{py_name(e)} = ebuf{k}[i, 0]" for k, (e, _) in enumerate(first)]
            lines += [] if reduced else [f"{ind}g = dout{oi}"]
            lines += [f"{ind}# d out / d {node.lanes[k]} = {node.partials[k]}" for k in wanted]
            body, finals = _block(self.p, exprs, ind)
            lines += body
            if fused:
                lines.append(f"{ind}total = radd(total, {finals[0]})" if reduced else f"{ind}out{oi} = {finals[0]}")
                finals = finals[1:]
            lines += [f"{ind}acc{k} = radd(acc{k}, g * ({f}))" if k in summed else
                      f"{ind}d{k}{_idx(node.inputs[k], node.batched)} {'=' if k in assign else '+='} g * ({f})"
                      for k, f in zip(wanted, finals)]
            lines += [f"    d{k}[0] += F(acc{k})" for k in summed]
            lines += ["    return F(total)"] if reduced else []
            self.sources.append("\n".join(lines))
            self.names[key] = name
        return self.names[key]
