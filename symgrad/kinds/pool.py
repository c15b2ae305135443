"""The pooling kinds: the largest value or the mean of each window, channel by channel.

Max pooling routes each window's delta to the window's arg-max, the first largest value in
row-major order when several tie (PyTorch's CPU rule; a NaN counts as largest, so it
propagates); average pooling spreads δ/(kh·kw) over the window. Overlapping windows
(stride < size) add up.
"""

from __future__ import annotations

import sympy as sp

from ..derive.ir import TNode
from ..errors import UnsupportedModelError
from ..explain.imaging import AvgPool as AvgPoolOp
from ..explain.imaging import MaxPool as MaxPoolOp
from ..explain.imaging import MaxUnpool, Upsample
from ..explain.notation import show
from ..lang.conv import avgpool2d, maxpool2d
from .base import Kind, native, register

#: The kernels live in symgrad/native/images.py.
IMAGES = native("images")


class _Pool(Kind):
    fn = ""

    def lower(self, lowerer, e) -> TNode:
        x = lowerer.matrix(e.args[0])
        if not x.batched:
            raise UnsupportedModelError(f"{e}: pooling takes an image that depends on the data. Fix: pool a "
                                        "convolution of the input, or the input itself.")
        return lowerer._add(TNode(self.name, "", (int(e.shape[0]), 1), True, [x], geom=e.geometry), e)

    def forward(self, prog, n) -> list[str]:
        (x,) = n.inputs
        # max pooling returns where each maximum was, for its backward pass
        saved = f"{n.name}_idx = " if self.fn == "maxpool" else ""
        return prog.decl(n.name, n) + [f"    {saved}images.{self.fn}_fwd({prog.v(x)}, {n.name}, {prog.geom(n)})"]

    def show(self, n) -> sp.Expr:
        return self.shown(show(n.inputs[0]), *n.geom[3:])


@register
class MaxPool(_Pool):
    name, fn, lowers, helpers = "maxpool2d", "maxpool", (maxpool2d,), IMAGES

    def backward(self, prog, n) -> list[str]:
        (x,) = n.inputs
        return [f"    images.maxpool_bwd({n.name}_idx, {prog.d(n)}, {prog.d(x)})"]

    shown = MaxPoolOp

    def delta(self, c, n) -> None:
        # δ goes to each window's arg-max (the first largest value on a tie), 0 elsewhere
        c.add(n.inputs[0], MaxUnpool(c.ref(n), *n.geom[3:5]))


@register
class AvgPool(_Pool):
    name, fn, lowers, helpers = "avgpool2d", "avgpool", (avgpool2d,), IMAGES

    def backward(self, prog, n) -> list[str]:
        return [f"    images.avgpool_bwd({prog.d(n)}, {prog.d(n.inputs[0])}, {prog.geom(n)})"]

    shown = AvgPoolOp

    def delta(self, c, n) -> None:
        # each window's δ spread evenly: δ/(kh·kw) to each of its elements
        kh, kw = n.geom[3:5]
        c.add(n.inputs[0], Upsample(c.ref(n), kh, kw) / (kh * kw))
