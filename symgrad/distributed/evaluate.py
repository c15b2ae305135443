"""Exact full-batch values, gradients and Hessian-vector products of a compiled model over Dask
arrays: the generated kernel runs on every row chunk where the chunk lives, and the client
combines the chunks' (rows, mean, mean gradient) into the mean over all rows (or the sum).

This is what ``f.value_and_grad(theta, X, y)`` does when ``X`` and ``y`` are Dask arrays, so the
same ``f`` plugs into ``scipy.optimize.minimize`` on the client (L-BFGS with ``jac=True``,
Newton-CG with ``hessp=f.hvp``), as dask-glm's L-BFGS solver does with its own gradients.

>>> import numpy as np, sympy as sp, symgrad as sg
>>> import dask.array as da
>>> from dask.distributed import Client, LocalCluster
>>> a, b, x, y = sp.symbols("a b x y", real=True)
>>> f = sg.compile((a * x + b - y) ** 2, wrt=[a, b], data=[x, y])
>>> xs = np.linspace(0, 1, 1000); ys = 2 * xs + 1
>>> with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, Client(cluster):
...     X, Y = da.from_array(xs, chunks=300), da.from_array(ys, chunks=300)
...     v, g = f.value_and_grad([0.0, 0.0], X, Y)
>>> bool(np.allclose(g, f.grad([0.0, 0.0], xs, ys)))
True
"""

from __future__ import annotations

import warnings
import weakref

import numpy as np

from ..errors import ShapeError
from ..runtime.checks import check_vector, split_flat
from ..runtime.row_sums import combine
from .arrays import compute, resolve_client, row_blocks, scatter
from .worker import model_chunk

#: Each compiled model is scattered to every worker once per client, not pickled per task.
_SCATTERED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _on_workers(f, client):
    per_client = _SCATTERED.setdefault(f, {})
    hit = per_client.get(client.id)
    if hit is None or hit.status != "finished":
        hit = per_client[client.id] = scatter(client, f, "the compiled model")
    return hit


def _run(f, op: str, theta: np.ndarray, v, data, client=None) -> tuple[float, np.ndarray | None]:
    """The chunks' values and arrays combined: their means weighted by rows (or sums)."""
    value, vec = combine(_parts(f, op, theta, v, data, client), mean=(f.reduction == "mean"))  # a sum stays a sum
    # combined in float64, returned in the model's dtype as in memory (a float32 value was a float)
    return np.dtype(f.dtype).type(value), (None if vec is None else vec.astype(f.dtype))


def _parts(f, op: str, theta: np.ndarray, v, data, client=None) -> list[tuple]:
    """Each chunk's (rows, value, array) in row order, its warnings given here, on the client."""
    import dask

    names = [str(d) for d in f.data]
    if len(data) != len(names):
        fix = ("call it without Dask arrays (the formula reads no data)" if not names else
               f"pass one Dask array per data symbol, in this order: {names}")
        raise ShapeError(f"the formula takes {len(names)} data arrays ({names}), got {len(data)}. Fix: {fix}.")
    client = resolve_client(client)
    blocks, _, starts = row_blocks(list(data), names)
    remote = _on_workers(f, client)
    # impure: a unique key per call. Pure keys repeat when theta repeats (a line search does
    # that), and a new task under the key of one being released raced with its release
    call = dask.delayed(model_chunk, pure=False)
    tasks = [call(remote, op, theta, v, k, s, *b) for k, (s, b) in enumerate(zip(starts, blocks))]
    parts = compute(client, tasks, f"{op} over {len(tasks)} row chunks")
    for category, message in (w for p in parts for w in p[3]):
        warnings.warn(message, category, stacklevel=4)
    return parts


def value(f, theta, *data, client=None) -> float:
    """``f.value`` over Dask arrays: the mean (or sum) of the formula over all rows."""
    th, _ = _theta(f, theta)
    return _run(f, "value", th, None, data, client)[0]


def value_and_grad(f, theta, *data, client=None):
    """``f.value_and_grad`` over Dask arrays: (loss, gradient) of all rows, in one pass."""
    th, split = _theta(f, theta)
    v, g = _run(f, "value_and_grad", th, None, data, client)
    return v, split(g)


def hvp(f, theta, v, *data, client=None):
    """``f.hvp`` over Dask arrays: the exact Hessian-vector product of the loss over all rows."""
    th, split = _theta(f, theta)
    vv, _ = _theta(f, v, "v")
    return split(_run(f, "hvp", th, vv, data, client)[1])


def hessian(f, theta, *data, client=None) -> np.ndarray:
    """``f.hessian`` over Dask arrays: the chunks' dense Hessians, combined as the gradients are."""
    th, _ = _theta(f, theta)
    return _run(f, "hessian", th, None, data, client)[1].reshape(th.size, th.size)


def rows(f, op: str, theta, *data, client=None) -> np.ndarray:
    """``f.residuals`` or ``f.jacobian`` over Dask arrays: computed where the chunks are, and
    gathered in row order (a row per sample: the result is as long as the data)."""
    th = check_vector(theta, len(f.params), f.dtype, "theta")
    return np.concatenate([p[2] for p in _parts(f, op, th, None, data, client)])


def covariance(f, theta, *data, client=None, absolute_sigma: bool = False) -> np.ndarray:
    """``f.covariance`` over Dask arrays, without gathering J: each chunk sends Σr² and the R of
    its Jacobian's QR (k×k); the stacked R have J's singular values and right vectors."""
    from ..runtime.formula import covariance_of

    th = check_vector(theta, len(f.params), f.dtype, "theta")
    parts = _parts(f, "gram", th, None, data, client)
    return covariance_of(sum(p[0] for p in parts), sum(p[1] for p in parts), np.vstack([p[2] for p in parts]),
                         f.dtype, absolute_sigma)


def _theta(f, theta, what: str = "theta"):
    """(theta as the flat vector the workers take, how to return a result in theta's form)."""
    if hasattr(f, "_flat"):  # a tensor model: a flat vector or one array per parameter
        flat, was_flat = f._flat(theta, what)
        return flat, (lambda g: g) if was_flat else (lambda g: split_flat(g, f.shapes))
    return check_vector(theta, len(f.params), f.dtype, what), (lambda g: g)
