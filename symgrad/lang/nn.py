"""Layer builders: they produce ordinary SymPy matrix expressions and parameter lists.

>>> net = MLP([4, 8, 3], activation="tanh")
>>> net.params
[W1, b1, W2, b2]
>>> net.expr
W2*Lambda(z, tanh(z)).(W1*x + b1) + b2
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import sympy as sp

from ..errors import OptionError, SymgradError
from . import ops
from .args import count, flag, known_keywords
from .functions import elementwise, madd, mmul, softmax

ActivationFn = Callable[[sp.Expr], sp.Expr]
#: Activations whose layers get He initialisation (the rest get Xavier/Glorot).
RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu", "silu", "swish")


# Named functions, not lambdas: a model holding them pickles (sg.fit results, estimators).
def _identity(z: sp.Expr) -> sp.Expr:
    return z


def _leaky_relu(z: sp.Expr) -> sp.Expr:
    return ops.leaky_relu(z, sp.Rational(1, 100))


def _elu(z: sp.Expr) -> sp.Expr:
    return ops.elu(z, sp.S.One)


ACTIVATIONS: dict[str, ActivationFn] = {
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


def activation(f: Callable[[sp.Expr], sp.Expr] | str) -> ActivationFn:
    """A custom activation: any SymPy expression of one symbol.

    Its derivative is derived, simplified, printed and compiled with no hand-written rule.

    >>> mish = activation(lambda z: z * sp.tanh(sp.log(1 + sp.exp(z))))
    >>> mish(sp.Symbol("z", real=True))
    z*tanh(softplus(z))
    """
    if isinstance(f, str):
        if f not in ACTIVATIONS:
            near = difflib.get_close_matches(f.lower(), ACTIVATIONS, n=1)
            fix = (f"{near[0]!r}, the closest known name" if near
                   else "a known name, e.g. activation='relu', or sg.nn.activation(lambda z: z * sp.tanh(z))")
            raise SymgradError(f"unknown activation {f!r}. Known: {sorted(ACTIVATIONS)}; or pass a function. "
                               f"Fix: {fix}.")
        return ACTIVATIONS[f]
    if not callable(f):
        raise OptionError(f"activation={f!r:.60} is neither an activation's name nor a function. Fix: a name "
                          "such as activation='relu', or a function of one SymPy symbol, e.g. "
                          "sg.nn.activation(lambda z: z / (1 + z**2)).")
    z = sp.Symbol("z", real=True)
    try:
        body = sp.sympify(f(z))
    except (TypeError, ValueError, AttributeError, sp.SympifyError) as exc:
        raise OptionError(f"activation {f!r:.60} does not build a SymPy expression of one symbol ({exc}). Fix: write "
                          "it with SymPy functions, e.g. lambda z: sp.tanh(z) (not np.tanh or math.tanh).") from None
    if isinstance(body, (sp.MatrixBase, sp.MatrixExpr)):  # Numba's NameError on ImmutableDenseMatrix, later
        raise OptionError(f"an activation gives one number per entry, and {f!r:.60} gives the matrix {body}. Fix: "
                          "return a scalar expression of z, e.g. activation(lambda z: z * sp.tanh(z)); for several "
                          "outputs per unit use several layers.")
    if not isinstance(body, sp.Expr) or body.free_symbols - {z}:
        raise SymgradError(f"an activation must be an expression of its one argument only, got {body}. Fix: use "
                           "only the argument, e.g. activation(lambda z: z * sp.tanh(z)).")
    from ..front.rewrite import stabilize
    from ..front.validate import check_functions

    check_functions(body)
    body, _ = stabilize(body)
    return sp.Lambda(z, body)


def _by_name(f) -> ActivationFn:
    """A layer's ``activation=``: a name, a function of a SymPy expression (kept as given), or None
    for none (Keras's ``activation=None``, as ``MLP(output=None)``)."""
    return f if callable(f) and not isinstance(f, str) else activation("identity" if f is None else f)


def act_label(f) -> str:
    """The name a layer's ``activation=`` is shown by."""
    return "identity" if f is None else f if isinstance(f, str) else "custom"


def _apply(act: ActivationFn, m: sp.MatrixExpr) -> sp.MatrixExpr:
    act = _by_name(act)  # a layer that kept a bad activation= unchecked (sg.nn.Activation(3)) is refused here
    if act is softmax:  # a vector op, not elementwise
        return softmax(m)
    z = sp.Symbol("z", real=True)
    try:
        body = act(z)
    except Exception as exc:  # the user's function (np.tanh cannot take a SymPy symbol)
        raise OptionError(f"activation={getattr(act, '__name__', act)!r} failed on a SymPy symbol ({type(exc).__name__}: "
                          f"{exc}); an activation is a SymPy function of one expression. Fix: its name (e.g. "
                          "'tanh') or a SymPy function (sp.tanh, lambda z: z / (1 + sp.Abs(z))), not NumPy's.") from exc
    if not isinstance(body, sp.Basic):
        raise OptionError(f"activation={getattr(act, '__name__', act)!r} returned {body!r:.40}, not a SymPy expression. "
                          "Fix: its name (e.g. 'tanh') or a SymPy function such as sp.tanh.")
    return m if body == z else elementwise(sp.Lambda(z, body), m)


@known_keywords
class Dense:
    """One layer ``a = f(W x + b)``; ``W`` is (n_out × n_in), ``b`` is (n_out × 1), or ``a = f(W x)``
    with ``bias=False``. ``weight``/``bias_name`` name the parameters (default W<index>, b<index>)."""

    def __init__(self, n_in: int, n_out: int, activation: str | ActivationFn = "identity", index: int = 1,
                 bias: bool = True, weight: str | None = None, bias_name: str | None = None):
        fix = "e.g. Dense(2, 16) for 2 inputs and 16 outputs."
        self.n_in, self.n_out = count(n_in, "Dense n_in", fix), count(n_out, "Dense n_out", fix)
        self.index, self.bias = count(index, "Dense index", "e.g. index=1 (the parameters W1, b1)."), flag(bias, "Dense bias")
        for what, v in (("weight", weight), ("bias_name", bias_name)):
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise OptionError(f"Dense({what}={v!r}): a parameter's name is a str such as 'W1', or None (W<index>, "
                                  f"b<index>). Fix: e.g. Dense(2, 3, weight='alpha', bias_name='beta').")
        self.act_name = act_label(activation)
        self.act = _by_name(activation)
        self.name(self.index, weight, bias_name)

    def name(self, index: int, weight: str | None = None, bias_name: str | None = None) -> None:
        """(Re)name the parameters for layer position ``index``."""
        self.index = index
        self.W = sp.MatrixSymbol(weight or f"W{index}", self.n_out, self.n_in)
        self.b = sp.MatrixSymbol(bias_name or f"b{index}", self.n_out, 1) if self.bias else None

    def __call__(self, x: sp.MatrixExpr) -> tuple[sp.MatrixExpr, sp.MatrixExpr]:
        """(pre-activation z, activation a)."""
        z = madd(mmul(self.W, x), self.b) if self.bias else mmul(self.W, x)
        return z, _apply(self.act, z)

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return [self.W, self.b] if self.bias else [self.W]

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out}, activation={self.act_name!r}" + (")" if self.bias else ", bias=False)")


