"""What every compiled model shares: its generated file, symbols, dtype and backend."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from .. import jit


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

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} wrt={self.params} data={self.data} {self.dtype.name} "
                f"reduction={self.reduction} backend={self.backend} file={self.path.name}>")
