"""Data-parallel training on Dask: ``sg.fit(model, loss, X, Y, client=client, strategy=...)``.

Two strategies, both with fit()'s history, divergence guard, validation, early stopping,
callbacks and ``resume=``:

- ``strategy="sync"`` (default): synchronous full-batch gradient descent. Each epoch is one
  step: every worker computes the loss and gradient of its row chunks with the generated
  ``loss_grad``, the client combines them into the gradient of all rows, clips it as fit()
  does, and applies the optimizer's generated update. It is exact: the same steps as a
  single-process ``fit(..., batch_size=len(X), shuffle=False)``, up to the order of the sum;
  with Dropout, the same masks too (each entry's mask is a hash of the step's key, its row in
  the whole data and its column, so where a row is computed does not matter).
- ``strategy="local"``: local SGD with parameter averaging. Each round, every worker runs the
  fused training kernel for ``local_steps`` minibatches of ``batch_size`` rows of its chunk
  (shuffled per epoch unless ``shuffle=False``), then the client averages the parameters and the
  optimizer state (Adam's moments, momentum), weighted by the rows each worker used; the step
  count advances by ``local_steps``. An epoch is as many rounds as the largest chunk needs to be
  visited once. Far fewer round trips than ``sync`` with minibatches; with ``local_steps=1``,
  one minibatch per chunk (``batch_size`` = chunk rows), plain SGD and equal chunks it is
  exactly synchronous gradient descent. With Dropout, each chunk draws its own masks (its
  key mixes the epoch's seed with the chunk's number).

Keep the data where it lives: ``X.persist()`` when it fits in the cluster's memory; otherwise
every task reads its chunk from the source (files on disk, say): each step of ``sync``, each
round of ``local`` (so choose ``local_steps * batch_size`` near a chunk's rows), and nothing
holds all of the data.
A worker lost mid-epoch is replaced and its tasks rerun by Dask (they are deterministic); if Dask gives
up, training stops with :class:`DistributedError` and ``err.result`` holds the parameters after
the last complete epoch, as it does after divergence.
"""

from __future__ import annotations

import time
import uuid

import numpy as np

from .. import jit
from ..build import check_options, training_module
from ..errors import DistributedError, OptionError
from ..lang.batchnorm import batchnorm
from ..lang.conv import model_input
from ..lang.dropout import dropout
from ..lang.walk import find
from ..native.noise import step_key
from ..runtime.divergence import diverged
from ..runtime.epochs import Run, after_chunk, record
from ..runtime.fit import _check_monitor, _rates, _start, _views, resolve_start
from ..runtime.inputs import as_data, data_dtype, prepare_xy, target_positions
from ..runtime.row_sums import combine
from ..runtime.state import ModelSpec, sync_params, sync_states
from ..runtime.trained import Trained
from .arrays import compute, resolve_client, row_blocks, scatter
from .worker import ModuleSource, local_round, loss_grad_chunk

STRATEGIES = ("sync", "local")


