"""Layer builders: they produce ordinary SymPy matrix expressions and parameter lists.

>>> net = MLP([4, 8, 3], activation="tanh")
>>> net.params
[W1, b1, W2, b2]
>>> net.expr
W2*Lambda(z, tanh(z)).(W1*x + b1) + b2
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sympy as sp

from ..errors import OptionError, SymgradError
from . import ops
from .functions import elementwise, softmax

Activation = Callable[[sp.Expr], sp.Expr]
#: Activations whose layers get He initialisation (the rest get Xavier/Glorot).
RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu", "silu", "swish")


# Named functions, not lambdas: a model holding them pickles (sg.fit results, estimators).
def _identity(z: sp.Expr) -> sp.Expr:
    return z


def _leaky_relu(z: sp.Expr) -> sp.Expr:
    return ops.leaky_relu(z, sp.Rational(1, 100))


def _elu(z: sp.Expr) -> sp.Expr:
    return ops.elu(z, sp.S.One)


ACTIVATIONS: dict[str, Activation] = {
    "identity": _identity,
    "sigmoid": ops.sigmoid,
    "tanh": sp.tanh,
    "relu": ops.relu,
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "softplus": ops.softplus,
    "gelu": ops.gelu,
    "silu": ops.silu,
    "swish": ops.silu,
    "softmax": softmax,
}


def activation(f: Callable[[sp.Expr], sp.Expr] | str) -> Activation:
    """A custom activation: any SymPy expression of one symbol.

    Its derivative is derived, simplified, printed and compiled with no hand-written rule.

    >>> mish = activation(lambda z: z * sp.tanh(sp.log(1 + sp.exp(z))))
    >>> mish(sp.Symbol("z", real=True))
    z*tanh(softplus(z))
    """
    if isinstance(f, str):
        if f not in ACTIVATIONS:
            raise SymgradError(f"unknown activation {f!r}. Known: {sorted(ACTIVATIONS)}; or pass a function")
        return ACTIVATIONS[f]
    z = sp.Symbol("z", real=True)
    body = sp.sympify(f(z))
    if body.free_symbols - {z}:
        raise SymgradError(f"an activation must be an expression of its one argument only, got {body}")
    from ..front.rewrite import stabilize
    from ..front.validate import check_functions

    check_functions(body)
    body, _ = stabilize(body)
    return sp.Lambda(z, body)


def _by_name(name: str) -> Activation:
    return activation(name)


def _apply(act: Activation, m: sp.MatrixExpr) -> sp.MatrixExpr:
    if act is softmax:  # a vector op, not elementwise
        return softmax(m)
    z = sp.Symbol("z", real=True)
    body = act(z)
    return m if body == z else elementwise(sp.Lambda(z, body), m)


def check_network(model: object) -> None:
    """Refuse a ``model`` that is not a network (``fit`` and ``formulas`` read its ``expr``,
    ``params`` and ``x``): a name or a bare formula would fail inside with an AttributeError."""
    missing = [a for a in ("expr", "params", "x") if not hasattr(model, a)]
    if missing:
        raise OptionError(f"the model must be a network such as sg.nn.MLP([2, 16, 1]) (anything with .expr, "
                          f".params and .x), got {type(model).__name__} {model!r:.60} without "
                          f"{', '.join('.' + a for a in missing)}. Fix: build it, e.g. "
                          "net = sg.nn.MLP([n_in, 16, n_out]); for a scalar formula use sg.compile.")


class Dense:
    """One layer ``a = f(W x + b)``; ``W`` is (n_out × n_in), ``b`` is (n_out × 1)."""

    def __init__(self, n_in: int, n_out: int, activation: str | Activation = "identity", index: int = 1):
        self.n_in, self.n_out, self.index = n_in, n_out, index
        self.act_name = activation if isinstance(activation, str) else "custom"
        self.act = _by_name(activation) if isinstance(activation, str) else activation
        self.W = sp.MatrixSymbol(f"W{index}", n_out, n_in)
        self.b = sp.MatrixSymbol(f"b{index}", n_out, 1)

    def __call__(self, x: sp.MatrixExpr) -> tuple[sp.MatrixExpr, sp.MatrixExpr]:
        """(pre-activation z, activation a)."""
        z = self.W * x + self.b
        return z, _apply(self.act, z)

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return [self.W, self.b]

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out}, activation={self.act_name!r})"


class MLP:
    """A multilayer perceptron as one SymPy expression.

    ``sizes`` = [n_in, hidden..., n_out]. Hidden layers use ``activation``, the last one
    ``output`` (identity by default, or ``None``: losses such as 'bce' and
    'softmax_cross_entropy' take logits, and refuse an output that applies sigmoid/softmax).
    ``init`` is 'he' (for ReLU-like) or 'xavier' (Glorot; for sigmoid/tanh).
    """

    def __init__(self, sizes: Sequence[int], activation: str | Activation = "relu",
                 output: str | Activation | None = "identity", init: str | None = None):
        output = "identity" if output is None else output
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (Sequence, np.ndarray)):
            raise OptionError(f"MLP(sizes={sizes!r}): sizes is the list of layer widths, sizes=[n_in, "
                              "hidden..., n_out]. Fix: e.g. MLP([2, 16, 1]) for 2 inputs, 16 hidden units "
                              "and 1 output (MLP([3, 1]) is a linear model of 3 inputs).")
        if len(sizes) < 2:
            raise SymgradError("MLP needs at least [n_in, n_out]")
        bad = [n for n in sizes if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1]
        if bad:
            raise SymgradError(f"MLP sizes must be positive integers, got {bad} in {list(sizes)}. "
                               "Fix: e.g. MLP([2, 16, 1]) for 2 inputs, 16 hidden units and 1 output.")
        self.sizes = list(sizes)
        self.x = sp.MatrixSymbol("x", sizes[0], 1)
        self.layers: list[Dense] = []
        self.labels: dict[sp.Basic, str] = {}
        h: sp.MatrixExpr = self.x
        n = len(sizes) - 1
        for k in range(n):
            act = activation if k < n - 1 else output
            layer = Dense(sizes[k], sizes[k + 1], act, index=k + 1)
            z, h = layer(h)
            self.labels[z] = f"z{k + 1}"
            if h != z:  # an identity output layer has no separate activation
                self.labels[h] = f"a{k + 1}"
            self.layers.append(layer)
        self.expr = h
        relu_like = isinstance(activation, str) and activation in RELU_LIKE
        self.init = init or ("he" if relu_like else "xavier")

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return [p for layer in self.layers for p in layer.params]

    def init_params(self, seed: int = 0, dtype=np.float64) -> list[np.ndarray]:
        """Random weights (He or Xavier/Glorot normal), zero biases; reproducible by seed."""
        rng = np.random.default_rng(seed)
        out = []
        for layer in self.layers:
            fan_in, fan_out = layer.n_in, layer.n_out
            std = np.sqrt(2.0 / fan_in) if self.init == "he" else np.sqrt(2.0 / (fan_in + fan_out))
            out.append((rng.standard_normal((fan_out, fan_in)) * std).astype(dtype))
            out.append(np.zeros((fan_out, 1), dtype=dtype))
        return out

    def __repr__(self) -> str:
        return f"MLP({self.sizes}, init={self.init!r})"


# The convolutional layers and Sequential build on Dense above (sg.nn is one namespace).
from .layers import AvgPool2D, Conv2D, Flatten, MaxPool2D, Sequential  # noqa: E402, F401
