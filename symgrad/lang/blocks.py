"""Layers for transformer blocks in ``sg.nn.Sequential``: ``PositionwiseDense`` and ``Residual``.

A pre-norm transformer block over a sequence of T positions × d features is two residual blocks:

>>> d = 8
>>> net = Sequential([Residual([LayerNorm(d), MultiHeadAttention(d, 2, causal=True)]),
...                   Residual([LayerNorm(d), PositionwiseDense(d, 4 * d, "gelu"), PositionwiseDense(4 * d, d)]),
...                   Flatten(), Dense(4 * d, 3)], input_shape=(4, d))
>>> [str(p) for p in net.params]  # doctest: +NORMALIZE_WHITESPACE
['gamma2', 'beta2', 'Wq3', 'Wk3', 'Wv3', 'Wo3', 'gamma5', 'beta5', 'W6', 'b6', 'W7', 'b7', 'W9', 'b9']
>>> sorted(v for v in net.labels.values() if v.startswith("r"))
['r1', 'r4']

Layers are numbered in order, a block's own layers included (``Sequential``): the first
Residual is layer 1 (its output r1 = x + a3), its LayerNorm 2 and its attention 3; the second
Residual is 4, and so on, so every parameter and value has a name of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sympy as sp

from ..errors import OptionError, ShapeError
from .args import flag, known_keywords
from .attention import MultiHeadAttention  # noqa: F401 (the example above)
from .functions import madd
from .layers import Dense, Flatten, LayerNorm, Sequential  # noqa: F401 (the example above)
from .nn import ActivationFn, _apply, _by_name, act_label
from .rowwise import broadcast, residual, rowmatmul


def _width(v, what: str) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
        raise OptionError(f"{what}={v!r}: give a positive integer (a number of features). Fix: e.g. "
                          "PositionwiseDense(16, 64, activation='gelu') from 16 to 64 features per position.")
    return int(v)


@known_keywords
class PositionwiseDense:
    """``z = x·W + b``, ``a = f(z)`` at each position of a sequence (T, d_in) -> (T, d_out): the
    position-wise feed-forward layer of a transformer. ``W`` is d_in × d_out (rows are positions,
    as in MultiHeadAttention: PyTorch's ``Linear.weight`` transposed), ``b`` has d_out entries
    shared by the positions. Weights start He normal for ReLU-like activations (GELU included),
    Xavier otherwise (``Sequential(init=...)`` overrides), biases zero.
    """

    def __init__(self, d_in: int, d_out: int, activation: str | ActivationFn = "identity", bias: bool = True):
        self.n_in, self.n_out = _width(d_in, "PositionwiseDense d_in"), _width(d_out, "PositionwiseDense d_out")
        self.act_name = act_label(activation)
        self.bias = flag(bias, "PositionwiseDense bias")
        if self.act_name == "softmax":
            raise OptionError("PositionwiseDense(activation='softmax'): softmax is a vector op over a Dense layer's "
                              "outputs. Fix: an elementwise activation such as 'gelu'.")
        self.act = _by_name(activation)
        self.W = self.b = None

    def build(self, x: sp.MatrixExpr, shape, index: int):
        if len(shape) != 2:
            got = "an image" if len(shape) == 3 else "a flat vector"
            raise ShapeError(f"layer {index}, {self!r}, takes a sequence (T, d), but its input is {got} {tuple(shape)}. "
                             f"Fix: Dense({shape[0] if len(shape) == 1 else 'n'}, {self.n_out}) for a vector, or "
                             "input_shape=(T, d) for sequences.")
        T, d = shape
        if d != self.n_in:
            raise ShapeError(f"layer {index}, {self!r}, takes {self.n_in} features per position but its input has "
                             f"{d} (shape {tuple(shape)}). Fix: PositionwiseDense({d}, {self.n_out}, ...).")
        self.W = sp.MatrixSymbol(f"W{index}", self.n_in, self.n_out)
        self.b = sp.MatrixSymbol(f"b{index}", self.n_out, 1) if self.bias else None
        z = rowmatmul(x, self.W, seq=(T, d))
        z = madd(z, broadcast(self.b, T)) if self.bias else z
        a = _apply(self.act, z)
        return a, (T, self.n_out), {z: f"z{index}", **({a: f"a{index}"} if a != z else {})}

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return [p for p in (self.W, self.b) if p is not None]

    def __repr__(self) -> str:
        return f"PositionwiseDense({self.n_in}, {self.n_out}, activation={self.act_name!r}" + (
            ")" if self.bias else ", bias=False)")


@known_keywords
class Residual:
    """``r = h + f(h)``: the block's ``layers`` applied in order to its input h (f), added back to
    h. f must give h's shape. The block is numbered like a layer (its output r<k>), its own layers
    after it (k + 1, ...: ``Sequential``). The gradient reaching h is the sum of both paths:
    ``δ_h = δ_r + (what f passes back)``.
    """

    nested = True  # Sequential builds its layers (``build`` gets Sequential.add)

    def __init__(self, layers: Sequence):
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or not layers:
            raise OptionError(f"Residual({layers!r}): give the list of layers of the block, f in h + f(h). "
                              "Fix: e.g. Residual([LayerNorm(d), MultiHeadAttention(d, heads)]).")
        self.layers = list(layers)
        self.numbers = 1 + sum(getattr(layer, "numbers", 1) for layer in self.layers)

    def build(self, x: sp.MatrixExpr, shape, index: int, add):
        h, inner, labels = x, tuple(shape), {}
        k = index + 1
        for layer in self.layers:
            h, inner = add(layer, h, inner, k)
            k += getattr(layer, "numbers", 1)
        if tuple(inner) != tuple(shape):
            if len(shape) == 2 and len(inner) == 2 and inner[0] == shape[0]:
                fix = f"end the block with PositionwiseDense({inner[1]}, {shape[1]})"
            elif len(shape) == 1 and len(inner) == 1:
                fix = f"end the block with Dense({inner[0]}, {shape[0]})"
            else:
                fix = f"make the block's layers give {tuple(shape)} back"
            raise ShapeError(f"layer {index}, Residual, adds its input of shape {tuple(shape)} to its layers' output "
                             f"of shape {tuple(inner)}; h + f(h) needs the same shape. Fix: {fix}.")
        r = residual(x, h)  # not flattened into a sum inside f (as a MatAdd would be): each layer stays a node
        labels[r] = f"r{index}"
        return r, tuple(shape), labels

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return [p for layer in self.layers for p in layer.params]

    def __repr__(self) -> str:
        return f"Residual([{', '.join(map(repr, self.layers))}])"
