"""What runs on a Dask worker: symgrad's generated kernels applied to one row chunk.

Workers compile once. A generated module travels as its source (:class:`ModuleSource`, or a
compiled model, whose pickle carries its source), scattered once per worker per fit or model;
the worker writes it to its code cache (the same content-hash key, so a worker on the same
machine finds the file already there) and imports it once per process (``_LOADED``), reusing
Numba's disk cache. Each task then sends only the parameters and receives a gradient.
Every task runs with one BLAS and one Numba thread: Dask's workers are the parallelism, and
more threads per worker would oversubscribe the cores.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .. import jit
from ..codegen.train import kernel_args
from ..errors import SymgradError
from ..runtime.checks import rows_from
from ..runtime.execution import _blas_limit, _numba_threads
from ..runtime.inputs import prepare_xy

_LOADED: dict[tuple[str, str], object] = {}
#: Prepared (converted, one-hot) chunks and their epoch's row order, by fit and Dask key: local
#: SGD visits a chunk many times per epoch. The fit's own token is part of the key, since Dask
#: keys need not follow content (from_npy_stack names chunks by directory: a stack rewritten
#: between two fits trained the second on the first's data). A few chunks only, so that data
#: larger than memory stays so; they sit outside Dask's memory accounting.
_PREPARED: OrderedDict = OrderedDict()
_ORDERS: OrderedDict = OrderedDict()
PREPARED_CHUNKS = 4


class ModuleSource:
    """A generated module as a worker needs it: its cache key, source, backend and the model's
    sizes (the module reads them at run time)."""

    def __init__(self, path: Path, backend: str, dims: np.ndarray):
        self.key = Path(path).stem.removeprefix("sg_")
        self.source = jit.read_source(path)
        self.backend, self.dims = backend, dims

    def module(self) -> jit.Bound:
        """The module, loaded once per worker process, bound to this model's sizes."""
        hit = _LOADED.get((self.key, self.backend))
        if hit is None:
            path = jit.ensure_source(self.key, lambda: self.source)
            hit = _LOADED[(self.key, self.backend)] = jit.load(path, jit=(self.backend == "numba"))
        return jit.Bound(hit, self.dims)


@contextlib.contextmanager
def one_thread():
    with _blas_limit(1), _numba_threads(1):
        yield


def _where(chunk: int, start: int, rows: int) -> str:
    # by its rows, not its number: empty chunks are skipped, so the k-th task need not be Dask's block k
    return f"the row chunk of rows {start} to {start + rows - 1}"


# -- compiled models: value, gradient, Hessian-vector product of one chunk ------------------------

def model_chunk(f, op: str, theta: np.ndarray, v, chunk: int, start: int, *blocks) -> tuple:
    """(rows, value, array, warnings) of ``f`` on one chunk. ``op``: 'value', 'value_and_grad',
    'hvp', 'hessian' (flattened), 'residuals', 'jacobian', or 'gram' (Σr² and the R of J's QR,
    k×k: stacked, the chunks' R have J's singular values). The warnings (a NonFiniteWarning
    naming the sample) go back to the client, which warns them there: a worker's own log is
    not where the user looks."""
    rows = len(blocks[0])
    try:
        with one_thread(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with rows_from(start):  # messages name the row of the whole data
                value, out = _chunk_op(f, op, theta, v, blocks)
    except SymgradError as exc:
        raise type(exc)(f"in {_where(chunk, start, rows)}: {exc}") from None
    return rows, value, out, [(w.category, f"in {_where(chunk, start, rows)}: {w.message}") for w in caught]


def _chunk_op(f, op: str, theta, v, blocks) -> tuple[float, np.ndarray | None]:
    if op == "value":
        return float(f.value(theta, *blocks)), None
    if op == "value_and_grad":
        val, g = f.value_and_grad(theta, *blocks)
        return float(val), np.asarray(g)
    if op in ("hvp", "hessian"):
        return 0.0, np.asarray(f.hvp(theta, v, *blocks) if op == "hvp" else f.hessian(theta, *blocks)).ravel()
    if op in ("residuals", "jacobian"):
        return 0.0, np.asarray(getattr(f, op)(theta, *blocks))
    r = f.residuals(theta, *blocks).astype(np.float64)
    jac = f.jacobian(theta, *blocks).astype(np.float64)
    k = jac.shape[1]
    return float(r @ r), np.vstack([np.linalg.qr(jac, mode="r"), np.zeros((max(k - len(jac), 0), k))])


# -- training ---------------------------------------------------------------------------------

def _prepared(spec: tuple, keys: tuple, chunk: int, start: int, xb, yb) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) of one chunk checked and converted for the model (one-hot labels), cached by key."""
    hit = _PREPARED.get((spec, keys))
    if hit is not None:
        _PREPARED.move_to_end((spec, keys))
        return hit
    loss_name, n_in, n_out, dtype, positions, _ = spec  # the last is the fit's token
    where = _where(chunk, start, len(xb))
    try:
        with rows_from(start):
            out = prepare_xy(xb, yb, loss_name, n_in, n_out, np.dtype(dtype), ("X", "Y"), positions=positions)
    except SymgradError as exc:  # the chunk up front: the messages' fixes are code that names X and Y
        raise type(exc)(f"in {where}: {exc}") from None
    _PREPARED[(spec, keys)] = out
    while len(_PREPARED) > PREPARED_CHUNKS:
        _PREPARED.popitem(last=False)
    return out


def _order(spec: tuple, keys: tuple, chunk: int, order: tuple[int, int, bool], n: int) -> np.ndarray:
    """This chunk's row order for the epoch, made once per epoch (not per round)."""
    seed, epoch, shuffle = order
    if not shuffle:
        return np.arange(n)
    key = (spec, keys, seed, epoch)
    hit = _ORDERS.get(key)
    if hit is None:
        hit = _ORDERS[key] = np.random.default_rng([seed, epoch, chunk]).permutation(n)
        while len(_ORDERS) > PREPARED_CHUNKS:
            _ORDERS.popitem(last=False)
    return hit