def _hidden_activations(activation, n: int) -> list:
    """One activation per hidden layer from MLP's ``activation``: one for all, or a list."""
    if isinstance(activation, (list, tuple)):
        if len(activation) != n:
            raise OptionError(f"MLP(activation={list(activation)!r}) gives {len(activation)} activations for {n} "
                              f"hidden layers. Fix: one per hidden layer (sizes[1:-1]), or one name for all.")
        return list(activation)
    return [activation] * n


def _layer_names(names: dict | None, n: int) -> dict[str, list[str]]:
    """Per-layer names from MLP's ``names``: a letter is numbered by layer (z → z1, z2), a list
    gives each layer its own name (the notes' a, b for pre-activations and α, β for weights)."""
    if names is not None and not isinstance(names, Mapping):
        raise OptionError(f"MLP(names={names!r:.60}): names is a dict of the printed names. Fix: e.g. "
                          "names={'weights': ['alpha', 'beta'], 'target': 'y*'}, or leave it out.")
    names = dict(names or {})
    unknown = set(names) - {"weights", "biases", "pre", "act", "target"}
    if unknown:
        raise OptionError(f"MLP(names=...) has unknown keys {sorted(unknown)}. Fix: use 'weights', 'biases', "
                          "'pre' (pre-activations), 'act' (activations) and 'target', e.g. names={'pre': ['a', 'b'], "
                          "'act': ['z', 'y'], 'weights': ['alpha', 'beta'], 'target': 'y*'}.")
    target = names.pop("target", "y")
    if not isinstance(target, str) or not target or target == "x" or not (target[0].isalpha() or target[0] == "_"):
        raise OptionError(f"MLP(names={{'target': {target!r}}}): the target's name in the formulas, not 'x' (the "
                          "input's). Fix: e.g. 'y*' or 't'.")
    out = {}
    for key, default in (("weights", "W"), ("biases", "b"), ("pre", "z"), ("act", "a")):
        v = names.get(key, default)
        if isinstance(v, str):
            out[key] = [f"{v}{k + 1}" for k in range(n)]
        elif isinstance(v, (list, tuple)) and len(v) == n and all(isinstance(x, str) and x for x in v):
            out[key] = list(v)
        else:
            raise OptionError(f"MLP(names={{{key!r}: {v!r}}}): give one letter (numbered by layer) or a list of "
                              f"{n} names, one per layer. Fix: e.g. names={{{key!r}: {default!r}}} or a list of {n} str.")
    taken = [name for key in out for name in out[key]]
    if {"x", target} & set(taken):
        raise OptionError(f"MLP(names=...) uses {sorted({'x', target} & set(taken))}, which names the input or the "
                          "target in the formulas. Fix: another name, or rename the target: the notes' output y "
                          "and target y* are names={'act': [..., 'y'], 'target': 'y*'}.")
    out["target"] = [target]
    if len(set(taken)) != len(taken):
        raise OptionError(f"MLP(names=...) gives the same name twice ({sorted({t for t in taken if taken.count(t) > 1})})"
                          ": each parameter and value needs its own name, or the formulas would mix them up. Fix: rename one of them.")
    return out