def fit(model, loss, X, Y, *, client=None, strategy: str = "sync", local_steps: int = 1, optimizer=None,
        epochs: int = 10, batch_size: int = 32, seed: int = 0, dtype: str | None = None,
        validation: tuple | None = None, threshold: float | None = None, patience: int | None = None,
        callbacks=(), params=None, backend: str = "numba", shuffle: bool = True, resume=None, metrics=None,
        verbose: int = 0) -> Trained:
    """Train on Dask arrays ``X`` and ``Y`` (same row chunks). See the module docstring; the
    other options are :func:`symgrad.fit`'s. ``batch_size`` and ``shuffle`` apply to ``local``."""
    if strategy not in STRATEGIES:
        raise OptionError(f"strategy={strategy!r}: use 'sync' (exact full-batch steps) or 'local' (local SGD "
                          "with parameter averaging)")
    if isinstance(local_steps, bool) or not isinstance(local_steps, (int, np.integer)) or local_steps < 1:
        raise OptionError(f"local_steps={local_steps!r}: give the minibatches each worker runs between "
                          "averagings, a positive integer")
    if find(ModelSpec.of(model).expr, batchnorm):
        raise OptionError("sg.fit on Dask arrays does not train BatchNorm layers (each step would need the whole "
                          "minibatch's statistics, gathered from every worker before the layer, forward and "
                          "backward). Fix: train on one machine (sg.fit with NumPy arrays), or use LayerNorm "
                          "instead of BatchNorm.")
    noisy = find(ModelSpec.of(model).expr, dropout)
    optimizer, dtype = resolve_start(model, loss, optimizer, dtype, epochs, batch_size, patience, validation,
                                     params, resume)
    client = resolve_client(client)
    blocks, rows, starts = row_blocks([X, Y], ["X", "Y"])
    dt = np.dtype(check_options(dtype or data_dtype(X), backend=backend))
    path, loss_name, n_out, dims = training_module(model, loss, optimizer, dt.name)
    mod = jit.load(path, jit=(backend == "numba"), dims=dims)
    n_in = model_input(model)
    positions = target_positions(model, loss_name)
    val = None
    if validation is not None:
        vx, vy = (as_data(v.compute() if hasattr(v, "compute") else v, w)  # a mask is refused, not dropped
                  for v, w in zip(validation, ("X_val", "Y_val")))
        val = prepare_xy(vx, vy, loss_name, n_in, n_out, dt, ("validation X", "validation Y"), positions=positions)
    theta, state, history = _start(model, params, seed, dt, optimizer, resume, batch_size, shuffle)
    result = Trained(_views(theta, model), history, mod, loss_name, n_out, dt, model=model, loss=loss,
                     optimizer=optimizer, backend=backend, state=state)
    views, own_states = tuple(result.params), tuple(state.opt_state)  # the buffers the steps update
    job = _Job(client, scatter(client, ModuleSource(path, backend, dims), "the generated module"),
               (loss_name, n_in, n_out, dt.name, positions, uuid.uuid4().hex), blocks, rows, starts, mod, optimizer.clip_norm or 0.0,
               optimizer.hyper_values())
    first, best = state.epoch, (np.inf, None, state.epoch)
    _check_monitor(optimizer, val is not None)
    run = Run(model.params, metrics, verbose, first + epochs, val is not None)
    rng = state.rng() if noisy else None  # each epoch's dropout seed, drawn as single-process fit draws it
    for epoch in range(first, first + epochs):
        drop_seed = int(rng.integers(1, 2**62)) if noisy else 0
        # the optimizer state too: local SGD averages it round by round, so a failure mid-epoch
        # would leave it ahead of the restored parameters
        snapshot, t_before, moments = theta.copy(), state.t, [s.copy() for s in state.opt_state]
        lr = _rates(result, optimizer, epoch, 1)[0]
        start = time.perf_counter()
        try:
            if strategy == "sync":
                loss_e, gn, status = job.sync_step(theta, state, lr, drop_seed)
            else:
                loss_e, gn, status = job.local_epoch(theta, state, lr, local_steps,
                                                     batch_size, (seed, epoch, shuffle), drop_seed)
        except DistributedError as exc:
            _restore(theta, state, snapshot, t_before, moments)
            err = DistributedError(f"{exc} Training stopped after epoch {epoch}; err.result holds the "
                                   "parameters from then: continue with sg.fit(..., resume=err.result).")
            err.result = result
            raise err from exc
        if status:
            _restore(theta, state, snapshot, t_before, moments)
            diverged(result, status, snapshot, theta, epoch + 1)
        record(result, np.array([loss_e], dtype=dt), gn[None].astype(dt), [lr],
               time.perf_counter() - start, run, epoch)
        state.epoch = epoch + 1
        if noisy:  # the draw belongs to the epoch now recorded (a failed epoch left it to the next try)
            state.rng_state = rng.bit_generator.state
        stop, best = after_chunk(result, val, threshold, patience, callbacks, epoch + 1, best, run)
        sync_params(result, views)  # a callback's new arrays are trained on, as its writes are
        sync_states(result, own_states)  # and its new optimizer state (a raw Numba TypeError before)
        if stop:
            break
    if patience is not None and best[1] is not None:
        result.params = best[1]
    return result


