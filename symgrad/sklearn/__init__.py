"""scikit-learn estimators trained by symgrad: ``MLPClassifier`` and ``MLPRegressor`` with
scikit-learn's parameters, and ``SymgradClassifier``/``SymgradEstimator`` around any symgrad
network. They follow the estimator protocol (``fit``, ``predict``, ``predict_proba``, ``score``,
``get_params``/``set_params``, ``partial_fit``, ``clone``), pickle with their trained model, and
work in ``Pipeline``, ``cross_val_score`` and ``GridSearchCV`` (also with ``n_jobs``).

Needs scikit-learn (``pip install symgrad[sklearn]``).

>>> from sklearn.datasets import load_wine
>>> from sklearn.model_selection import cross_val_score
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> X, y = load_wine(return_X_y=True)
>>> pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=30, learning_rate_init=0.01,
...                                                      random_state=0, backend="python"))
>>> bool(cross_val_score(pipe, X, y, cv=3).mean() > 0.9)
True

Training is ``sg.fit`` itself: with ``random_state=s`` an estimator's parameters are those of
``sg.fit(..., seed=s)``, and ``est.trained_`` is the :class:`symgrad.Trained` model.
"""

from .classifier import MLPClassifier, SymgradClassifier
from .regressor import MLPRegressor, SymgradEstimator

__all__ = ["MLPClassifier", "MLPRegressor", "SymgradClassifier", "SymgradEstimator"]
