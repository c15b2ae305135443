"""fit(): the training driver around the fused Numba kernel.

>>> import numpy as np, symgrad as sg
>>> X = np.random.default_rng(0).normal(size=(64, 2)); Y = (X[:, 0] > 0).astype(float)
>>> net = sg.nn.MLP([2, 4, 1], activation="tanh")
>>> m = sg.fit(net, "bce", X, Y, optimizer=sg.optim.Adam(0.05), epochs=20, batch_size=16, backend="python")
>>> m.history["loss"][-1] < m.history["loss"][0]
True

Training resumes exactly where it stopped, also after ``m.save(path)`` and ``sg.load(path)``:

>>> more = m.fit_more(X, Y, epochs=5)
>>> len(more.history["loss"]), more.state.epoch
(25, 25)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from .. import jit
from ..build import check_options, training_module
from ..codegen.train import kernel_args
from ..errors import DataError, OptionError, ShapeError
from ..lang.args import check_network
from ..lang.batchnorm import batchnorm, check_minibatches, gradient_free
from ..lang.conv import model_input
from ..lang.dropout import dropout
from ..lang.embedding import check_token_ids
from ..lang.optim import Optimizer
from ..lang.walk import find, per_object
from .checks import is_dask, split_flat
from .divergence import Mark, diverged, scheduled_rate
from .epochs import GradientHealthWarning, Run, after_chunk, check_flags, epoch_draws, metric_values, record  # noqa: F401

# CHUNK_SECONDS and fit_threads stay importable from here (tests, bench).
from .execution import (  # noqa: F401
    CHUNK_SECONDS,
    _blas_limit,
    _grow_chunk,
    _kernel,
    _numba_threads,
    _progress,
    fit_blas_threads,
    fit_threads,
    sample_work,
)
from .inputs import as_data, data_dtype, prepare_xy, split_validation, target_positions
from .memory import keep_freed_memory
from .options import check_chunking, check_fit_options, check_run_options, known_options, resolve_optimizer
from .prewarm import await_loop, compile_other
from .state import ModelSpec, TrainState, check_resume, initial_params, sync_params, sync_states
from .trained import Trained


@known_options
def fit(model, loss, X, Y, *, optimizer: Optimizer | str | None = None, epochs: int = 10,
        batch_size: int = 32, seed: int = 0, dtype: str | None = None, validation: tuple | None = None,
        threshold: float | None = None, patience: int | None = None, callbacks: Sequence[Callable] | Callable = (),
        progress: bool = False, chunk_epochs: int | None = None, params: list[np.ndarray] | None = None,
        backend: str = "numba", blas_threads: int | str | None = "auto", shuffle: bool = True,
        threads: int | None = None, resume: Trained | None = None, client=None, strategy: str = "sync",
        local_steps: int = 1, validation_split: float | None = None, metrics=None, verbose: int = 0) -> Trained:
    """Train ``model`` on (X, Y) with the fused kernel. See the module docstring.

    Stops after ``epochs``, when the training loss reaches ``threshold``, or when the validation
    loss has not improved for ``patience`` epochs (then the best parameters are restored).
    ``optimizer``: one of ``sg.optim`` or its name ('adam', 'sgd', ...; default Adam()).
    ``dtype``: 'float32' or 'float64'; by default ``resume``'s, else the data's, as scikit-learn
    and NumPy choose it: float32 ``X`` trains a float32 model; float64, integer, bool and object
    (numbers) ``X``, lists and pandas frames train float64. Data of another dtype (``Y``,
    ``validation``, and later ``predict``'s and ``evaluate``'s) is converted to the model's.
    ``shuffle=False`` visits samples in order (no copy per minibatch; with ``batch_size >= len(X)``
    this is plain full-batch gradient descent).
    A non-finite loss raises :class:`DivergenceError`; the model keeps the last whole epoch's parameters.
    ``blas_threads`` caps BLAS threads while the kernel runs (None: BLAS's own); "auto": one for
    small steps (below 4M multiply-adds, where more were measured slower), BLAS's own above (up to
    1.8x faster on two cores: docs/decisions.md). Row blocks always get one BLAS thread each.
    ``threads``: a minibatch of two blocks' worth of rows (1,024 each, or fewer holding 2M multiply-adds)
    is split into row blocks that Numba's threads compute in parallel (None: all of Numba's; 1: one thread,
    which computes a heavy minibatch of convolutions or attention as two blocks when BLAS has one thread too).
    ``resume``: a model from ``fit`` or ``sg.load`` to continue training exactly where it stopped
    (parameters, optimizer state, step count, schedule position, shuffling RNG; ``seed`` is
    then unused): 5 epochs and then 5 resumed epochs give the parameters of 10 straight ones.
    ``chunk_epochs``: epochs per native call (None: fit grows chunks of short epochs to ~20 ms;
    one epoch per call with validation, callbacks, threshold, verbose or ReduceLROnPlateau, which
    act after every epoch and refuse a chunk of more).
    ``validation_split``: hold out this fraction of the rows (the last ones, before shuffling,
    as Keras does) as ``validation``. ``metrics``: callables ``metric(y_true, y_pred)`` (any of
    scikit-learn's, e.g. ``sklearn.metrics.f1_score``), as a list or a ``{name: metric}`` dict,
    computed on the validation data after every epoch into ``history['val_<name>']`` (class
    labels for classifiers, outputs for regressors). ``verbose=1`` (or 2) prints a line per epoch.
    ``history`` holds per epoch: loss, val_loss (and val_accuracy, metrics), lr, grad_norms, time.
    A ``GradientHealthWarning`` (once per fit and kind) flags vanishing gradient norms (absolute,
    or small next to the largest layer's) and exploding ones (large, or growing 100x over the
    first epoch: before the loss overflows).
    ``client``, ``strategy``, ``local_steps``: Dask arrays ``X`` and ``Y`` train on a Dask cluster
    (``pip install 'symgrad[distributed]'``; see :mod:`symgrad.distributed.train`); each worker
    then runs one thread, and ``progress``, ``chunk_epochs``, ``threads`` and ``blas_threads``
    (options of this process's kernel calls) are not used.
    """
    check_network(model)
    callbacks = check_run_options(threshold, seed, callbacks, chunk_epochs, blas_threads, threads)
    check_flags(progress, shuffle, verbose)
    if client is not None or is_dask(X) or is_dask(Y):
        if validation_split is not None:
            raise OptionError("validation_split= slices in-memory arrays; with Dask arrays pass the held-out "
                              "data as validation=(X_val, Y_val) (NumPy or Dask arrays).")
        return _fit_dask(model, loss, X, Y, client=client, strategy=strategy, local_steps=local_steps,
                         optimizer=optimizer, epochs=epochs, batch_size=batch_size, seed=seed, dtype=dtype,
                         validation=validation, threshold=threshold, patience=patience, callbacks=callbacks,
                         params=params, backend=backend, shuffle=shuffle, resume=resume, metrics=metrics,
                         verbose=verbose)
    X, Y, validation = split_validation(X, Y, validation, validation_split)
    if strategy != "sync" or local_steps != 1:
        raise OptionError(f"strategy={strategy!r} and local_steps={local_steps!r} are for training on Dask "
                          "arrays with client=. Fix: drop them, or pass Dask arrays and a client.")
    optimizer, dtype = resolve_start(model, loss, optimizer, dtype, epochs, batch_size, patience, validation,
                                     params, resume)
    X = as_data(X, "X")
    # before anything is built or cached; the data's dtype when none is given, as in scikit-learn
    dt = np.dtype(check_options(dtype or data_dtype(X), backend=backend))
    path, loss_name, n_out, dims = training_module(model, loss, optimizer, dt.name)
    mod = jit.load(path, jit=(backend == "numba"), dims=dims)
    keep_freed_memory()  # each step's temporaries reuse the last step's pages (runtime/memory.py)
    n_in = model_input(model)
    T = target_positions(model, loss_name)
    Xa, Ya = prepare_xy(X, Y, loss_name, n_in, n_out, dt, positions=T)
    val = (prepare_xy(*validation, loss_name, n_in, n_out, dt, ("validation X", "validation Y"), T)
           if validation is not None else None)
    for data in (Xa, val[0] if val else None):
        if data is not None:
            check_token_ids(model, data)
    spec = ModelSpec.of(model)
    kinds = _kinds(spec.expr)
    if batchnorm in kinds:
        check_minibatches(len(Xa), batch_size, spec.expr)
    theta, state, history = _start(model, params, seed, dt, optimizer, resume, batch_size, shuffle)
    ps = _views(theta, model)  # the result's parameters are views into the trained buffer
    views = tuple(ps)  # ps itself is the result's list, which a callback may change
    result = Trained(ps, history, mod, loss_name, n_out, dt, model=model, loss=loss, optimizer=optimizer,
                     backend=backend, state=state)
    flat_states, rng, first = state.opt_state, state.rng(), state.epoch
    own_states = tuple(flat_states)  # the buffers the kernel updates, whatever a callback rebinds
    run = Run(model.params, metrics, verbose, first + epochs, val is not None,
              "validation=(X_val, Y_val) or validation_split=0.1", gradient_free(spec.expr))
    metric_values(result, val, run.metrics)  # a metric that cannot take these labels fails now, not after epoch 1
    follows = _check_monitor(optimizer, val is not None)  # ReduceLROnPlateau: the next rate needs this epoch
    after_each = dict(validation=val is not None, callbacks=bool(callbacks), threshold=threshold is not None,
                      verbose=bool(verbose), ReduceLROnPlateau=follows)
    check_chunking(chunk_epochs, **after_each)
    per_epoch = progress or any(after_each.values())
    chunk = chunk_epochs or (1 if per_epoch else max(1, min(epochs, 10)))
    work, rows = sample_work(spec.expr), min(batch_size, len(Xa))  # the kernel's buffers hold a batch of rows
    kernel, n_threads = _kernel(mod, threads, rows, backend, work, theta.size, blas_threads)
    blas = fit_blas_threads(blas_threads, work, rows, n_threads)
    bar = _progress(epochs) if progress else None
    # Compile (or load from cache) before timing: a zero-epoch call runs no step.
    hyper, clip = optimizer.hyper_values(), dt.type(optimizer.clip_norm or 0.0)
    zero = kernel_args(theta=theta, data=(Xa, Ya), states=[np.zeros_like(a) for a in flat_states],
                       perms=np.zeros((0, len(Xa)), dtype=np.int64), shuffle=shuffle, batch_size=rows,
                       lrs=np.zeros(0, dt), t0=0, clip=clip, hyper=hyper, losses=np.zeros(0, dt),
                       gnorms=np.zeros((0, len(ps)), dt), seeds=np.zeros(0, np.int64))
    if backend == "numba":  # the loop a background child compiles: its code, not a second compile
        await_loop(mod, kernel)
    kernel(*zero)
    if backend == "numba" and blas == 1:  # one core trains: the row-block loop compiles on the other
        compile_other(mod, kernel, zero)

    def train(perms, seeds, lrs, t0):  # one native call over the epochs of perms
        losses, gnorms = np.zeros(len(lrs), dtype=dt), np.zeros((len(lrs), len(ps)), dtype=dt)
        with _blas_limit(blas), _numba_threads(n_threads):
            done, t, status = kernel(*kernel_args(
                theta=theta, data=(Xa, Ya), states=list(own_states), perms=perms, shuffle=shuffle,
                batch_size=rows, lrs=lrs, t0=t0, clip=clip, hyper=hyper, losses=losses, gnorms=gnorms,
                seeds=seeds))
        return done, t, status, losses, gnorms

    epoch, best = first, (np.inf, None, first)  # epochs are counted from the first run's start
    while epoch < first + epochs:
        n = min(chunk, first + epochs - epoch)
        lrs = np.array(_rates(result, optimizer, epoch, n), dtype=dt)
        mark = Mark(rng, theta, own_states, state.t)  # where a divergence in this chunk goes back to
        perms, seeds = epoch_draws(rng, n, len(Xa), shuffle, dropout in kinds)
        start = time.perf_counter()
        done, state.t, status, losses, gnorms = train(perms, seeds, lrs, state.t)
        elapsed = (time.perf_counter() - start) / max(done, 1)
        record(result, losses[:done], gnorms[:done], lrs, elapsed, run, epoch)
        epoch += done
        if done < n:  # the optimizer's state and the generator too as after the last whole epoch
            state.t = mark.replay(done, theta, own_states, rng,
                                  lambda k: epoch_draws(rng, k, len(Xa), shuffle, dropout in kinds),
                                  partial(train, perms[:done], seeds[:done], lrs[:done], mark.t))
        state.epoch, state.rng_state = epoch, rng.bit_generator.state
        if not (chunk_epochs or per_epoch):  # fewer, longer native calls when epochs are short
            chunk = _grow_chunk(chunk, elapsed, len(Xa) if shuffle else 0)
        if done < n:
            diverged(result, status, mark.theta, theta, epoch + 1)
        stop = after_chunk(result, val, threshold, patience, callbacks, epoch, best, run)
        best = stop[1]
        sync_params(result, views)  # a callback's new arrays are trained on, as its writes are
        sync_states(result, own_states)
        if bar is not None:
            bar.update(done)
            bar.set_postfix(loss=result.history["loss"][-1])
        if stop[0]:
            break
    if bar is not None:
        bar.close()
    if patience is not None and best[1] is not None:
        result.params = best[1]
    return result


def _rates(result: Trained, optimizer: Optimizer, epoch: int, n: int) -> list[float]:
    """The schedule's rates for epochs ``epoch`` to ``epoch + n - 1``; a schedule that fails keeps
    the epochs trained so far in err.result, as a failing callback or metric does."""
    try:
        return [scheduled_rate(optimizer, epoch + k, result.history) for k in range(n)]
    except OptionError as err:
        err.result = result
        raise


def resolve_start(model, loss, optimizer, dtype, epochs, batch_size, patience, validation, params, resume):
    """(optimizer, dtype) after fit's option checks: ``resume``'s unless given."""
    check_fit_options(epochs, batch_size, patience, validation, params, resume)
    optimizer = None if optimizer is None else resolve_optimizer(optimizer)
    if resume is not None:
        check_resume(resume, model, loss, optimizer)
        optimizer, dtype = optimizer or resume.optimizer, dtype or resume.dtype
    return resolve_optimizer(optimizer), dtype


def _check_monitor(optimizer: Optimizer, has_validation: bool) -> bool:
    """Whether the schedule follows the training (ReduceLROnPlateau); it needs what it watches."""
    monitor = getattr(optimizer.schedule, "monitor", None)
    if monitor == "val_loss" and not has_validation:
        raise OptionError("ReduceLROnPlateau watches val_loss, but fit has no validation data. Fix: pass "
                          "validation=(X_val, Y_val) or validation_split=0.1, or ReduceLROnPlateau(monitor='loss').")
    return monitor is not None


def _fit_dask(model, loss, X, Y, **options) -> Trained:
    if not (is_dask(X) and is_dask(Y)):
        which = " and ".join(n for n, a in (("X", X), ("Y", Y)) if not is_dask(a))
        raise DataError(f"client= trains on Dask arrays, but {which} {'is' if len(which) == 1 else 'are'} not. "
                        "Fix: da.from_array(X, chunks=...) with the same row chunks for Y, or drop client= "
                        "to train in this process.")
    from ..distributed.train import fit as fit_on_dask  # Dask is an optional extra

    return fit_on_dask(model, loss, X, Y, **options)


@per_object  # once per model: a walk costs a short fit ~50 µs, and sp's has() walks shared subtrees again
def _kinds(expr) -> frozenset[type]:
    return frozenset(type(n) for n in find(expr, batchnorm, dropout))


def _start(model, params, seed, dt, optimizer, resume, batch_size, shuffle):
    """(flat parameters, training state, history) to start from: fresh, or where ``resume`` stopped."""
    if resume is None:
        theta = _flat(initial_params(model, params, seed, dt))
        state = TrainState(list(optimizer.init_state(theta.shape, dt).values()), 0, 0,
                           np.random.default_rng(seed).bit_generator.state, batch_size, shuffle)
        return theta, state, {"loss": [], "val_loss": [], "val_accuracy": [], "grad_norms": [], "time": []}
    theta = _flat(initial_params(model, resume.params, seed, dt))
    old = resume.state
    opt_state = [np.array(a, dtype=dt, copy=True) for a in old.opt_state]  # resume's own are never changed
    if any(a.shape != theta.shape for a in opt_state):
        raise ShapeError(f"resume= holds optimizer state of {[a.shape for a in opt_state]} numbers for "
                         f"{theta.size} parameters. Fix: resume from a model saved by this symgrad.")
    state = TrainState(opt_state, old.t, old.epoch, old.rng_state, batch_size, shuffle)
    return theta, state, {k: list(v) for k, v in resume.history.items()}


def _flat(params: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([p.reshape(-1) for p in params])


def _views(theta: np.ndarray, model) -> list[np.ndarray]:
    """theta cut into the model's parameter shapes (views, not copies)."""
    return split_flat(theta, [tuple(int(d) for d in p.shape) for p in model.params])
