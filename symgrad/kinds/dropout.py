"""The dropout kind: ``d = m ⊙ x/(1 − p)`` in training, ``d = x`` in inference.

A program writes training code only where it sets ``noise`` (``loss_grad`` and the training
kernel, which then take the step's ``key`` and the row block's first row ``row0``); ``loss``
and ``predict`` are inference, so their dropout is a plain alias. The mask is recomputed in the
backward pass from (key, row, column) (symgrad/native/noise.py), never stored; ``key == 0``,
what ``loss_grad`` gets when called without one (``f.grad``, ``evaluate``), is inference too.
The node's ``body`` holds p.
"""

from __future__ import annotations

import sympy as sp

from ..derive.ir import TNode
from ..errors import UnsupportedModelError
from ..explain.noise import DropBackward, Dropped
from ..explain.notation import show, sym
from ..lang.dropout import dropout
from .base import Kind, native, register


@register
class Dropout(Kind):
    name = "dropout"
    lowers = (dropout,)
    helpers = native("noise")

    def lower(self, lowerer, e: dropout) -> TNode:
        x = lowerer.matrix(e.args[0])
        if not x.batched:
            raise UnsupportedModelError(
                f"{e}: dropout masks a per-sample value, but {x.label} is the same for every sample (it depends "
                "on no data). Fix: drop out a layer's output, e.g. dropout(W*x + b, 0.5) with x in data=[...].")
        return lowerer._add(TNode("dropout", "", x.shape, True, [x], body=e.args[1]), e)

    def forward(self, prog, n) -> list[str]:
        (x,) = n.inputs
        if not prog.noise:  # inference: d is x itself
            return [f"    {n.name} = {prog.v(x)}"]
        return prog.decl(n.name, n) + [f"    noise.dropout_fwd({prog.v(x)}, {n.name}, {prog.const(n, 'rate', n.body)}, key, row0)"]

    def backward(self, prog, n) -> list[str]:
        (x,) = n.inputs
        if not prog.noise:
            raise UnsupportedModelError(f"{n.label}: a backward pass through dropout needs the training step's mask")
        assign = bool(prog.assigned(n, [True]))  # the sole contribution: written, not added
        return [f"    noise.dropout_bwd({prog.d(n)}, {prog.d(x)}, {prog.const(n, 'rate', n.body)}, key, row0, {assign})"]

    def writes_whole(self, m, n) -> bool:
        return True  # every element of its input's adjoint, once

    def delta(self, c, n) -> None:
        c.add(n.inputs[0], DropBackward(c.ref(n), sym(n.label), n.body))

    def show(self, n) -> sp.Expr:
        return Dropped(show(n.inputs[0]), n.body)

    def tangent(self, b, n, ins):
        raise UnsupportedModelError(
            f"no Hessian-vector rule through dropout ({n.label}): a Hessian of a random loss is not defined. "
            "Fix: take Hessians of the model without its Dropout layers (they are the identity in inference).")
