"""Convolution and pooling as SymPy matrix expressions: one node each, never per-weight symbols.

An image of C channels, H rows and W columns is stored as one column vector of C·H·W entries in
channel, row, column order (NumPy's and PyTorch's NCHW order, flattened), so an image-valued
expression is an ordinary ``(C·H·W) × 1`` matrix expression that elementwise functions, sums and
``Dense`` layers take as they are. A kernel ``K`` is a ``c_out × (c_in·kh·kw)`` matrix: PyTorch's
``weight.reshape(c_out, -1)``. Each node records its geometry, so the image's shape travels with it.

>>> import sympy as sp
>>> K, X, b = sp.MatrixSymbol("K", 4, 9), sp.MatrixSymbol("X", 64, 1), sp.MatrixSymbol("b", 4, 1)
>>> Z = conv2d(K, X, b, padding="same", in_shape=(1, 8, 8))
>>> Z, Z.shape, Z.out_shape
(K ⋆ X + b, (256, 1), (4, 8, 8))
>>> P = maxpool2d(Z, 2)
>>> P.shape, P.out_shape
((64, 1), (4, 4, 4))
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct

from ..errors import ShapeError
from .walk import nodes, per_object


def _pair(v, what: str, least: int = 0, also: str = "") -> tuple[int, int]:
    """An integer or a pair of them (NumPy's too) as (rows, columns), each at least ``least``
    (``also`` names other values the argument takes)."""
    pair = tuple(v) if isinstance(v, (tuple, list, np.ndarray)) else (v, v)
    name = what.split()[-1]
    if len(pair) != 2 or any(isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer, sp.Integer))
                             for n in pair):
        also = f" {also}" if also else ""
        raise ShapeError(f"{what}={v!r}: give an integer or a pair of integers (rows, columns){also}. "
                         f"Fix: e.g. {name}={max(least, 1)} or {name}=({max(least, 1) + 1}, {max(least, 1) + 1}).")
    if min(pair) < least:
        raise ShapeError(f"{what}={v!r}: each must be at least {least}. Fix: e.g. {name}={max(least, 1)}.")
    return int(pair[0]), int(pair[1])


def image_shape(e: sp.Basic) -> tuple[int, int, int] | None:
    """(C, H, W) of an image-valued expression (a convolution, a pooling, or elementwise functions
    and sums of them), or None when ``e`` does not say (a plain matrix symbol)."""
    if isinstance(e, (conv2d, _Pool)):
        return e.out_shape
    if isinstance(e, ElementwiseApplyFunction):
        return image_shape(e.expr)
    if isinstance(e, (HadamardProduct, sp.MatAdd, HadamardPower, sp.MatMul)):
        for a in e.args:
            found = image_shape(a) if isinstance(a, sp.MatrixExpr) else None
            if found is not None:
                return found
    return None


def _input_shape(X, in_shape, what: str) -> tuple[int, int, int]:
    shape = image_shape(X) if in_shape is None else tuple(int(n) for n in in_shape)
    if shape is None:
        raise ShapeError(f"{what}: the input {X} does not say its image shape. Fix: pass in_shape=(C, H, W), "
                         f"with C·H·W = {X.shape[0]} (its rows).")
    if len(shape) != 3 or min(shape) < 1:
        raise ShapeError(f"{what}: in_shape={shape} is not (channels, height, width) of positive sizes.")
    if X.shape != (math.prod(shape), 1):
        raise ShapeError(f"{what}: the input {X} is {X.shape[0]}×{X.shape[1]}; an image of shape {shape} is "
                         f"a column of {math.prod(shape)} entries (C·H·W). Fix: in_shape must match the input.")
    return shape


def _out_size(n: int, k: int, s: int, p: int, what: str, axis: str) -> int:
    if n + 2 * p < k:
        if what == "conv2d":
            raise ShapeError(f"{what}: the {axis} of the input ({n}, padding {p} on each side) is smaller than "
                             f"the window ({k}). Fix: a smaller kernel, more padding, or a larger image.")
        raise ShapeError(f"{what}: the {axis} of the input ({n}) is smaller than the pooling window ({k}). Fix: a "
                         f"smaller size (at most {n}), fewer layers that shrink the image before it, or a larger "
                         "image; pooling takes no padding.")
    return (n + 2 * p - k) // s + 1


class conv2d(sp.MatrixExpr):
    """``Z = K ⋆ X + b``: the 2-D cross-correlation of image X with the kernels K, as PyTorch's
    ``conv2d`` defines it, plus one bias per output channel.

    ``K`` is ``c_out × (c_in·kh·kw)``, ``X`` an image of ``in_shape = (c_in, H, W)`` (read from X
    when it is a convolution or pooling), ``b`` is ``c_out × 1`` or None. ``padding`` is zeros on
    each side: an integer, a pair, or "same" (stride 1, odd kernel). ``kernel_size`` defaults to
    the square that fits K's columns.
    """

    def __new__(cls, K, X, b=None, geometry=None, *, stride=1, padding=0, in_shape=None, kernel_size=None):
        if isinstance(geometry, sp.Tuple):  # SymPy rebuilding the node from its args
            return sp.Basic.__new__(cls, K, X, b, geometry)
        c_in, H, W = _input_shape(X, in_shape, "conv2d")
        if not isinstance(K, sp.MatrixExpr) or K.shape[1] % c_in:
            raise ShapeError(f"conv2d: the kernel {K} must be c_out × (c_in·kh·kw) with c_in = {c_in}, got "
                             f"{getattr(K, 'shape', None)}. Fix: K = MatrixSymbol('K', c_out, {c_in} * kh * kw).")
        if kernel_size is None:
            side = math.isqrt(K.shape[1] // c_in)
            if side * side != K.shape[1] // c_in:
                raise ShapeError(f"conv2d: K has {K.shape[1] // c_in} columns per input channel, not a square "
                                 "kernel. Fix: pass kernel_size=(kh, kw).")
            kernel_size = side
        kh, kw = _pair(kernel_size, "kernel_size", least=1)
        if c_in * kh * kw != K.shape[1]:
            raise ShapeError(f"conv2d: K has {K.shape[1]} columns; {c_in} input channels of {kh}×{kw} kernels "
                             f"need {c_in * kh * kw}.")
        sh, sw = _pair(stride, "stride", least=1)
        if isinstance(padding, str) and padding == "same":
            if (sh, sw) != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
                raise ShapeError("conv2d: padding='same' needs stride 1 and an odd kernel. Fix: give the "
                                 "padding as a number.")
            padding = (kh // 2, kw // 2)
        ph, pw = _pair(padding, "padding")
        _out_size(H, kh, sh, ph, "conv2d", "height")
        _out_size(W, kw, sw, pw, "conv2d", "width")
        c_out = K.shape[0]
        if b is None:
            b = sp.ZeroMatrix(c_out, 1)
        elif getattr(b, "shape", None) != (c_out, 1):
            raise ShapeError(f"conv2d: the bias {b} must be {c_out} × 1 (one per output channel), got "
                             f"{getattr(b, 'shape', None)}.")
        geometry = sp.Tuple(*(sp.Integer(v) for v in (c_in, H, W, kh, kw, sh, sw, ph, pw)))
        return sp.Basic.__new__(cls, K, X, b, geometry)

    @property
    def geometry(self) -> tuple[int, ...]:
        """(c_in, H, W, kh, kw, stride_h, stride_w, pad_h, pad_w)."""
        return tuple(int(v) for v in self.args[3])

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c_in, H, W, kh, kw, sh, sw, ph, pw = self.geometry
        return (int(self.args[0].shape[0]), (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1)

    @property
    def shape(self):
        return (math.prod(self.out_shape), 1)

    def _sympystr(self, printer):
        K, X, b = (printer._print(a) for a in self.args[:3])
        return f"{K} ⋆ {X}" + ("" if isinstance(self.args[2], sp.ZeroMatrix) else f" + {b}")

    def _latex(self, printer):
        K, X, b = (printer._print(a) for a in self.args[:3])
        return f"{K} \\star {X}" + ("" if isinstance(self.args[2], sp.ZeroMatrix) else f" + {b}")


class _Pool(sp.MatrixExpr):
    """A pooling window slid over each channel; ``size`` and ``stride`` (default: ``size``)."""

    symbol = ""

    def __new__(cls, X, size=2, *, stride=None, in_shape=None):
        if isinstance(size, sp.Tuple):  # SymPy rebuilding the node from its args: the geometry
            return sp.Basic.__new__(cls, X, size)
        what = cls.__name__
        C, H, W = _input_shape(X, in_shape, what)
        kh, kw = _pair(size, "size", least=1)
        sh, sw = _pair((kh, kw) if stride is None else stride, "stride", least=1)
        _out_size(H, kh, sh, 0, what, "height")
        _out_size(W, kw, sw, 0, what, "width")
        return sp.Basic.__new__(cls, X, sp.Tuple(*(sp.Integer(v) for v in (C, H, W, kh, kw, sh, sw))))

    @property
    def geometry(self) -> tuple[int, ...]:
        """(C, H, W, kh, kw, stride_h, stride_w)."""
        return tuple(int(v) for v in self.args[1])

    @property
    def out_shape(self) -> tuple[int, int, int]:
        C, H, W, kh, kw, sh, sw = self.geometry
        return (C, (H - kh) // sh + 1, (W - kw) // sw + 1)

    @property
    def shape(self):
        return (math.prod(self.out_shape), 1)

    def _window(self, sep: str = ", ") -> tuple[str, str]:
        """The window as printed (k, or kh,kw when not square) and the stride when not the window."""
        kh, kw, sh, sw = self.geometry[3:]
        size = f"{kh}" if kh == kw else f"({kh}{sep}{kw})"
        stride = "" if (sh, sw) == (kh, kw) else (f"{sh}" if sh == sw else f"({sh}{sep}{sw})")
        return size, stride

    def _sympystr(self, printer):
        size, stride = self._window()
        return f"{type(self).__name__}({printer._print(self.args[0])}, {size}" + (f", stride={stride})" if stride else ")")

    def _latex(self, printer):
        size, stride = self._window(",")
        sub = size.strip("()") + (r";\,s=" + stride.strip("()") if stride else "")
        return r"\operatorname{%s}_{%s}\left(%s\right)" % (self.symbol, sub, printer._print(self.args[0]))


class maxpool2d(_Pool):
    """The largest value of each window, per channel (PyTorch's ``max_pool2d``)."""

    symbol = "maxpool"


class avgpool2d(_Pool):
    """The mean of each window, per channel (PyTorch's ``avg_pool2d``)."""

    symbol = "avgpool"


IMAGE_OPS = (conv2d, maxpool2d, avgpool2d)


def model_input(model) -> int | tuple[int, ...]:
    """A network's input: its (C, H, W) when a convolution or pooling reads the input ``x`` as an
    image (or a Sequential declares an image or a (T, d) sequence), else its number of features.
    Read from the expression, so a saved model knows it too."""
    declared = getattr(model, "input_shape", None)  # Sequential's, also when Flatten comes first
    if declared is not None and len(declared) in (2, 3):  # a sequence (T, d) or an image (C, H, W)
        return tuple(int(v) for v in declared)
    return _image_input(model.expr, model.x) or int(model.x.shape[0])


@per_object
def _image_input(expr: sp.Basic, x: sp.MatrixSymbol) -> tuple[int, int, int] | None:
    # once per model, not per predict call: the walk cost more than predicting one row
    for e in nodes(expr):
        if isinstance(e, IMAGE_OPS) and e.args[1 if isinstance(e, conv2d) else 0] == x:
            return tuple(e.geometry[:3])
    return None
