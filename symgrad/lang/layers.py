"""Convolutional layers and ``Sequential``: a stack of layers as one SymPy expression.

>>> net = Sequential([Conv2D(1, 4, 3, padding="same", activation="relu"), MaxPool2D(2), Flatten(),
...                   Dense(4 * 4 * 4, 10)], input_shape=(1, 8, 8))
>>> net.params
[K1, b1, W4, b4]
>>> net.labels[net.layers[0].z]
'z1'
>>> net.expr.shape
(10, 1)

Images are stored flat, channel by channel (NCHW order: ``X.reshape(len(X), -1)``); ``fit`` and
``predict`` take them as ``(n, C, H, W)`` arrays or already flat.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import sympy as sp

from ..errors import OptionError, ShapeError
from .args import known_keywords
from .conv import _pair, avgpool2d, conv2d, maxpool2d
from .nn import RELU_LIKE, ActivationFn, Dense, _apply, _by_name, act_label
from .norm import LayerNorm  # noqa: F401 (a layer of Sequential's, imported from here too)
from .walk import forget_other_models


def _not_image(shape) -> str:
    """What a convolution or pooling got instead of an image, and the fix."""
    if len(shape) == 2:
        return (f"a sequence {shape} (positions, features). Fix: for images give input_shape=(C, H, W), "
                f"e.g. input_shape=(1, {shape[0]}, {shape[1]}).")
    return (f"a flat vector of {shape[0]}. Fix: convolutions and pooling come before Flatten and Dense layers "
            "(and an image input needs input_shape=(C, H, W)).")


@known_keywords
class Conv2D:
    """``z = K ⋆ x + b``, ``a = f(z)``: ``c_out`` kernels of ``kernel_size`` over ``c_in`` channels.

    ``K`` is ``c_out × (c_in·kh·kw)`` (PyTorch's ``weight.reshape(c_out, -1)``), ``b`` is
    ``c_out × 1``; ``padding`` is an integer, a pair or "same".
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int | tuple[int, int], stride: int | tuple = 1,
                 padding: int | tuple | str = 0, activation: str | ActivationFn = "identity"):
        for what, v in (("c_in", c_in), ("c_out", c_out)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise OptionError(f"Conv2D({what}={v!r}): channel counts are positive integers. "
                                  "Fix: e.g. Conv2D(1, 16, 3) for 16 3×3 kernels over one input channel.")
        self.c_in, self.c_out = int(c_in), int(c_out)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.kh, self.kw = _pair(kernel_size, "Conv2D kernel_size", least=1)
        _pair(stride, "Conv2D stride", least=1)
        if not (isinstance(padding, str) and padding == "same"):
            _pair(padding, "Conv2D padding", also="or 'same'")
        self.act_name = act_label(activation)
        if self.act_name == "softmax":
            raise OptionError("Conv2D(activation='softmax'): softmax is a vector op over a Dense layer's "
                              "outputs. Fix: an elementwise activation such as 'relu'.")
        self.act = _by_name(activation)

    def build(self, x: sp.MatrixExpr, shape, index: int):
        if len(shape) != 3:
            raise ShapeError(f"layer {index}, Conv2D, takes an image (C, H, W), but its input is {_not_image(shape)}")
        if shape[0] != self.c_in:
            raise ShapeError(f"layer {index}, Conv2D({self.c_in}, {self.c_out}, ...), takes {self.c_in} channels "
                             f"but its input has {shape[0]} (shape {shape}). Fix: Conv2D({shape[0]}, {self.c_out}, ...).")
        self.K = sp.MatrixSymbol(f"K{index}", self.c_out, self.c_in * self.kh * self.kw)
        self.b = sp.MatrixSymbol(f"b{index}", self.c_out, 1)
        self.z = conv2d(self.K, x, self.b, stride=self.stride, padding=self.padding, in_shape=shape,
                        kernel_size=(self.kh, self.kw))
        a = _apply(self.act, self.z)
        return a, self.z.out_shape, {self.z: f"z{index}", **({a: f"a{index}"} if a != self.z else {})}

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return [self.K, self.b]

    def fans(self) -> tuple[int, int]:
        return self.c_in * self.kh * self.kw, self.c_out * self.kh * self.kw

    def __repr__(self) -> str:
        return (f"Conv2D({self.c_in}, {self.c_out}, {self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r}, activation={self.act_name!r})")


class _Pool:
    op = maxpool2d

    def __init__(self, size: int | tuple[int, int] = 2, stride: int | tuple[int, int] | None = None):
        _pair(size, f"{type(self).__name__} size", least=1)
        if stride is not None:
            _pair(stride, f"{type(self).__name__} stride", least=1, also="or None (the size)")
        self.size, self.stride = size, stride

    def build(self, x: sp.MatrixExpr, shape, index: int):
        name = type(self).__name__
        if len(shape) != 3:
            raise ShapeError(f"layer {index}, {name}, takes an image (C, H, W), but its input is {_not_image(shape)}")
        p = type(self).op(x, self.size, stride=self.stride, in_shape=shape)
        return p, p.out_shape, {p: f"p{index}"}

    params: list = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size}, stride={self.stride})"


