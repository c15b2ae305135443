"""Learning-rate schedules, called by the trainer between epochs (``epoch`` is 0-based).

A schedule maps ``(base_lr, epoch)`` to the learning rate and shows its ``formula``. This
module also holds :class:`OptimizerConfigError`, which optimizers and schedules raise alike.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import SymgradError


class OptimizerConfigError(SymgradError, ValueError):
    """A hyperparameter of an optimizer or schedule is out of its valid range."""


def require(ok: bool, message: str) -> None:
    """Raise :class:`OptimizerConfigError` with ``message`` unless ``ok``."""
    if not ok:
        raise OptimizerConfigError(message)


def number(name: str, v: object, ok, fix: str) -> None:
    """Require a real number ``v`` (not a bool, not text) for which ``ok(v)`` holds; else say ``fix``."""
    real = isinstance(v, numbers.Real) and not isinstance(v, bool)
    require(real, f"{name}={v!r} is not a number. Fix: pass a real number (a float or an int), "
                  f"not a {type(v).__name__}; {fix}.")
    require(math.isfinite(v) and ok(v), f"{name}={v!r} is out of range. Fix: {fix}.")


def whole(name: str, v: object, least: int) -> None:
    """Require an integer ``v`` >= ``least`` (an int, or a float with an integer value)."""
    number(name, v, lambda u: int(u) == u >= least, f"use an integer >= {least}")


def scaled(base_lr: float, gamma: float, n: int) -> float:
    """base_lr·gammaⁿ; a rate past the largest float is inf (training then stops with a DivergenceError)."""
    try:
        return base_lr * gamma**n
    except OverflowError:
        return math.inf


Schedule = Callable[[float, int], float]  # (base_lr, epoch) -> lr; see ConstantLR and friends


@dataclass(frozen=True)
class ConstantLR:
    """The learning rate stays at its base value.

    >>> ConstantLR()(0.1, epoch=7), ConstantLR().formula
    (0.1, 'lr = lr0')
    """

    formula = "lr = lr0"

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr


@dataclass(frozen=True)
class StepLR:
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (``torch`` StepLR).

    >>> s = StepLR(step_size=2, gamma=0.5)
    >>> [s(1.0, e) for e in range(5)], s.formula
    ([1.0, 1.0, 0.5, 0.5, 0.25], 'lr = lr0·0.5^⌊epoch/2⌋')
    """

    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        whole("step_size", self.step_size, 1)
        number("gamma", self.gamma, lambda v: v > 0, "use a value > 0, e.g. gamma=0.1")

    @property
    def formula(self) -> str:
        return f"lr = lr0·{self.gamma!r}^⌊epoch/{self.step_size}⌋"

    def __call__(self, base_lr: float, epoch: int) -> float:
        return scaled(base_lr, self.gamma, epoch // self.step_size)


@dataclass(frozen=True)
class ExponentialLR:
    """Multiply the learning rate by ``gamma`` every epoch (``torch`` ExponentialLR).

    >>> s = ExponentialLR(gamma=0.5)
    >>> s(1.0, 3), s.formula
    (0.125, 'lr = lr0·0.5^epoch')
    """

    gamma: float

    def __post_init__(self):
        number("gamma", self.gamma, lambda v: v > 0, "use a value > 0, e.g. gamma=0.9")

    @property
    def formula(self) -> str:
        return f"lr = lr0·{self.gamma!r}^epoch"

    def __call__(self, base_lr: float, epoch: int) -> float:
        return scaled(base_lr, self.gamma, epoch)


@dataclass(frozen=True)
class CosineLR:
    """Cosine annealing from the base rate to ``lr_min`` over ``t_max`` epochs.

    Same closed form as torch's CosineAnnealingLR up to ``t_max``; after it the rate
    stays at ``lr_min`` (torch's closed form would rise again).

    >>> s = CosineLR(t_max=4, lr_min=0.0)
    >>> [round(s(1.0, e), 4) for e in (0, 2, 4, 9)]
    [1.0, 0.5, 0.0, 0.0]
    """

    t_max: int
    lr_min: float = 0.0

    def __post_init__(self):
        whole("t_max", self.t_max, 1)
        number("lr_min", self.lr_min, lambda v: v >= 0, "use a value >= 0")

    @property
    def formula(self) -> str:
        return (f"lr = {self.lr_min!r} + (lr0 − {self.lr_min!r})·(1 + cos(π·min(epoch, {self.t_max})"
                f"/{self.t_max}))/2")

    def __call__(self, base_lr: float, epoch: int) -> float:
        frac = min(epoch, self.t_max) / self.t_max
        return self.lr_min + (base_lr - self.lr_min) * (1 + math.cos(math.pi * frac)) / 2


@dataclass(frozen=True)
class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` when ``monitor`` ('val_loss' or 'loss') has not
    improved on its best by a relative ``threshold`` for more than ``patience`` epochs (torch's
    ReduceLROnPlateau, mode 'min', relative threshold); then wait ``cooldown`` epochs; never go
    below ``min_lr``.

    The rate of an epoch is a function of the values of the epochs before it, replayed from the
    training history: so it needs no state of its own, and a resumed or reloaded model continues
    exactly. ``fit`` then runs one epoch per native call (the next rate depends on this epoch).

    >>> s = ReduceLROnPlateau(factor=0.5, patience=1)
    >>> [s.from_history(1.0, [3.0, 2.0, 2.5, 2.4][:e]) for e in range(5)]
    [1.0, 1.0, 1.0, 1.0, 0.5]
    """

    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    cooldown: int = 0
    min_lr: float = 0.0
    monitor: str = "val_loss"

    def __post_init__(self):
        number("factor", self.factor, lambda v: 0 < v < 1, "use a value in (0, 1), e.g. factor=0.1")
        for name in ("patience", "cooldown"):
            whole(name, getattr(self, name), 0)
        number("threshold", self.threshold, lambda v: v >= 0, "use a value >= 0, e.g. threshold=1e-4")
        number("min_lr", self.min_lr, lambda v: v >= 0, "use a value >= 0")
        require(self.monitor in ("val_loss", "loss"),
                f"monitor={self.monitor!r} is not a loss of the history. Fix: use 'val_loss' or 'loss'.")

    @property
    def formula(self) -> str:
        return (f"lr = max(lr0·{self.factor!r}^n, {self.min_lr!r}), n = the plateaus so far: {self.monitor} not below "
                f"its best·(1 − {self.threshold!r}) for more than {self.patience} epochs")

    def __call__(self, base_lr: float, epoch: int) -> float:
        from ..errors import OptionError

        raise OptionError("ReduceLROnPlateau follows the training history: its rate comes from "
                          "Optimizer.lr_at(epoch, history) (sg.fit passes it). Fix: call "
                          "optimizer.lr_at(epoch, history), or let sg.fit apply it.")

    def from_history(self, base_lr: float, values) -> float:
        """The rate after the monitored ``values`` of the epochs so far (a NaN never improves)."""
        lr, best, bad, cool = base_lr, math.inf, 0, 0
        for v in values:
            if v < best * (1 - self.threshold) or (best == math.inf and v == v):
                best, bad = v, 0
            else:
                bad += 1
            if cool > 0:
                cool, bad = cool - 1, 0
            if bad > self.patience:
                lr, cool, bad = max(lr * self.factor, self.min_lr), self.cooldown, 0
        return lr
