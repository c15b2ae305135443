"""The layer normalisation kind: ``x̂ = (x − mean(x))/σ``, ``σ = √(var(x) + ε)``, per sample, or
per sample and position for a sequence (``layernorm(x, seq=(T, d))``: the node's ``geom`` is (T, d)).

Forward, each sample's vector is normalised over its entries and ``1/σ`` is saved (one number per
sample, or T per sample: one per position); backward, ``δ_x = (1/σ)(δ_x̂ − mean(δ_x̂) − x̂ ⊙ mean(δ_x̂ ⊙ x̂))``, from x̂ (the node's own
value) and the saved 1/σ. A layer's ``γ ⊙ x̂ + β`` is not part of the kind: it is an ordinary
elementwise map whose γ and β are parameter lanes of the vector's length (for a sequence, γ
and β of d entries broadcast over the positions: ``kinds/rowwise.py``). The kernels live in
symgrad/native/norms.py, compiled once per machine; the node's ``body`` holds ε.
"""

from __future__ import annotations

import sympy as sp

from ..derive.ir import TNode
from ..errors import UnsupportedModelError
from ..explain.norms import (
    BatchNormalised,
    BatchNormBackward,
    Normalised,
    NormBackward,
    PosNormalised,
    PosNormBackward,
)
from ..explain.notation import show, sym
from ..lang.batchnorm import batchnorm
from ..lang.norm import layernorm
from .base import Kind, native, register

#: The generated module only imports the kernels (as the image kinds do: ``pool.IMAGES``, ``conv.CONVOLVE``).
NORMS = native("norms")


@register
class LayerNorm(Kind):
    name = "layernorm"
    lowers = (layernorm,)
    helpers = NORMS

    def lower(self, lowerer, e: layernorm) -> TNode:
        x = lowerer.matrix(e.args[0])
        if not x.batched or x.shape[1] != 1:
            raise UnsupportedModelError(
                f"{e}: layer normalisation takes a per-sample column vector that depends on the data, got "
                f"{x.label} of shape {x.shape} ({'per sample' if x.batched else 'the same for every sample'}). "
                "Fix: normalise a layer's output, e.g. layernorm(W*x + b) with x in data=[...].")
        return lowerer._add(TNode("layernorm", "", x.shape, True, [x], body=e.args[1], geom=e.seq or ()), e)

    def forward(self, prog, n) -> list[str]:
        (x,) = n.inputs
        # {name}_rs: 1/σ of each sample (and position), for the backward pass
        T = n.geom[0] if n.geom else 1
        return prog.decl(n.name, n) + prog.decl(f"{n.name}_rs", TNode("sum", "", (T, 1), True)) + [
            f"    norms.layernorm_fwd({prog.v(x)}, {n.name}, {n.name}_rs, {prog.const(n, 'eps', n.body)})"]

    def backward(self, prog, n) -> list[str]:
        (x,) = n.inputs
        assign = bool(prog.assigned(n, [True]))  # the sole contribution: written, not added
        return [f"    norms.layernorm_bwd({n.name}, {n.name}_rs, {prog.d(n)}, {prog.d(x)}, {assign})"]

    def writes_whole(self, m, n) -> bool:
        return True  # every element of its input's adjoint, once

    def delta(self, c, n) -> None:
        (x,) = n.inputs
        # x̂ by its name (an unnamed one, v7, gets its forward line: explain.network._internal_refs)
        rule = PosNormBackward if n.geom else NormBackward
        c.add(x, rule(c.ref(n), sym(n.label), show(x), n.body))

    def show(self, n) -> sp.Expr:
        return (PosNormalised if n.geom else Normalised)(show(n.inputs[0]), n.body)

    def tangent(self, b, n, ins):
        raise UnsupportedModelError(
            f"no Hessian-vector rule through layer normalisation ({n.label}) yet. Fix: train with a first-order "
            "optimizer (sg.fit, f.grad), or estimate H·v by a difference of two gradients.")


@register
class BatchNorm(Kind):
    """``x̂`` by the minibatch's statistics in training (``prog.noise``: the running mean and
    variance, parameters the optimizer leaves alone, updated in place; the key's sign says which
    at run time, so ``loss_grad`` called without one is inference) and by the running ones in
    ``loss`` and ``predict``. ``geom`` is (C, S): C channels of S entries each."""

    name = "batchnorm"
    lowers = (batchnorm,)
    helpers = NORMS

    def lower(self, lowerer, e: batchnorm) -> TNode:
        x, rm, rv = (lowerer.matrix(a) for a in e.args[:3])
        if not x.batched or rm.batched or rv.batched or rm.kind != "leaf" or rv.kind != "leaf" or rm.role != "param":
            raise UnsupportedModelError(
                f"{e}: batch normalisation takes a per-sample column vector that depends on the data and running "
                "statistics that are parameters. Fix: use sg.nn.BatchNorm(n) after a layer.")
        return lowerer._add(TNode("batchnorm", "", x.shape, True, [x, rm, rv], body=sp.Tuple(e.args[3], e.args[4]),
                                  geom=(e.channels, x.length // e.channels)), e)

    def _train(self, prog) -> str:
        return "key != 0" if prog.noise else "False"

    def forward(self, prog, n) -> list[str]:
        x, rm, rv = n.inputs
        eps, mom = (prog.const(n, what, v) for what, v in zip(("eps", "mom"), n.body))
        stats = f"{prog.flat(rm, prog.v(rm))}, {prog.flat(rv, prog.v(rv))}"
        return prog.decl(n.name, n) + prog.decl(f"{n.name}_rs", TNode("sum", "", (n.geom[0], 1), False)) + [
            f"    norms.batchnorm_fwd({prog.v(x)}, {n.name}, {n.name}_rs, {stats}, {eps}, {mom}, {self._train(prog)})"]

    def backward(self, prog, n) -> list[str]:
        x, rm, rv = n.inputs
        lines = []
        if id(x) in prog.need:
            assign = bool(prog.assigned(n, [True, False, False]))
            lines.append(f"    norms.batchnorm_bwd({n.name}, {n.name}_rs, {prog.d(n)}, {prog.d(x)}, "
                         f"{self._train(prog)}, {assign})")
        if prog.noise:  # inference only: training's output does not depend on the running statistics
            lines += ["    if key == 0:", f"        norms.batchnorm_stats_bwd({n.name}, {n.name}_rs, {prog.d(n)}, "
                      f"{prog.dflat(rm)}, {prog.dflat(rv)})"]
        return lines

    def writes_whole(self, m, n) -> bool:
        return n is m.inputs[0]

    def delta(self, c, n) -> None:
        x = n.inputs[0]
        c.add(x, BatchNormBackward(c.ref(n), sym(n.label), show(x), n.body[0]))

    def show(self, n) -> sp.Expr:
        return BatchNormalised(show(n.inputs[0]), n.body[0])

    def tangent(self, b, n, ins):
        raise UnsupportedModelError(
            f"no Hessian-vector rule through batch normalisation ({n.label}) yet. Fix: train with a first-order "
            "optimizer (sg.fit, f.grad), or estimate H·v by a difference of two gradients.")
