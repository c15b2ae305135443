"""Keep the memory a training step frees for the next step, instead of handing it back to the OS.

A generated step allocates its large temporaries (activations, attention probabilities,
im2col buffers) afresh each call and frees them at the end. glibc serves blocks above 128 KiB
(a threshold it raises only up to the largest block freed so far) with ``mmap`` and trims the
heap once more than twice that is free at its top, so every step maps fresh pages again and
the kernel zero-fills each one on first touch: measured on the example transformer, 11,810
page faults and 28 ms of system time in an 84 ms step (55 ms without them; docs/decisions.md).
Raising glibc's mmap and trim thresholds once (``mallopt``) keeps those pages in the heap.

The setting is process-wide, so it is applied only when symgrad trains or compiles a tensor
model, only on glibc, never over the user's own ``MALLOC_MMAP_THRESHOLD_`` or
``MALLOC_TRIM_THRESHOLD_``, and not at all with ``SYMGRAD_KEEP_MEMORY=0``. The cost: up to
``TRIM`` bytes of freed memory stay with the process.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

from ..switches import switch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP = 64 << 20  #: blocks above this still come from mmap (and go straight back)
TRIM = 256 << 20  #: free memory at the heap's top kept up to this


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; whether they were set.

    >>> isinstance(keep_freed_memory(), bool)
    True
    """
    if switch("SYMGRAD_KEEP_MEMORY") is False or not sys.platform.startswith("linux"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False  # the user tuned malloc themselves
    try:
        libc = ctypes.CDLL(None)
        mallopt, version = libc.mallopt, libc.gnu_get_libc_version  # glibc only (musl has no version call)
    except (OSError, AttributeError):
        return False
    del version
    return mallopt(M_MMAP_THRESHOLD, MMAP) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM) == 1
