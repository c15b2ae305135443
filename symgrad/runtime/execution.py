"""How fit() runs its native calls: chunks of epochs, Numba and BLAS threads, the progress bar."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import warnings

from ..errors import SymgradError
from ..lang.walk import per_object

#: fit() grows its chunks of epochs (one native call each) until one lasts this long: each
#: chunk costs ~0.2 ms in Python, 20 µs per epoch for chunks of 10 fast full-batch epochs.
CHUNK_SECONDS = 0.02


def _grow_chunk(chunk: int, per_epoch: float, perm_rows: int) -> int:
    # bounded by the shuffled indices a chunk holds (8 bytes per row and epoch, 32 MiB at most)
    cap = max(1, min(1000, 2**22 // max(perm_rows, 1)))
    want = int(CHUNK_SECONDS / max(per_epoch, 1e-9))
    return max(1, min(cap, max(chunk, want)))


#: A row block holds at least PAR_ROWS rows, or fewer rows that hold PAR_WORK multiply-adds of
#: forward products: the digits MLP (17k per row) splits from 236 rows, a CNN or a transformer
#: (84k and 7.6M per row) at batch 64 and 32 (docs/decisions.md, "Row blocks by work").
PAR_ROWS = 1024
PAR_WORK = 2_000_000


def block_rows(work: int = 0) -> int:
    """The fewest rows of a row block, for samples of ``work`` multiply-adds each (0: unknown).

    >>> block_rows(), block_rows(17_024), block_rows(7_600_000)
    (1024, 118, 1)
    """
    return max(1, min(PAR_ROWS, -(-PAR_WORK // max(work, 1))))


def fit_threads(rows: int, threads: int | None = None, backend: str = "numba", work: int = 0) -> int:
    """How many row blocks (threads) ``fit`` computes a minibatch of ``rows`` rows with, for
    ``threads`` as given to fit and samples of ``work`` multiply-adds each (``sample_work``):
    one below two blocks' worth of rows (``block_rows``), where splitting the batch costs more
    than it gains; never more than Numba has threads (the Python backend runs the blocks one
    after the other, so any count is kept: tests use it to check the split).

    >>> fit_threads(32), fit_threads(64, 2, work=84_000)
    (1, 2)
    """
    import numba

    if threads is not None and threads < 1:
        raise SymgradError(f"threads={threads}: give a positive count, or None for all of Numba's threads")
    most = numba.config.NUMBA_NUM_THREADS
    n = most if threads is None else (min(threads, most) if backend == "numba" else threads)
    return n if rows >= 2 * block_rows(work) else 1


#: One thread: a minibatch of layers that use each weight at many positions (convolutions,
#: attention) is computed as two row blocks, one after the other, from this many multiply-adds:
#: each block's activations stay in cache for the next layer (docs/decisions.md, "Two row blocks
#: on one thread": LeNet-5 and the example transformer 9-10% faster; the digits CNN, 5.4M, and
#: dense networks, whose work is their weights, were not).
CACHE_WORK = 16_000_000


def cache_blocks(rows: int, work: int, n_params: int) -> int:
    """Row blocks for a minibatch of ``rows`` samples of ``work`` multiply-adds each, on one
    thread, for a model of ``n_params`` parameters: 2 when the minibatch's work reaches
    ``CACHE_WORK`` and each weight is used at 4 or more positions per sample, else 1.

    >>> cache_blocks(64, 416_520, 61_706), cache_blocks(64, 84_224, 6_570), cache_blocks(64, 1_860_000, 1_860_000)
    (2, 1, 1)
    """
    return 2 if rows >= 2 and work * rows >= CACHE_WORK and work >= 4 * n_params else 1


#: Whether this process has run a row-block loop (a prange: OpenMP threads, with Numba's default
#: layer here), and whether it is a child forked after that: GNU OpenMP is not fork-safe, and Numba
#: kills such a child at its first prange ("Terminating: fork() called from a process already using
#: GNU OpenMP"), so a multiprocessing fork Pool hung. Such a child trains on one block instead.
_PRANGE = {"used": False, "forked_after": False}


def _forked() -> None:
    if _PRANGE["used"]:
        _PRANGE["forked_after"] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _kernel(mod, threads: int | None, rows: int, backend: str, work: int = 0, n_params: int = 0,
            blas_threads: int | str | None = "auto"):
    """The training kernel for minibatches of ``rows`` rows, and its Numba thread count."""
    if _PRANGE["forked_after"] and backend == "numba":
        return mod.train_chunk, None
    n = fit_threads(rows, threads, backend, work)
    blocks = n
    blas = fit_blas_threads(blas_threads, work, rows, None)
    if n == 1 and (blas == 1 or blas is None and usable_cores() == 1):  # else BLAS splits the products itself
        blocks = cache_blocks(rows, work, n_params)
    if blocks > 1 and getattr(mod, "ROW_BLOCKS", True):  # batch norm: one block
        kernel = functools.partial(mod.train_chunk_par, threads=blocks, par_rows=block_rows(work) if n > 1 else 1)
        _PRANGE["used"] = _PRANGE["used"] or backend == "numba"
        return kernel, (n if backend == "numba" else None)
    return mod.train_chunk, None


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one).

    >>> usable_cores() >= 1
    True
    """
    get = getattr(os, "sched_getaffinity", None)
    return len(get(0)) if get is not None else (os.cpu_count() or 1)


