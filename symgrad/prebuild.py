"""Compile the kernels most networks use, once per installation (issue 21, section 4).

A layer kind's kernels are compiled once for every model that uses them (``shared_kernels.py``),
so a model whose kinds were all seen before compiles only its glue. ``prebuild`` makes the
common kinds seen: it trains one tiny network per activation, loss and optimizer, in float32
and float64, each for one step, into the code cache (``$SYMGRAD_CACHE_DIR``). It runs only when
asked (``python -m symgrad prebuild``, or this function), takes about a minute on two cores,
and afterwards a first model of those kinds builds in about half the time (docs/decisions.md).

>>> sorted(LOSSES)
['bce', 'mse', 'softmax_cross_entropy']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

ACTIVATIONS = ("relu", "tanh", "sigmoid")
LOSSES = {"softmax_cross_entropy": 4, "mse": 2, "bce": 1}  # loss -> outputs of its tiny network
OPTIMIZERS = ("Adam", "SGD", "Momentum", "Nesterov", "AdamW", "RMSProp", "AdaGrad")
DTYPES = ("float32", "float64")
#: The networks' hidden width: any width builds the same modules (sizes are arguments).
WIDTH = 80


def _combinations(activations, losses, optimizers) -> list[tuple[str, str, str]]:
    """Each activation, loss and optimizer at least once (not every triple: the kinds' kernels
    do not depend on one another)."""
    first_loss, first_opt = next(iter(losses)), optimizers[0]
    combos = [(a, first_loss, first_opt) for a in activations]
    combos += [(activations[0], loss, first_opt) for loss in list(losses)[1:]]
    combos += [(activations[0], first_loss, opt) for opt in optimizers[1:]]
    return combos


def prebuild(dtypes: Sequence[str] = DTYPES, activations: Sequence[str] = ACTIVATIONS,
             losses: Sequence[str] = tuple(LOSSES), optimizers: Sequence[str] = OPTIMIZERS,
             log: Callable[[str], object] | None = None) -> list[tuple[str, str, str, str, float]]:
    """Train one tiny network per activation, loss and optimizer in each dtype, so that their
    kernels are in the code cache: ``[(dtype, activation, loss, optimizer, seconds), ...]``.
    Each choice is a name or a sequence of names.

    ``log`` (for example ``print``) is called with a line per network as it is built."""
    import symgrad as sg
    from symgrad.errors import OptionError

    dtypes, activations, losses, optimizers = ((x,) if isinstance(x, str) else tuple(x)
                                               for x in (dtypes, activations, losses, optimizers))

    unknown = ([a for a in activations if a not in ACTIVATIONS] + [x for x in losses if x not in LOSSES]
               + [o for o in optimizers if o not in OPTIMIZERS] + [d for d in dtypes if d not in DTYPES])
    if unknown or not (activations and losses and optimizers and dtypes):
        raise OptionError(f"prebuild: unknown or missing choices {unknown}. Fix: choose from activations "
                           f"{ACTIVATIONS}, losses {tuple(LOSSES)}, optimizers {OPTIMIZERS}, dtypes {DTYPES}.")
    rng = np.random.default_rng(0)
    out = []
    for dtype in dtypes:
        for act, loss, opt in _combinations(activations, {k: LOSSES[k] for k in losses}, optimizers):
            n_out = LOSSES[loss]
            X = rng.normal(size=(8, 16)).astype(dtype)
            y = rng.integers(0, 4, 8) if loss == "softmax_cross_entropy" else (
                rng.integers(0, 2, (8, 1)).astype(dtype) if loss == "bce" else rng.normal(size=(8, n_out)))
            net = sg.nn.MLP([16, WIDTH, WIDTH // 2, n_out], activation=act)
            t = time.perf_counter()
            sg.fit(net, loss, X, y, optimizer=getattr(sg.optim, opt)(1e-3), epochs=1, batch_size=8, dtype=dtype)
            out.append((dtype, act, loss, opt, time.perf_counter() - t))
            if log is not None:
                log(f"{dtype} {act} {loss} {opt}: {out[-1][-1]:.1f} s")
    return out
