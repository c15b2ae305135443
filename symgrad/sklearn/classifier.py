"""Classifiers: any symgrad network (``SymgradClassifier``) or an MLP from scikit-learn's
parameters (``MLPClassifier``), trained with softmax cross-entropy on one logit per class.

Labels may be of any type (strings, −1/+1, integers): they are encoded in sorted order
(``classes_``), as scikit-learn's LabelEncoder does. Binary problems get two logits, so that
sample and class weights stay exact (see ``_weights``).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from ..errors import OptionError, ShapeError, TargetError
from ._base import MLPAttributes, SymgradBase, mlp, user_network
from ._weights import class_weights, normalized, sample_weights, weighted_softmax_ce


class SymgradClassifier(ClassifierMixin, SymgradBase):
    """A scikit-learn classifier around any symgrad network with one output (logit) per class.

    ``model``: a network (``sg.nn.MLP([n_features, ..., n_classes])``) or a function
    ``(n_features, n_classes) -> network`` (defined at module level if the estimator is to
    pickle: pickle refuses lambdas). ``X``: rows of features, or images (n, C, H, W) for a
    convolutional network (read as rows of C·H·W, as ``sg.fit`` reads them; ``n_features_in_``
    counts C·H·W). It is trained by ``sg.fit`` with softmax
    cross-entropy weighted per sample (``sample_weight`` times ``class_weight``: None,
    'balanced' or {label: weight}). ``solver`` is an ``sg.optim`` name ('adam', 'sgd', ...)
    made with ``learning_rate_init``, or an ``sg.optim`` object used as given; ``max_iter``
    epochs of minibatches of ``batch_size`` ('auto': min(200, n_samples)); ``random_state``
    seeds the initialisation and the shuffling; ``dtype`` None follows X (float32 stays
    float32); ``backend`` 'numba' compiles (once per architecture, then cached on disk),
    'python' runs the same generated code unjitted. ``partial_fit`` and ``warm_start``
    continue training exactly where it stopped (optimizer state, step count, RNG).

    Fitted: ``classes_``, ``n_features_in_``, ``n_iter_`` (epochs so far), ``loss_curve_``,
    ``loss_`` (its last), ``best_loss_`` (its least), ``t_`` (samples seen), and ``trained_``, the :class:`symgrad.Trained` model (``trained_.params``, ``trained_.history``).
    """

    _y_numeric = False

    def __init__(self, model=None, *, solver="adam", learning_rate_init=0.001, max_iter=200,
                 batch_size="auto", shuffle=True, random_state=None, warm_start=False,
                 class_weight=None, dtype=None, backend="numba"):
        self.model = model
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.class_weight = class_weight
        self.dtype = dtype
        self.backend = backend

    def fit(self, X, y, sample_weight=None):
        """Train for ``max_iter`` epochs (from scratch, or on from the last fit with warm_start)."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One more epoch over (X, y). The first call needs ``classes``: every label there may be."""
        if not hasattr(self, "trained_") and classes is None:
            raise OptionError("classes= must be given on the first call to partial_fit: every label the "
                             "data may hold, e.g. classes=np.unique(y_all).")
        if hasattr(self, "trained_") and classes is not None and not np.array_equal(
                np.unique(classes), self.classes_):
            raise OptionError(f"classes={list(classes)} differs from the first call's {self.classes_.tolist()}.")
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            # per call it would balance each batch by itself (90/10 then 10/90 weighted 5 then 0.56), as
            # scikit-learn's SGDClassifier.partial_fit refuses it for
            raise OptionError("class_weight='balanced' is not supported for partial_fit: each call would balance "
                              "its own batch. Fix: class_weight=dict(zip(classes, compute_class_weight('balanced', "
                              "classes=classes, y=y_all))) from sklearn.utils.class_weight, with y_all the whole "
                              "target (or a large sample of it).")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, (n_samples, n_classes), columns in the order of ``classes_``."""
        z = self._logits(X)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X) -> np.ndarray:
        z = self._logits(X)
        m = z.max(axis=1, keepdims=True)
        return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))

    def predict(self, X) -> np.ndarray:
        z = self._logits(X)  # first: it raises NotFittedError before classes_ is looked up
        return self.classes_[z.argmax(axis=1)]

    def _logits(self, X) -> np.ndarray:
        return self._outputs(X)

    def _network(self, n_in: int, n_out: int):
        return user_network(self.model, n_in, n_out)

    def _loss(self):
        return weighted_softmax_ce

    def _targets(self, y, sample_weight, *, first: bool, incremental: bool, classes):
        """Rows w_i · onehot(y_i) (see ``_weights``), and the number of logits."""
        y = _labels(y)
        if first:
            self.classes_ = LabelEncoder().fit(y if classes is None else np.asarray(classes)).classes_
            if len(self.classes_) < 2:
                held = "y holds" if classes is None else "classes= names"  # partial_fit(classes=[0])
                raise TargetError(f"{type(self).__name__} needs samples of at least 2 classes; {held} 1 "
                                 f"class ({self.classes_.tolist()[0]!r}).")
        unseen = set(np.unique(y).tolist()) - set(self.classes_.tolist())
        if unseen:  # LabelEncoder's own error was int('a')'s, for text labels after numbers
            raise TargetError(f"y holds labels {sorted(unseen, key=str)!r} that the first fit did not have "
                             f"({self.classes_.tolist()!r}, {self.classes_.dtype}); warm_start and partial_fit continue with the "
                             "same classes. Fix: fit afresh (warm_start=False), or pass every label to the "
                             "first call (partial_fit's classes=).")
        enc = LabelEncoder()
        enc.classes_ = self.classes_
        idx = enc.transform(y)
        w = sample_weights(sample_weight, len(y))
        w = normalized(w * class_weights(self.class_weight, self.classes_, idx, w)[idx])
        if not incremental and len(np.unique(idx[w > 0])) < 2:
            raise TargetError("only one class has samples of positive weight (sample_weight times "
                             "class_weight); a classifier needs at least 2 classes to learn from.")
        return np.eye(len(self.classes_))[idx] * w[:, None], len(self.classes_)


class MLPClassifier(MLPAttributes, SymgradClassifier):
    """A multilayer perceptron classifier with scikit-learn's parameters, trained by symgrad.

    ``hidden_layer_sizes`` and ``activation`` ('relu', 'tanh', 'logistic', 'identity', or any
    of symgrad's: 'gelu', 'silu', 'elu', ...) make ``sg.nn.MLP([n_features, *hidden, n_classes])``
    with He (ReLU-like) or Xavier initialisation; everything else is as in
    :class:`SymgradClassifier`, but ``solver='sgd'`` is scikit-learn's: Nesterov momentum 0.9 (its
    defaults ``momentum=0.9, nesterovs_momentum=True``; ``sg.optim.SGD(lr)`` for plain SGD). Not
    available: ``alpha`` (L2), 'lbfgs', early stopping. Fitted as scikit-learn's: ``coefs_``,
    ``intercepts_``, ``n_layers_``, ``n_outputs_``, ``out_activation_`` ('softmax': binary
    problems too have one logit per class, so ``coefs_[-1]`` has 2 columns where scikit-learn's
    has 1), ``loss_``, ``best_loss_``, ``t_`` (samples seen), ``loss_curve_``, ``n_iter_``.

    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> names = np.array(["setosa", "versicolor", "virginica"])[y]
    >>> clf = MLPClassifier((16,), learning_rate_init=0.01, max_iter=100, random_state=0,
    ...                     backend="python").fit(X, names)
    >>> clf.classes_.tolist(), clf.score(X, names) > 0.9
    (['setosa', 'versicolor', 'virginica'], True)
    """

    _sgd_is_sklearns = True

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 learning_rate_init=0.001, max_iter=200, batch_size="auto", shuffle=True,
                 random_state=None, warm_start=False, class_weight=None, dtype=None, backend="numba"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.class_weight = class_weight
        self.dtype = dtype
        self.backend = backend

    @property
    def n_outputs_(self) -> int:
        return len(self._fitted_params()[-1])

    def _network(self, n_in: int, n_out: int):
        return mlp(self.hidden_layer_sizes, self.activation, n_in, n_out)


def _labels(y) -> np.ndarray:
    """y as 1-D class labels: a column is flattened with scikit-learn's warning; several columns
    (multi-label or multi-output) are refused."""
    if y.ndim == 2 and y.shape[1] != 1:
        raise ShapeError(f"y has shape {y.shape}; these classifiers take one label per sample "
                         "(multi-label and multi-output targets are not supported).")
    y = column_or_1d(y, warn=True)
    check_classification_targets(y)
    return y