@contextlib.contextmanager
def _numba_threads(n: int | None):
    if n is None:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


#: blas_threads="auto": from this much work per step (the multiply-adds of a minibatch's forward
#: products, :func:`sample_work` × rows) BLAS keeps all its threads; below it, one. Measured on 2
#: quiet cores (docs/decisions.md): 1.7M, 0.88-0.97x with two threads; 5.4M 1.18x; 19M 1.4x; 77-307M 1.8x.
BLAS_WORK = 4_000_000


@per_object  # fit asks once per call: a walk over the model's expression
def sample_work(expr) -> int:
    """Multiply-adds of one sample's forward products: a dense layer's weights once, a
    convolution's kernel at each output position, a position-wise product's weights and
    attention's projections at each position, and attention's two T × T products.

    >>> import symgrad as sg
    >>> sample_work(sg.nn.MLP([64, 128, 10]).expr)
    9472
    """
    import sympy as sp

    from ..lang.attention import attention
    from ..lang.conv import conv2d
    from ..lang.rowwise import rowmatmul
    from ..lang.walk import find

    nodes = find(expr, sp.MatMul, conv2d, rowmatmul, attention)  # one walk, each shared node once
    work = 0
    for n in nodes:
        if isinstance(n, sp.MatMul):
            a = [a for a in n.args if getattr(a, "shape", None)][0]  # 2*W*x: W
            work += int(a.shape[0] * a.shape[1] * n.shape[1])
        elif isinstance(n, conv2d):
            work += int(n.args[0].shape[0] * n.args[0].shape[1]) * int(n.shape[0] // n.args[0].shape[0])
        elif isinstance(n, rowmatmul):
            work += int(n.args[1].shape[0] * n.args[1].shape[1]) * n.seq[0]
        else:
            work += 4 * n.seq[0] * n.seq[1] ** 2 + 2 * n.seq[0] ** 2 * n.seq[1]
    return work


def fit_blas_threads(blas_threads: int | str | None, work: int, rows: int, row_blocks: int | None) -> int | None:
    """The BLAS thread cap while the kernel runs: ``blas_threads`` as given, or for "auto" one
    thread with row blocks on Numba's threads (which already use the cores) or below ``BLAS_WORK``
    multiply-adds per step (``work`` per sample × ``rows``), and none (BLAS's own threads) above it.
    Row blocks always get one BLAS thread each: OpenBLAS called from two threads at once, each call
    starting its own threads, took 244 ms per epoch of the digits CNN against 12 ms (the calls
    wait for each other's thread pool); any other ``blas_threads`` with row blocks warns and is capped.

    >>> fit_blas_threads("auto", 25_000, 64, None), fit_blas_threads("auto", 293_000, 256, None)
    (1, None)
    """
    blocks = (row_blocks or 1) > 1
    if blocks and blas_threads not in ("auto", 1):
        warnings.warn(f"blas_threads={blas_threads!r} with row blocks on {row_blocks} threads: BLAS runs one thread "
                      "per block instead (OpenBLAS called from several threads at once, each with its own threads, "
                      "was measured 20x slower). Fix: threads=1 to give BLAS the cores instead of row blocks, or "
                      "blas_threads='auto' (the default).", RuntimeWarning, stacklevel=3)
    if blas_threads != "auto" and not blocks:
        return blas_threads
    return None if not blocks and work * rows >= BLAS_WORK else 1


_BLAS_LOCK = threading.Lock()
_blas_outer: list = []  # the outermost limiter (it holds the process's own counts) and how many are active


@contextlib.contextmanager
def _blas_limit(threads: int | None):
    """BLAS capped at ``threads`` while a chunk runs. Fits in several threads overlap: the first
    to enter saves the process's own counts and the last to leave restores them (each
    threadpoolctl limiter restores what it found, so interleaved ones left BLAS at 1 for good)."""
    if threads is None:
        yield
        return
    with _BLAS_LOCK:
        limiter = _blas_controller(len(sys.modules)).limit(limits=threads, user_api="blas")
        if not _blas_outer:
            _blas_outer[:] = [limiter, 0]
        _blas_outer[1] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _blas_outer[1] -= 1
            if not _blas_outer[1]:
                _blas_outer.pop(0).restore_original_limits()
                _blas_outer.clear()


@functools.lru_cache(maxsize=1)
def _blas_controller(n_modules: int):
    # Scanning the loaded libraries costs ~0.3 ms; a short fit() must not pay it per chunk.
    # Keyed on the module count: a newly imported package (SciPy, which symgrad's gemm
    # calls into) may have brought another BLAS that must be limited too.
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _progress(total: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="epoch")
