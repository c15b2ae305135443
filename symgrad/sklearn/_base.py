"""What every estimator shares: option checks, one training routine behind fit/partial_fit/
warm_start, and the network's outputs for predict. The subclasses say which network, which
loss, and how targets (and weights) become the arrays ``sg.fit`` trains on.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from ..errors import OptionError, ShapeError

try:
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # validate_data and __sklearn_tags__ are scikit-learn 1.6 API
    raise ImportError("symgrad.sklearn needs scikit-learn >= 1.6. Fix: pip install "
                      "'symgrad[sklearn]' (or pip install -U scikit-learn).") from exc

from ..lang.conv import model_input
from ..lang.nn import ACTIVATIONS, MLP
from ..lang.optim import Optimizer
from ..runtime.fit import fit
from ..runtime.inputs import check_sample_shape, plain
from ..runtime.options import optimizers

#: scikit-learn's activation names that symgrad spells differently.
SKLEARN_ACTIVATIONS = {"logistic": "sigmoid"}


class SymgradBase(BaseEstimator):
    """Training plumbing (not an estimator by itself). Subclasses define ``_network``,
    ``_loss`` and ``_targets``, and may define ``_init_params``."""

    _y_numeric = True

    # -- training ------------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight, *, incremental: bool, classes=None):
        """fit (fresh, or continued with warm_start) and partial_fit (one epoch, continued). A fit
        that fails (divergence, Ctrl-C) leaves the estimator as it was: the data's checks set
        classes_ and n_features_in_ before training, and the last fit's network answered predict
        with the new labels."""
        before = dict(self.__dict__)
        try:
            return self._fit_once(X, y, sample_weight, incremental=incremental, classes=classes)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit_once(self, X, y, sample_weight, *, incremental: bool, classes=None):
        first = not hasattr(self, "trained_") or not (incremental or self.warm_start)
        iters, seen = (0, 0) if first else (self.n_iter_, self.t_)
        samples, loss = getattr(X, "shape", None), self._loss()  # a loss the estimator refuses, before the shapes
        X, y = self._validate(X, y, reset=first)
        T, n_out = self._targets(y, sample_weight, first=first, incremental=incremental, classes=classes)
        epochs = 1 if incremental else self._max_iter()
        batch = _batch_size(self.batch_size, len(X))
        T = T.astype(X.dtype)
        if first:
            net, seed = self._network(X.shape[1], n_out), self._seed()
            _check_samples(samples, net)
            self.trained_ = fit(net, loss, X, T, optimizer=self._optimizer(), epochs=epochs,
                                batch_size=batch, seed=seed, dtype=X.dtype.name, backend=self.backend,
                                shuffle=self._shuffle(), params=self._init_params(net, seed, X.dtype))
            self._before = (0, [])  # epochs and loss curve of earlier optimizers (set_params changed them)
        else:  # the optimizer's state, the step count and the shuffling RNG continue exactly
            self._check_same_network(X.shape[1], n_out)
            _check_samples(samples, self.trained_.model)
            had, opt = self.trained_, self._optimizer()
            if repr(opt) == repr(had.optimizer):
                self.trained_ = had.fit_more(X, T, epochs=epochs, batch_size=batch, shuffle=self._shuffle())
            else:  # a new learning rate or solver was ignored: a new optimizer from the weights reached, as
                # scikit-learn starts one at every warm-start fit
                self._before = (self.n_iter_, self.loss_curve_)
                self.trained_ = fit(had.model, loss, X, T, optimizer=opt, epochs=epochs, batch_size=batch,
                                    seed=self._seed(), dtype=had.dtype.name, backend=self.backend,
                                    shuffle=self._shuffle(), params=[p.copy() for p in had.params])
        epochs_before, curve_before = getattr(self, "_before", (0, []))
        self.n_iter_ = epochs_before + self.trained_.state.epoch
        self.loss_curve_ = curve_before + [self._curve_scale * v for v in self.trained_.history["loss"]]
        # scikit-learn's MLP names: the last and the smallest loss, and samples seen (t_)
        self.loss_, self.best_loss_ = self.loss_curve_[-1], min(self.loss_curve_)
        self.t_ = seen + len(X) * (self.n_iter_ - iters)
        self.validation_scores_ = self.best_validation_score_ = None  # as without early_stopping
        return self

    #: loss_curve_ is the training loss times this (MLPRegressor: scikit-learn's half squared error)
    _curve_scale = 1.0

    def _check_same_network(self, n_in: int, n_out: int) -> None:
        """warm_start and partial_fit go on training the first fit's network: one that set_params
        has changed since (other hidden sizes or activation) would be ignored, silently."""
        net, had = self._network(n_in, n_out), self.trained_.model
        if net.expr != had.expr:  # its MatrixSymbols carry the shapes
            shapes = [f"{p} {tuple(p.shape)}" for p in net.params], [f"{p} {tuple(p.shape)}" for p in had.params]
            raise OptionError(f"the network changed since the first fit (parameters now {', '.join(shapes[0])}; "
                             f"trained {', '.join(shapes[1])}; or another activation); warm_start and "
                             "partial_fit continue training that network. Fix: fit afresh (warm_start=False).")

    def _validate(self, X, y, reset: bool):
        if reset:
            dtype = (np.float64, np.float32) if self.dtype is None else _dtype(self.dtype)
        else:
            dtype = self.trained_.dtype
            if self.dtype is not None and _dtype(self.dtype) != dtype:  # it was ignored
                raise OptionError(f"dtype={self.dtype!r} changed since the first fit; warm_start and partial_fit "
                                 f"continue the {dtype.name} model. Fix: fit afresh (warm_start=False).")
        X, y = validate_data(self, _rows(X), plain(y, "y"), reset=reset, dtype=dtype, multi_output=True,
                             y_numeric=self._y_numeric)
        # a read-only array (a memmap) is another type to Numba, compiled again: copy it instead
        return np.require(X, requirements="CW"), y

    def _init_params(self, net, seed: int, dtype):
        """Starting parameters, or None for the network's own seeded initialisation."""
        return None

    def _shuffle(self) -> bool:
        if not isinstance(self.shuffle, (bool, np.bool_)):  # "no" was truthy: shuffled
            raise OptionError(f"shuffle={self.shuffle!r}: use True or False.")
        return bool(self.shuffle)

    def _max_iter(self) -> int:
        if not _count(self.max_iter, 1):
            raise OptionError(f"max_iter={self.max_iter!r}: use an integer >= 1 (epochs over the data).")
        return int(self.max_iter)

    def _seed(self) -> int:
        """An int random_state is sg.fit's seed itself (so results match sg.fit's); None and a
        RandomState draw one."""
        rs = self.random_state
        if _count(rs, 0):
            return int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def _optimizer(self) -> Optimizer:
        if isinstance(self.solver, Optimizer):  # used as given, with its own learning rate
            return self.solver
        known = optimizers()
        name = self.solver.lower() if isinstance(self.solver, str) else None
        if name not in known:
            raise OptionError(f"solver={self.solver!r} is not available. Fix: one of {sorted(known)} "
                             "(minibatch gradient methods; there is no 'lbfgs'), or an sg.optim object "
                             "such as sg.optim.Adam(lr=0.01).")
        lr = self.learning_rate_init
        if not (isinstance(lr, Real) and not isinstance(lr, bool) and np.isfinite(lr) and lr > 0):
            raise OptionError(f"learning_rate_init={lr!r}: use a number > 0.")
        if name == "sgd" and self._sgd_is_sklearns:  # its defaults momentum=0.9, nesterovs_momentum=True
            return known["nesterov"](lr=float(lr), beta=0.9)
        return known[name](lr=float(lr))

    #: solver='sgd' means scikit-learn's (Nesterov momentum 0.9) in the MLP lookalikes, sg.optim.SGD elsewhere
    _sgd_is_sklearns = False

    # -- predicting ----------------------------------------------------------------------------
    def _outputs(self, X) -> np.ndarray:
        """The network's outputs, (n_samples, n_network_outputs), in the model's dtype."""
        check_is_fitted(self, "trained_")
        _check_samples(getattr(X, "shape", None), self.trained_.model)
        X = validate_data(self, _rows(X), reset=False, dtype=self.trained_.dtype)
        out = np.asarray(self.trained_.predict(np.require(X, requirements="CW")))
        return out.reshape(len(X), -1)


