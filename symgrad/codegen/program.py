"""Emit the forward and backward passes of a lowered tensor model as Numba source."""

from __future__ import annotations

import re

from ..derive.ir import TNode
from .maps import FUSED_HELPERS, MM_HELPERS, MapKernels
from .outline import outline
from .printer import NumbaPrinter

#: Above this many nodes, loss_grad is split into segment functions of SEGMENT_NODES nodes.
#: Two nodes (one dense layer: product, then bias and activation) built a 32-layer net 10-17%
#: faster than six, at the same speed per epoch (docs/decisions.md).
OUTLINE_NODES = 24
SEGMENT_NODES = 2


def _needs_grad(nodes: list[TNode]) -> set[int]:
    """ids of nodes that depend on a parameter (only those get adjoints)."""
    need: set[int] = set()
    for n in nodes:
        if (n.kind == "leaf" and n.role == "param") or any(id(i) in need for i in n.inputs):
            need.add(id(n))
    return need


class Program:
    """Names arrays, and writes forward/backward statements node by node."""

    def __init__(self, nodes: list[TNode], out: TNode, params: list[TNode], data: list[TNode],
                 reduction: str, printer: NumbaPrinter):
        self.nodes, self.out, self.params, self.data = nodes, out, params, data
        self.reduction = reduction
        self.kernels = MapKernels(printer)
        self.need = _needs_grad(nodes)
        # workspace mode (the training kernel): arrays are views of buffers allocated once per
        # call, listed here as (name, node); None means allocate per call (loss, loss_grad)
        self.ws: list[tuple[str, TNode]] | None = None
        self.segments: list[str] = []  # segment functions of an outlined loss_grad
        self.glue = False  # loss_grad is outlined: its own body only creates arrays and calls
        self.callees: set[str] = set()  # functions the glue calls, through callee() overloads
        self.consumers: dict[int, int] = {}
        for n in nodes:
            for i in n.inputs:
                if id(n) in self.need:
                    self.consumers[id(i)] = self.consumers.get(id(i), 0) + 1

    # -- array names ----------------------------------------------------------
    def v(self, n: TNode) -> str:
        return f"p_{n.name}" if n.kind == "leaf" and n.role == "param" else (
            f"x_{n.name}" if n.kind == "leaf" else n.name)

    def d(self, n: TNode) -> str:
        return f"g_{n.name}" if n.kind == "leaf" else f"d_{n.name}"

    def flat(self, n: TNode, name: str) -> str:
        """Maps see unbatched arrays as flat vectors."""
        return name if n.batched else f"{name}_f" if n.kind == "leaf" else name

    def mat(self, n: TNode, name: str) -> str:
        """Products see unbatched arrays in their matrix shape."""
        if n.batched or n.kind == "leaf":
            return name
        return f"{name}.reshape(({n.shape[0]}, {n.shape[1]}))"

    def decl(self, name: str, n: TNode, zeros: bool = False) -> list[str]:
        """Lines that bring array ``name`` (shaped like node n's storage) into existence."""
        if self.ws is None and zeros and self.glue:  # glue is not optimised: no inline loops
            return [f"    {name} = {self.alloc(n)}", f"    {self.call('fill0')}({name})"]
        if self.ws is None:
            return [f"    {name} = {self.alloc(n, zeros)}"]
        self.ws.append((name, n))
        lines = [f"    {name} = ws_{name}[:B]" if n.batched else f"    {name} = ws_{name}"]
        return lines + ([f"    fill0({name})"] if zeros else [])

    def call(self, name: str) -> str:
        """How the glue calls ``name``: through its overload twin, ``name_c``."""
        self.callees.add(name)
        return f"{name}_c"

    def callee_aliases(self) -> str:
        return "\n".join(f"{n}_c = callee({n})" for n in sorted(self.callees))

    def alloc(self, n: TNode, zeros: bool = False) -> str:
        f = "np.zeros" if zeros else "np.empty"
        shape = f"(B, {n.length})" if n.batched else f"{n.length}"
        return f"{f}({shape}, dtype=F)"

    # -- forward ----------------------------------------------------------------
    def forward(self) -> list[str]:
        return sum(self.forward_groups(), [])

    def forward_groups(self) -> list[list[str]]:
        """The forward statements, one group per node."""
        groups = []
        for n in self.nodes:
            if n.kind == "leaf":
                continue
            head = f"    # {n.label}: {n.kind}" + (f" {n.body}" if n.kind == "map" else "")
            groups.append([head, *getattr(self, f"_fwd_{n.kind}")(n)])
        return groups

    def _fwd_map(self, n):
        k = self.kernels.forward(n)
        args = [self.flat(i, self.v(i)) for i in n.inputs]
        return self.decl(n.name, n) + [f"    {k}({', '.join(args + [n.name])})"]

    def _dot_operands(self, n):
        (a, b), (ta, tb) = n.inputs, n.trans
        A = self.mat(a, self.v(a)) + (".T" if ta else "")
        Bm = self.mat(b, self.v(b)) + (".T" if tb else "")
        return a, b, A, Bm

    def _fwd_matmul(self, n):
        a, b, A, Bm = self._dot_operands(n)
        if not a.batched and b.batched:  # W @ x for every sample x: X @ W.T
            return self.decl(n.name, n) + [f"    mm({Bm}, {A}.T, {n.name})"]
        expr = f"np.dot({A}, {Bm})"
        return [f"    {n.name} = {expr}" + ("" if n.batched else ".reshape(-1)")]

    def _fwd_sum(self, n):
        (a,) = n.inputs
        if not n.batched:
            return [f"    {n.name} = np.empty(1, dtype=F)", f"    {n.name}[0] = {self.v(a)}.sum()"]
        return self.decl(n.name, n) + ["    for i in range(B):", "        acc = F(0.0)",
                f"        for j in range({self.v(a)}.shape[1]):", f"            acc = radd(acc, {self.v(a)}[i, j])",
                f"        {n.name}[i, 0] = acc"]

    def _fwd_select(self, n):
        (a,) = n.inputs
        src = f"{self.v(a)}[:, {n.index}:{n.index + 1}]" if n.batched else f"{self.flat(a, self.v(a))}[{n.index}:{n.index + 1}]"
        return [f"    {n.name} = np.ascontiguousarray({src})"]

    def _fwd_softmax_ce(self, n):
        z, t = n.inputs
        return self.decl(n.name, n) + self.decl(f"{n.name}_p", z) + [
                f"    softmax_ce_fwd({self.v(z)}, {self.v(t)}, {n.name}, {n.name}_p)"]

    def _fwd_softmax(self, n):
        (z,) = n.inputs
        return self.decl(n.name, n) + self.decl(f"{n.name}_lse", TNode("sum", "", (1, 1), True)) + [
                f"    logsumexp_fwd({self.v(z)}, {n.name}_lse, {n.name})"]

    def _bwd_softmax(self, n):
        (z,) = n.inputs
        return [f"    softmax_bwd({n.name}, {self.d(n)}, {self.d(z)})"]

    def _fwd_logsumexp(self, n):
        (z,) = n.inputs
        return self.decl(n.name, n) + self.decl(f"{n.name}_p", z) + [
                f"    logsumexp_fwd({self.v(z)}, {n.name}, {n.name}_p)"]

    def total(self, vsum: str = "vsum") -> str:
        o = self.v(self.out)
        if not self.out.batched:
            return f"{o}[0]"
        return f"{vsum}({o}) / F(B)" if self.reduction == "mean" else f"{vsum}({o})"

    # -- backward ---------------------------------------------------------------
    def seed(self) -> str:
        """The loss node's adjoint, the same for every sample."""
        return "F(1.0) / F(B)" if (self.out.batched and self.reduction == "mean") else "F(1.0)"

    def backward_parts(self, skip_out: bool = False, reduced: bool = False) -> tuple[list[str], list[list[str]]]:
        """(adjoint allocations, one group of statements per node in reverse order; without
        the loss node's group if ``skip_out``, and without its adjoint array if ``reduced``)."""
        o = self.out
        lines = [] if reduced else self.decl(self.d(o), o) + [f"    {self.d(o)}[:] = {self.seed()}"]
        for n in self.nodes:
            if n.kind != "leaf" and id(n) in self.need and n is not o:
                lines += self.decl(self.d(n), n, zeros=not self._written_whole(n))
        groups = []
        for n in reversed(self.nodes):
            if n.kind == "leaf" or id(n) not in self.need or (skip_out and n is o):
                continue
            groups.append([f"    # backward through {n.label}", *getattr(self, f"_bwd_{n.kind}")(n)])
        return lines, groups

    def _fused_loss(self) -> bool:
        o = self.out
        return o.kind == "map" and o.batched and id(o) in self.need and self.nodes[-1] is o

    def _reduced_loss(self) -> bool:
        """The loss map can return its sum (``MapKernels.backward(reduced=True)``)."""
        return self._fused_loss() and self.out.length == 1

    def step(self, var: str) -> list[str]:
        """Forward, ``var = `` the loss, then backward. When the loss node is a map, its forward
        and backward are one loop (``MapKernels.backward(fused=True)``): its seed does not
        depend on its value, so nothing needs the value first; with one value per sample, that
        loop also sums the values, and neither they nor the seed are stored."""
        fwd = self.forward_groups()
        o = self.out
        if not self._fused_loss():
            prologue, bwd = self.backward_parts()
            return [*sum(fwd, []), f"    {var} = {self.total()}", *prologue, *sum(bwd, [])]
        reduced = self._reduced_loss()
        prologue, bwd = self.backward_parts(skip_out=True, reduced=reduced)
        need = [id(i) in self.need for i in o.inputs]
        head, *decl, _ = fwd[-1]  # the loss node's array, without its forward call
        if not reduced:
            k = self.kernels.backward(o, need, fused=True, assign=self._assign(o, need))
            fused = [f"{head}, and its backward", f"    {k}({self._map_args(o, need, [o.name, self.d(o)])})"]
            return [*sum(fwd[:-1], []), *decl, *prologue, *fused, f"    {var} = {self.total()}", *sum(bwd, [])]
        k = self.kernels.backward(o, need, fused=True, reduced=True, assign=self._assign(o, need))
        ebufs = [f"{o.name}_e{j}" for j in range(self.kernels.exp_buffers[k])]
        prologue += sum((self.decl(b, o) for b in ebufs), [])
        mean = " / F(B)" if self.reduction == "mean" else ""
        fused = [f"{head}, its backward and its sum",
                 f"    {var} = {k}({self._map_args(o, need, [self.seed(), *ebufs])}){mean}"]
        return [*sum(fwd[:-1], []), *prologue, *fused, *sum(bwd, [])]

    def _dflat(self, n):
        return self.flat(n, self.d(n))

    def _map_args(self, n: TNode, need: list[bool], middle: list[str]) -> str:
        """A map adjoint kernel's arguments: its lanes, ``middle``, then the adjoints it adds to."""
        args = [self.flat(i, self.v(i)) for i in n.inputs] + middle
        return ", ".join(args + [self._dflat(i) for i, nd in zip(n.inputs, need) if nd])

    def _bwd_map(self, n):
        need = [id(i) in self.need for i in n.inputs]
        k = self.kernels.backward(n, need, assign=self._assign(n, need))
        return [f"    {k}({self._map_args(n, need, [n.name, self.d(n)])})"]

    def _dmat(self, n: TNode, lines: list[str]) -> str:
        """A matrix-shaped view of n's adjoint that ``+=`` can target."""
        if n.batched or n.kind == "leaf":
            return self.d(n)
        lines.append(f"    {self.d(n)}_m = {self.mat(n, self.d(n))}")
        return f"{self.d(n)}_m"

    def _bwd_matmul(self, n):
        a, b, A, Bm = self._dot_operands(n)
        (ta, tb), dn = n.trans, self.d(n)
        lines: list[str] = []
        da = self._dmat(a, lines) if id(a) in self.need else ""
        db = self._dmat(b, lines) if id(b) in self.need else ""
        if not a.batched and b.batched:  # out = X @ Aeff.T
            if id(b) in self.need:
                lines.append(self._acc(b, db, f"{dn}, {A}"))
            if id(a) in self.need:
                lines.append(self._acc(a, da, f"{self.v(b)}.T, {dn}" if ta else f"{dn}.T, {self.v(b)}"))
            return lines
        dn2 = dn if n.batched else self.mat(n, dn)
        if id(a) in self.need:
            lines.append(f"    mm_acc({Bm}, {dn2}.T, {da})" if ta else f"    mm_acc({dn2}, {Bm}.T, {da})")
        if id(b) in self.need:
            lines.append(f"    mm_acc({dn2}.T, {A}, {db})" if tb else f"    mm_acc({A}.T, {dn2}, {db})")
        return lines

    def _written_whole(self, n: TNode) -> bool:
        """Whether n's adjoint is written whole, in place, by the one node that consumes n: a
        product (``_acc``) or a map (``_assign``; the loss map that returns its sum, ``step``,
        included). Then it needs no zeros first."""
        if self.consumers.get(id(n), 0) != 1 or not n.batched or n.kind == "leaf":
            return False
        return any(id(m) in self.need and any(i is n for i in m.inputs) and self._writes_whole(m, n)
                   for m in self.nodes)

    @staticmethod
    def _writes_whole(m: TNode, n: TNode) -> bool:
        """Whether consumer m's backward writes every element of input n's adjoint once: as the
        batch operand of a product, or as a lane of a map of n's shape (a narrower lane is
        broadcast, and its adjoint summed over the broadcast)."""
        if m.kind == "matmul":
            return m.inputs[1] is n and m.inputs[0] is not n and not m.inputs[0].batched
        return m.kind == "map" and m.batched and m.length == n.length

    def _assign(self, m: TNode, need: list[bool]) -> tuple[int, ...]:
        """The lanes of map m whose adjoints it writes whole (``MapKernels.backward``'s assign)."""
        return tuple(k for k, i in enumerate(m.inputs) if need[k] and self._written_whole(i))

    def _acc(self, target: TNode, name: str, operands: str) -> str:
        """adj += a @ b (``mm_acc``, BLAS's beta 1); a sole contribution is written (``mm``, beta
        0): nothing else adds to that adjoint, so it needs no zeros first."""
        if self.consumers.get(id(target), 0) == 1:
            return f"    mm({operands}, {name})"
        return f"    mm_acc({operands}, {name})"

    def _bwd_sum(self, n):
        (a,) = n.inputs
        if not n.batched:
            # loops, not slice arithmetic: Numba's array-into-slice assignment costs seconds to compile
            return [f"    for j in range({self._dflat(a)}.shape[0]):", f"        {self._dflat(a)}[j] += {self.d(n)}[0]"]
        return ["    for i in range(B):", f"        for j in range({self.d(a)}.shape[1]):",
                f"            {self.d(a)}[i, j] += {self.d(n)}[i, 0]"]

    def _bwd_select(self, n):
        (a,) = n.inputs
        if n.batched:
            return ["    for i in range(B):", f"        {self.d(a)}[i, {n.index}] += {self.d(n)}[i, 0]"]
        return [f"    {self._dflat(a)}[{n.index}] += {self.d(n)}[0]"]

    def _bwd_softmax_ce(self, n):
        z, t = n.inputs
        lines = []
        if id(z) in self.need:  # the fused rule: d/dz = softmax(z) - t
            lines.append(f"    softmax_ce_bwd({self.d(n)}, {n.name}_p, {self.v(t)}, {self.d(z)})")
        if id(t) in self.need:
            lines += ["    for i in range(B):", "        for j in range(%s.shape[1]):" % self.v(z),
                      f"            {self.d(t)}[i, j] -= {self.d(n)}[i, 0] * {self.v(z)}[i, j]"]
        return lines

    def _bwd_logsumexp(self, n):
        (z,) = n.inputs
        return [f"    scale_rows_add({self.d(n)}, {n.name}_p, {self.d(z)})"]

    # -- whole functions ----------------------------------------------------------
    def flat_signature(self) -> str:
        return ", ".join(["theta", *[self.v(d) for d in self.data], "grad"])

    def signature(self) -> str:
        """loss and predict take one array per parameter, then the data."""
        return ", ".join([self.v(p) for p in self.params] + [self.v(d) for d in self.data])

    def flat_views(self, body: list[str]) -> list[str]:
        """Flat views of the parameter and gradient arrays that ``body`` uses (the maps see
        unbatched arrays flat), made once per call; unused ones would only cost compile time."""
        used = set(re.findall(r"\b[pg]_\w+_f\b", "\n".join(body)))
        names = [self.v(p) for p in self.params] + [self.d(p) for p in self.params]
        return [f"    {a}_f = {a}.reshape(-1)" for a in names if f"{a}_f" in used]

    def offsets(self) -> list[int]:
        """Where each parameter starts in the flat buffers (and where the last one ends)."""
        out = [0]
        for p in self.params:
            out.append(out[-1] + p.length)
        return out

    def views(self, flat: str, names: list[str]) -> list[str]:
        """Each parameter-shaped array as a view into one flat buffer (offsets known statically)."""
        at = self.offsets()
        return [f"    {name} = {flat}[{at[k]}:{at[k + 1]}].reshape(({p.shape[0]}, {p.shape[1]}))"
                for k, (p, name) in enumerate(zip(self.params, names))]

    def segment_views(self) -> tuple[dict[str, str], dict[str, int]]:
        """For outlined segments: each parameter/gradient view (and flat view) as a statement
        over ``theta``/``grad`` and the parameter's offset and shape as variables, so that a
        segment makes the views it uses and layers that differ only in size share one segment.
        Returns (view name -> statement, variable -> value)."""
        views, values = {}, {}
        for p, at in zip(self.params, self.offsets()):
            o, r, c = (f"{v}_{p.name}" for v in "orc")
            values.update({o: at, r: p.shape[0], c: p.shape[1]})
            for name, buf in ((self.v(p), "theta"), (self.d(p), "grad")):
                views[name] = f"    {name} = {buf}[{o}:{o} + {r} * {c}].reshape(({r}, {c}))"
                views[f"{name}_f"] = f"    {name}_f = {buf}[{o}:{o} + {r} * {c}]"
        return views, values

    def batch_size(self) -> str:
        return f"    B = {self.v(self.data[0])}.shape[0]" if self.data else "    B = 1"

    def loss_fn(self) -> list[str]:
        fwd = self.forward()
        return ["@jit", f"def loss({self.signature()}):", self.batch_size(), *self.flat_views(fwd),
                *fwd, f"    return {self.total()}"]

    def loss_grad_fn(self) -> list[str]:
        """``loss_grad(theta, data..., grad)``: parameters and gradients as flat buffers."""
        # as many groups as nodes with a forward, and as nodes that need an adjoint
        n_fwd = sum(1 for n in self.nodes if n.kind != "leaf")
        n_bwd = sum(1 for n in self.nodes if n.kind != "leaf" and id(n) in self.need)
        self.glue = n_fwd + n_bwd > 2 * OUTLINE_NODES
        sig = f"def loss_grad({self.flat_signature()}):"
        if not self.glue:
            body = self.step("total")
            views = self.views("theta", [self.v(p) for p in self.params])
            views += self.views("grad", [self.d(p) for p in self.params])
            head = [self.batch_size(), *views, *self.flat_views(body), "    grad[:] = F(0.0)"]
            return ["@jit", sig, *head, *body, "    return total"]
        fwd = self.forward_groups()
        prologue, bwd = self.backward_parts()
        # deep model: segments of a few nodes each, so that no function is long, glued together
        # by a function that Numba does not optimise (docs/decisions.md); each segment makes the
        # parameter views it needs, so the glue passes buffers and offsets, not 4 views per layer
        total = [f"    total = {self.total(self.call('vsum'))}"]
        views, values = self.segment_views()
        bound = self.flat_signature().split(", ") + ["B", *values]
        fdefs, fbody = outline(fwd, bound, total + prologue + sum(bwd, []), "fwd_seg", SEGMENT_NODES, self.call, views)
        bound += [t.strip() for ln in fbody for t in ln.split("=")[0].split(",") if "=" in ln]
        bound += ["total"] + [ln.split("=")[0].strip() for ln in prologue if "=" in ln and "[" not in ln.split("=")[0]]
        bdefs, bbody = outline(bwd, bound, ["    return total"], "bwd_seg", SEGMENT_NODES, self.call, views)
        self.segments = fdefs + bdefs
        body = [*fbody, *total, *prologue, *bbody]
        used = set(re.findall(r"\b[orc]_\w+", "\n".join(body)))
        head = [self.batch_size(), *[f"    {v} = {at}" for v, at in values.items() if v in used],
                f"    {self.call('fill0')}(grad)"]
        return ["@jit_glue", sig, *head, *body, "    return total"]

    def predict_fn(self) -> list[str]:
        fwd = self.forward()
        return ["@jit", f"def predict({self.signature()}):", self.batch_size(), *self.flat_views(fwd),
                *fwd, f"    return {self.v(self.out)}"]

    def helpers(self) -> str:
        fused = any(n.kind in ("softmax_ce", "logsumexp", "softmax") for n in self.nodes)
        return MM_HELPERS + (FUSED_HELPERS if fused else "")