@known_keywords
class MaxPool2D(_Pool):
    """The largest value of each ``size`` window (``stride`` defaults to ``size``)."""

    op = maxpool2d


@known_keywords
class AvgPool2D(_Pool):
    """The mean of each ``size`` window (``stride`` defaults to ``size``)."""

    op = avgpool2d


@known_keywords
class Flatten:
    """An image (C, H, W) as a vector of C·H·W, for the Dense layers after it. The values stay
    where they are (images are stored flat, channel by channel): it changes the shape only."""

    params: list = []

    def build(self, x: sp.MatrixExpr, shape, index: int):
        return x, (math.prod(shape),), {}

    def __repr__(self) -> str:
        return "Flatten()"


def init_layer(layer, rng: np.random.Generator, dtype, init: str | None) -> list[np.ndarray]:
    """One layer's initial parameters (Sequential.init_params); a block's (``nested``) layer by layer."""
    if not layer.params:
        return []
    if getattr(layer, "nested", False):
        return [v for inner in layer.layers for v in init_layer(inner, rng, dtype, init)]
    if hasattr(layer, "init_params"):
        return layer.init_params(rng, dtype)
    fan_in, fan_out = layer.fans() if isinstance(layer, Conv2D) else (layer.n_in, layer.n_out)
    init = init or ("he" if layer.act_name in RELU_LIKE else "xavier")
    std = np.sqrt(2.0 / fan_in) if init == "he" else np.sqrt(2.0 / (fan_in + fan_out))
    W, *b = layer.params  # a Dense layer may have no bias
    out = [(rng.standard_normal(tuple(int(d) for d in W.shape)) * std).astype(dtype)]
    return out + [np.zeros(tuple(int(d) for d in p.shape), dtype=dtype) for p in b]


def _what(shape) -> str:
    return "a sequence" if len(shape) == 2 else "an image"


