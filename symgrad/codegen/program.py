"""Emit the forward and backward passes of a lowered tensor model as Numba source."""

from __future__ import annotations

from ..derive.ir import TNode
from ..kinds import KINDS
from .dims import Dims, Sizes
from .glue import Glue, Namer, direct
from .maps import MM_HELPERS, MapKernels, runtime_constants
from .names import binds, reads
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


class Program(Sizes):
    """Names arrays, and writes forward/backward statements node by node."""

    def __init__(self, nodes: list[TNode], out: TNode, params: list[TNode], data: list[TNode],
                 reduction: str, printer: NumbaPrinter, *, kernels: MapKernels | None = None,
                 workspace: bool = False, dims: Dims | None = None, scope: str = "",
                 fn: Namer = direct, training: bool = False):
        """``kernels``: share another program's elementwise kernels (one module, one set).
        ``workspace`` (the training kernel): arrays are views of buffers allocated once per
        call, collected in ``ws`` as (name, node); otherwise each call allocates its own.
        ``dims``: the module's table of sizes (``codegen/dims.py``), shared by its programs;
        ``scope`` tells apart programs whose node names mean other nodes (``predict``'s).
        ``fn``: how the statements call functions (``codegen/glue.py``; the training loop's
        inlined step is glue). ``training``: dropout draws masks (otherwise it is the identity)."""
        self.nodes, self.out, self.params, self.data = nodes, out, params, data
        self.reduction = reduction
        self.kernels = kernels or MapKernels(printer)
        self.dims, self.scope = dims or Dims(), scope
        self.need = _needs_grad(nodes)
        self.ws: list[tuple[str, TNode]] | None = [] if workspace else None
        self.fn = fn
        # dropout, batch norm: a noisy model's loss_grad and training step (``noise`` set) train
        self.noisy = any(n.kind in ("dropout", "batchnorm") for n in nodes)
        self.noise = self.noisy and training
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
        return f"{name}.reshape(({self.rows(n)}, {self.cols(n)}))"

    def decl(self, name: str, n: TNode, zeros: bool = False, glue: Glue | None = None) -> list[str]:
        """Lines that bring array ``name`` (shaped like node n's storage) into existence;
        ``glue``: in an outlined loss_grad's own body, which calls through it."""
        if self.ws is None and zeros and glue:  # glue is not optimised: no inline loops
            return [f"    {name} = {self.alloc(n, name)}", f"    {glue('fill0')}({name})"]
        if self.ws is None:
            return [f"    {name} = {self.alloc(n, name, zeros)}"]
        self.ws.append((name, n))
        lines = [f"    {name} = {self.fn('rows')}(ws_{name}, 0, B)" if n.batched else f"    {name} = ws_{name}"]
        return lines + ([f"    {self.fn('fill0')}({name})"] if zeros else [])

    def alloc(self, n: TNode, name: str, zeros: bool = False, rows: str = "B") -> str:
        f = "np.zeros" if zeros else "np.empty"
        shape = f"({rows}, {self.length(n, name)})" if n.batched else self.length(n, name)
        return f"{f}({shape}, dtype=F)"

    # -- forward ----------------------------------------------------------------
    def forward(self) -> list[str]:
        return sum(self.forward_groups(), [])

    def forward_groups(self, skip: TNode | None = None) -> list[list[str]]:
        """The forward statements, one group per node (but ``skip``)."""
        return [[self._title(n), *KINDS[n.kind].forward(self, n)] for n in self.nodes if n.kind != "leaf" and n is not skip]

    @staticmethod
    def _title(n: TNode) -> str:
        return f"    # {n.label}: {n.kind}" + (f" {n.body}" if n.kind == "map" else "")

    def total(self, fn: Namer | None = None) -> str:
        o = self.v(self.out)
        if not self.out.batched:
            return f"{o}[0]"
        vsum = (fn or self.fn)("vsum")
        return f"{vsum}({o}) / F(B)" if self.reduction == "mean" else f"{vsum}({o})"

    # -- backward ---------------------------------------------------------------
    def seed(self) -> str:
        """The loss node's adjoint, the same for every sample."""
        return "F(1.0) / F(B)" if (self.out.batched and self.reduction == "mean") else "F(1.0)"

    def backward_parts(self, skip_out: bool = False, reduced: bool = False,
                       glue: Glue | None = None) -> tuple[list[str], list[list[str]]]:
        """(adjoint allocations, one group of statements per node in reverse order; without
        the loss node's group if ``skip_out``, and without its adjoint array if ``reduced``;
        ``glue``: the allocations are in an outlined loss_grad's own body, which calls through it)."""
        o = self.out
        # the seed is written by a kernel: glue's own loops are not optimised
        lines = [] if reduced else self.decl(self.d(o), o) + [f"    {(glue or self.fn)('fill')}({self.d(o)}, {self.seed()})"]
        for n in self.nodes:
            if n.kind != "leaf" and id(n) in self.need and n is not o:
                lines += self.decl(self.d(n), n, zeros=not self._written_whole(n), glue=glue)
        groups = []
        for n in reversed(self.nodes):
            if n.kind == "leaf" or id(n) not in self.need or (skip_out and n is o):
                continue
            groups.append([f"    # backward through {n.label}", *KINDS[n.kind].backward(self, n)])
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
        o = self.out
        if not self._fused_loss():
            fwd = self.forward_groups()
            prologue, bwd = self.backward_parts()
            return [*sum(fwd, []), f"    {var} = {self.total()}", *prologue, *sum(bwd, [])]
        # the loss node's forward is in its backward kernel: only its array is made here
        fwd, head, decl = self.forward_groups(skip=o), self._title(o), self.decl(o.name, o)
        reduced = self._reduced_loss()
        prologue, bwd = self.backward_parts(skip_out=True, reduced=reduced)
        need = [id(i) in self.need for i in o.inputs]
        if not reduced:
            k = self.kernels.backward(o, need, fused=True, assign=self.assigned(o, need))
            fused = [f"{head}, and its backward", f"    {self.fn(k)}({self.map_args(o, need, [o.name, self.d(o)])})"]
            return [*sum(fwd, []), *decl, *prologue, *fused, f"    {var} = {self.total()}", *sum(bwd, [])]
        k = self.kernels.backward(o, need, fused=True, reduced=True, assign=self.assigned(o, need))
        ebufs = [f"{o.name}_e{j}" for j in range(self.kernels.exp_buffers[k])]
        prologue += sum((self.decl(b, o) for b in ebufs), [])
        mean = " / F(B)" if self.reduction == "mean" else ""
        fused = [f"{head}, its backward and its sum",
                 f"    {var} = {self.fn(k)}({self.map_args(o, need, [self.seed(), *ebufs])}){mean}"]
        return [*sum(fwd, []), *prologue, *fused, *sum(bwd, [])]

    def dflat(self, n):
        return self.flat(n, self.d(n))

    def map_args(self, n: TNode, need: list[bool], middle: list[str]) -> str:
        """A map adjoint kernel's arguments: its lanes, ``middle``, the adjoints it adds to, then
        its run-time constants."""
        args = [self.flat(i, self.v(i)) for i in n.inputs] + middle
        return ", ".join(args + [self.dflat(i) for i, nd in zip(n.inputs, need) if nd] + self.map_constants(n))

    def map_constants(self, n: TNode) -> list[str]:
        """A map kernel's run-time constants (Huber's δ), read from ``dims`` as ``{node}_c0``, ..."""
        return [f"F({self.const(n, f'c{k}', c.value)})" for k, c in enumerate(runtime_constants(n))]

    def dmat(self, n: TNode, lines: list[str]) -> str:
        """A matrix-shaped view of n's adjoint that ``+=`` can target."""
        if n.batched or n.kind == "leaf":
            return self.d(n)
        lines.append(f"    {self.d(n)}_m = {self.mat(n, self.d(n))}")
        return f"{self.d(n)}_m"

    def _written_whole(self, n: TNode) -> bool:
        """Whether n's adjoint is written whole, in place, by the one node that consumes n: a
        product (``acc``) or a map (``assigned``; the loss map that returns its sum, ``step``,
        included). Then it needs no zeros first."""
        if self.consumers.get(id(n), 0) != 1 or not n.batched or n.kind == "leaf":
            return False
        return any(id(m) in self.need and any(i is n for i in m.inputs) and KINDS[m.kind].writes_whole(m, n)
                   for m in self.nodes)

    def assigned(self, m: TNode, need: list[bool]) -> tuple[int, ...]:
        """The lanes of map m whose adjoints it writes whole (``MapKernels.backward``'s assign)."""
        return tuple(k for k, i in enumerate(m.inputs) if need[k] and self._written_whole(i))

    def acc(self, target: TNode, name: str, operands: str) -> str:
        """adj += a @ b (``mm_acc``, BLAS's beta 1); a sole contribution is written (``mm``, beta
        0): nothing else adds to that adjoint, so it needs no zeros first."""
        if self.consumers.get(id(target), 0) == 1:
            return f"    {self.fn('mm')}({operands}, {name})"
        return f"    {self.fn('mm_acc')}({operands}, {name})"

    # -- whole functions ----------------------------------------------------------
    def flat_args(self) -> list[str]:
        """loss_grad's arguments; with dropout, the step's key and first row."""
        return ["dims", "theta", *[self.v(d) for d in self.data], "grad", *(["key", "row0"] if self.noisy else [])]

    def flat_signature(self, defaults: bool = False) -> str:
        """``flat_args`` as a def writes them; ``defaults``: key 0, inference, unless given."""
        args = self.flat_args()
        if defaults and self.noisy:
            args[-2:] = ["key=0", "row0=0"]
        return ", ".join(args)

    def signature(self) -> str:
        """loss and predict take one array per parameter, then the data."""
        return ", ".join(["dims"] + [self.v(p) for p in self.params] + [self.v(d) for d in self.data])

    def flat_views(self, body: list[str], fn=None) -> list[str]:
        """Flat views of the parameter and gradient arrays that ``body`` uses (the maps see
        unbatched arrays flat), made once per call; unused ones would only cost compile time.
        ``fn``, the glue's namer: through the kernel ``ravel`` (``Sizes.views``)."""
        used = reads(body)
        names = [self.v(p) for p in self.params] + [self.d(p) for p in self.params]
        flat = (lambda a: f"{fn('ravel')}({a})") if fn else (lambda a: f"{a}.reshape(-1)")
        return [f"    {a}_f = {flat(a)}" for a in names if f"{a}_f" in used]

    def batch_size(self) -> str:
        return f"    B = {self.v(self.data[0])}.shape[0]" if self.data else "    B = 1"

    def loss_fn(self) -> list[str]:
        fwd = self.forward()
        return ["@jit", f"def loss({self.signature()}):", *self.bind(fwd), self.batch_size(),
                *self.flat_views(fwd), *fwd, f"    return {self.total()}"]

    def outlined(self) -> bool:
        """loss_grad is cut into segment functions, glued by a body that only makes arrays and
        calls them: as many groups as nodes with a forward, and as nodes that need an adjoint."""
        n_fwd = sum(1 for n in self.nodes if n.kind != "leaf")
        n_bwd = sum(1 for n in self.nodes if n.kind != "leaf" and id(n) in self.need)
        return n_fwd + n_bwd > 2 * OUTLINE_NODES

    def loss_grad_fn(self) -> tuple[list[str], list[str], set[str]]:
        """``loss_grad(theta, data..., grad)``: parameters and gradients as flat buffers.
        Returns (the segment functions it calls, when :meth:`outlined`; its own lines; the
        functions it calls as glue, whose twins the module defines: ``codegen/glue.py``)."""
        self.noise = self.noisy  # training: dropout masks (loss, predict: the identity)
        try:
            return self._outlined_loss_grad() if self.outlined() else ([], self._loss_grad(), set())
        finally:
            self.noise = False

    def _loss_grad(self) -> list[str]:
        sig = f"def loss_grad({self.flat_signature(defaults=True)}):"
        body = self.step("total")
        views = self.views("theta", [self.v(p) for p in self.params])
        views += self.views("grad", [self.d(p) for p in self.params])
        head = [self.batch_size(), *views, *self.flat_views(body), "    grad[:] = F(0.0)"]
        return ["@jit", sig, *self.bind(head + body), *head, *body, "    return total"]

    def _outlined_loss_grad(self) -> tuple[list[str], list[str], set[str]]:
        sig = f"def loss_grad({self.flat_signature(defaults=True)}):"
        fwd = self.forward_groups()
        glue = Glue()
        prologue, bwd = self.backward_parts(glue=glue)
        # deep model: segments of a few nodes each, so that no function is long, glued together
        # by a function that Numba does not optimise (docs/decisions.md); each segment makes the
        # parameter views it needs, so the glue passes buffers and offsets, not 4 views per layer
        total = [f"    total = {self.total(glue)}"]
        views = self.segment_views()
        bound = self.flat_args() + ["B", *self.dims.names(self.scope)]
        fdefs, fbody = outline(fwd, bound, total + prologue + sum(bwd, []), "fwd_seg", SEGMENT_NODES, glue, views)
        bound += binds(fbody) + ["total"] + binds(prologue)
        bdefs, bbody = outline(bwd, bound, ["    return total"], "bwd_seg", SEGMENT_NODES, glue, views)
        body = [*fbody, *total, *prologue, *bbody]
        head = [self.batch_size(), f"    {glue('fill0')}(grad)"]
        return fdefs + bdefs, ["@jit_glue", sig, *self.bind(body), *head, *body, "    return total"], glue.used

    def predict_fn(self) -> list[str]:
        fwd = self.forward()
        return ["@jit", f"def predict({self.signature()}):", *self.bind(fwd), self.batch_size(),
                *self.flat_views(fwd), *fwd, f"    return {self.v(self.out)}"]

    def helpers(self) -> str:
        """The shared contraction helpers, then the helpers of the kinds this model uses (once)."""
        used = {n.kind for n in self.nodes}
        extra = dict.fromkeys(k.helpers for name, k in KINDS.items() if name in used and k.helpers)
        return MM_HELPERS + "".join(extra)
