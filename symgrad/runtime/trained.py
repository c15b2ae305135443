"""Trained, what fit() returns: the parameters, the history, predict/evaluate/save; and the
check and conversion of (X, Y) that fit() and Trained.evaluate share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ShapeError
from .checks import as_float_array, check_finite


@dataclass
class Trained:
    """A fitted model: parameters, per-epoch history, predict/evaluate/save."""

    params: list[np.ndarray]
    history: dict[str, list] = field(default_factory=dict)
    _mod: object = None
    _loss_name: str = ""
    _n_out: int = 1
    dtype: np.dtype = np.dtype("float64")

    def predict(self, X) -> np.ndarray:
        """Model outputs (logits for softmax/BCE losses), one row per sample."""
        X = as_float_array(X, self.dtype, "X")
        return self._mod.predict(*self.params, X.reshape(len(X), -1))

    def predict_class(self, X) -> np.ndarray:
        out = self.predict(X)
        return out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] > 0).astype(int)

    def evaluate(self, X, Y) -> dict[str, float]:
        """Loss and (for classification) accuracy on a data set."""
        Xa, Ya = _prepare_xy(X, Y, self._loss_name, self._n_out, self.dtype)
        res = {"loss": float(self._mod.loss(*self.params, Xa, Ya))}
        if self._loss_name in ("softmax_cross_entropy", "cross_entropy", "bce", "binary_cross_entropy"):
            truth = Ya.argmax(axis=1) if Ya.shape[1] > 1 else Ya[:, 0].astype(int)
            res["accuracy"] = float((self.predict_class(X) == truth).mean())
        return res

    def save(self, path: str) -> None:
        """Save the parameters to a ``.npz`` file."""
        np.savez(path, *self.params)

    def load(self, path: str) -> None:
        """Load parameters saved by :meth:`save` (shapes must match)."""
        with np.load(path) as f:
            loaded = [f[f"arr_{k}"] for k in range(len(f.files))]
        if [a.shape for a in loaded] != [p.shape for p in self.params]:
            raise ShapeError(f"saved shapes {[a.shape for a in loaded]} do not match the model's")
        self.params = [np.ascontiguousarray(a, dtype=self.dtype) for a in loaded]


def _prepare_xy(X, Y, loss_name, n_out, dtype):
    X = as_float_array(np.asarray(X) if not isinstance(X, np.ndarray) else X, dtype, "X")
    Y = np.asarray(Y)
    if loss_name in ("softmax_cross_entropy", "cross_entropy") and Y.ndim == 1:
        if Y.dtype.kind not in "iu" or Y.min() < 0 or Y.max() >= n_out:
            raise ShapeError(f"class labels must be integers in [0, {n_out}); got {Y.dtype} in "
                             f"[{Y.min()}, {Y.max()}]")
        Y = np.eye(n_out, dtype=dtype)[Y]
    Y = as_float_array(Y.astype(dtype) if Y.dtype.kind in "iub" else Y, dtype, "Y")
    X, Y = X.reshape(len(X), -1), Y.reshape(len(Y), -1)
    if len(X) != len(Y):
        from ..errors import DataError

        raise DataError(f"X has {len(X)} rows but Y has {len(Y)}. Fix: one target row per sample.")
    if Y.shape[1] != n_out:
        raise ShapeError(f"Y has {Y.shape[1]} columns; the model has {n_out} outputs")
    check_finite(X, "X")
    check_finite(Y, "Y")
    return np.ascontiguousarray(X), np.ascontiguousarray(Y)
