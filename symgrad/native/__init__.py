"""What generated code calls: vectorisable math (vecmath.py and its kernels) and one-call BLAS.

Numba's on-disk cache checks only the file a function is defined in, but explog.py and
trig.py compile in fpcore.py's kernels: an edit to fpcore.py alone would leave their cached
machine code stale. So the folder's cache is dropped whenever any file here changes (a stamp
of their hashes beside it), before anything in it is compiled or loaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def _drop_stale_cache(here: Path = Path(__file__).parent) -> None:
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(here.glob("*.py")))).hexdigest()
    cache = here / "__pycache__"
    stamp = cache / "symgrad-native.stamp"
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        for f in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
            f.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: Numba caches elsewhere, and the files there never change
        pass


_drop_stale_cache()

from .locator import cache_here_last  # noqa: E402 - after the stale files are gone

cache_here_last()
