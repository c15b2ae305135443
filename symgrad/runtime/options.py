"""fit's options, checked before anything is built: each that would fail inside (in the kernel,
NumPy or threadpoolctl) or be silently ignored is refused with its fix; optimizers by name."""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from numbers import Real

import numpy as np

from ..errors import OptionError
from ..lang import optim
from ..lang.args import known_keywords


def check_fit_options(epochs, batch_size, patience, validation, params, resume) -> None:
    """fit's options that would otherwise fail inside the kernel or be silently ignored."""
    if not _count(batch_size, 1):
        raise OptionError(f"batch_size={batch_size!r} is not a batch size. Fix: use an integer >= 1 "
                          "(len(X) for full-batch gradient descent).")
    if not _count(epochs, 0):
        raise OptionError(f"epochs={epochs!r} is not a number of epochs. Fix: use an integer >= 0.")
    if validation is not None and (not isinstance(validation, (tuple, list)) or len(validation) != 2):
        raise OptionError("validation= takes a pair (X_val, Y_val). Fix: pass validation=(X_val, Y_val).")
    if patience is not None and validation is None:
        raise OptionError(f"patience={patience!r} stops on the validation loss, but no validation= data "
                          "was given, so it would be ignored. Fix: pass validation=(X_val, Y_val), or "
                          "drop patience= (threshold= stops on the training loss).")
    if patience is not None and not _count(patience, 1):
        raise OptionError(f"patience={patience!r} is not a number of epochs. Fix: use an integer >= 1 (epochs "
                          "without improvement), or None.")
    if params is not None and resume is not None:
        raise OptionError("params= and resume= both give the starting parameters. Fix: pass one of them.")


def check_run_options(threshold, seed, callbacks, chunk_epochs, blas_threads, threads) -> list:
    """fit's options for how it runs (each would fail inside, or in NumPy or threadpoolctl); the
    callbacks as a list (a single function is a list of one)."""
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, Real)
                                  or math.isnan(threshold)):
        raise OptionError(f"threshold={threshold!r}: use a number (training stops once the training loss "
                          "is at most it), or None. Fix: e.g. threshold=1e-3.")
    try:  # an int needs no trial Generator (6 µs; a short fit, W3's, spends ~1 ms in Python in all)
        if not _count(seed, 0):
            np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise OptionError(f"seed={seed!r}: use an integer >= 0 (it sets the initial weights and the "
                          "shuffling). Fix: e.g. seed=0.") from None
    for name, n in (("chunk_epochs", chunk_epochs), ("blas_threads", None if blas_threads == "auto" else blas_threads),
                    ("threads", threads)):
        if n is not None and not _count(n, 1):
            raise OptionError(f"{name}={n!r}: use an integer >= 1, or None{' or auto' * (name[0] == 'b')}. Fix: e.g. {name}=1, or drop it.")
    if callbacks is None:
        return []
    if callable(callbacks) or isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Iterable):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    for cb in callbacks:
        if not callable(cb) or not _takes_two(cb):
            what = "is not a function" if not callable(cb) else "does not take two arguments (epoch, model)"
            raise OptionError(f"callbacks: {cb!r} {what}. Fix: pass functions callback(epoch, model) "
                              "that return True to stop, e.g. callbacks=[lambda epoch, m: epoch >= 5].")
    return callbacks


def _takes_two(cb) -> bool:
    """Whether ``cb(epoch, model)`` binds (checked before training: a callback of one argument raised
    Python's TypeError after the first epoch). A function whose signature is unknown passes."""
    try:
        inspect.signature(cb).bind(0, None)
    except TypeError:
        return False
    except ValueError:  # some builtins have no signature
        pass
    return True


def _count(n, least: int) -> bool:
    return isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= least


def optimizers() -> dict[str, type]:
    """sg.optim's optimizers by lower-case name: 'sgd', 'adam', 'adamw', 'rmsprop', ..."""
    return {name.lower(): cls for name, cls in vars(optim).items()
            if isinstance(cls, type) and issubclass(cls, optim.Optimizer) and cls is not optim.Optimizer}


def resolve_optimizer(optimizer) -> optim.Optimizer:
    """An Optimizer for ``optimizer=``: None is Adam(), a name is that optimizer's defaults."""
    if optimizer is None:
        return optim.Adam()
    if isinstance(optimizer, str):
        known = optimizers()
        if optimizer.lower() not in known:
            raise OptionError(f"unknown optimizer {optimizer!r}. Known: {sorted(known)}. Fix: pass one of "
                              "these names, or an object with its settings, e.g. sg.optim.Adam(lr=0.01).")
        return known[optimizer.lower()]()
    if not isinstance(optimizer, optim.Optimizer):
        raise OptionError(f"optimizer={type(optimizer).__name__} is not a symgrad optimizer. Fix: pass "
                          "one of sg.optim (e.g. sg.optim.Adam(lr=0.01)) or its name, e.g. 'adam'.")
    return optimizer


def check_chunking(chunk_epochs: int | None, **after_each_epoch: bool) -> None:
    """``chunk_epochs`` > 1 runs that many epochs per native call, and fit looks at the model only
    between calls: options that act after every epoch (validation and its early stopping and
    best parameters, callbacks, threshold, the per-epoch line, ReduceLROnPlateau) would then act
    after every ``chunk_epochs``-th epoch only, which their documentation does not say."""
    names = [name for name, on in after_each_epoch.items() if on]
    if chunk_epochs is not None and chunk_epochs > 1 and names:
        raise OptionError(f"chunk_epochs={chunk_epochs} runs {chunk_epochs} epochs per native call, but "
                          f"{', '.join(names)} must act after every epoch, not after every {chunk_epochs} "
                          "(early stopping would keep the best of the chunks' last epochs only). "
                          "Fix: drop chunk_epochs (with these options fit runs one epoch per call).")


#: keywords of the optimizers, which PyTorch and Keras users pass to the training call
_OPTIMIZERS = dict.fromkeys(
    ("lr", "learning_rate", "momentum", "weight_decay", "beta1", "beta2", "eps", "nesterov"),
    "the optimizer takes it, e.g. optimizer=sg.optim.Adam(lr=1e-3, weight_decay=1e-4) or "
    "sg.optim.Momentum(lr=0.1, beta=0.9) (Nesterov(...) for nesterov=True)")


def known_options(func):
    """``func`` (fit) refusing a keyword it does not take with an OptionError that names the nearest
    one, or the optimizer for an optimizer's keyword: Python's own TypeError (``fit() got an
    unexpected keyword argument 'epoch'``) names none."""
    return known_keywords(func, _OPTIMIZERS)
