"""What a trained model keeps besides its parameters, in forms that pickle and save: the
network as SymPy expressions, a custom loss as its expression, and the training position
(optimizer state, step and epoch counts, the shuffling RNG) that resuming continues from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..errors import OptionError, ShapeError
from ..lang.losses import target_symbol
from ..lang.walk import find, fingerprint
from .checks import PARAMS_FIX, check_finite, real_array


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """A network as fit() sees it: its output ``expr``, ``params``, input ``x`` and the
    ``labels`` of its layers. Saved and unpickled models hold one; it is an MLP's pickle-free
    essence (an MLP may hold the user's own Python activation functions)."""

    expr: sp.MatrixExpr
    params: tuple[sp.MatrixSymbol, ...]
    x: sp.MatrixSymbol
    labels: dict | None = None

    @classmethod
    def of(cls, model) -> ModelSpec:
        if isinstance(model, cls):
            return model
        labels = getattr(model, "labels", None)
        return cls(model.expr, tuple(model.params), model.x, dict(labels) if labels else None)

    @property
    def sizes(self) -> tuple[int, int]:
        return int(self.x.shape[0]), int(self.expr.shape[0])

    def __repr__(self) -> str:
        # with their shapes: two widths of one network differ in nothing else
        shapes = ", ".join(f"{p}{tuple(int(n) for n in p.shape)}" for p in self.params)
        return f"ModelSpec(inputs={self.sizes[0]}, outputs={self.sizes[1]}, params=[{shapes}])"


class StoredLoss:
    """A custom loss, kept as the expression it gave for the model: ``f(pred, target)``
    written by the user is a Python function, which neither pickles reliably nor saves."""

    def __init__(self, expr: sp.Expr, name: str):
        self.expr, self.__name__ = expr, name

    @classmethod
    def of(cls, loss, model) -> str | StoredLoss:
        """A loss name stays a name; a function becomes the expression it gives for ``model``."""
        if isinstance(loss, (str, cls)):
            return loss
        y = target_symbol(loss, model.expr)
        return cls(loss(model.expr, y), getattr(loss, "__name__", "custom"))

    def __call__(self, pred, target) -> sp.Expr:
        return self.expr

    def target_rows(self, pred) -> int:
        """The rows of the target the stored expression compares with (``target_symbol``)."""
        ys = [s for s in find(self.expr, sp.MatrixSymbol) if s.name == "y"]
        return int(ys[0].shape[0]) if ys else int(pred.shape[0])

    def __eq__(self, other) -> bool:
        return isinstance(other, StoredLoss) and (fingerprint(self.expr), self.__name__) == (fingerprint(other.expr), other.__name__)

    def __hash__(self) -> int:  # by digest: comparing two equal deep expressions is exponential (lang/walk.py)
        return hash((fingerprint(self.expr), self.__name__))

    def __reduce__(self):
        return StoredLoss, (self.expr, self.__name__)


@dataclass
class TrainState:
    """Where training stopped, so that fit(..., resume=) continues exactly: the optimizer's state
    arrays (flat, in ``optimizer.state`` order), its step count ``t``, the epochs done (the
    schedule's position), the shuffling RNG's state, and the minibatch settings."""

    opt_state: list[np.ndarray] = field(default_factory=list)
    t: int = 0
    epoch: int = 0
    rng_state: dict | None = None
    batch_size: int = 32
    shuffle: bool = True

    def rng(self) -> np.random.Generator:
        rng = np.random.default_rng()
        if self.rng_state is not None:
            rng.bit_generator.state = self.rng_state
        return rng


def check_resume(resume, model, loss, optimizer) -> None:
    """Refuse to resume a run with another network, loss or optimizer state layout (``resume``
    is a Trained; for a file, sg.load(path) gives one)."""
    if getattr(resume, "state", None) is None or getattr(resume, "model", None) is None:
        raise OptionError("resume= needs a model returned by sg.fit or sg.load; this one keeps no "
                          "training state. Fix: pass a Trained from sg.fit or sg.load(path), or params=[...] "
                          "to start a new run from given parameters.")
    if fingerprint(ModelSpec.of(model).expr) != fingerprint(ModelSpec.of(resume.model).expr):
        raise OptionError(f"resume= was trained on another network ({ModelSpec.of(resume.model)}); this "
                          f"fit's model is {ModelSpec.of(model)}. Fix: pass resume.model as the model, "
                          "or use trained.fit_more(X, Y, epochs=...).")
    if StoredLoss.of(loss, model) != StoredLoss.of(resume.loss, resume.model):
        raise OptionError(f"resume= was trained with the loss {resume._loss_name!r}, not this one. "
                          "Fix: pass resume.loss, or use trained.fit_more(X, Y, epochs=...).")
    if optimizer is not None and tuple(optimizer.state) != tuple(resume.optimizer.state):
        raise OptionError(f"resume= holds the state of {type(resume.optimizer).__name__} "
                          f"({resume.optimizer.state}); {type(optimizer).__name__} keeps "
                          f"{optimizer.state}. Fix: resume with the same kind of optimizer.")


def initial_params(model, params, seed, dt) -> list[np.ndarray]:
    """Copies (the caller's arrays are never trained in place), checked against the model."""
    if params is None:
        if not hasattr(model, "init_params"):
            raise OptionError(f"the model {type(model).__name__} has no init_params(seed, dtype) to start from. "
                              f"Fix: pass params=[...], one array per parameter {model.params}.")
        return model.init_params(seed, dt)
    shapes = [tuple(int(d) for d in p.shape) for p in model.params]
    fix = "Fix: one array per parameter, in this order, e.g. params=net.init_params(0) or a trained model's .params."
    if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__len__"):
        raise OptionError(f"params={params!r:.60} is not a list of arrays; the model has {model.params}. {fix}")
    if len(params) != len(shapes):
        raise ShapeError(f"params has {len(params)} arrays; the model has {len(shapes)} ({model.params}). {fix}")
    out = []
    for sym, shape, arr in zip(model.params, shapes, params):
        sym = sym.name  # SymPy's printer takes ~20 µs a name: a short fit's whole bookkeeping is ~300
        a = real_array(arr, dt, f"params['{sym}']", f"pass an array of shape {shape} of real numbers")
        if a.shape != shape:
            hint = (f". Fix: params['{sym}'].T (it is transposed: scikit-learn's coefs_ are (n_in, n_out))"
                    if a.ndim == 2 and a.shape == shape[::-1] else
                    f". Fix: params['{sym}'].reshape{shape}" if a.size == np.prod(shape) else "")
            raise ShapeError(f"params['{sym}'] has shape {a.shape}; the model needs {shape}{hint}")
        check_finite(a, f"params['{sym}']", PARAMS_FIX)
        out.append(a)
    return out


def sync_params(result, ps: tuple[np.ndarray, ...]) -> None:
    """A callback that gave the model new arrays (``m.load(path)``, ``m.params = [...]``,
    ``m.params[0] = ...``) is honoured as one that wrote into them is: their values go into the
    buffer the kernel trains (``ps``, its views), and the model's parameters are those views again."""
    if _copied_back(result.params, ps, "the model's parameters", "the network's are",
                    "assign arrays of those shapes, or write into m.params[i][...] in place"):
        result.params[:] = ps  # the same list: fit's own reference to it stays the model's


def sync_states(result, own: tuple[np.ndarray, ...]) -> None:
    """The optimizer state as :func:`sync_params` treats the parameters: new arrays a callback put
    in ``m.state.opt_state`` are copied into the buffers the kernel updates."""
    if _copied_back(result.state.opt_state, own, "the optimizer state", "the optimizer keeps",
                    "write into m.state.opt_state[i][...] in place"):
        result.state.opt_state = list(own)


def _copied_back(given, own: tuple[np.ndarray, ...], what: str, kept: str, fix: str) -> bool:
    """Copy the arrays ``given`` into ``own`` unless they are ``own`` already; whether they were not."""
    if len(given) == len(own) and all(a is b for a, b in zip(given, own)):
        return False
    if len(given) != len(own) or any(np.shape(a) != b.shape for a, b in zip(given, own)):
        raise ShapeError(f"a callback set {what} to shapes {[np.shape(a) for a in given]}; {kept} "
                         f"{[b.shape for b in own]}. Fix: {fix}.")
    new = [np.array(a, dtype=b.dtype, copy=True) for a, b in zip(given, own)]  # all read first: they may overlap
    for dst, src in zip(own, new):
        dst[...] = src
    return True
