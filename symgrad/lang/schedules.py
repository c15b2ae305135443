"""Learning-rate schedules, called by the trainer between epochs (``epoch`` is 0-based).

A schedule maps ``(base_lr, epoch)`` to the learning rate and shows its ``formula``. This
module also holds :class:`OptimizerConfigError`, which optimizers and schedules raise alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import SymgradError


class OptimizerConfigError(SymgradError, ValueError):
    """A hyperparameter of an optimizer or schedule is out of its valid range."""


def require(ok: bool, message: str) -> None:
    """Raise :class:`OptimizerConfigError` with ``message`` unless ``ok``."""
    if not ok:
        raise OptimizerConfigError(message)


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
        ok = int(self.step_size) == self.step_size >= 1
        require(ok, f"step_size={self.step_size!r}: use an integer >= 1")
        require(self.gamma > 0, f"gamma={self.gamma!r}: use a value > 0")

    @property
    def formula(self) -> str:
        return f"lr = lr0·{self.gamma!r}^⌊epoch/{self.step_size}⌋"

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


@dataclass(frozen=True)
class ExponentialLR:
    """Multiply the learning rate by ``gamma`` every epoch (``torch`` ExponentialLR).

    >>> s = ExponentialLR(gamma=0.5)
    >>> s(1.0, 3), s.formula
    (0.125, 'lr = lr0·0.5^epoch')
    """

    gamma: float

    def __post_init__(self):
        require(self.gamma > 0, f"gamma={self.gamma!r}: use a value > 0")

    @property
    def formula(self) -> str:
        return f"lr = lr0·{self.gamma!r}^epoch"

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma**epoch


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
        require(self.t_max >= 1, f"t_max={self.t_max!r}: use a value >= 1")
        require(self.lr_min >= 0, f"lr_min={self.lr_min!r}: use a value >= 0")

    @property
    def formula(self) -> str:
        return (f"lr = {self.lr_min!r} + (lr0 − {self.lr_min!r})·(1 + cos(π·min(epoch, {self.t_max})"
                f"/{self.t_max}))/2")

    def __call__(self, base_lr: float, epoch: int) -> float:
        frac = min(epoch, self.t_max) / self.t_max
        return self.lr_min + (base_lr - self.lr_min) * (1 + math.cos(math.pi * frac)) / 2
