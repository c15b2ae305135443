"""Dask arrays as symgrad reads them: one tuple of blocks per row chunk, and the client to run on.

Every data array of a call is split into row chunks the same way (one sample's numbers never
straddle two tasks) and holds its columns in one chunk; a mismatch is refused with the rechunk
that fixes it, never repaired silently, since rechunking moves data between workers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import DataError, DistributedError, OptionError, ShapeError, SymgradError
from ..runtime.checks import is_dask

INSTALL = "Fix: pip install 'symgrad[distributed]' (Dask and dask.distributed)."


def require_dask() -> None:
    """Import Dask or say how to install it."""
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise OptionError(f"symgrad's distributed functions need Dask ({exc}). {INSTALL}") from exc


def resolve_client(client=None):
    """``client``, or the running default ``dask.distributed`` client."""
    require_dask()
    if client is not None:
        if not hasattr(client, "scatter") or not hasattr(client, "compute"):
            raise OptionError(f"client={client!r} is not a dask.distributed Client. Fix: "
                              "client = Client(LocalCluster(n_workers=2, threads_per_worker=1)).")
        if getattr(client, "status", None) in ("closing", "closed"):
            raise DistributedError(f"client={client!r} is closed. Fix: start a new one, client = "
                                   "Client(LocalCluster(n_workers=2, threads_per_worker=1)), and persist the data again.")
        return client
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        raise DistributedError(
            "these arrays are Dask arrays but no Dask client is running. Fix: from dask.distributed "
            "import Client, LocalCluster; client = Client(LocalCluster(n_workers=2, threads_per_worker=1)) "
            "(pass client=, or call inside 'with client:')") from None


def row_blocks(arrays: Sequence[object], names: Sequence[str]) -> tuple[list[tuple], list[int], list[int]]:
    """(one tuple of delayed blocks per row chunk, the rows in each chunk, each chunk's first row)
    for Dask arrays that all split their rows the same way. Columns are gathered into one chunk
    per array."""
    require_dask()
    if not all(is_dask(a) for a in arrays):
        kinds = ", ".join(f"{n}: {type(a).__name__}" for n, a in zip(names, arrays))
        raise DataError(f"some data are Dask arrays and some are not ({kinds}). Fix: pass all of them "
                        "as Dask arrays with the same row chunks, e.g. da.from_array(y, chunks=X.chunks[0]).")
    out = []
    for a, name in zip(arrays, names):
        if a.ndim not in (1, 2):
            raise ShapeError(f"{name} is a {a.ndim}-D Dask array; symgrad takes one row per sample "
                             f"(1-D or 2-D). Fix: {name}.reshape(({name}.shape[0], -1)).")
        if any(math.isnan(c) for c in a.chunks[0]):
            raise ShapeError(f"{name}'s row chunk sizes are unknown (NaN). Fix: "
                             f"{name} = {name}.compute_chunk_sizes().")
        out.append(a.rechunk({1: -1}) if a.ndim == 2 and len(a.chunks[1]) > 1 else a)
    first = out[0].chunks[0]
    for a, name in zip(out[1:], names[1:]):
        if a.shape[0] != out[0].shape[0]:
            raise DataError(f"{names[0]} has {out[0].shape[0]} rows but {name} has {a.shape[0]}. "
                            "Fix: one row per sample in every array.")
        if a.chunks[0] != first:
            raise ShapeError(f"{name} is split into row chunks {a.chunks[0]} but {names[0]} into {first}; "
                             f"each task needs a sample's rows from both. Fix: "
                             f"{name} = {name}.rechunk({{0: {names[0]}.chunks[0]}}).")
    if not first or sum(first) == 0:
        raise DataError(f"{names[0]} has no rows. Fix: pass at least one sample.")
    blocks = [a.to_delayed().ravel() for a in out]
    pairs = [tuple(b[k] for b in blocks) for k in range(len(first))]
    keep = [k for k, n in enumerate(first) if n > 0]  # empty chunks hold no samples
    rows = [int(first[k]) for k in keep]
    return [pairs[k] for k in keep], rows, np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(int).tolist()


def compute(client, tasks: list, what: str, retries: int = 1) -> list:
    """Run ``tasks`` (Dask delayed objects) on ``client`` and gather the results; a failure that
    is not symgrad's own (a worker lost more often than Dask retries) becomes DistributedError.
    Futures cancelled while the scheduler replaces a killed worker ("already forgotten", seen on a
    loaded machine) are submitted again, ``retries`` times: the tasks are pure, so nothing changes."""
    while True:
        try:
            return client.gather(client.compute(tasks))
        except SymgradError:
            raise
        except Exception as exc:  # noqa: BLE001 - Dask's failures come in many types (KilledWorker, OSError...)
            if retries > 0 and "Cancelled" in type(exc).__name__:
                retries -= 1
                continue
            raise DistributedError(f"the Dask computation of {what} failed: {type(exc).__name__}: {exc}. Fix: if a "
                                   "worker was lost or the client restarted, data persisted there is gone too: persist "
                                   "it again (X = X.persist()) and call again.") from exc


def scatter(client, obj, what: str):
    """``client.scatter(obj, broadcast=True)``; Dask's failures (no workers, a closed client or
    connection) become DistributedError."""
    try:
        return client.scatter(obj, broadcast=True, hash=False)
    except SymgradError:
        raise
    except Exception as exc:  # noqa: BLE001 - CommClosedError, TimeoutError, ClosedClientError, RuntimeError...
        raise DistributedError(f"sending {what} to the Dask workers failed: {type(exc).__name__}: {exc}. Fix: check "
                               "that the cluster has running workers (client.scheduler_info()['workers']) and the "
                               "client is open, then call again.") from exc
