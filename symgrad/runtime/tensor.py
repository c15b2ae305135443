"""The runtime face of a compiled tensor (matrix) model; ``build.tensor_module`` makes its file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sympy as sp

from .. import jit
from ..errors import ShapeError, UnsupportedModelError
from ..lang.functions import softmax_ce
from . import nonfinite, row_sums
from .base import Compiled
from .checks import (
    PARAMS_FIX,
    ROW_OFFSET,
    check_data,
    check_finite,
    check_vector,
    is_dask,
    real_array,
    split_flat,
)
from .inputs import _check_distributions
from .memory import keep_freed_memory

#: Dense Hessians of tensor models are built one Hessian-vector product per column.
MAX_DENSE_HESSIAN = 1024


def _shape(s: sp.Basic) -> tuple[int, int]:
    return tuple(int(d) for d in s.shape) if isinstance(s, sp.MatrixSymbol) else (1, 1)


class CompiledTensor(Compiled):
    """A compiled tensor loss. Parameters are a list of arrays in ``wrt`` order (or one flat
    vector, for scipy); data are arrays with one row per sample.

    Gradients come back in the same form as the parameters were given.
    """

    def __init__(self, path: Path, params, data, dtype: str, backend: str, *, loss=None, reduction="mean",
                 dims: np.ndarray | None = None, on_nonfinite: str = "warn"):
        super().__init__(path, params, data, dtype, reduction, backend, dims)
        self.loss, self.on_nonfinite = loss, on_nonfinite
        self._hvp_mod = None  # built on the first hvp call
        keep_freed_memory()  # repeated calls reuse the pages of their temporaries (runtime/memory.py)
        self.shapes = [_shape(p) for p in self.params]
        self.sizes = [r * c for r, c in self.shapes]

    def _reset(self) -> None:
        self._hvp_mod = None

    # -- arguments ----------------------------------------------------------------
    def unpack(self, theta) -> tuple[list[np.ndarray], bool]:
        """(list of parameter arrays, was_flat)."""
        return self._unpack(theta, "theta")

    def _unpack(self, theta, what: str) -> tuple[list[np.ndarray], bool]:  # what: theta, or hvp's v
        flat = self._as_flat(theta, what)
        if flat is not None:
            return split_flat(flat, self.shapes), True
        if not isinstance(theta, (list, tuple, np.ndarray)) or len(theta) != len(self.params):
            if isinstance(theta, np.ndarray) and theta.ndim >= 2 and len(self.params) == 1 \
                    and theta.shape == self.shapes[0]:  # the parameter itself: its rows read as parameters
                raise ShapeError(f"theta is the parameter array itself, of shape {theta.shape}; the function "
                                 f"takes a list of parameter arrays. Fix: pass [{self.params[0]}], a list of it.")
            theta = theta if isinstance(theta, (list, tuple, np.ndarray)) else [theta]
            numbers = isinstance(theta, np.ndarray) and theta.dtype != object  # a vector of the wrong length
            got = f"an array of shape {theta.shape}" if numbers else f"{len(theta)} arrays"
            raise ShapeError(f"expected {len(self.params)} parameter arrays ({self.params}) or one flat vector of "
                             f"{sum(self.sizes)} numbers, got {got}. Fix: one array per parameter in that order, "
                             f"or one flat vector of {sum(self.sizes)} numbers.")
        out = []
        for p, shape, arr in zip(self.params, self.shapes, theta):
            name = f"parameter '{p}'" if what == "theta" else f"{what}'s entry for '{p}'"
            # converted as a flat theta is (scipy's float64 vectors): parameters are not data of another dtype
            a = real_array(arr, self.dtype, name, "one array of real numbers per parameter")
            if a.shape != shape:
                a = a.reshape(shape) if a.size == shape[0] * shape[1] and a.ndim == 1 else a
                if a.shape != shape:
                    raise ShapeError(f"parameter '{p}' has shape {np.shape(arr)}; expected {shape}. Fix: pass "
                                     f"an array of shape {shape} for '{p}' (f.shapes lists them all).")
            check_finite(a, name, PARAMS_FIX if what == "theta" else "Fix: a finite direction v.")
            out.append(a)
        return out, False

    def _as_flat(self, theta, what: str = "theta") -> np.ndarray | None:
        """theta as one checked flat vector, if it was given as one (converted as scipy's float64
        vectors are; complex numbers or text refused, not cast)."""
        total = sum(self.sizes)
        if isinstance(theta, (list, tuple)) and all(np.ndim(a) == 0 for a in theta) or \
                not isinstance(theta, (list, tuple, np.ndarray)) and hasattr(theta, "__array__"):
            theta = np.asarray(theta)  # a list of numbers, a pandas Series: a flat vector, as formulas take
        if isinstance(theta, np.ndarray) and theta.ndim == 2 and theta.shape == (1, total) and len(self.params) > 1:
            theta = theta[0]  # one row of numbers
        if isinstance(theta, np.ndarray) and theta.ndim == 1 and len(self.params) >= 1 and theta.size == total:
            return check_vector(theta, theta.size, self.dtype, what)
        return None

    def prepare_data(self, data: Sequence[object]) -> list[np.ndarray]:
        widths = [_shape(d)[0] * _shape(d)[1] for d in self.data]
        arrays = check_data(list(data), [str(d) for d in self.data], self.dtype, widths)
        arrays = [a.reshape(len(a), -1) if a.ndim == 1 else a for a in arrays]
        for d, a in zip(self.data, arrays):
            if d in self._ce_targets():  # as fit checks them: 2·onehot gave lse − 2z, silently
                _check_distributions(a, str(d))
        return arrays

    def _ce_targets(self) -> frozenset:
        """The data symbols that are targets of a softmax cross-entropy (found once)."""
        found = getattr(self, "_ce", None)
        if found is None:
            loss = getattr(self, "loss", None)
            found = self._ce = frozenset(e.args[1] for e in loss.atoms(softmax_ce)) if loss is not None else frozenset()
        return found

    # -- evaluation -----------------------------------------------------------------
    def value(self, theta, *data) -> float:
        if any(is_dask(d) for d in data):  # Dask arrays: chunk by chunk on the workers
            from ..distributed import evaluate

            return evaluate.value(self, theta, *data)
        ps, _ = self.unpack(theta)
        return self._summed("value", lambda block, _: self._mod.loss(*ps, *block), self.prepare_data(data))[0]

    def value_and_grad(self, theta, *data):
        if any(is_dask(d) for d in data):
            from ..distributed import evaluate

            return evaluate.value_and_grad(self, theta, *data)
        th = self._as_flat(theta)
        flat = th is not None
        if not flat:
            th = np.concatenate([p.ravel() for p in self.unpack(theta)[0]])
        v, g = self._summed("gradient", lambda block, g: self._mod.loss_grad(th, *block, g),  # flat buffers
                            self.prepare_data(data), th.size)
        return v, (g if flat else split_flat(g, self.shapes))

    def _summed(self, what: str, fn, arrays: list[np.ndarray], k: int = 0) -> tuple[float, np.ndarray | None]:
        """``fn(block, out)``'s value and vector (of ``k`` numbers) over all rows, in float32 by
        blocks (runtime/row_sums.py); a NaN or Inf is reported as ``on_nonfinite`` says."""
        def run(block):
            out = np.empty(k, dtype=self.dtype) if k else None
            return fn(block, out), out

        parts = [(rows, *run(block)) for rows, block in row_sums.blocks(arrays, self.dtype)]
        v, vec = row_sums.combine(parts, mean=(self.reduction == "mean")) if len(parts) > 1 else parts[0][1:]
        v, vec = self.dtype.type(v), (None if vec is None else vec.astype(self.dtype))
        if not (np.isfinite(v) and (vec is None or np.isfinite(vec).all())):
            self._report("value" if not np.isfinite(v) else what, run, arrays)
        return v, vec

    def _report(self, what: str, run, arrays: list[np.ndarray]) -> None:
        mode = getattr(self, "on_nonfinite", "warn")  # pickled before the option existed
        if mode == "ignore":
            return
        def bad(lo: int, hi: int) -> bool:
            v, vec = run([a[lo:hi] for a in arrays])
            return not np.isfinite(v if what == "value" else vec).all()

        row = row_sums.first_bad(len(arrays[0]), bad) if arrays else None
        if row is None:
            where = "at these parameters" if not arrays else "every sample's term is finite, but their sum overflowed"
        else:
            shown = ", ".join(f"{d} = {np.array2string(a[row].ravel()[:6], precision=4)}" for d, a in zip(self.data, arrays))
            where = f"first at sample {row + ROW_OFFSET.get()} ({shown})"  # a row of the whole data
        nonfinite.emit(mode, f"the {what} is not finite: {where}", stacklevel=5)

    def grad(self, theta, *data):
        return self.value_and_grad(theta, *data)[1]

    def hvp(self, theta, v, *data) -> np.ndarray | list[np.ndarray]:
        """Exact Hessian-vector product H v, for any number of parameters: one forward-mode
        sweep for ∇f·v, then one reverse sweep of that (``tangent.py``); no k×k matrix is
        formed. ``v`` takes the same form as ``theta`` (one flat vector, or one array per
        parameter), and so does the result. Built on the first call (one more module)."""
        if any(is_dask(d) for d in data):
            from ..distributed import evaluate

            return evaluate.hvp(self, theta, v, *data)
        th, flat = self._flat(theta)
        vv, _ = self._flat(v, "v")
        out = self._hvp_raw(th, vv, self.prepare_data(data))
        return out if flat else split_flat(out, self.shapes)

    def hessian(self, theta, *data) -> np.ndarray:
        """The dense (k × k) Hessian, one ``hvp`` per column: for small models only."""
        k = sum(self.sizes)
        if not self.has_hessian:
            raise UnsupportedModelError(
                f"a dense Hessian of {k} parameters is {k}x{k} numbers, built from {k} Hessian-vector "
                f"products (the limit is {MAX_DENSE_HESSIAN}). Fix: use f.hvp(theta, v, ...), e.g. with "
                "scipy's Newton-CG (hessp=), or a quasi-Newton method such as L-BFGS.")
        if any(is_dask(d) for d in data):
            from ..distributed import evaluate

            return evaluate.hessian(self, theta, *data)
        th, _ = self._flat(theta)
        arrays = self.prepare_data(data)
        cols = [self._hvp_raw(th, e, arrays) for e in np.eye(k, dtype=self.dtype)]
        return np.stack(cols, axis=1)

    @property
    def has_hessian(self) -> bool:
        """Whether :meth:`hessian` is offered (at most ``MAX_DENSE_HESSIAN`` parameters)."""
        return sum(self.sizes) <= MAX_DENSE_HESSIAN

    def _flat(self, theta, what: str = "theta") -> tuple[np.ndarray, bool]:
        flat = self._as_flat(theta, what)
        if flat is not None:
            return flat, True
        try:
            arrays = self._unpack(theta, what)[0]
        except ShapeError as e:
            raise ShapeError(f"{what}: {e}") from None
        return np.concatenate([a.ravel() for a in arrays]), False

    def _hvp_raw(self, theta: np.ndarray, v: np.ndarray, data: list[np.ndarray]) -> np.ndarray:
        if self._hvp_mod is None:
            if self.loss is None:
                raise UnsupportedModelError("this compiled model does not keep its loss. Fix: compile it again.")
            from ..build import tensor_module  # the build recipes sit above the runtime

            path, dims = tensor_module(self.loss, self.params, self.data, self.dtype.name, self.reduction, hvp=True)
            self._hvp_mod = jit.load(path, jit=(self.backend == "numba"), dims=dims)
        k, both = theta.size, np.concatenate([theta, v])  # the directions are parameters too

        def fn(block, out):
            g = np.empty(2 * k, dtype=self.dtype)  # (H v, ∇f)
            self._hvp_mod.loss_grad(both, *block, g)
            out[:] = g[:k]
            return 0.0  # the value is value()'s to report

        return self._summed("Hessian-vector product", fn, data, k)[1]
