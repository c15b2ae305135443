"""Batch normalisation as a SymPy matrix expression, and the ``BatchNorm`` layer.

``batchnorm(x, mean, var, eps, momentum, channels)`` is one node. In training each feature (an
image's channel: over its H·W positions too) is normalised by the minibatch's statistics,
``x̂ = (x − mean_B(x))/√(var_B(x) + ε)`` (var biased), and the running statistics ``mean`` and
``var`` (column vectors of ``channels`` entries; x holds ``channels`` blocks of equal size, a
block per channel) move towards the batch's:
``mean ← (1 − momentum)·mean + momentum·mean_B``, the same for var with the unbiased variance,
as PyTorch's ``BatchNorm1d``/``BatchNorm2d``. In inference (``predict``, ``evaluate``, a compiled
function's ``grad``) x̂ = (x − mean)/√(var + ε). ``mean`` and ``var`` are parameters of the
model (saved, loaded and resumed with it) that the optimizer never updates
(:func:`running_stats`); the training kernel writes them.

>>> import sympy as sp
>>> z, m, v = sp.MatrixSymbol("z", 4, 1), sp.MatrixSymbol("mean2", 4, 1), sp.MatrixSymbol("var2", 4, 1)
>>> bn = batchnorm(z, m, v)
>>> bn, bn.shape, bn.channels, bn.eps, bn.momentum
(batchnorm(z), (4, 1), 4, 1e-05, 0.1)
>>> sorted(map(str, running_stats(bn + z)))
['mean2', 'var2']
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from ..errors import OptionError, ShapeError
from .args import flag, known_keywords
from .norm import EPS, check_eps
from .rowwise import per_channel
from .walk import find, per_object

#: PyTorch's default momentum of the running statistics.
MOMENTUM = 0.1


def _check_momentum(momentum, what: str) -> float:
    ok = not isinstance(momentum, bool) and isinstance(momentum, (int, float, sp.Number)) and 0 < float(momentum) <= 1
    if not ok:
        raise OptionError(f"{what}(momentum={momentum!r}): the running statistics move this fraction of the way "
                          "to each minibatch's, a number in (0, 1]. Fix: momentum=0.1 (PyTorch's default).")
    return float(momentum)


class batchnorm(sp.MatrixExpr):  # noqa: N801 (named like SymPy's functions and sg.layernorm)
    """x normalised per feature (or channel) by the minibatch's statistics in training and by the
    running ``mean`` and ``var`` in inference; args x, mean, var, ε, momentum."""

    def __new__(cls, x, mean, var, eps=EPS, momentum=MOMENTUM):
        x, mean, var = sp.sympify(x), sp.sympify(mean), sp.sympify(var)
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) != 2 or shape[1] != 1:
            raise ShapeError(f"batchnorm({x}): the input must be a column vector (n × 1, one sample), got shape "
                             f"{shape}. Fix: normalise a layer's output, e.g. with sg.nn.BatchNorm(n).")
        for s in (mean, var):
            if not isinstance(s, sp.MatrixSymbol) or s.shape[1] != 1 or int(shape[0]) % int(s.shape[0]):
                raise ShapeError(f"batchnorm({x}, {mean}, {var}): the running statistics are parameters (matrix "
                                 f"symbols), one entry per feature or channel, dividing {shape[0]}. "
                                 "Fix: use sg.nn.BatchNorm(n), which makes them.")
        if mean.shape != var.shape or mean == var:
            raise ShapeError(f"batchnorm({x}, {mean}, {var}): the running mean and variance are two parameters "
                             "of the same shape. Fix: use sg.nn.BatchNorm(n).")
        e, mom = check_eps(eps, "batchnorm"), _check_momentum(momentum, "batchnorm")
        return sp.Basic.__new__(cls, x, mean, var, sp.Float(e), sp.Float(mom))

    @property
    def channels(self) -> int:
        return int(self.args[1].shape[0])

    @property
    def eps(self) -> float:
        return float(self.args[3])

    @property
    def momentum(self) -> float:
        return float(self.args[4])

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):  # inference: the running statistics
        c = i // (self.shape[0] // self.channels)
        return (self.args[0][i, j] - self.args[1][c, 0]) / sp.sqrt(self.args[2][c, 0] + self.args[3])

    def _sympystr(self, printer):
        more = ("" if self.eps == EPS else f", ε={self.eps:g}") + (
            "" if self.momentum == MOMENTUM else f", momentum={self.momentum:g}")
        return f"batchnorm({printer._print(self.args[0])}{more})"

    def _latex(self, printer):
        return r"\operatorname{batchnorm}\left(%s\right)" % printer._print(self.args[0])


def running_stats(expr: sp.Basic) -> set[sp.MatrixSymbol]:
    """The parameters of ``expr`` that are running statistics: written by training, never by the optimizer."""
    return {s for bn in find(sp.sympify(expr), batchnorm) for s in bn.args[1:3]}


def check_minibatches(rows: int, batch_size: int, expr: sp.Basic) -> None:
    """Refuse training a batch norm of one number per feature with a minibatch of a single row
    (``fit``'s last one included). An image's channel has H·W numbers in one row, whose variance is not 0
    (PyTorch's BatchNorm2d trains on one image too)."""
    if min(int(bn.args[0].shape[0]) // bn.channels for bn in find(sp.sympify(expr), batchnorm)) > 1:
        return
    if rows < 2:
        raise OptionError(f"BatchNorm normalises by each minibatch's statistics, and the data have {rows} row "
                          "(one row's variance is 0). Fix: train on at least 2 rows.")
    if batch_size < 2 or rows % batch_size == 1:
        raise OptionError(f"BatchNorm normalises by each minibatch's statistics, and {rows} rows in minibatches "
                          f"of {batch_size} leave one of a single row (its variance is 0). Fix: a batch_size "
                          "that leaves at least 2 rows in every minibatch, or one row fewer or more.")


@per_object  # fit asks once per call: the walk is a short fit's largest bookkeeping cost
def gradient_free(expr: sp.Basic) -> frozenset[sp.MatrixSymbol]:
    """Parameters whose training gradient is 0 by construction: the running statistics, and a bias
    added right before a batch norm (Dense's b, Conv2D's), which its mean subtracts again.
    ``fit`` does not call their zero norm a vanishing gradient."""
    from .conv import conv2d

    out = running_stats(expr)
    for bn in find(sp.sympify(expr), batchnorm):
        x = bn.args[0]
        terms = x.args if isinstance(x, sp.MatAdd) else (x,)
        out |= {t for t in terms if isinstance(t, sp.MatrixSymbol)}
        out |= {t.args[2] for t in terms if isinstance(t, conv2d) and isinstance(t.args[2], sp.MatrixSymbol)}
    return frozenset(out)


@known_keywords
class BatchNorm:
    """``n = batchnorm(x)``, ``z = γ ⊙ n + β``: each of ``num_features`` features (an image's
    channels, then over their H·W positions too) normalised by the minibatch's mean and variance in
    training and by running statistics in ``predict`` and ``evaluate``, as PyTorch's
    ``BatchNorm1d`` (vectors) and ``BatchNorm2d`` (images). Parameters ``gamma3, beta3`` (ones and
    zeros at first; ``affine=False`` leaves them out) and the running statistics ``mean3, var3``
    (zeros and ones), which the optimizer never updates. Training needs at least 2 values per
    feature in every minibatch. Follow it with ``Activation("relu")`` for conv → BN → ReLU. A bias
    right before it has no effect (the batch mean removes it; its gradient is 0): ``Dense(...,
    bias=False)`` leaves it out.
    """

    def __init__(self, num_features: int, eps: float = EPS, momentum: float = MOMENTUM, affine: bool = True):
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise OptionError(f"BatchNorm({num_features!r}): give the number of features it normalises (an image's "
                              "channels). Fix: e.g. BatchNorm(64) after Dense(..., 64), BatchNorm(16) after Conv2D(.., 16, ..).")
        check_eps(eps, "BatchNorm")
        self.n, self.eps, self.affine = int(num_features), float(eps), flag(affine, "BatchNorm affine")
        self.momentum = _check_momentum(momentum, "BatchNorm")
        self.gamma = self.beta = self.mean = self.var = None

    def build(self, x: sp.MatrixExpr, shape, index: int):
        if len(shape) == 2:
            raise ShapeError(f"layer {index}, {self!r}: batch normalisation of a sequence {tuple(shape)} is not "
                             "supported (a transformer normalises each position). Fix: LayerNorm(d) instead.")
        if shape[0] != self.n:
            what = f"an image of {shape[0]} channels" if len(shape) == 3 else f"{shape[0]} features"
            raise ShapeError(f"layer {index}, {self!r}, normalises {self.n} features or channels but its input is "
                             f"{what}. Fix: BatchNorm({shape[0]}).")
        self.mean, self.var = (sp.MatrixSymbol(f"{s}{index}", self.n, 1) for s in ("mean", "var"))
        n = batchnorm(x, self.mean, self.var, self.eps, self.momentum)
        if not self.affine:
            return n, shape, {n: f"n{index}"}
        self.gamma, self.beta = (sp.MatrixSymbol(f"{s}{index}", self.n, 1) for s in ("gamma", "beta"))
        per = math.prod(shape) // self.n  # an image channel's H·W positions share its γ and β
        g, b = (self.gamma, self.beta) if per == 1 else (per_channel(self.gamma, per), per_channel(self.beta, per))
        z = sp.HadamardProduct(g, n) + b
        return z, shape, {n: f"n{index}", z: f"z{index}"}

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return [p for p in (self.gamma, self.beta, self.mean, self.var) if p is not None]

    def init_params(self, rng: np.random.Generator, dtype) -> list[np.ndarray]:
        """γ ones, β zeros, running mean zeros and variance ones, as PyTorch's (``rng`` unused)."""
        one, zero = np.ones((self.n, 1), dtype=dtype), np.zeros((self.n, 1), dtype=dtype)
        return ([one, zero.copy()] if self.affine else []) + [zero, one.copy()]

    def __repr__(self) -> str:
        return f"BatchNorm({self.n}, eps={self.eps:g}, momentum={self.momentum:g}, affine={self.affine})"