@known_keywords
class Sequential:
    """Layers applied in order to an input of ``input_shape``: ``(C, H, W)`` for images, ``(T, d)`` for
    sequences (T positions of d features, stored position by position: symgrad.lang.attention), or the
    number of features. Parameters are named by layer position: K1, b1 (a convolution), W5, b5 (a
    Dense), gamma3, beta3 (a LayerNorm); values z1 (before the activation), a1 (after), p2 (a
    pooling), n3 (a LayerNorm's normalised input, then z3 = gamma3 ⊙ n3 + beta3), d4 (a Dropout). Layers are
    numbered in order, a block's (``Residual``) own layers included: a Residual numbered 1 with
    two layers gives its output r1 and its layers 2 and 3, and the layer after it is 4.
    ``input_shape`` may be left out after a first Dense (its inputs) or Embedding (its context).
    """

    def __init__(self, layers: Sequence, input_shape: int | tuple[int, ...] | None = None, init: str | None = None):
        if input_shape is None:  # a first Dense or Embedding says it; a convolution takes any image size
            first = next(iter(layers), None) if isinstance(layers, Iterable) and not isinstance(layers, (str, bytes)) else None
            input_shape = getattr(first, "n_in", None) or getattr(first, "context", None)
            if input_shape is None:
                raise OptionError(f"Sequential: the input's shape is not known from the first layer {first!r:.60}. "
                                  "Fix: give input_shape=, e.g. (1, 8, 8) for 8×8 grey images, (T, d) for sequences.")
        shape = (int(input_shape),) if np.ndim(input_shape) == 0 else tuple(int(v) for v in input_shape)
        if len(shape) not in (1, 2, 3) or min(shape) < 1:
            raise OptionError(f"Sequential(input_shape={input_shape!r}): give (C, H, W) for images, (T, d) for "
                              "sequences, or the number of features. Fix: e.g. input_shape=(1, 8, 8) for 8×8 grey images.")
        if init not in (None, "he", "xavier"):
            raise OptionError(f"Sequential(init={init!r}): 'he', 'xavier', or None (He for ReLU-like layers). "
                              "Fix: e.g. init='xavier', or leave it out.")
        given = list(layers) if isinstance(layers, Iterable) and not isinstance(layers, (str, bytes)) else []
        if not given:
            raise OptionError(f"Sequential(layers={layers!r:.60}): give the list of layers, at least one. Fix: e.g. "
                              "Sequential([Dense(2, 16, activation='relu'), Dense(16, 1)], input_shape=2).")
        self.input_shape, self.layers, self.init = shape, given, init
        self._built: set[int] = set()
        forget_other_models()
        self.x = sp.MatrixSymbol("x", math.prod(shape), 1)
        self.labels: dict[sp.Basic, str] = {}
        h: sp.MatrixExpr = self.x
        k = 1
        for layer in self.layers:
            h, shape = self.add(layer, h, shape, k)
            k += getattr(layer, "numbers", 1)  # a block numbers its own layers after itself
        if len(shape) == 3:  # a sequence may stay one: a language model's logits at each position
            raise ShapeError(f"Sequential: the network ends with {_what(shape)} {shape}. Fix: end with Flatten() "
                             "and a Dense layer to the outputs.")
        self.expr, self.output_shape = h, shape
        # the layers' symbols as this model built them: a later model from the same layer objects renames
        # them (W1 there may be W2 here), and its params would have put arrays on the wrong layers
        self._params = [p for layer in self.layers for p in layer.params]

    def add(self, layer, h: sp.MatrixExpr, shape, k: int):
        """Layer ``layer``, numbered k, applied to h of shape ``shape``: (its output, its shape)."""
        if isinstance(layer, Dense):
            return self._dense(layer, h, shape, k)
        if not hasattr(layer, "build"):
            raise OptionError(f"Sequential: layer {k} is {layer!r}, not a layer. Fix: use sg.nn.Conv2D, MaxPool2D, "
                              "AvgPool2D, Flatten, LayerNorm, Dropout, MultiHeadAttention, PositionwiseDense, Residual or Dense.")
        built = layer.build(h, shape, k, self.add) if getattr(layer, "nested", False) else layer.build(h, shape, k)
        h, shape, labels = built
        self._once(layer)
        self.labels.update(labels)
        return h, shape

    def _once(self, layer) -> None:
        """A layer object with parameters used twice in one model would get two sets of them (its second
        use renames the first's), not shared weights."""
        if id(layer) in self._built and layer.params:
            raise OptionError(f"Sequential: the layer {layer!r:.60} is used twice. Each use would get its own "
                              "parameters (symgrad does not share weights between layers). Fix: a new layer object "
                              "for each use, e.g. [Dense(8, 8), Dense(8, 8)] rather than [d, d].")
        self._built.add(id(layer))

    def _dense(self, layer: Dense, h, shape, k: int):
        if len(shape) != 1:
            raise ShapeError(f"layer {k}, Dense({layer.n_in}, {layer.n_out}), takes a vector but its input is "
                             f"{_what(shape)} {shape}. Fix: put sg.nn.Flatten() before it (it then takes {math.prod(shape)}).")
        if layer.n_in != shape[0]:
            raise ShapeError(f"layer {k}, Dense({layer.n_in}, {layer.n_out}), takes {layer.n_in} inputs but gets "
                             f"{shape[0]}. Fix: Dense({shape[0]}, {layer.n_out}).")
        layer.name(k)
        self._once(layer)
        z, a = layer(h)
        self.labels[z] = f"z{k}"
        if a != z:
            self.labels[a] = f"a{k}"
        return a, (layer.n_out,)

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return list(self._params)

    def init_params(self, seed: int = 0, dtype=np.float64) -> list[np.ndarray]:
        """He normal weights for ReLU-like layers (``init`` overrides), Xavier otherwise; zero biases.
        A layer with its own ``init_params(rng, dtype)`` (LayerNorm: γ ones, β zeros) makes its own."""
        rng = np.random.default_rng(seed)
        return [v for layer in self.layers for v in init_layer(layer, rng, dtype, self.init)]

    def __repr__(self) -> str:
        inner = ",\n    ".join(map(repr, self.layers))
        return f"Sequential([\n    {inner},\n], input_shape={self.input_shape})"
