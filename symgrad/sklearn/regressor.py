"""Regressors: any symgrad network with any loss on numeric targets (``SymgradEstimator``), or
an MLP from scikit-learn's parameters with exact sample weights (``MLPRegressor``)."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.exceptions import DataConversionWarning

from ..errors import OptionError, ShapeError
from ..runtime.inputs import BINARY_LOSSES, CLASS_LOSSES, TOKEN_LOSSES
from ._base import MLPAttributes, SymgradBase, mlp, user_network
from ._weights import normalized, sample_weights, weighted_mse


class SymgradEstimator(RegressorMixin, SymgradBase):
    """A scikit-learn estimator around any symgrad network and loss on numeric targets.

    ``model``: a network (``sg.nn.MLP([n_features, ..., n_outputs])``, or anything with
    ``expr``, ``params``, ``x`` and ``init_params``) or a function ``(n_features, n_outputs) ->
    network`` (at module level, for pickling); ``loss``: a name ('mse', 'mae', 'huber') or ``f(pred, target)``. ``predict``
    returns the network's outputs, shaped like the ``y`` given to fit; ``score`` is R². ``X``: rows
    of features, or images (n, C, H, W) for a convolutional network, read as rows of C·H·W.
    Training options are those of :class:`symgrad.sklearn.SymgradClassifier`. There is no
    ``sample_weight``: an arbitrary loss has no place for it (MLPRegressor and the classifiers
    weight exactly). For class labels use :class:`symgrad.sklearn.SymgradClassifier`.

    >>> import symgrad as sg
    >>> def net(n_in, n_out):
    ...     return sg.nn.MLP([n_in, 8, n_out], activation="tanh")
    >>> X = np.linspace(-1, 1, 64).reshape(-1, 1)
    >>> y = np.exp(X[:, 0])
    >>> est = SymgradEstimator(net, "huber", learning_rate_init=0.05, max_iter=200,
    ...                        random_state=0, backend="python").fit(X, y)
    >>> est.predict(X).shape, est.score(X, y) > 0.9
    ((64,), True)
    """

    def __init__(self, model=None, loss="mse", *, solver="adam", learning_rate_init=0.001, max_iter=200,
                 batch_size="auto", shuffle=True, random_state=None, warm_start=False, dtype=None,
                 backend="numba"):
        self.model = model
        self.loss = loss
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.dtype = dtype
        self.backend = backend

    def fit(self, X, y):
        """Train for ``max_iter`` epochs (from scratch, or on from the last fit with warm_start)."""
        return self._fit(X, y, None, incremental=False)

    def partial_fit(self, X, y):
        """One more epoch over (X, y), continuing exactly where training stopped."""
        return self._fit(X, y, None, incremental=True)

    def predict(self, X) -> np.ndarray:
        """(n_samples,) when fit saw a 1-D y (or a column, raveled as scikit-learn does), else (n_samples, n_outputs)."""
        out = self._outputs(X)[:, :self.n_outputs_]
        return out.reshape(len(out)) if self._flat_y else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _network(self, n_in: int, n_out: int):
        return user_network(self.model, n_in, n_out)

    def _loss(self):
        if isinstance(self.loss, str) and self.loss in CLASS_LOSSES + BINARY_LOSSES:
            raise OptionError(f"loss={self.loss!r} is a classification loss, but SymgradEstimator predicts "
                             "numbers (its score is R²). Fix: symgrad.sklearn.SymgradClassifier(model) for "
                             "class labels, or a regression loss ('mse', 'mae', 'huber', f(pred, target)).")
        if isinstance(self.loss, str) and self.loss in TOKEN_LOSSES:  # it said "build the network for this data"
            raise OptionError(f"loss={self.loss!r} trains a language model on token sequences, which the scikit-learn "
                              "estimators do not. Fix: sg.fit(model, 'token_cross_entropy', X, Y), then "
                              "sg.generate(trained, prompt, n) to sample.")
        return self.loss

    def _columns(self, y, first: bool) -> np.ndarray:
        """y as (n_samples, n_outputs) floats; fit fixes n_outputs_, and whether predict is 1-D."""
        y2 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if first:
            column = y.ndim == 2 and y.shape[1] == 1  # predicted (n, 1): scikit-learn ravels it, and warns
            if column:
                warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the shape "
                              "of y to (n_samples, ), for example using ravel().", DataConversionWarning, stacklevel=4)
            self.n_outputs_, self._flat_y = y2.shape[1], y.ndim == 1 or column
        elif y2.shape[1] != self.n_outputs_:
            raise ShapeError(f"y has {y2.shape[1]} columns; this estimator was fitted with "
                             f"{self.n_outputs_}.")
        return y2

    def _targets(self, y, sample_weight, *, first: bool, incremental: bool, classes):
        y2 = self._columns(y, first)
        return y2, y2.shape[1]


class MLPRegressor(MLPAttributes, SymgradEstimator):
    """A multilayer perceptron regressor with scikit-learn's parameters, trained by symgrad on
    the squared error, with exact ``sample_weight``.

    The network is ``sg.nn.MLP([n_features, *hidden_layer_sizes, n_outputs])`` plus one output
    that carries the sample weight to the loss and is never used (its parameters get zero
    gradient and stay at zero; see ``_weights``). The others start from the seeded
    initialisation ``sg.fit`` gives the plain network, so ``MLPRegressor(random_state=s)``
    trains exactly as ``sg.fit(net, "mse", X, y, seed=s)``. Options as in
    :class:`MLPClassifier` (``solver='sgd'`` is scikit-learn's Nesterov momentum 0.9); multi-output
    y is supported. ``loss_curve_`` (and ``loss_``, ``best_loss_``) is in scikit-learn's
    units, half the mean squared error per epoch, as its MLPRegressor records it
    (``trained_.history["loss"]`` keeps the mean squared error itself). ``coefs_`` and
    ``intercepts_`` are scikit-learn's, without the weight output.

    >>> X = np.linspace(-1, 1, 64).reshape(-1, 1)
    >>> reg = MLPRegressor((16,), activation="tanh", learning_rate_init=0.02, max_iter=300,
    ...                    random_state=0, backend="python").fit(X, X[:, 0] ** 2)
    >>> reg.score(X, X[:, 0] ** 2) > 0.9
    True
    """

    _sgd_is_sklearns = True

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 learning_rate_init=0.001, max_iter=200, batch_size="auto", shuffle=True,
                 random_state=None, warm_start=False, dtype=None, backend="numba"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.dtype = dtype
        self.backend = backend

    def fit(self, X, y, sample_weight=None):
        """Train for ``max_iter`` epochs (from scratch, or on from the last fit with warm_start)."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One more epoch over (X, y), continuing exactly where training stopped."""
        return self._fit(X, y, sample_weight, incremental=True)

    _curve_scale = 0.5
    _extra_outputs = 1  # the sample weight's
    _out_activation = "identity"

    def _network(self, n_in: int, n_out: int):
        return mlp(self.hidden_layer_sizes, self.activation, n_in, n_out)

    def _loss(self):
        return weighted_mse

    def _targets(self, y, sample_weight, *, first: bool, incremental: bool, classes):
        """(n_samples, n_outputs + 1): y, then each sample's weight (rescaled to mean 1)."""
        y2 = self._columns(y, first)
        w = normalized(sample_weights(sample_weight, len(y2)))
        return np.hstack([y2, w[:, None]]), y2.shape[1] + 1

    def _init_params(self, net, seed: int, dtype):
        """The plain network's seeded initialisation, with a zero row for the weight output."""
        n_in, n_out = net.sizes[0], net.sizes[-1] - 1
        plain = mlp(self.hidden_layer_sizes, self.activation, n_in, n_out).init_params(seed, dtype)
        return plain[:-2] + [np.vstack([p, np.zeros((1, p.shape[1]), dtype)]) for p in plain[-2:]]
