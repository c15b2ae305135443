"""A shape-generic module bound to one model's sizes (issue 21, ``codegen/dims.py``)."""

from __future__ import annotations

from types import ModuleType

import numpy as np


class Bound:
    """A shape-generic module with one model's sizes: its functions that read sizes (the names
    in the module's ``SIZED``) get ``dims`` first; everything else is the module's own.

    The module's ``OFFSETS_AT`` says where the parameters' offsets in ``theta`` sit in ``dims``.
    """

    def __init__(self, module: ModuleType, dims: np.ndarray):
        self.module, self.dims = module, np.ascontiguousarray(dims, dtype=np.int64)

    def __getattr__(self, name: str):
        value = getattr(self.module, name)
        return _Sized(value, self.dims) if name in self.module.SIZED else value

    @property
    def OFFSETS(self) -> np.ndarray:  # noqa: N802 (the module constant it stands for)
        a, b = self.module.OFFSETS_AT
        return self.dims[a:b]


class _Sized:
    """A function of a shape-generic module called with one model's sizes first; the function's
    own attributes (a Numba dispatcher's ``signatures``, ``overloads``, ``stats``) show through."""

    def __init__(self, fn, dims: np.ndarray):
        self.fn, self.dims = fn, dims

    def __call__(self, *args, **kwargs):
        return self.fn(self.dims, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.fn, name)
