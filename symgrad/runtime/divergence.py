"""What ``fit`` keeps when training diverges, and the learning rates it refuses before a step.

The kernel puts the parameters back to the end of the last epoch whose every step was finite,
but the optimizer's state (Adam's m and v, momentum), its step count and the shuffling generator
had moved on with the failed epoch: err.result held a momentum of 3e104 and a step count four
ahead, so resuming from it with the smaller rate the message advises diverged at once. A chunk's
start is marked, and a diverged chunk goes back to it and replays its whole epochs (the kernel
is deterministic), so that everything err.result holds is the state after them.
"""

from __future__ import annotations

import decimal
import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import DivergenceError, OptionError, SymgradError


class Mark:
    """A chunk's start: parameters, optimizer state, step count and the generator's state."""

    def __init__(self, rng: np.random.Generator, theta: np.ndarray, states: Sequence[np.ndarray], t: int):
        self.rng_state, self.theta, self.t = rng.bit_generator.state, theta.copy(), t
        self.states = [a.copy() for a in states]

    def replay(self, done: int, theta: np.ndarray, states: Sequence[np.ndarray], rng: np.random.Generator,
               draw: Callable[[int], object], run: Callable[[], tuple]) -> int:
        """Back to the mark, then the ``done`` whole epochs again (``draw(k)`` draws k epochs'
        shuffles, ``run()`` trains the chunk's first ``done`` epochs); the step count after them."""
        self._restore(theta, states)
        rng.bit_generator.state = self.rng_state
        draw(done)
        if not done:
            return self.t
        got, t = run()[:2]
        if got == done:
            return t
        self._restore(theta, states)  # a replay that differed (the kernel is deterministic): the chunk's start
        return self.t

    def _restore(self, theta: np.ndarray, states: Sequence[np.ndarray]) -> None:
        theta[...] = self.theta
        for a, b in zip(states, self.states):
            a[...] = b


def diverged(result, status: int, snapshot: np.ndarray, theta: np.ndarray, epoch: int) -> None:
    """Stop with a clear message (status 1: a loss or gradient was not finite; 2: an update
    overflowed); the parameters are the last whole epoch's, or the chunk's start were any not finite."""
    if not np.isfinite(theta).all():
        theta[...] = snapshot
    what = "the training loss became NaN/Inf" if status == 1 else "a parameter update overflowed to Inf"
    err = DivergenceError(
        f"{what} in epoch {epoch}; training stopped and the parameters of the last whole epoch ({epoch - 1}) were kept "
        "(err.result.params, with the optimizer's state after that epoch, so resume=err.result goes on from there; "
        "your own arrays are never modified). Try: a smaller learning rate, gradient clipping (clip_norm=1.0), "
        "or standardised inputs."
    )
    err.result = result
    raise err


def scheduled_rate(optimizer, epoch: int, history) -> float:
    """The schedule's rate for ``epoch``, checked: a user's schedule that fails or returns no
    number >= 0 (a negative rate trains uphill; NaN read as an overflow) is refused. Any real
    number is taken: Python's, NumPy's scalars and 0-d arrays (np.where), Fractions, Decimals,
    SymPy's, a framework's 0-d tensor; one past float64's range is inf."""
    try:
        lr = optimizer.lr_at(epoch, history)
    except SymgradError:
        raise
    except Exception as exc:  # the user's function: IndexError from a table of rates, too
        raise OptionError(f"the schedule {optimizer.schedule!r} failed ({type(exc).__name__}: {exc}) on the "
                          f"learning rate of epoch {epoch} (0-based). {_SCHEDULE_FIX}") from exc
    rate = _real(lr)
    if rate is None or rate < 0 or rate != rate:
        raise OptionError(f"the schedule {optimizer.schedule!r} gave {lr!r} as the learning rate of epoch {epoch} "
                          f"(0-based). {_SCHEDULE_FIX}")
    return rate


_SCHEDULE_FIX = ("A schedule is called as schedule(base_lr, epoch) and returns a number >= 0 (inf stops the "
                 "training as a divergence). Fix: e.g. schedule=lambda lr, epoch: lr / (1 + epoch), or one of "
                 "sg.optim's (StepLR, ExponentialLR, CosineLR).")


def _real(lr) -> float | None:
    """``lr`` as a float when it is one real number (not a bool, text or complex); else None."""
    if lr is None or isinstance(lr, (bool, np.bool_, str, bytes)):
        return None
    if isinstance(lr, numbers.Complex) and not isinstance(lr, numbers.Real):
        return None
    if not isinstance(lr, (numbers.Real, decimal.Decimal)):
        try:
            kind = np.asarray(lr).dtype.kind if np.ndim(lr) == 0 else None
        except Exception:  # noqa: BLE001 - whatever it is, it is no number
            return None
        if kind is None or kind not in "fiu":
            return None
    try:
        return float(lr)
    except OverflowError:  # 10**400 or a Fraction as large
        return math.inf
    except (TypeError, ValueError, ArithmeticError):
        return None
