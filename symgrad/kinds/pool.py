"""The pooling kinds: the largest value or the mean of each window, channel by channel.

Max pooling routes each window's delta to the window's arg-max, the first largest value in
row-major order when several tie (PyTorch's CPU rule; a NaN counts as largest, so it
propagates); average pooling spreads δ/(kh·kw) over the window. Overlapping windows
(stride < size) add up.
"""

from __future__ import annotations

import sympy as sp

from ..derive.ir import TNode
from ..derive.simplify import tidy
from ..errors import UnsupportedModelError
from ..explain.notation import show, sym
from ..explain.printing import text
from ..lang.conv import avgpool2d, maxpool2d
from .base import Kind, register
from .image_kernels import POOL


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
        g = ", ".join(str(v) for v in n.geom)
        return prog.decl(n.name, n) + [f"    {self.fn}_fwd({prog.v(x)}, {n.name}, {g})"]

    def _ref(self, c, n) -> str:
        dn = text(tidy(c.ref(n)), mul=" ⊙ ", power="^")
        return dn if " " not in dn else f"({dn})"

    def _size(self, n) -> str:
        kh, kw = n.geom[3:5]
        return f"{kh}" if kh == kw else f"({kh},{kw})"


@register
class MaxPool(_Pool):
    name, fn, lowers, helpers = "maxpool2d", "maxpool", (maxpool2d,), POOL

    def backward(self, prog, n) -> list[str]:
        (x,) = n.inputs
        g = ", ".join(str(v) for v in n.geom)
        return [f"    maxpool_bwd({prog.v(x)}, {prog.d(n)}, {prog.d(x)}, {g})"]

    def delta(self, c, n) -> None:
        # δ goes to each window's arg-max (the first largest value on a tie), 0 elsewhere
        c.add(n.inputs[0], sym(f"unpool_argmax{self._size(n)}({self._ref(c, n)})"))

    def show(self, n) -> sp.Expr:
        return sym(f"maxpool{self._size(n)}({show(n.inputs[0])})")


@register
class AvgPool(_Pool):
    name, fn, lowers, helpers = "avgpool2d", "avgpool", (avgpool2d,), POOL

    def backward(self, prog, n) -> list[str]:
        g = ", ".join(str(v) for v in n.geom)
        return [f"    avgpool_bwd({prog.d(n)}, {prog.d(n.inputs[0])}, {g})"]

    def delta(self, c, n) -> None:
        # each window's δ spread evenly: δ/(kh·kw) to each of its elements
        kh, kw = n.geom[3:5]
        c.add(n.inputs[0], sym(f"upsample{self._size(n)}({self._ref(c, n)})/{kh * kw}"))

    def show(self, n) -> sp.Expr:
        return sym(f"avgpool{self._size(n)}({show(n.inputs[0])})")
