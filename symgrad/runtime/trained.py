"""Trained, what fit() returns: the parameters, the history, predict/evaluate, and what it needs
to be saved, pickled and trained further (its network, loss, optimizer and training state).

The generated module is not part of a pickle: it is loaded again from the code cache, or
rebuilt from the stored network when the cache does not have it (another machine, a cleared cache).
"""

from __future__ import annotations

import numpy as np

from .. import jit
from ..errors import OptionError, ShapeError
from ..explain.printing import tex_name, tex_text
from ..lang.conv import model_input
from ..lang.embedding import check_token_ids
from . import inputs
from .base import html_table, latex_block
from .inputs import BINARY_LOSSES, CLASS_LOSSES, REGRESSION_LOSSES, TOKEN_LOSSES, prepare_x, prepare_xy
from .nonfinite import finite_rows
from .state import ModelSpec, StoredLoss, TrainState

# Rows per native call of predict/evaluate: a forward pass holds every layer's (rows, width) activations (one call
# over 1e6 rows grew memory by ~1 GB). 4096 rows was within 10% of the fastest of 2048-262144 (262k rows, 50-w-w-1
# ReLU nets, w = 8-256, one thread); from 16384 they leave the cache and page-fault in afresh (w=256: 1.3 s at 4096
# rows, 2.9 s at 16384), and at w = 8 a call costs ~20 µs: 1e6 rows in 4096-row calls add ~5 ms.
PREDICT_ROWS = 4096


class _ClassOrInstance:
    """``Trained.load(path)`` makes a new model; ``trained.load(path)`` loads parameters into one."""

    def __init__(self, on_class, on_instance):
        self.on_class, self.on_instance = on_class, on_instance

    def __get__(self, obj, cls):
        return self.on_class if obj is None else self.on_instance.__get__(obj, cls)


