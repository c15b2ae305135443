"""Position-wise kinds of sequences (``symgrad.lang.rowwise``): ``rowmatmul`` and ``broadcast``.

- ``rowmatmul``, ``Z = X·W`` for each position: one BLAS product over every position of the
  minibatch forward; backward ``∂ℓ/∂W = Xᵀ·δ_Z`` and ``δ_X = δ_Z·Wᵀ`` (rows are positions, as
  attention prints them: ``explain.attention``).
- ``broadcast``, a parameter vector of d entries repeated at T positions, an unbatched node of
  T·d entries that elementwise maps take as a lane of their own length (a bias, LayerNorm's γ
  and β); backward its adjoint summed over the positions, printed ``Σ_t``. It prints as the
  vector itself: ``z = n·W + b`` (broadcasting implicit, as in NumPy).
- ``per_channel``, a parameter of one entry per channel at each of an image's H·W positions
  (batch norm's γ and β on images), its adjoint summed over each channel's positions, ``Σ_hw``.
- ``residual``, ``h + f`` kept whole in SymPy, lowers to the elementwise sum (a map node).

The kernels live in symgrad/native/rowwise.py, compiled once per machine.
"""

from __future__ import annotations

import sympy as sp

from ..derive.ir import TNode
from ..errors import UnsupportedModelError
from ..explain.norms import SumOverChannel, SumOverPositions
from ..explain.notation import MatProd, Tr, show
from ..lang.rowwise import broadcast, per_channel, residual, rowmatmul
from .base import Kind, native, register
from .elementwise import Map

ROWWISE = native("rowwise")
EMPTY = "np.empty((0, 0), dtype=F)"  # the adjoint of an input nobody needs


def _no_tangent(n) -> None:
    raise UnsupportedModelError(
        f"no Hessian-vector rule through the position-wise {n.kind} ({n.label}) yet. Fix: train with a first-order "
        "optimizer (sg.fit, f.grad), or estimate H·v by a difference of two gradients.")


@register
class RowMatMul(Kind):
    name = "rowmatmul"
    lowers = (rowmatmul,)
    helpers = ROWWISE

    def lower(self, lowerer, e: rowmatmul) -> TNode:
        x, w = lowerer.matrix(e.args[0]), lowerer.matrix(e.args[1])
        if not x.batched or w.batched:
            raise UnsupportedModelError(
                f"{e}: a position-wise product takes a sequence that depends on the data times a weight that does "
                f"not, got {x.label} ({'per sample' if x.batched else 'the same for every sample'}) and {w.label} "
                f"({'per sample' if w.batched else 'a parameter'}). Fix: the input in data=[...], W in wrt=[...].")
        return lowerer._add(TNode("rowmatmul", "", (int(e.shape[0]), 1), True, [x, w]), e)

    def forward(self, prog, n) -> list[str]:
        x, w = n.inputs
        return prog.decl(n.name, n) + [f"    rowwise.rowmatmul_fwd({prog.v(x)}, {prog.mat(w, prog.v(w))}, {n.name})"]

    def backward(self, prog, n) -> list[str]:
        x, w = n.inputs
        lines: list[str] = []
        dw = prog.dmat(w, lines) if id(w) in prog.need else EMPTY
        dx = prog.d(x) if id(x) in prog.need else EMPTY
        assign = 0 in prog.assigned(n, [id(x) in prog.need, False])
        return lines + [f"    rowwise.rowmatmul_bwd({prog.v(x)}, {prog.mat(w, prog.v(w))}, {prog.d(n)}, {dx}, {dw}, "
                        f"{assign})"]

    def writes_whole(self, m, n) -> bool:
        return n is m.inputs[0] and m.inputs[1] is not n  # δ_X, once

    def delta(self, c, n) -> None:
        x, w = n.inputs
        c.add(w, MatProd(Tr(show(x)), c.ref(n)))
        c.add(x, MatProd(c.ref(n), Tr(show(w))))

    def show(self, n) -> sp.Expr:
        return MatProd(*(show(i) for i in n.inputs))

    def tangent(self, b, n, ins):
        _no_tangent(n)


@register
class Broadcast(Kind):
    name, fn, summed = "broadcast", "broadcast", SumOverPositions
    lowers = (broadcast,)
    helpers = ROWWISE

    def lower(self, lowerer, e: broadcast) -> TNode:
        v = lowerer.matrix(e.args[0])
        if v.batched:
            raise UnsupportedModelError(
                f"{e}: only a vector that is the same for every sample (a parameter) is broadcast over the positions, "
                f"got {v.label}, which depends on the data. Fix: put it in wrt=[...].")
        return lowerer._add(TNode(self.name, "", (int(e.shape[0]), 1), False, [v],
                                  geom=(e.positions, int(v.length))), e)

    def forward(self, prog, n) -> list[str]:
        (v,) = n.inputs
        return prog.decl(n.name, n) + [f"    rowwise.{self.fn}_fwd({prog.flat(v, prog.v(v))}, {n.name})"]

    def backward(self, prog, n) -> list[str]:
        (v,) = n.inputs
        return [f"    rowwise.{self.fn}_bwd({prog.d(n)}, {prog.dflat(v)})"]

    def delta(self, c, n) -> None:
        c.add(n.inputs[0], self.summed(c.ref(n)))

    def show(self, n) -> sp.Expr:
        return show(n.inputs[0])

    def tangent(self, b, n, ins):
        _no_tangent(n)


@register
class PerChannel(Broadcast):
    """A parameter of one entry per channel at each of the channel's S positions (``per_channel``:
    batch norm's γ and β on images); backward its adjoint summed over each channel's positions."""

    name, fn, summed = "per_channel", "per_channel", SumOverChannel
    lowers = (per_channel,)


@register
class Residual(Map):
    """Lowers ``residual(h, f)`` to the map ``h + f``: its nodes are maps (the rules it inherits)."""

    name = "residual"
    lowers = (residual,)

    def lower(self, lowerer, e: residual) -> TNode:
        return lowerer._map(e, list(e.args), lambda s: sp.Add(*s))
