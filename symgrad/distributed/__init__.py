"""Data beyond one machine, on Dask: ``pip install 'symgrad[distributed]'``.

- A compiled model's ``value``, ``value_and_grad``, ``grad`` and ``hvp`` accept Dask arrays: the
  generated kernel runs on each row chunk on the workers and the chunks' results are combined
  into the exact full-batch mean (:mod:`symgrad.distributed.evaluate`).
- ``sg.fit(model, loss, X, Y, client=client)`` trains on Dask arrays, synchronously (one exact
  full-batch step per epoch) or by local SGD with parameter averaging
  (:mod:`symgrad.distributed.train`).

Start a cluster with ``Client(LocalCluster(n_workers=2, threads_per_worker=1))`` on one machine,
or connect to a real one; the code is the same.
"""

from .evaluate import hvp, value, value_and_grad
from .train import fit

__all__ = ["fit", "hvp", "value", "value_and_grad"]