def _load_file(path: str) -> Trained:
    from .persist import load  # a saved model, rebuilt (persist imports this module)
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
                raise OptionError("this Trained keeps no network to build its code from. Fix: sg.fit or sg.load it.")
            from ..build import training_module  # the build recipes sit above the runtime

            path, _, _, dims = training_module(self.model, self.loss, self.optimizer, self.dtype.name)
            self._module = jit.load(path, jit=(self.backend == "numba"), dims=dims)
        return self._module

    def _n_in(self, X) -> int | tuple[int, ...]:
        """The network's input width (X's own, for a Trained made by hand without one)."""
        return model_input(self.model) if self.model is not None else int(np.shape(X)[-1])

    def predict(self, X) -> np.ndarray:
        """Model outputs, one row per sample of ``X``, in the model's dtype (``X`` is converted).

        Shape (n, n_outputs), logits for softmax/BCE losses, except a single-output regressor
        (mse, mae, huber), (n,) as scikit-learn's regressors give, and a language model
        ('token_cross_entropy'), (n, T, vocab): the logits at each position. A single-output BCE
        model keeps its column of logits, (n, 1), as multi-label BCE keeps one per label and
        evaluate() compares them with ``Y`` column by column; ``predict_class`` gives (n,) labels.
        """
        out = self._outputs(X)
        if self._n_out == 1 and self._loss_name in REGRESSION_LOSSES:
            return out.reshape(len(out))
        tokens = self._loss_name in TOKEN_LOSSES
        T = inputs.target_positions(self.model, self._loss_name) if tokens else 1
        return out.reshape(len(out), T, out.shape[1] // T) if tokens else out  # not -1: 0 rows have no size to divide

    def predict_class(self, X) -> np.ndarray:
        """Class indices (softmax), shape (n,); 0/1 labels (binary cross-entropy: logit > 0), shape
        (n,) for one output and (n, k) for k (multi-label, as ``evaluate``'s accuracy counts them);
        for a language model, the likeliest next token at each position, shape (n, T)."""
        if self._loss_name in REGRESSION_LOSSES:  # thresholded, its outputs would be invented classes
            raise OptionError(f"predict_class: this model was trained on the regression loss {self._loss_name!r}; "
                              "its outputs are values, not classes. Fix: model.predict(X).")
        if self._loss_name in TOKEN_LOSSES:
            return self.predict(X).argmax(axis=2)
        out = self._outputs(X)
        if self._loss_name in BINARY_LOSSES or out.shape[1] == 1:
            labels = (out > 0).astype(int)
            return labels[:, 0] if out.shape[1] == 1 else labels
        return out.argmax(axis=1)

    def _outputs(self, X) -> np.ndarray:
        Xa = prepare_x(X, self._n_in(X), self.dtype, ids=self._loss_name in TOKEN_LOSSES)
        check_token_ids(self.model, Xa)
        return finite_rows(forward_rows(self, Xa))

    def evaluate(self, X, Y) -> dict[str, float]:
        """Loss and (for classification) accuracy on a data set."""
        Xa, Ya = prepare_xy(X, Y, self._loss_name, self._n_in(X), self._n_out, self.dtype,
                            positions=inputs.target_positions(self.model, self._loss_name))
        check_token_ids(self.model, Xa)
        res = evaluate_arrays(self, Xa, Ya)
        if not np.isfinite(res["loss"]):  # which rows overflowed: their accuracy counted argmax(NaN), class 0
            finite_rows(forward_rows(self, Xa))
        return res

    # -- saving, loading, training further ------------------------------------------------------
    def save(self, path: str) -> None:
        """Write everything :func:`symgrad.load` needs to rebuild this model and resume training:
        network, loss, optimizer, dtype, parameters, optimizer state, epoch, RNG state, history.
        The format is ``.npz`` with a JSON header; expressions are SymPy ``srepr`` text, one line
        per distinct subexpression, read back without ``eval``, so a file can hold data but not code."""
        from .persist import save

        save(self, path)

    def _load_params(self, path: str) -> None:
        """Load the parameters of a file written by :meth:`save` into this model (shapes must match)."""
        from .persist import read_params

        loaded = read_params(path, [str(p) for p in self.model.params] if self.model is not None else None)
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

    def summary(self) -> str:
        """A table of the parameters (name, shape, count) and what trained them, as Keras's
        ``model.summary()``; returned, and printed by ``print(m.summary())``.

        >>> import numpy as np, symgrad as sg
        >>> m = sg.Trained([np.zeros((3, 2)), np.zeros((3, 1))], loss_name="mse")
        >>> print(m.summary())  # doctest: +NORMALIZE_WHITESPACE
        parameter  shape     count
        p0         (3, 2)        6
        p1         (3, 1)        3
        total                    9
        loss mse, optimizer None, float64, 0 epochs trained
        """
        rows = self._param_rows()
        w = max([len("parameter")] + [len(n) for n, _, _ in rows])
        lines = [f"{'parameter':<{w}}  {'shape':<8}  {'count':>5}"]
        lines += [f"{n:<{w}}  {shape:<8}  {c:>5}" for n, shape, c in rows]
        lines.append(f"{'total':<{w}}  {'':<8}  {sum(c for _, _, c in rows):>5}")
        lines.append(self._trained_by())
        return "\n".join(lines)

    def _param_names(self) -> list[str]:
        return ([str(p) for p in self.model.params] if self.model is not None
                else [f"p{k}" for k in range(len(self.params))])

    def _param_rows(self) -> list[tuple[str, str, int]]:
        return [(n, str(tuple(p.shape)), p.size) for n, p in zip(self._param_names(), self.params)]

    def _trained_by(self) -> str:
        last = f", last loss {self.history['loss'][-1]:.4g}" if self.history.get("loss") else ""
        return (f"loss {self._loss_label()}, optimizer {self.optimizer!r}, {self.dtype.name}, "
                f"{self._epochs_trained()} epochs trained{last}")

    def _epochs_trained(self) -> int:
        return self.state.epoch if self.state is not None else len(self.history.get("loss", []))

    def _loss_label(self) -> str:
        return str(self._loss_name or getattr(self.loss, "__name__", self.loss))

    # -- pictures (symgrad.runtime.plots, needs matplotlib) and notebook display ------------------
    def grad_norms(self) -> dict[str, np.ndarray]:
        """``history['grad_norms']`` by parameter: {name: its gradient norm in each epoch}.

        >>> import numpy as np, symgrad as sg
        >>> m = sg.Trained([np.zeros(2), np.zeros(3)], {"grad_norms": [[1.0, 0.5], [0.8, 0.25]]})
        >>> m.grad_norms()
        {'p0': array([1. , 0.8]), 'p1': array([0.5 , 0.25])}
        """
        names, gn = self._param_names(), np.asarray(self.history.get("grad_norms", []), dtype=np.float64)
        gn = gn.reshape(len(gn), -1 if gn.size else len(names))
        if gn.shape[1] != len(names):  # a history made by hand, for other parameters
            names = [f"p{k}" for k in range(gn.shape[1])]
        return {n: gn[:, k].copy() for k, n in enumerate(names)}

    def plot(self, ax=None, path: str | None = None):
        """Training and validation loss per epoch (validation accuracy and metrics on a second
        axis); returns the matplotlib Axes, and writes a PNG to ``path`` if given."""
        from .plots import plot_history

        return plot_history(self, ax, path)

    def plot_gradients(self, ax=None, path: str | None = None):
        """Each parameter's gradient norm per epoch on a log scale: vanishing gradients show as
        the first layers' curves far below the last's. Returns the Axes; ``path`` writes a PNG."""
        from .plots import plot_grad_norms

        return plot_grad_norms(self, ax, path)

    def _last_values(self) -> str:
        """The last epoch's loss and validation numbers, as ``val_loss 0.31, val_accuracy 0.9``."""
        return ", ".join(f"{k} {v[-1]:.4g}" for k, v in self.history.items()
                         if (k == "loss" or k.startswith("val_")) and v)

    def _repr_html_(self) -> str:
        """The summary as a table, with each parameter's gradient norm in the last epoch."""
        norms = {n: f"{v[-1]:.3g}" for n, v in self.grad_norms().items() if len(v)}
        rows = [(n, shape, c, norms.get(n, "")) for n, shape, c in self._param_rows()]
        rows.append(("total", "", sum(r[2] for r in rows), ""))
        head = ("parameter", "shape", "count", "gradient norm (last epoch)")
        last = f"; last epoch: {self._last_values()}" if self._last_values() else ""
        note = f"loss {self._loss_label()}, optimizer {self.optimizer!r}{last}"
        return html_table(self._title(), rows, head, note)

    def _title(self) -> str:
        model = f" {self.model!r}" if self.model is not None else ""
        return f"Trained{model}: {self._epochs_trained()} epochs, {self.dtype.name}, backend {self.backend}"

    def _latex_lines(self) -> list[str]:
        """One formula per line (each renders in mathtext): what trained it, then the parameters."""
        lines = [tex_text(_ascii(self._title())),
                 tex_text(_ascii(f"loss {self._loss_label()}, optimizer {self.optimizer!r}"))]
        if self._last_values():
            lines.append(tex_text(_ascii("last epoch: " + self._last_values())))
        lines += [r"%s:\ %s\ (%d)" % (tex_name(n), r" \times ".join(shape.strip("(,)").split(", ")) or "1", c)
                  for n, shape, c in self._param_rows()]
        return lines + [tex_text(f"total: {sum(r[2] for r in self._param_rows())} parameters")]

    def _repr_latex_(self) -> str:
        return "$$" + latex_block(self._latex_lines()) + "$$"

    def __getstate__(self) -> dict:
        out = dict(self.__dict__, _module=None)
        if self.model is not None:
            out["model"] = ModelSpec.of(self.model)
            out["loss"] = StoredLoss.of(self.loss, self.model)
        return out

    def __repr__(self) -> str:
        return (f"<Trained {self.model!r} loss={self._loss_name!r} {type(self.optimizer).__name__} "
                f"{self.dtype.name} epochs={self._epochs_trained()}>")


def _ascii(s: str) -> str:
    """``s`` for LaTeX's text mode, which pdflatex may not have fonts for beyond ASCII."""
    return s.encode("ascii", "replace").decode()


def forward_rows(result: Trained, Xa: np.ndarray) -> np.ndarray:
    """The (n, n_outputs) outputs for checked rows, PREDICT_ROWS rows per native call."""
    out = np.empty((len(Xa), result._n_out), dtype=result.dtype)
    for at in range(0, len(Xa), PREDICT_ROWS):
        out[at:at + PREDICT_ROWS] = result._mod.predict(*result.params, Xa[at:at + PREDICT_ROWS])
    return out


def evaluate_arrays(result: Trained, Xa: np.ndarray, Ya: np.ndarray) -> dict[str, float]:
    """Loss and accuracy on checked arrays (fit's validation data, evaluate()), PREDICT_ROWS rows
    at a time; the mean loss of several chunks is their row-weighted mean."""
    starts = range(0, len(Xa), PREDICT_ROWS)
    losses = [float(result._mod.loss(*result.params, Xa[at:at + PREDICT_ROWS], Ya[at:at + PREDICT_ROWS]))
              for at in starts]
    sizes = [min(PREDICT_ROWS, len(Xa) - at) for at in starts]
    res = {"loss": losses[0] if len(losses) == 1 else float(np.dot(losses, sizes) / len(Xa))}
    if result._loss_name in CLASS_LOSSES + BINARY_LOSSES + TOKEN_LOSSES:
        out = forward_rows(result, Xa)
        if result._loss_name in TOKEN_LOSSES:  # next-token accuracy, over every position
            res["accuracy"] = float((out.reshape(Ya.shape[0], Ya.shape[1], -1).argmax(axis=2) == Ya).mean())
        elif result._loss_name in CLASS_LOSSES:
            res["accuracy"] = float((out.argmax(axis=1) == Ya.argmax(axis=1)).mean())
        else:  # every output of a multi-label BCE counts
            res["accuracy"] = float(((out > 0) == (Ya > 0.5)).mean())
    return res
