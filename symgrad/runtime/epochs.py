"""What fit() does between chunks of epochs: the history, gradient health, metrics and progress
lines, and the stopping rules (threshold, patience, callbacks).

One :class:`Run` per fit call holds what spans epochs: which health warnings were given (each
kind once per run, not every epoch), the first epoch's gradient norm (the baseline growth is
judged against), the metrics and the verbosity.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import OptionError
from ..lang.args import flag
from .inputs import BINARY_LOSSES, CLASS_LOSSES, TOKEN_LOSSES
from .trained import Trained, evaluate_arrays, forward_rows

#: A parameter's gradient norm (per epoch, mean over minibatches) below this is vanishing...
VANISHING_ABS = 1e-8
#: ...and so is one below this fraction of the largest parameter's norm in the same epoch: the
#: first layers of a deep sigmoid net learn that much slower than the last (the notes' example).
VANISHING_REL = 1e-4
#: The global gradient norm above this is exploding...
EXPLODING_ABS = 1e4
#: ...and so is growth to this many times the run's first epoch (and above 1): it warns before the
#: loss overflows (a net scaled x1.3 reached a norm of 277, from ~1, with no warning at 1e4 alone).
EXPLODING_GROWTH = 100.0

ADVICE = {
    "vanishing": "Try: ReLU-like activations (relu, leaky_relu, elu) with He initialisation (Xavier for "
                 "tanh), standardised inputs or normalisation, or skip connections.",
    "exploding": "Try: a smaller learning rate, gradient clipping (clip_norm=1.0), standardised inputs, "
                 "or a scaled initialisation.",
}


class GradientHealthWarning(UserWarning):
    """Per-layer gradient norms collapsed towards 0 (vanishing) or blew up (exploding)."""


class Run:
    """Bookkeeping of one fit call: names, health state, metrics (refused without validation
    data, which they are computed on), verbosity."""

    def __init__(self, params, metrics=None, verbose: int = 0, epochs: int = 0, validated: bool = False,
                 how_to_validate: str = "validation=(X_val, Y_val)", frozen=()):
        self.names, self.verbose, self.epochs = [p.name for p in params], verbose, epochs
        # running statistics (batch norm) get no gradient by design: no health warnings about them
        self.trained = np.array([n not in {f.name for f in frozen} for n in self.names])
        self.metrics = _metrics(metrics)
        if self.metrics and not validated:
            raise OptionError("metrics= are computed on validation data, and none was given. Fix: pass "
                              f"{how_to_validate}.")
        self.warned: set[str] = set()
        self.base: float | None = None  # the first epoch's global gradient norm

    def health(self, gn: np.ndarray, first: int) -> None:
        """Warn (once per kind and run) about vanishing or exploding gradient norms ``gn``."""
        if not len(gn):
            return
        total = np.sqrt((gn.astype(np.float64) ** 2).sum(axis=1))
        if self.base is None:
            self.base = float(total[0])
        top = gn.max(axis=1, keepdims=True)
        grown = (total > EXPLODING_GROWTH * self.base) & (total > 1.0)
        big = ~(gn <= EXPLODING_ABS) | grown[:, None] & (gn >= 0.5 * top)  # NaN is exploding
        # next to an exploding layer a healthy one looks small: the relative rule waits for a sane epoch
        sane = ~big.any(axis=1, keepdims=True)
        small = ((gn < VANISHING_ABS) | (gn < VANISHING_REL * top) & sane) & self.trained
        for kind, mask in (("vanishing", small), ("exploding", big)):
            rows = np.flatnonzero(mask.any(axis=1))
            if kind in self.warned or not len(rows):
                continue
            e = rows[0]
            norms = ", ".join(f"{n} {v:.3g}" for n, v in zip(self.names, gn[e]))
            warnings.warn(f"gradient norms are {kind} in {[n for n, w in zip(self.names, mask[e]) if w]} "
                          f"(epoch {first + e + 1}; per-parameter norms: {norms}). {ADVICE[kind]} "
                          "Warned once per fit; the result's grad_norms() has every epoch, and its "
                          "plot_gradients() draws them.",
                          GradientHealthWarning, stacklevel=user_level())
            self.warned.add(kind)

    def line(self, h: dict, epoch: int) -> None:
        """One progress line per epoch (``verbose=1``), as Keras prints them."""
        parts = [f"epoch {epoch}/{self.epochs}", f"loss {h['loss'][-1]:.4g}"]
        parts += [f"{k} {h[k][-1]:.4g}" for k in h if k.startswith("val_") and h[k]]
        parts += [f"lr {h['lr'][-1]:.3g}", f"{h['time'][-1] * 1e3:.3g} ms"]
        print(" - ".join(parts), flush=True)


def check_flags(progress, shuffle, verbose) -> None:
    """fit's on/off options: bools (a string such as 'no' is truthy, and would do the opposite);
    ``verbose`` 0 (silent), 1 or 2 (a line per epoch; Keras's values), or a bool."""
    flag(progress, "progress"), flag(shuffle, "shuffle")
    if not isinstance(verbose, (int, np.integer)) or verbose not in (0, 1, 2):
        raise OptionError(f"verbose={verbose!r}: use 0 (silent), or 1 or 2 (a line per epoch). Fix: verbose=1, "
                          "or verbose=0.")


def _metrics(metrics) -> dict[str, Callable]:
    if metrics is None:
        return {}
    if callable(metrics):
        metrics = [metrics]
    if isinstance(metrics, Mapping):
        items = list(metrics.items())
    elif isinstance(metrics, Sequence) and not isinstance(metrics, str):
        # a functools.partial (f1_score with average='macro') is named after its function
        items = [(getattr(m, "__name__", None) or getattr(getattr(m, "func", None), "__name__", f"metric{k}"), m)
                 for k, m in enumerate(metrics)]
    else:
        items = [("", metrics)]
    for name, m in items:
        if not callable(m) or not name:
            raise OptionError(f"metrics={metrics!r}: give callables metric(y_true, y_pred), such as "
                              "sklearn.metrics.f1_score, as a list or a {name: metric} dict. Fix: e.g. "
                              "metrics=[f1_score] or metrics={'f1': f1_score}.")
    return dict(items)


def user_level() -> int:
    """warnings.warn's stacklevel of the first caller outside symgrad, for a warning raised where
    this is called: the user's line, however deep fit's wrappers (sklearn's, known_options) are."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


_PACKAGE = str(Path(__file__).resolve().parent.parent) + os.sep  # not symgrad_notes.py beside it


def record(result: Trained, losses: np.ndarray, gn: np.ndarray, lrs, elapsed: float, run: Run,
           first: int) -> None:
    """Append a chunk's epochs (numbered from ``first``) to the history, at once: per epoch,
    the Python floats and the health check cost ~5 µs, 1% of a fast full-batch epoch."""
    h = result.history
    h["loss"] += losses.tolist()
    h["grad_norms"] += gn.tolist()
    h["time"] += [elapsed] * len(losses)
    h.setdefault("lr", []).extend(float(v) for v in lrs[:len(losses)])
    run.health(gn, first)


def after_chunk(result: Trained, val, threshold, patience, callbacks, epoch: int, best, run: Run):
    """Validation, metrics, the progress line and the stopping rules after epoch ``epoch``:
    (stop?, best (loss, parameters, epoch))."""
    try:
        return _after_chunk(result, val, threshold, patience, callbacks, epoch, best, run)
    except OptionError as err:  # a metric or callback failed: the epochs trained are kept, as on divergence
        err.result = result
        raise


def _after_chunk(result: Trained, val, threshold, patience, callbacks, epoch: int, best, run: Run):
    h = result.history
    if val is not None:
        ev = evaluate_arrays(result, *val)
        h["val_loss"].append(ev["loss"])
        if "accuracy" in ev:
            h["val_accuracy"].append(ev["accuracy"])
        for name, value in metric_values(result, val, run.metrics).items():
            h.setdefault(f"val_{name}", []).append(value)
        if ev["loss"] < best[0]:
            best = (ev["loss"], [p.copy() for p in result.params], epoch)
    if run.verbose:
        run.line(h, epoch)
    # every callback sees every epoch trained, the one on which a stopping rule fires too (as Keras's)
    stop = bool(threshold is not None and h["loss"][-1] <= threshold
                or patience is not None and val is not None and epoch - best[2] >= patience)
    for cb in callbacks:
        try:
            said = cb(epoch, result)
        except Exception as exc:  # the user's function: reported as theirs, with the model so far
            raise OptionError(f"callbacks: {getattr(cb, '__name__', cb)!r} failed after epoch {epoch} "
                              f"({type(exc).__name__}: {exc}); the epochs trained so far are in err.result. "
                              "Fix: the callback's error, then resume=err.result to go on.") from exc
        if isinstance(said, (bool, np.bool_)) and said:
            stop = True
            continue
        if not (said is None or isinstance(said, (bool, np.bool_)) or "callback" in run.warned):
            # a callback that returns what it logged (a loss) must not stop the training by accident
            warnings.warn(f"callback {getattr(cb, '__name__', cb)!r} returned {said!r}: only True stops the "
                          "training, so it goes on. Fix: return True to stop, None or False to go on.",
                          RuntimeWarning, stacklevel=user_level())
            run.warned.add("callback")
    return stop, best


def metric_values(result: Trained, val, metrics: dict[str, Callable]) -> dict[str, float]:
    """Each metric on the validation data ``val``: a number, or an :class:`OptionError` naming the
    metric (fit also calls this before its first epoch, so that a metric that cannot work on these
    labels fails before the training, not after it)."""
    if not metrics:
        return {}
    truth, guess = _labels(result, *val)
    out = {}
    for name, m in metrics.items():
        try:
            out[name] = float(m(truth, guess))
        except Exception as exc:  # the user's function: any failure is reported as theirs
            raise OptionError(f"metrics: {name}(y_true, y_pred) failed on the validation data ({type(exc).__name__}: "
                              f"{exc}); it gets {_described(truth)} and must return one number. Fix: a metric "
                              "that takes them, e.g. functools.partial(sklearn.metrics.f1_score, "
                              "average='macro') for more than two classes.") from exc
    return out


def _described(y: np.ndarray) -> str:
    return f"arrays of shape {y.shape}" + (" (class labels)" if y.dtype.kind in "iu" else "")


def _labels(result: Trained, Xa: np.ndarray, Ya: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) as scikit-learn's metrics take them: class labels for classifiers, values
    for regressors (one column as (n,))."""
    out = forward_rows(result, Xa)
    if result._loss_name in TOKEN_LOSSES:  # per-token ids, as evaluate's accuracy counts them
        T = Ya.shape[1]
        return Ya.astype(np.int64).ravel(), out.reshape(len(out), T, -1).argmax(axis=2).ravel()
    if result._loss_name in CLASS_LOSSES:
        return Ya.argmax(axis=1), out.argmax(axis=1)
    if result._loss_name in BINARY_LOSSES:
        truth, guess = (Ya > 0.5).astype(int), (out > 0).astype(int)
    else:
        truth, guess = Ya, out
    return (truth[:, 0], guess[:, 0]) if truth.shape[1] == 1 else (truth, guess)


def epoch_draws(rng: np.random.Generator, n: int, rows: int, shuffle: bool, noisy: bool):
    """Each epoch's row order (a row per epoch; without shuffling the kernel reads X in order and
    needs none) and dropout seed (``noisy``), drawn epoch by epoch: a run cut into other chunks,
    or resumed, draws the same."""
    perms, seeds = np.empty((n, rows if shuffle else 0), dtype=np.int64), np.zeros(n, dtype=np.int64)
    for k in range(n):
        if shuffle:
            perms[k] = rng.permutation(rows)
        if noisy:
            seeds[k] = rng.integers(1, 2**62)
    return perms, seeds