class MLPAttributes:
    """scikit-learn's MLP attributes of the trained network, in its layout: ``coefs_[i]`` is layer
    i's weight matrix (n_in, n_out), a view of symgrad's (n_out, n_in) parameter transposed, and
    ``intercepts_[i]`` its bias (n_out,), so that writing into them changes the model as it does
    in scikit-learn. Outputs that the estimator adds for its own use (the regressor's sample weight
    column) are left out."""

    #: network outputs at the end that are the estimator's, not the user's; the output layer's function
    _extra_outputs, _out_activation = 0, "softmax"

    @property
    def out_activation_(self) -> str:
        self._fitted_params()
        return self._out_activation

    @property
    def coefs_(self) -> list[np.ndarray]:
        ws = self._fitted_params()[0::2]
        return [w.T for w in ws[:-1]] + [ws[-1][:len(ws[-1]) - self._extra_outputs].T]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        bs = self._fitted_params()[1::2]
        return [b[:, 0] for b in bs[:-1]] + [bs[-1][:len(bs[-1]) - self._extra_outputs, 0]]

    @property
    def n_layers_(self) -> int:
        """Layers counted as scikit-learn counts them: input, hidden layers and output."""
        return len(self._fitted_params()) // 2 + 1

    def _fitted_params(self) -> list[np.ndarray]:
        if "trained_" not in self.__dict__:  # hasattr(est, "coefs_") is False before fit, as in scikit-learn
            raise AttributeError(f"{type(self).__name__} is not fitted yet: coefs_, intercepts_, n_layers_ "
                                 "and out_activation_ exist after fit.")
        return self.trained_.params


