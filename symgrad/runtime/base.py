"""What every compiled model shares: its generated file, symbols, dtype and backend."""

from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType

import numpy as np

from .. import jit
from ..errors import CacheError


class Compiled:
    """A generated module loaded for one backend. Subclasses add the calls (value, grad, ...)."""

    def __init__(self, path: Path, params, data, dtype: str, reduction: str, backend: str):
        self.path = path
        self.params = list(params)
        self.data = list(data)
        self.dtype = np.dtype(dtype)
        self.reduction = reduction
        self.backend = backend
        self._mod = jit.load(path, jit=(backend == "numba"))

    @property
    def source(self) -> str:
        """The generated module (the same file for both backends)."""
        return jit.read_source(self.path)

    @property
    def python(self):
        """The same functions as plain Python: the reference path for tests."""
        twin = copy.copy(self)
        twin.backend = "python"
        twin._mod = jit.load(self.path, jit=False)
        twin._reset()
        return twin

    def _reset(self) -> None:
        """Forget what was loaded lazily for the other backend (a subclass hook)."""

    # A loaded module does not pickle. The pickle carries the generated source instead, so it
    # unpickles where the cache lacks the file (another machine, a cleared cache) into the
    # very code that was compiled; the checksummed cache file is reused when present.
    def __getstate__(self) -> dict:
        try:
            source = jit.read_source(self.path)
        except OSError as exc:
            raise CacheError(f"the generated module {self.path} is gone from the code cache, so this "
                             f"compiled model cannot be pickled ({exc}). Fix: compile it again.") from exc
        state = {k: v for k, v in self.__dict__.items() if not isinstance(v, ModuleType)}
        return state | {"path": self.path.name, "_source": source}

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        source = state.pop("_source")
        key = Path(state["path"]).stem.removeprefix("sg_")
        state["path"] = jit.ensure_source(key, lambda: source)
        self.__dict__.update(state)
        self._mod = jit.load(self.path, jit=(self.backend == "numba"))
        self._reset()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} wrt={self.params} data={self.data} {self.dtype.name} "
                f"reduction={self.reduction} backend={self.backend} file={self.path.name}>")
