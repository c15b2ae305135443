"""Hand-written NumPy optimizer steps: an oracle that shares no code with the SymPy rules.

One function per optimizer, written the way ``torch.optim`` computes it (Adam folds its bias
corrections into the step size and denominator), so a wrong rule or a kernel that
mistranslates it disagrees here.
"""

from __future__ import annotations

import math

import numpy as np

from symgrad.lang import optim


def _sgd(opt, p, g, state, t):
    p -= opt.lr * g


def _momentum(opt, p, g, state, t):
    v = state["v"]
    v *= opt.hyper["beta"]
    v += g
    p -= opt.lr * v


def _nesterov(opt, p, g, state, t):
    v = state["v"]
    v *= opt.hyper["beta"]
    v += g
    p -= opt.lr * (g + opt.hyper["beta"] * v)


def _adam(opt, p, g, state, t):
    b1, b2, eps = (opt.hyper[k] for k in ("beta1", "beta2", "eps"))
    m, v = state["m"], state["v"]
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    # PyTorch's arrangement: bias corrections folded into the step size and denominator
    denom = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
    p -= (opt.lr / (1 - b1**t)) * m / denom


def _adamw(opt, p, g, state, t):
    p *= 1 - opt.lr * opt.hyper["weight_decay"]
    _adam(opt, p, g, state, t)


def _adagrad(opt, p, g, state, t):
    s = state["s"]
    s += g * g
    p -= opt.lr * g / (np.sqrt(s) + opt.hyper["eps"])


def _rmsprop(opt, p, g, state, t):
    s, alpha = state["s"], opt.hyper["alpha"]
    s *= alpha
    s += (1 - alpha) * g * g
    p -= opt.lr * g / (np.sqrt(s) + opt.hyper["eps"])


STEPS = {optim.SGD: _sgd, optim.Momentum: _momentum, optim.Nesterov: _nesterov, optim.Adam: _adam,
         optim.AdamW: _adamw, optim.AdaGrad: _adagrad, optim.RMSProp: _rmsprop}
DECOUPLED_DECAY = {optim.AdamW}  # weight decay shrinks p directly instead of adding λ·p to g


def reference_step(opt: optim.Optimizer, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray],
                   t: int) -> None:
    """One in-place step of ``opt`` on ``p`` with gradient ``g`` (``t`` counts steps from 1)."""
    wd = opt.hyper["weight_decay"]
    if wd and type(opt) not in DECOUPLED_DECAY:
        g = g + wd * p
    STEPS[type(opt)](opt, p, g, state, t)