def _rows(X):
    """Images, (n, C, H, W) or (n, H, W), as rows of C·H·W features: the layout in which sg.fit
    reads a convolutional network's input (scikit-learn's checks take 2-D data only)."""
    X = plain(X, "X")  # a mask refused, not dropped
    return X.reshape(len(X), -1) if getattr(X, "ndim", 2) > 2 and hasattr(X, "reshape") else X


def _check_samples(shape, net) -> None:
    """Samples of several axes that :func:`_rows` flattens must be the network's own images: a
    transposed (H, W), or other channels of as many numbers, were taken and predicted from."""
    if shape is not None and len(shape) > 2:
        check_sample_shape(tuple(shape), model_input(net))


def user_network(model, n_in: int, n_out: int):
    """``model`` itself (a symgrad network), or ``model(n_in, n_out)``, checked against the data."""
    if model is None:
        raise OptionError("model= is required: a symgrad network such as sg.nn.MLP([n_features, 16, "
                         "n_outputs]), or a function (n_features, n_outputs) -> network.")
    net = model if hasattr(model, "expr") else model(n_in, n_out) if callable(model) else None
    if net is None or not all(hasattr(net, a) for a in ("expr", "params", "x")):
        raise OptionError(f"model={model!r} is not a symgrad network (with expr, params and x) nor a "
                         "function (n_features, n_outputs) -> network.")
    have = (int(net.x.shape[0]), int(net.expr.shape[0]))
    if have != (n_in, n_out):
        raise ShapeError(f"the model takes {have[0]} inputs and gives {have[1]} outputs; the data has "
                         f"{n_in} features and needs {n_out} outputs. Fix: build the network for this "
                         "data, or pass a function (n_features, n_outputs) -> network.")
    return net


def mlp(hidden_layer_sizes, activation, n_in: int, n_out: int) -> MLP:
    """The MLP of scikit-learn's parameters: hidden sizes (an int or a sequence) and the
    activation of the hidden layers (scikit-learn's names, symgrad's, or a function)."""
    hidden = [hidden_layer_sizes] if _count(hidden_layer_sizes, 1) else hidden_layer_sizes
    if isinstance(hidden, np.ndarray) and hidden.ndim == 1:  # np.arange(...) in a grid search
        hidden = hidden.tolist()
    if not (isinstance(hidden, (list, tuple)) and all(_count(h, 1) for h in hidden)):
        raise OptionError(f"hidden_layer_sizes={hidden_layer_sizes!r}: use a tuple of layer widths "
                         ">= 1, e.g. (100,) or (64, 32).")
    act = SKLEARN_ACTIVATIONS.get(activation, activation) if isinstance(activation, str) else activation
    names = sorted(set(ACTIVATIONS) - {"softmax"} | set(SKLEARN_ACTIVATIONS))
    if isinstance(act, str) and (act not in ACTIVATIONS or act == "softmax") or not (
            isinstance(act, str) or callable(act)):
        raise OptionError(f"activation={activation!r} is not available. Fix: one of {names}, or a "
                         "function made with sg.activation.")
    return MLP([n_in, *(int(h) for h in hidden), n_out], activation=act)


def _dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise OptionError(f"dtype={dtype!r}: use None (follow X: float32 stays float32, anything else "
                         "becomes float64), 'float32' or 'float64'.")
    return dt


def _batch_size(batch_size, n: int) -> int:
    if isinstance(batch_size, str) and batch_size == "auto":
        return min(200, n)
    if not _count(batch_size, 1):
        raise OptionError(f"batch_size={batch_size!r}: use 'auto' (min(200, n_samples)) or an integer >= 1.")
    return int(batch_size)


def _count(n, least: int) -> bool:
    return isinstance(n, Integral) and not isinstance(n, bool) and n >= least
