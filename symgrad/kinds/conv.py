"""The convolution kind: ``Z = K ⋆ X + b`` by im2col and BLAS products over chunks of images.

Forward, the windows of a chunk of images are laid out as the columns of one matrix
(``im2col``), so the convolution is one product ``K · cols`` of c_out × (c_in·kh·kw) by
(c_in·kh·kw) × (n·Ho·Wo) per chunk of n images (the whole minibatch while that matrix is
small: ``symgrad/native/convolve.py``); backward, ``∂ℓ/∂K = δ · colsᵀ`` is one more (from 8
output channels computed as its transpose, cols · δᵀ, which BLAS runs faster), and the input's
delta is ``Kᵀ · δ`` scattered back onto the image (``col2im``, the adjoint of
``im2col``): that scatter computes the printed rule, the full cross-correlation of the
(dilated) δ with the 180°-rotated kernel (the full convolution with K), cropped by the padding.
Backward builds a chunk's windows again rather than keeping the minibatch's: a large window
matrix does not stay in cache (docs/decisions.md).
"""

from __future__ import annotations

import sympy as sp

from ..derive.ir import TNode
from ..errors import UnsupportedModelError
from ..explain.imaging import Conv, Correlate, Rot180, SumPositions, crop, dilate, pad
from ..explain.notation import show
from ..lang.conv import conv2d
from .base import Kind, native, register

#: The kernels live in symgrad/native/convolve.py (pool.py's in images.py).
CONVOLVE = native("convolve")


@register
class Conv2D(Kind):
    name = "conv2d"
    lowers = (conv2d,)
    helpers = CONVOLVE

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
        bias = prog.flat(b[0], prog.v(b[0])) if b else f"np.zeros({prog.rows(k)}, dtype=F)"
        return prog.decl(n.name, n) + [
            f"    {n.name}_col = convolve.conv2d_fwd({prog.mat(k, prog.v(k))}, {prog.v(x)}, {bias}, {n.name}, {prog.geom(n)})"]

    def backward(self, prog, n) -> list[str]:
        k, x, *b = n.inputs
        lines: list[str] = []
        dk = prog.dmat(k, lines) if id(k) in prog.need else "np.empty((0, 0), dtype=F)"
        db = prog.dflat(b[0]) if b and id(b[0]) in prog.need else "np.empty(0, dtype=F)"
        dx = prog.d(x) if id(x) in prog.need else "np.empty((0, 0), dtype=F)"
        return lines + [f"    convolve.conv2d_bwd({prog.mat(k, prog.v(k))}, {prog.v(x)}, {n.name}_col, {prog.d(n)}, {dk}, {db}, {dx}, "
                        f"{prog.geom(n)})"]

    def delta(self, c, n) -> None:
        # ∂ℓ/∂K = pad_p(X) ⋆ dilate_s(δ) (valid correlation), ∂ℓ/∂b = Σ δ (per channel), and
        # δ_X = crop_p(pad_k−1(dilate_s(δ)) ⋆ rot180(K)): the full convolution dilate_s(δ) ∗ K
        # (channels swapped), as the textbook writes it (explain.imaging prints and explains them)
        k, x, *b = n.inputs
        kh, kw, sh, sw, ph, pw = n.geom[3:]
        spaced = dilate(c.ref(n), sh, sw)
        c.add(k, Correlate(pad(show(x), ph, pw), spaced))
        if b:
            c.add(b[0], SumPositions(c.ref(n)))
        c.add(x, crop(Correlate(pad(spaced, kh - 1, kw - 1), Rot180(show(k))), ph, pw))

    def show(self, n) -> sp.Expr:
        k, x, *b = n.inputs
        c_in, _, _, kh, kw, sh, sw, ph, pw = n.geom
        return Conv(show(k), show(x), show(b[0]) if b else sp.S.Zero, k.shape[0], c_in, kh, kw, sh, sw, ph, pw)
