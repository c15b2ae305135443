"""``Activation``: an activation as a layer of its own (PyTorch's ``nn.ReLU()``, ``nn.Tanh()``, ...),
for networks that normalise between a layer's product and its nonlinearity (Dense or Conv2D
without activation, BatchNorm, then ``Activation("relu")``).

>>> import symgrad as sg
>>> nn = sg.nn
>>> net = nn.Sequential([nn.Dense(3, 4), nn.BatchNorm(4), nn.Activation("relu"), nn.Dense(4, 2)], 3)
>>> str(net.expr).startswith("W4*Lambda(z, relu(z))")
True
"""

from __future__ import annotations

import sympy as sp

from .nn import ActivationFn, _apply, _by_name, act_label


class Activation:
    """``a = f(x)`` entry by entry (``softmax``: over the vector), for a name of
    ``sg.nn.ACTIVATIONS`` or a function made by ``sg.activation``; no parameters. Its value is
    named a<k> in the printed formulas."""

    def __init__(self, activation: str | ActivationFn):
        self.act_name = act_label(activation)
        self.act = _by_name(activation)  # a name, or a function of a SymPy expression; anything else refused

    def build(self, x: sp.MatrixExpr, shape, index: int):
        a = _apply(self.act, x)
        return a, shape, ({a: f"a{index}"} if a != x else {})

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return []

    def __repr__(self) -> str:
        return f"Activation({self.act_name!r})"
