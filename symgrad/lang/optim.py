"""Optimizers as elementwise SymPy update rules: one definition, printed and compiled.

An optimizer is a short ordered list of assignments such as ``m ← β1·m + (1 − β1)·g``.
Its text, its LaTeX and its Numba kernel all come from that list, so what you read is
what runs. Semantics follow ``torch.optim`` for the same hyperparameters; the tests check
the kernels against hand-written NumPy steps (``tests/optim_oracle.py``) and against torch.

This module holds the concrete optimizers and re-exports the rest of the public API: the
base class and :func:`clip_scale` (``optim_base``), the learning-rate schedules and
:class:`OptimizerConfigError` (``schedules``).

>>> print(SGD(lr=0.1, weight_decay=1e-4))
SGD(lr=0.1, weight_decay=0.0001)
g ← g + λ·p
p ← p − lr·g
"""

from __future__ import annotations

import sympy as sp

from .optim_base import Optimizer, clip_scale
from .schedules import (
    ConstantLR,
    CosineLR,
    ExponentialLR,
    OptimizerConfigError,
    ReduceLROnPlateau,
    Schedule,
    StepLR,
)
from .update_rules import LR, G, P, T, sym

__all__ = ["SGD", "AdaGrad", "Adam", "AdamW", "ConstantLR", "CosineLR", "ExponentialLR", "Momentum", "Nesterov",
           "Optimizer", "OptimizerConfigError", "RMSProp", "ReduceLROnPlateau", "Schedule", "StepLR", "clip_scale"]


class SGD(Optimizer):
    """Plain gradient descent: ``p ← p − lr·g``.

    >>> print(SGD(lr=0.01))
    SGD(lr=0.01)
    p ← p − lr·g
    """

    def __init__(self, lr: float = 0.01, *, weight_decay: float = 0.0,
                 clip_norm: float | None = None, schedule: Schedule | None = None):
        super().__init__(lr, {}, weight_decay=weight_decay, clip_norm=clip_norm, schedule=schedule)

    def _rules(self):
        return [(P, P - LR * G)]


class Momentum(Optimizer):
    """Heavy-ball momentum, as ``torch.optim.SGD(momentum=beta)`` (no dampening).

    >>> print(Momentum(lr=0.1))
    Momentum(lr=0.1, beta=0.9)
    v ← β·v + g
    p ← p − lr·v
    """

    state = ("v",)

    def __init__(self, lr: float = 0.01, beta: float = 0.9, *, weight_decay: float = 0.0,
                 clip_norm: float | None = None, schedule: Schedule | None = None):
        hyper = {"beta": beta}
        super().__init__(lr, hyper, weight_decay=weight_decay, clip_norm=clip_norm, schedule=schedule)

    def _rules(self):
        v, beta = sym("v"), sym("beta")
        return [(v, beta * v + G), (P, P - LR * v)]


class Nesterov(Momentum):
    """Nesterov momentum, as ``torch.optim.SGD(momentum=beta, nesterov=True)``.

    >>> print(Nesterov(lr=0.1))
    Nesterov(lr=0.1, beta=0.9)
    v ← β·v + g
    p ← p − lr·(g + β·v)
    """

    def _rules(self):
        v, beta = sym("v"), sym("beta")
        return [(v, beta * v + G), (P, P - LR * (G + beta * v))]


class Adam(Optimizer):
    """Adam with bias correction; ``t`` counts steps from 1 (``torch.optim.Adam``).

    >>> print(Adam(lr=1e-3))
    Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08)
    m ← β1·m + (1 − β1)·g
    v ← β2·v + (1 − β2)·g²
    m̂ ← m/(1 − β1^t)
    v̂ ← v/(1 − β2^t)
    p ← p − lr·m̂/(√v̂ + ε)
    """

    state = ("m", "v")

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, *,
                 weight_decay: float = 0.0, clip_norm: float | None = None,
                 schedule: Schedule | None = None):
        hyper = {"beta1": beta1, "beta2": beta2, "eps": eps}
        super().__init__(lr, hyper, weight_decay=weight_decay, clip_norm=clip_norm, schedule=schedule)

    def _rules(self):
        m, v, mhat, vhat = map(sym, ("m", "v", "mhat", "vhat"))
        b1, b2, eps = map(sym, ("beta1", "beta2", "eps"))
        return [(m, b1 * m + (1 - b1) * G), (v, b2 * v + (1 - b2) * G**2),
                (mhat, m / (1 - b1**T)), (vhat, v / (1 - b2**T)),
                (P, P - LR * mhat / (sp.sqrt(vhat) + eps))]


class AdamW(Adam):
    """Adam with decoupled weight decay ``p ← p·(1 − lr·λ)`` first (``torch.optim.AdamW``).

    >>> print(str(AdamW(lr=1e-3)).splitlines()[:2])
    ['AdamW(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.01)', 'p ← (1 − lr·λ)·p']
    """

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, *,
                 weight_decay: float = 0.01, clip_norm: float | None = None,
                 schedule: Schedule | None = None):
        super().__init__(lr, beta1, beta2, eps, weight_decay=weight_decay, clip_norm=clip_norm,
                         schedule=schedule)

    def _decay_rules(self, always: bool = False):
        return [(P, P * (1 - LR * sym("weight_decay")))] if always or self.hyper["weight_decay"] else []


class AdaGrad(Optimizer):
    """AdaGrad: squared gradients summed over all steps (``torch.optim.Adagrad``).

    >>> print(AdaGrad(lr=0.01))
    AdaGrad(lr=0.01, eps=1e-10)
    s ← s + g²
    p ← p − lr·g/(√s + ε)
    """

    state = ("s",)

    def __init__(self, lr: float = 0.01, eps: float = 1e-10, *, weight_decay: float = 0.0,
                 clip_norm: float | None = None, schedule: Schedule | None = None):
        hyper = {"eps": eps}
        super().__init__(lr, hyper, weight_decay=weight_decay, clip_norm=clip_norm, schedule=schedule)

    def _rules(self):
        s, eps = sym("s"), sym("eps")
        return [(s, s + G**2), (P, P - LR * G / (sp.sqrt(s) + eps))]


class RMSProp(Optimizer):
    """RMSProp: a running mean of squared gradients (``torch.optim.RMSprop``, not centred).

    >>> print(RMSProp(lr=0.01))
    RMSProp(lr=0.01, alpha=0.99, eps=1e-08)
    s ← α·s + (1 − α)·g²
    p ← p − lr·g/(√s + ε)
    """

    state = ("s",)

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, *,
                 weight_decay: float = 0.0, clip_norm: float | None = None,
                 schedule: Schedule | None = None):
        hyper = {"alpha": alpha, "eps": eps}
        super().__init__(lr, hyper, weight_decay=weight_decay, clip_norm=clip_norm, schedule=schedule)

    def _rules(self):
        s, alpha, eps = sym("s"), sym("alpha"), sym("eps")
        return [(s, alpha * s + (1 - alpha) * G**2), (P, P - LR * G / (sp.sqrt(s) + eps))]
