"""The convolution kind: ``Z = K ⋆ X + b`` by im2col and one BLAS product per minibatch.

Forward, the windows of the whole minibatch are laid out as the columns of one matrix
(``im2col``), so the convolution is one product ``K · cols`` of c_out × (c_in·kh·kw) by
(c_in·kh·kw) × (B·Ho·Wo); backward, ``∂ℓ/∂K = δ · colsᵀ`` is one more, and the input's delta is
``Kᵀ · δ`` scattered back onto the image (``col2im``, the adjoint of ``im2col``): that scatter
*is* the full convolution with the 180°-rotated kernel of the textbook formula, stride and
padding included. One product over the minibatch, not one per sample: BLAS is fastest on the
longest matrices (docs/decisions.md).
"""

from __future__ import annotations

import sympy as sp

from ..derive.ir import TNode
from ..derive.simplify import tidy
from ..errors import UnsupportedModelError
from ..explain.notation import show, sym
from ..explain.printing import text
from ..lang.conv import conv2d
from .base import Kind, register
from .image_kernels import CONV


def _geometry(n: TNode) -> str:
    return ", ".join(str(v) for v in n.geom)


@register
class Conv2D(Kind):
    name = "conv2d"
    lowers = (conv2d,)
    helpers = CONV

    def lower(self, lowerer, e: conv2d) -> TNode:
        K, X, b = e.args[:3]
        k, x = lowerer.matrix(K), lowerer.matrix(X)
        if k.batched or not x.batched:
            raise UnsupportedModelError(
                f"conv2d({K}, {X}): the kernel must be a parameter and the image must depend on the data. "
                "Fix: K in wrt=[...], X from data=[...].")
        inputs = [k, x] + ([] if isinstance(b, sp.ZeroMatrix) else [lowerer.matrix(b)])
        node = TNode("conv2d", "", (int(e.shape[0]), 1), True, inputs, geom=e.geometry)
        return lowerer._add(node, e)

    def forward(self, prog, n) -> list[str]:
        k, x, *b = n.inputs
        bias = prog.flat(b[0], prog.v(b[0])) if b else f"np.zeros({k.shape[0]}, dtype=F)"
        return prog.decl(n.name, n) + [
            f"    {n.name}_col = conv2d_fwd({prog.mat(k, prog.v(k))}, {prog.v(x)}, {bias}, {n.name}, {_geometry(n)})"]

    def backward(self, prog, n) -> list[str]:
        k, x, *b = n.inputs
        lines: list[str] = []
        dk = prog.dmat(k, lines) if id(k) in prog.need else "np.empty((0, 0), dtype=F)"
        db = prog.dflat(b[0]) if b and id(b[0]) in prog.need else "np.empty(0, dtype=F)"
        dx = prog.d(x) if id(x) in prog.need else "np.empty((0, 0), dtype=F)"
        return lines + [f"    conv2d_bwd({prog.mat(k, prog.v(k))}, {n.name}_col, {prog.d(n)}, {dk}, {db}, {dx}, "
                        f"{_geometry(n)})"]

    def delta(self, c, n) -> None:
        # ∂ℓ/∂K = X ⋆ δ (valid correlation), ∂ℓ/∂b = Σ δ, δ_X = δ ∗ rot180(K) (full convolution,
        # channels swapped); a stride dilates δ first, a padding crops the result
        k, x, *b = n.inputs
        _, _, _, _, _, sh, sw, ph, pw = n.geom
        dn = text(tidy(c.ref(n)), mul=" ⊙ ", power="^")
        dn = dn if " " not in dn else f"({dn})"
        c.add(k, sym(f"{show(x)} ⋆ {dn}"))
        if b:
            c.add(b[0], sym(f"Σ {dn}"))
        spread = dn if (sh, sw) == (1, 1) else f"dilate{_pair_text(sh, sw)}({dn})"
        full = f"{spread} ∗ rot180({k.label})"
        c.add(x, sym(full if (ph, pw) == (0, 0) else f"crop{_pair_text(ph, pw)}({full})"))

    def show(self, n) -> sp.Expr:
        k, x, *b = n.inputs
        return sym(f"{k.label} ⋆ {show(x)}" + (f" + {b[0].label}" if b else ""))


def _pair_text(a: int, b: int) -> str:
    return f"_{a}" if a == b else f"_({a},{b})"
