"""The row-block training loop, compiled in the background after a first fit on one block (issue 21).

A training module holds two loops: ``train_chunk`` (one minibatch at a time) and
``train_chunk_par`` (a minibatch split into row blocks, for large minibatches: ``execution.py``).
Numba compiles each on its first call, so the first fit of a seen structure whose batch size
crosses into the other loop paid a full compile (2.4-2.7 s for the digits MLP at batch 236),
where issue 21 asks that a new batch size compile nothing. Compiling both at the first build
would double it. Instead, once ``fit`` has chosen the one-block loop with one BLAS thread (so
it trains on one core), a forked process compiles the row-block loop for the same argument
types into Numba's on-disk cache on the other core (where the build helper may fork: Linux, no
other Python thread, a CPU idle), while the parent trains. A later fit that needs that loop loads it from the cache; one
that comes while the child still compiles waits for it (it has a head start) instead of compiling
it a second time; a child that died or hangs is not waited for past ``WAIT_S``: the parent then
compiles, as before. The child is detached (forked twice), so it finishes and fills the cache
even when the parent exits first, and it is never forked again for a cached loop. The opposite
direction (a first fit on row blocks) and a fit whose BLAS uses every core fork nothing: the
child would slow that training down.

``SYMGRAD_PREWARM=0`` turns it off, ``1`` forks wherever the build helper could (switches.py).
"""

from __future__ import annotations

import functools
import os
import select
import time
import warnings

from .. import build_helper
from ..forking import may_fork
from ..switches import switch

_started: set[str] = set()  # module file, handed to a child once per process
_running: dict[int, str] = {}  # a pipe's read end (closed by the child's exit) -> module file
WAIT_S = 60.0  #: seconds a fit waits for a child compiling the loop it needs


def compile_other(mod, kernel, args: tuple) -> bool:
    """Fork a detached process that compiles ``train_chunk_par`` of training module ``mod`` for
    ``args`` (fit's zero-epoch call) when fit chose ``train_chunk`` (``kernel``); whether it did."""
    key = mod.module.__file__
    par = mod.train_chunk_par
    if isinstance(kernel, functools.partial) or key in _started or not getattr(mod.module, "ROW_BLOCKS", True):
        return False  # on row blocks already; forked before; batch norm: always one block
    if not _allowed() or getattr(par, "signatures", ()) != [] or build_helper.cached(par):
        return False  # not allowed here; compiled already, or no Numba dispatcher (NUMBA_DISABLE_JIT)
    _started.add(key)
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        return False
    if pid == 0:  # the child forks the compiler and leaves at once: nobody has to wait for it
        os.close(read)
        try:
            if os.fork() == 0:
                _detach(write)
                build_helper._IN_HELPER = True  # it must never fork a helper of its own
                warnings.simplefilter("ignore")
                par(*args, threads=1, par_rows=1)  # a zero-epoch call compiles and runs no step
        finally:
            os._exit(0)  # the pipe's write end closes with the compiler: the parent sees EOF
    os.close(write)
    os.waitpid(pid, 0)
    _running[read] = key
    _reap()
    return True


def _detach(keep: int) -> None:
    """The compiler holds no file of the parent's but the pipe ``keep``: a caller reading the
    parent's output (``subprocess.run(..., capture_output=True)``) sees its end when the parent
    exits, not seconds later when the compiler does."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, keep)
    os.closerange(keep + 1, max(keep + 1, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024))


def await_loop(mod, kernel) -> None:
    """Before fit's first call of ``kernel``: if a child is compiling it, wait for it (up to
    ``WAIT_S``) rather than compile it a second time; the call then loads it from the cache."""
    if isinstance(kernel, functools.partial) and mod.module.__file__ in _running.values():
        wait(WAIT_S, mod.module.__file__)


def wait(timeout_s: float = WAIT_S, key: str | None = None) -> bool:
    """Wait until the children (or the one compiling module file ``key``) are done; whether they are."""
    end = time.monotonic() + timeout_s
    while (key in _running.values() if key else _running) and time.monotonic() < end:
        _reap(0.02)
    _reap()
    return not (key in _running.values() if key else _running)


def _reap(timeout_s: float = 0.0) -> None:
    """Forget the children whose pipe has closed (they have exited)."""
    if _running:
        done, _, _ = select.select(list(_running), [], [], timeout_s)
        for fd in done:
            os.close(fd)
            del _running[fd]


def _allowed() -> bool:
    """Where the build helper may fork (``forking.may_fork``), under ``SYMGRAD_PREWARM``; unset,
    ``SYMGRAD_BUILD_HELPER=0`` (no forks) turns it off too."""
    setting = switch("SYMGRAD_PREWARM")
    if build_helper._IN_HELPER or setting is None and switch("SYMGRAD_BUILD_HELPER") is False:
        return False
    return may_fork(setting)