def loss_grad_chunk(src: ModuleSource, spec: tuple, keys: tuple, chunk: int, start: int, theta: np.ndarray,
                    xb, yb, key: int = 0) -> tuple[int, float, np.ndarray]:
    """(rows, mean loss, mean gradient) of the training loss on one chunk; with dropout, ``key``
    is the step's, and the chunk's rows are numbered from ``start`` as in the whole data."""
    X, Y = _prepared(spec, keys, chunk, start, xb, yb)
    g = np.empty_like(theta)
    with one_thread():
        mod = src.module()
        noise = (key, start) if key else ()  # a model without dropout takes no key
        loss = mod.loss_grad(theta, X, Y, g, *noise)
    return len(X), float(loss), g


def local_round(src: ModuleSource, spec: tuple, keys: tuple, chunk: int, start: int, xb, yb, theta, states,
                t: int, rows: tuple[int, int], order: tuple[int, int, bool], batch_size: int, lr: float,
                clip: float, hyper: np.ndarray, drop_seed: int = 0) -> tuple:
    """Local SGD on one worker: the fused kernel over rows ``rows`` of this chunk's order for the
    epoch (a permutation seeded by ``order`` = (seed, epoch, shuffle)), in minibatches; with
    dropout, ``drop_seed`` seeds the chunk's masks (the kernel makes each step's key from it).

    Returns (rows used, parameters, optimizer state, step count, loss·rows, Σ per-minibatch
    gradient norms, minibatches, status); status 1 or 2 as the kernel's (not finite).
    """
    X, Y = _prepared(spec, keys, chunk, start, xb, yb)
    perm = _order(spec, keys, chunk, order, len(X))[rows[0]:rows[1]]
    Xs, Ys = np.ascontiguousarray(X[perm]), np.ascontiguousarray(Y[perm])
    theta, states = theta.copy(), [s.copy() for s in states]
    dt, mod = theta.dtype, src.module()
    losses = np.zeros(1, dtype=dt)
    gnorms = np.zeros((1, len(mod.OFFSETS) - 1), dtype=dt)  # one norm per parameter array
    with one_thread():
        _, t, status = mod.train_chunk(*kernel_args(
            theta=theta, data=(Xs, Ys), states=states, perms=np.empty((1, 0), dtype=np.int64), shuffle=False,
            batch_size=min(batch_size, max(len(Xs), 1)),  # buffers hold a batch: never more than the rows
            lrs=np.array([lr], dtype=dt), t0=t, clip=dt.type(clip), hyper=hyper,
            losses=losses, gnorms=gnorms, seeds=np.array([drop_seed], dtype=np.int64)))
    batches = -(-len(Xs) // batch_size)
    return len(Xs), theta, states, t, float(losses[0]) * len(Xs), gnorms[0] * batches, batches, status