@known_keywords
class MLP:
    """A multilayer perceptron as one SymPy expression.

    ``sizes`` = [n_in, hidden..., n_out]. Hidden layers use ``activation`` (one for all, or a
    list with one per hidden layer: ``["relu", "tanh"]``), the last one
    ``output`` (identity by default, or ``None``: losses such as 'bce' and
    'softmax_cross_entropy' take logits, and refuse an output that applies sigmoid/softmax).
    ``init`` is 'he' (for ReLU-like) or 'xavier' (Glorot; for sigmoid/tanh). ``bias=False``
    leaves out the biases (``z = W x``). ``names`` renames parameters, values and the target so
    the printed formulas read like a text's: the notes' one-hidden-layer net, output y and target
    y*, is ``MLP([M, D, 1], "sigmoid", bias=False, names={"weights": ["alpha", "beta"], "pre":
    ["a", "b"], "act": ["z", "y"], "target": "y*"})``.
    """

    def __init__(self, sizes: Sequence[int], activation: str | ActivationFn = "relu",
                 output: str | ActivationFn | None = "identity", init: str | None = None, bias: bool = True,
                 names: dict | None = None):
        output = "identity" if output is None else output
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (Sequence, np.ndarray)):
            raise OptionError(f"MLP(sizes={sizes!r}): sizes is the list of layer widths, sizes=[n_in, "
                              "hidden..., n_out]. Fix: e.g. MLP([2, 16, 1]) for 2 inputs, 16 hidden units "
                              "and 1 output (MLP([3, 1]) is a linear model of 3 inputs).")
        if len(sizes) < 2:
            raise SymgradError(f"MLP needs at least [n_in, n_out], got sizes={list(sizes)!r}. Fix: e.g. MLP([3, 1]) "
                               "for a linear model of 3 inputs, or MLP([3, 16, 1]) with a hidden layer.")
        if init not in (None, "he", "xavier"):
            raise OptionError(f"MLP(init={init!r}): 'he', 'xavier', or None (He for ReLU-like activations). "
                              "Fix: e.g. MLP([2, 16, 1], init='xavier').")
        bias = flag(bias, "MLP bias")
        bad = [n for n in sizes if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1]
        if bad:
            raise SymgradError(f"MLP sizes must be positive integers, got {bad} in {list(sizes)}. "
                               "Fix: e.g. MLP([2, 16, 1]) for 2 inputs, 16 hidden units and 1 output.")
        n = len(sizes) - 1
        hidden = _hidden_activations(activation, n - 1)
        self.sizes, self.bias = list(sizes), bool(bias)
        self.x = sp.MatrixSymbol("x", sizes[0], 1)
        self.layers: list[Dense] = []
        self.labels: dict[sp.Basic, str] = {}
        h: sp.MatrixExpr = self.x
        named = _layer_names(names, n)
        for k in range(n):
            act = hidden[k] if k < n - 1 else output
            layer = Dense(sizes[k], sizes[k + 1], act, index=k + 1, bias=bias, weight=named["weights"][k],
                          bias_name=named["biases"][k])
            z, h = layer(h)
            self.labels[z] = named["pre"][k]
            if h != z:  # an identity output layer has no separate activation
                self.labels[h] = named["act"][k]
            self.layers.append(layer)
        self.expr, self.target_name = h, named["target"][0]  # the target's name in sg.formulas
        relu_like = bool(hidden) and all(isinstance(a, str) and a in RELU_LIKE for a in hidden) or (
            isinstance(activation, str) and activation in RELU_LIKE)
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
            if layer.bias:
                out.append(np.zeros((fan_out, 1), dtype=dtype))
        return out

    def __repr__(self) -> str:  # its activations too: GridSearchCV's best_params_ showed two nets alike
        acts = [layer.act_name for layer in self.layers]
        act = f", activation={(acts[0] if len(set(acts[:-1])) == 1 else acts[:-1])!r}" if acts[:-1] else ""
        out = "" if acts[-1] == "identity" else f", output={acts[-1]!r}"
        return f"MLP({self.sizes}{act}{out}, init={self.init!r}" + (")" if self.bias else ", bias=False)")


# The convolutional layers and Sequential build on Dense above (sg.nn is one namespace).
from .activation_layer import Activation  # noqa: E402, F401
from .attention import MultiHeadAttention  # noqa: E402, F401
from .batchnorm import BatchNorm  # noqa: E402, F401
from .blocks import PositionwiseDense, Residual  # noqa: E402, F401
from .dropout import Dropout  # noqa: E402, F401
from .embedding import Embedding  # noqa: E402, F401
from .layers import AvgPool2D, Conv2D, Flatten, LayerNorm, MaxPool2D, Sequential  # noqa: E402, F401
from .transformer import Transformer  # noqa: E402, F401
