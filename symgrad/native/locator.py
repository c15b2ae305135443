"""Where Numba finds no folder for the cache of symgrad's own kernels (this package's files), they
are cached in symgrad's code cache, a private folder: installed where the user cannot write and
with no writable home (a container's arbitrary uid, HOME=/nonexistent), ``import symgrad`` failed
with Numba's "cannot cache function '_two_prod': no locator available", although
SYMGRAD_CACHE_DIR pointed at a writable folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from numba.core import caching

from ..errors import CacheError

_HERE = str(Path(__file__).parent) + os.sep


class InSymgradCache(caching.UserProvidedCacheLocator):
    """Numba's locator for NUMBA_CACHE_DIR, with ``<code cache>/native`` as the folder, for this
    package's files only, and only a folder no other user can write (a pickle planted there runs)."""

    def __init__(self, py_func, py_file):
        from ..cache_safety import configured, usable_dir  # not symgrad.jit, which imports this package

        self._py_file, self._lineno = py_file, py_func.__code__.co_firstlineno
        # the folder the code cache itself uses: a configured one another user could write is
        # bypassed for this process's private one, as symgrad.jit.cache_dir does (checking only
        # native/<subpath> let Numba's pickles live under a world-writable SYMGRAD_CACHE_DIR)
        self._base = usable_dir(configured())[0]
        self._cache_path = str(self._base / "native" / self.get_suitable_cache_subpath(py_file))

    def ensure_cache_path(self):
        from ..cache_safety import private_dir

        for folder in (self._base, self._base / "native", Path(self._cache_path)):
            reason = private_dir(folder)
            if reason is not None:
                raise PermissionError(f"{folder} {reason}")
        super().ensure_cache_path()

    @classmethod
    def from_function(cls, py_func, py_file):
        if not py_file.startswith(_HERE):
            return None
        try:
            return super(caching.UserProvidedCacheLocator, cls).from_function(py_func, py_file)
        except (OSError, RuntimeError, CacheError):  # no folder here either: Numba's own error follows
            return None


def cache_here_last() -> None:
    """Numba's locators first (the install folder, NUMBA_CACHE_DIR, the home folder), then this."""
    if InSymgradCache not in caching.CacheImpl._locator_classes:
        caching.CacheImpl._locator_classes.append(InSymgradCache)