def _restore(theta, state, snapshot, t_before, moments) -> None:
    theta[...], state.t = snapshot, t_before
    for s, m in zip(state.opt_state, moments):
        s[...] = m


class _Job:
    """One distributed fit: the client, the module on the workers, the chunks."""

    def __init__(self, client, src, spec, blocks, rows, starts, mod, clip: float, hyper: np.ndarray):
        self.client, self.src, self.spec, self.blocks, self.mod = client, src, spec, blocks, mod
        self.rows, self.starts = rows, starts
        self.keys = [tuple(str(b.key) for b in pair) for pair in blocks]
        self.offsets = np.asarray(mod.OFFSETS)
        self.clip, self.hyper = clip, hyper

    def _norms(self, g: np.ndarray) -> np.ndarray:
        return np.array([np.sqrt(np.sum(g[a:b] * g[a:b])) for a, b in zip(self.offsets[:-1], self.offsets[1:])])

    def sync_step(self, theta: np.ndarray, state, lr: float, drop_seed: int) -> tuple[float, np.ndarray, int]:
        """One exact full-batch step, as the kernel takes it: finite checks, clip, update;
        ``drop_seed`` (0 without dropout) gives the step's key as the kernel makes it."""
        import dask

        key = int(step_key(drop_seed, state.t)) if drop_seed else 0
        call = dask.delayed(loss_grad_chunk, pure=False)
        tasks = [call(self.src, self.spec, self.keys[k], k, self.starts[k], theta, *pair, key)
                 for k, pair in enumerate(self.blocks)]
        parts = compute(self.client, tasks, f"the gradient over {len(tasks)} row chunks")
        loss, g = combine(parts)
        g = g.astype(theta.dtype)
        norms = self._norms(g)
        if not np.isfinite(loss) or not np.isfinite(norms).all():
            return loss, norms, 1
        total = np.sqrt(np.sum(norms.astype(np.float64) ** 2))
        if self.clip > 0 and total + 1e-6 > self.clip:
            g *= theta.dtype.type(self.clip / (total + 1e-6))  # as optim.clip_scale and the kernel
        state.t += 1
        self.mod.opt_update(theta, g, *state.opt_state, theta.dtype.type(lr), state.t, self.hyper)
        return loss, norms, (0 if np.isfinite(theta).all() else 2)

    def local_epoch(self, theta, state, lr, steps: int, batch_size: int, order,
                    drop_seed: int) -> tuple[float, np.ndarray, int]:
        """Rounds of local SGD until every chunk was visited once; averaged after each round.
        Chunk k's dropout seed is ``step_key(drop_seed, k)``: the chunks draw different masks."""
        import dask

        call = dask.delayed(local_round, pure=False)
        span = steps * batch_size
        loss_sum, rows_sum, gn_sum, batches = 0.0, 0, 0.0, 0
        for lo in range(0, max(self.rows), span):
            live = [k for k, n in enumerate(self.rows) if lo < n]
            tasks = [call(self.src, self.spec, self.keys[k], k, self.starts[k], *self.blocks[k], theta,
                          state.opt_state, state.t, (lo, lo + span), order, batch_size, lr, self.clip, self.hyper,
                          int(step_key(drop_seed, k)) if drop_seed else 0)
                     for k in live]
            parts = compute(self.client, tasks, f"a local SGD round over {len(tasks)} row chunks")
            if any(p[7] for p in parts):
                return np.nan, np.full(len(self.offsets) - 1, np.nan), max(p[7] for p in parts)
            used = sum(p[0] for p in parts)
            theta[...] = sum(p[0] / used * p[1].astype(np.float64) for p in parts)
            for j, s in enumerate(state.opt_state):
                s[...] = sum(p[0] / used * p[2][j].astype(np.float64) for p in parts)
            state.t = max(p[3] for p in parts)
            loss_sum += sum(p[4] for p in parts)
            rows_sum += used
            gn_sum = gn_sum + sum(p[5].astype(np.float64) for p in parts)
            batches += sum(p[6] for p in parts)
            if not np.isfinite(theta).all():
                return loss_sum / rows_sum, gn_sum / batches, 2
        return loss_sum / rows_sum, gn_sum / batches, 0
