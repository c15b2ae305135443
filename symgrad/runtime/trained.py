"""Trained, what fit() returns: the parameters, the history, predict/evaluate, and what it needs
to be saved, pickled and trained further (its network, loss, optimizer and training state).

The generated module is not part of a pickle: it is loaded again from the code cache, or
rebuilt from the stored network when the cache does not have it (another machine, a cleared
cache).
"""

from __future__ import annotations

import numpy as np

from .. import jit
from ..errors import OptionError, ShapeError
from .inputs import BINARY_LOSSES, CLASS_LOSSES, prepare_x, prepare_xy
from .state import ModelSpec, StoredLoss, TrainState


class _ClassOrInstance:
    """``Trained.load(path)`` makes a new model; ``trained.load(path)`` loads parameters into one."""

    def __init__(self, on_class, on_instance):
        self.on_class, self.on_instance = on_class, on_instance

    def __get__(self, obj, cls):
        if obj is None:
            return self.on_class
        return self.on_instance.__get__(obj, cls)


def _load_file(path: str) -> Trained:
    """A saved model, rebuilt (see :func:`symgrad.runtime.persist.load`)."""
    from .persist import load

    return load(path)


class Trained:
    """A fitted model: parameters, per-epoch history, predict/evaluate, save/load, fit_more.

    ``model``, ``loss``, ``optimizer`` and ``state`` are what fit() used and where it stopped;
    ``sg.fit(model, loss, X, Y, resume=trained)`` (or :meth:`fit_more`) continues from there.
    """

    def __init__(self, params: list[np.ndarray], history: dict[str, list] | None = None, mod=None,
                 loss_name: str = "", n_out: int = 1, dtype=np.float64, *, model=None, loss=None,
                 optimizer=None, backend: str = "numba", state: TrainState | None = None):
        self.params = params
        self.history = {} if history is None else history
        self._module = mod
        self._loss_name, self._n_out, self.dtype = loss_name, n_out, np.dtype(dtype)
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.backend, self.state = backend, state

    @property
    def _mod(self):
        """The generated module (predict, loss, train_chunk), loaded on first use."""
        if self._module is None:
            if self.model is None:
                raise OptionError("this Trained keeps no network to build its code from. Fix: make it "
                                  "with sg.fit or sg.load.")
            from ..build import training_module  # the build recipes sit above the runtime

            path, _, _ = training_module(self.model, self.loss, self.optimizer, self.dtype.name)
            self._module = jit.load(path, jit=(self.backend == "numba"))
        return self._module

    def _n_in(self, X) -> int:
        """The network's input width (X's own, for a Trained made by hand without one)."""
        return int(self.model.x.shape[0]) if self.model is not None else int(np.shape(X)[-1])

    def predict(self, X) -> np.ndarray:
        """Model outputs (logits for softmax/BCE losses), one row per sample of ``X``."""
        X = prepare_x(X, self._n_in(X), self.dtype)
        if len(X) == 0:
            return np.zeros((0, self._n_out), dtype=self.dtype)
        return self._mod.predict(*self.params, X)

    def predict_class(self, X) -> np.ndarray:
        out = self.predict(X)
        return out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] > 0).astype(int)

    def evaluate(self, X, Y) -> dict[str, float]:
        """Loss and (for classification) accuracy on a data set."""
        Xa, Ya = prepare_xy(X, Y, self._loss_name, self._n_in(X), self._n_out, self.dtype)
        return evaluate_arrays(self, Xa, Ya)

    # -- saving, loading, training further ------------------------------------------------------
    def save(self, path: str) -> None:
        """Write everything :func:`symgrad.load` needs to rebuild this model and resume training:
        network, loss, optimizer, dtype, parameters, optimizer state, epoch, RNG state, history.
        The format is ``.npz`` with a JSON header; expressions are SymPy ``srepr`` text, read
        back without ``eval``, so a file can hold data but not code."""
        from .persist import save

        save(self, path)

    def _load_params(self, path: str) -> None:
        """Load the parameters of a file written by :meth:`save` into this model (shapes must match)."""
        from .persist import read_params

        loaded = read_params(path)
        if [a.shape for a in loaded] != [p.shape for p in self.params]:
            raise ShapeError(f"saved shapes {[a.shape for a in loaded]} do not match the model's "
                             f"{[p.shape for p in self.params]}. Fix: load the file into the network it "
                             "was saved from, or use sg.load(path), which rebuilds that network.")
        self.params = [np.ascontiguousarray(a, dtype=self.dtype) for a in loaded]

    load = _ClassOrInstance(_load_file, _load_params)

    def fit_more(self, X, Y, epochs: int = 10, **kw) -> Trained:
        """Train ``epochs`` more epochs from where this model stopped, exactly as if the first run
        had been longer: ``sg.fit(self.model, self.loss, X, Y, resume=self, ...)``. Batch size,
        shuffling and backend default to the first run's; other fit() options pass through."""
        from .fit import fit

        for key, value in (("batch_size", self.state and self.state.batch_size),
                           ("shuffle", self.state and self.state.shuffle), ("backend", self.backend)):
            if value is not None:
                kw.setdefault(key, value)
        return fit(self.model, self.loss, X, Y, epochs=epochs, resume=self, **kw)

    def __getstate__(self) -> dict:
        out = dict(self.__dict__, _module=None)
        if self.model is not None:
            out["model"] = ModelSpec.of(self.model)
            out["loss"] = StoredLoss.of(self.loss, self.model)
        return out

    def __repr__(self) -> str:
        epochs = self.state.epoch if self.state is not None else len(self.history.get("loss", []))
        return (f"<Trained {self.model!r} loss={self._loss_name!r} {type(self.optimizer).__name__} "
                f"{self.dtype.name} epochs={epochs}>")


def evaluate_arrays(result: Trained, Xa: np.ndarray, Ya: np.ndarray) -> dict[str, float]:
    """Loss and accuracy on checked arrays (fit's validation data, evaluate())."""
    res = {"loss": float(result._mod.loss(*result.params, Xa, Ya))}
    if result._loss_name in CLASS_LOSSES + BINARY_LOSSES:
        out = result._mod.predict(*result.params, Xa)
        if result._loss_name in CLASS_LOSSES:
            res["accuracy"] = float((out.argmax(axis=1) == Ya.argmax(axis=1)).mean())
        else:  # every output of a multi-label BCE counts
            res["accuracy"] = float(((out > 0) == (Ya > 0.5)).mean())
    return res
