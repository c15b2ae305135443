"""symgrad.sklearn: the scikit-learn estimator protocol (issue 18, section 1).

The tests use backend="python" (the same generated code, unjitted): Numba compiles once per
architecture and dtype (~15 s each), and the estimator checks meet a dozen of each. The Numba
path runs in examples/sklearn_pipeline.py (grid search with n_jobs=2, joblib, a fresh process),
which tests/test_examples.py runs.
"""

import contextlib
import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import symgrad as sg
from symgrad.sklearn import MLPClassifier, MLPRegressor, SymgradClassifier, SymgradEstimator


@contextlib.contextmanager
def refused(match: str):
    """A SymgradError (``except sg.SymgradError`` caught none of the estimators' own) that is also
    the ValueError scikit-learn's checks expect."""
    with pytest.raises(sg.SymgradError, match=match) as info:
        yield
    assert isinstance(info.value, ValueError)


FAST = dict(max_iter=50, learning_rate_init=0.02, backend="python")


class SmallNet:
    """A model_fn for the general estimators: a module-level class, so it pickles, with a repr
    that is the same in every process (a function's shows its address, and pytest-xdist's
    workers must collect the same test ids)."""

    def __call__(self, n_in, n_out):
        return sg.nn.MLP([n_in, 8, n_out], activation="tanh")

    def __repr__(self) -> str:
        return "small_net"


small_net = SmallNet()


# tanh for MLPClassifier: check_class_weight_classifiers gives class 0 weight 1000 and the others
# 1e-4, so the net learns from class 0 alone and must still predict class 0 on >87% of the other
# classes' points. Nothing (no L2 penalty) makes a ReLU net do that far from those samples: with
# hidden (8,) and unscaled blobs, 1 of 3 seeds predicts 74-78%. That is extrapolation, not
# weighting, which the exact tests below check.
CHECKS = dict(max_iter=25, learning_rate_init=0.05, backend="python")
ESTIMATORS = [MLPClassifier((8,), activation="tanh", **CHECKS), MLPRegressor((8,), **CHECKS),
              SymgradClassifier(small_net, **CHECKS), SymgradEstimator(small_net, **CHECKS)]


def expected_failed_checks(estimator):
    """None: every check of scikit-learn's suite passes. (SymgradEstimator takes no sample_weight,
    so the suite itself leaves out the sample-weight checks for it.)"""
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_classifier_trains_as_sg_fit_does(iris):
    X, y = iris
    clf = MLPClassifier((8,), **FAST, random_state=3).fit(X, y)
    m = sg.fit(sg.nn.MLP([4, 8, 3]), "softmax_cross_entropy", X, y, optimizer=sg.optim.Adam(0.02),
               epochs=50, batch_size=150, seed=3, backend="python")
    np.testing.assert_allclose(clf.trained_.predict(X), m.predict(X), rtol=0, atol=1e-12)
    assert clf.n_iter_ == 50 and len(clf.loss_curve_) == 50


def test_classifier_takes_images_for_a_cnn():
    """Images (n, C, H, W) are read as rows of C·H·W, as sg.fit reads them: the same model, the same
    predictions, whichever layout is passed (scikit-learn's own checks refuse 4-D data)."""
    rng = np.random.default_rng(0)
    imgs, y = rng.normal(size=(40, 2, 5, 4)), rng.integers(0, 3, 40)
    nn = sg.nn
    cnn = nn.Sequential([nn.Conv2D(2, 3, 3, padding="same", activation="relu"), nn.Flatten(),
                         nn.Dense(3 * 5 * 4, 3)], input_shape=(2, 5, 4))
    a = SymgradClassifier(cnn, max_iter=3, random_state=0, backend="python").fit(imgs, y)
    b = SymgradClassifier(cnn, max_iter=3, random_state=0, backend="python").fit(imgs.reshape(40, -1), y)
    assert a.n_features_in_ == 40
    np.testing.assert_array_equal(a.predict_proba(imgs), b.predict_proba(imgs.reshape(40, -1)))
    np.testing.assert_array_equal(a.predict(imgs), a.predict(imgs.reshape(40, -1)))
    with pytest.raises(ValueError, match=r"images of \(2, 4, 4\), but the model takes \(2, 5, 4\)"):
        a.predict(imgs[:, :, :4])  # (2, 4, 4) images: 32 features, not 40


def test_regressor_trains_as_sg_fit_does():
    X, y = make_regression(80, 3, noise=1.0, random_state=0)
    y = y / y.std()
    reg = MLPRegressor((6,), activation="tanh", **FAST, batch_size=16, random_state=2).fit(X, y)
    m = sg.fit(sg.nn.MLP([3, 6, 1], activation="tanh"), "mse", X, y, optimizer=sg.optim.Adam(0.02),
               epochs=50, batch_size=16, seed=2, backend="python")
    np.testing.assert_allclose(reg.predict(X), m.predict(X).ravel(), rtol=0, atol=1e-12)
    W, b = reg.trained_.params[-2:]  # the weight-carrying output never moves
    assert not W[-1].any() and not b[-1].any()
    np.testing.assert_allclose(reg.loss_curve_, np.array(m.history["loss"]) / 2, rtol=1e-12)  # scikit-learn's units


def test_regressor_loss_curve_is_in_scikit_learns_units():
    # scikit-learn's MLPRegressor records half the mean squared error; symgrad's recorded all of it.
    # Oracle: scikit-learn itself, one full-batch epoch at a learning rate too small to move the
    # weights, so the first entry of both curves is half the MSE of the initial predictions.
    from sklearn.neural_network import MLPRegressor as SkRegressor

    X, y = make_regression(64, 3, noise=1.0, random_state=0)
    y = y / y.std()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e-12, max_iter=1, batch_size=64,
              shuffle=False, random_state=0)
    with pytest.warns(Warning):  # one epoch: scikit-learn's ConvergenceWarning
        theirs = SkRegressor(alpha=0, momentum=0, **kw).fit(X, y)
    ours = MLPRegressor(**kw, backend="python").fit(X, y)
    for est in (theirs, ours):
        half_mse = np.mean((est.predict(X) - y) ** 2) / 2
        assert est.loss_curve_[0] == pytest.approx(half_mse, rel=1e-6)


def test_images_of_another_shape_are_refused_not_flattened():
    # a CNN fitted on (1, 6, 5) images predicted from (1, 5, 6) ones, or (2, 3, 5), without a word:
    # the wrapper flattened them to 30 features first. sg.fit's own predict refuses them.
    nn = sg.nn
    cnn = nn.Sequential([nn.Conv2D(1, 2, 3, padding="same", activation="relu"), nn.Flatten(),
                         nn.Dense(2 * 6 * 5, 2)], input_shape=(1, 6, 5))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 1, 6, 5)), rng.integers(0, 2, 30)
    clf = SymgradClassifier(cnn, max_iter=2, random_state=0, backend="python").fit(X, y)
    assert clf.predict(X[:, 0]).shape == (30,)  # (n, H, W): one channel
    for wrong in (X.reshape(30, 1, 5, 6), X.reshape(30, 2, 3, 5)):
        with pytest.raises(sg.errors.ShapeError, match=r"takes \(1, 6, 5\)"):
            clf.predict(wrong)
        with pytest.raises(sg.errors.ShapeError, match=r"takes \(1, 6, 5\)"):
            SymgradClassifier(cnn, max_iter=1, backend="python").fit(wrong, y)
    with pytest.raises(sg.errors.ShapeError, match="does not flatten"):
        MLPClassifier((4,), **FAST).fit(X, y)  # an MLP takes rows, as sg.fit's does


@pytest.mark.parametrize("labels", [["no", "yes"], [-1, 1], [3, 7], [False, True]], ids=str)
def test_any_label_type(labels):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = np.array(labels, dtype=object if isinstance(labels[0], str) else None)[(X[:, 0] > 0).astype(int)]
    clf = MLPClassifier((4,), **FAST, random_state=0).fit(X, y)
    assert clf.classes_.tolist() == sorted(labels)
    assert set(clf.predict(X)) <= set(labels) and clf.score(X, y) > 0.9
    assert clf.predict_proba(X).shape == (60, 2)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X))


def _weighted_pair(est, X, y, w):
    """(fit with integer weights, fit on the rows repeated), both full-batch and in order."""
    est = clone(est).set_params(batch_size=1000, shuffle=False, random_state=0)
    a = clone(est).fit(X, y, sample_weight=w)
    b = clone(est).fit(np.repeat(X, w, axis=0), np.repeat(y, w, axis=0))
    return a, b


def test_sample_weight_is_exact_for_classifier_and_regressor(iris):
    X, y = iris
    w = np.random.default_rng(1).integers(0, 4, size=len(X))
    a, b = _weighted_pair(MLPClassifier((8,), **FAST), X, y, w)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-9, atol=1e-12)
    a, b = _weighted_pair(MLPRegressor((8,), **FAST), X, X[:, 0] * 2 - X[:, 1], w)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-9, atol=1e-12)


def test_class_weight_equals_the_same_sample_weight(iris):
    X, y = iris
    base = MLPClassifier((8,), **FAST, random_state=0)
    a = clone(base).set_params(class_weight={1: 3.0}).fit(X, y)
    b = clone(base).fit(X, y, sample_weight=np.where(y == 1, 3.0, 1.0))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    counts = np.bincount(y[:120])
    c = clone(base).set_params(class_weight="balanced").fit(X[:120], y[:120])
    d = clone(base).fit(X[:120], y[:120], sample_weight=(120 / (3 * counts))[y[:120]])
    np.testing.assert_allclose(c.predict_proba(X), d.predict_proba(X), rtol=1e-12)


@pytest.mark.parametrize("scale", [1e307, 1e-310, 5e-324])
def test_weights_are_scale_free_to_the_ends_of_float64(iris, scale):
    # 1e307 for every row summed to inf: the regressor trained on zero targets (R² -2.4, no warning),
    # the classifier said one class had weight; 1e-310 made n/sum inf, blamed on y
    X, y = iris
    for est, target in ((MLPRegressor((5,), **FAST, random_state=0), X[:, 0] - X[:, 1]),
                        (MLPClassifier((5,), **FAST, random_state=0), y)):
        a = clone(est).fit(X, target, sample_weight=np.ones(len(X)))
        b = clone(est).fit(X, target, sample_weight=np.full(len(X), scale))
        np.testing.assert_allclose(b.loss_curve_, a.loss_curve_, rtol=1e-12)
        np.testing.assert_allclose(b.predict(X), a.predict(X), rtol=1e-12)


def test_balanced_class_weight_is_refused_by_partial_fit(iris):
    # per call it balanced each batch by itself (a 90/10 batch then a 10/90 one: 5 then 0.56 for class 1)
    X, y = iris
    clf = MLPClassifier((4,), **FAST, class_weight="balanced")
    with pytest.raises(sg.errors.OptionError, match="class_weight='balanced' is not supported for partial_fit.*"
                                                   "Fix:.*compute_class_weight"):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert isinstance(sg.errors.OptionError("x"), ValueError)


@pytest.mark.parametrize("loss, says", [("token_cross_entropy", "language model.*sg.fit"),
                                         ("bce", "classification loss.*SymgradClassifier")])
def test_a_loss_the_estimator_does_not_train_is_named_before_the_shapes(loss, says):
    # a token loss said "the model takes 4 inputs and gives 20 outputs ... build the network for this data"
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 5, size=(10, 4)), rng.integers(0, 5, size=(10, 4))
    with pytest.raises(sg.errors.OptionError, match=says):
        SymgradEstimator(sg.nn.Transformer(5, 8, 2, 1, 4), loss=loss, max_iter=1).fit(X, y)


def test_a_row_the_network_overflows_on_is_warned_not_predicted_silently(iris):
    # a finite row of -1e308 gave NaN probabilities and, by argmax, class 0, with no warning
    X, y = iris
    clf = MLPClassifier((5,), **FAST, random_state=0).fit(X, y)
    with pytest.warns(sg.NonFiniteWarning, match=r"outputs for 1 row\(s\) of X \(first: row 1\).*Fix"):
        proba = clf.predict_proba(np.vstack([X[:1], np.full((1, 4), -1e308)]))
    assert np.isfinite(proba[0]).all() and np.isnan(proba[1]).all()
    with pytest.warns(sg.NonFiniteWarning, match=r"outputs for 1 row\(s\)"):  # its accuracy counted class 0
        assert np.isnan(clf.trained_.evaluate(np.vstack([X[:1], np.full((1, 4), -1e308)]), np.eye(3)[y[:2]])["loss"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict(X)  # finite outputs: no warning


def test_bad_weights_and_labels_are_named(iris):
    X, y = iris
    clf = MLPClassifier((4,), **FAST)
    with refused("zero for every sample"):
        clf.fit(X, y, sample_weight=np.zeros(len(y)))
    with refused("negative"):
        clf.fit(X, y, sample_weight=-np.ones(len(y)))
    with refused("not among the classes"):
        clone(clf).set_params(class_weight={9: 1.0}).fit(X, y)
    with refused("1 class"):
        clf.fit(X, np.zeros(len(y)))
    with refused("lbfgs"):
        clone(clf).set_params(solver="lbfgs").fit(X, y)
    with refused("SymgradClassifier"):
        SymgradEstimator(small_net, "softmax_cross_entropy", **FAST).fit(X, y)
    with refused("takes 5 inputs"):
        SymgradClassifier(sg.nn.MLP([5, 3]), **FAST).fit(X, y)


def test_partial_fit_and_warm_start_continue_exactly(iris):
    X, y = iris
    straight = MLPClassifier((8,), **FAST, batch_size=32, random_state=0).set_params(max_iter=3).fit(X, y)
    parts = MLPClassifier((8,), **FAST, batch_size=32, random_state=0)
    parts.partial_fit(X, y, classes=np.unique(y))
    parts.partial_fit(X, y).partial_fit(X, y)
    warm = MLPClassifier((8,), **FAST, batch_size=32, random_state=0, warm_start=True).set_params(max_iter=1)
    for _ in range(3):
        warm.fit(X, y)
    for est in (parts, warm):
        assert est.n_iter_ == 3
        np.testing.assert_array_equal(est.predict_proba(X), straight.predict_proba(X))
    with refused("classes= must be given"):
        MLPClassifier(**FAST).partial_fit(X, y)
    with pytest.raises(ValueError, match="4 features"):
        parts.partial_fit(X[:, :3], y)
    # new labels raised LabelEncoder's own ValueError: invalid literal for int() with base 10: 'a'
    for call in (warm.fit, parts.partial_fit):
        with pytest.raises(ValueError, match=r"labels \['a', 'b'\] that the first fit did not have.*Fix: fit afresh"):
            call(X[:20], np.array(["a", "b"] * 10))
    # set_params changed the network, and warm_start trained the old one silently
    with pytest.raises(ValueError, match=r"network changed since the first fit \(parameters now W1 \(7, 4\).*Fix: fit"):
        clone(warm).set_params(max_iter=1).fit(X, y).set_params(hidden_layer_sizes=(7,)).fit(X, y)
    with pytest.raises(ValueError, match="or another activation"):
        clone(warm).set_params(max_iter=1).fit(X, y).set_params(activation="tanh").fit(X, y)
    # NumPy numbers, as grids make them, are numbers
    grid = MLPClassifier(np.array([8]), **{**FAST, "learning_rate_init": np.float32(0.01)}).fit(X, y)
    assert grid.trained_.model.params[0].shape == (8, 4)


def test_regressor_shapes_and_multi_output():
    X, Y = make_regression(60, 4, n_targets=2, random_state=0)
    Y = Y / Y.std(0)
    reg = MLPRegressor((8,), **FAST, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (60, 2) and reg.n_outputs_ == 2
    with pytest.warns(Warning, match="column-vector y"):  # raveled, as scikit-learn's MLPRegressor does
        assert MLPRegressor((8,), **FAST).fit(X, Y[:, :1]).predict(X).shape == (60,)
    assert MLPRegressor((8,), **FAST).fit(X, Y[:, 0]).predict(X).shape == (60,)
    est = SymgradEstimator(sg.nn.MLP([4, 8, 2], activation="tanh"), "huber", **FAST).fit(X, Y)
    assert est.predict(X).shape == (60, 2) and est.score(X, Y) > 0.5
    assert MLPRegressor((8,), **FAST, dtype="float32").fit(X, Y).predict(X).dtype == np.float32


def test_clone_cross_val_and_joblib(iris, tmp_path):
    X, y = iris
    pipe = make_pipeline(StandardScaler(), MLPClassifier((8,), **FAST, random_state=0))
    twin = clone(pipe)
    assert twin.get_params()["mlpclassifier__hidden_layer_sizes"] == (8,)
    assert not hasattr(twin[-1], "trained_")
    scores = cross_val_score(pipe, X, y, cv=3, n_jobs=2)
    assert scores.mean() > 0.85
    pipe.fit(X, y)
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    again = joblib.load(tmp_path / "pipe.joblib")
    np.testing.assert_array_equal(again.predict_proba(X), pipe.predict_proba(X))
    again[-1].partial_fit(X, y)  # an unpickled model trains on
    assert again[-1].n_iter_ == 51


_PREDICT_IN_A_FRESH_PROCESS = """
import pickle, sys
import numpy as np
with open(sys.argv[1], "rb") as f:
    search = pickle.load(f)
X = np.load(sys.argv[2])
np.save(sys.argv[3], search.predict_proba(X))
np.save(sys.argv[4], search.predict(X))
"""


def test_grid_search_pickle_and_fresh_process_predict_identically(iris, tmp_path):
    """Issue 18's "done means": a Pipeline with a symgrad estimator is grid-searched (n_jobs=2,
    string labels), pickled, loaded in a fresh process, and predicts identically."""
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=40, random_state=0, backend="python"))
    grid = {"mlpclassifier__learning_rate_init": [0.003, 0.03], "mlpclassifier__hidden_layer_sizes": [(4,), (8,)]}
    search = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X, names)
    assert search.best_score_ > 0.85
    (tmp_path / "search.pkl").write_bytes(pickle.dumps(search))
    np.save(tmp_path / "X.npy", X)
    out = [tmp_path / "proba.npy", tmp_path / "labels.npy"]
    proc = subprocess.run([sys.executable, "-c", _PREDICT_IN_A_FRESH_PROCESS, str(tmp_path / "search.pkl"),
                           str(tmp_path / "X.npy"), *map(str, out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_array_equal(np.load(out[0]), search.predict_proba(X))
    np.testing.assert_array_equal(np.load(out[1], allow_pickle=True), search.predict(X))


def test_a_failed_refit_leaves_the_estimator_as_it_was():
    # classes_ and n_features_in_ were set from the new data before the training failed, and the
    # last fit's network then answered predict with the new labels ("ham"/"spam" from a cat/dog net)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y_old = np.array(["cat", "dog"])[(X[:, 0] > 0).astype(int)]
    clf = MLPClassifier((4,), **FAST, random_state=0).fit(X, y_old)
    before = clf.predict(X)
    clf.set_params(solver=sg.optim.SGD(lr=1e300))
    with pytest.raises(sg.errors.DivergenceError):
        clf.fit(np.hstack([X, X]) * 1e100, np.array(["ham", "spam"])[(X[:, 1] > 0).astype(int)])
    assert clf.classes_.tolist() == ["cat", "dog"] and clf.n_features_in_ == 3
    np.testing.assert_array_equal(clf.predict(X), before)


def test_warm_start_takes_a_changed_learning_rate_or_solver():
    # set_params(learning_rate_init=1e-9) between warm-start fits was ignored: the weights moved by
    # the first fit's Adam(0.01) again. scikit-learn starts a new optimizer at each warm-start fit;
    # symgrad continues its optimizer exactly unless the settings changed (3 + 3 epochs = 6).
    X, y = load_iris(return_X_y=True)
    clf = MLPClassifier((8,), learning_rate_init=0.01, max_iter=3, warm_start=True, random_state=0,
                        backend="python").fit(X, y)
    before = [p.copy() for p in clf.trained_.params]
    clf.set_params(learning_rate_init=1e-9).fit(X, y)
    moved = max(np.abs(a - b).max() for a, b in zip(clf.trained_.params, before))
    assert 0 < moved < 1e-7 and clf.n_iter_ == 6 and len(clf.loss_curve_) == 6
    assert repr(clf.trained_.optimizer).startswith("Adam(lr=1e-09")
    clf.set_params(solver="sgd").fit(X, y)  # scikit-learn's sgd: Nesterov momentum 0.9
    assert repr(clf.trained_.optimizer) == "Nesterov(lr=1e-09, beta=0.9)" and clf.n_iter_ == 9
    assert repr(SymgradClassifier(solver="sgd")._optimizer()) == "SGD(lr=0.001)"  # sg.optim's name there
    with pytest.raises(ValueError, match="dtype='float32' changed since the first fit"):
        clf.set_params(dtype="float32").fit(X, y)


def test_regressor_column_y_and_bad_options_as_scikit_learn_has_them():
    from sklearn.exceptions import DataConversionWarning

    X, y = make_regression(40, 3, noise=1.0, random_state=0)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        reg = MLPRegressor((4,), max_iter=2, random_state=0, backend="python").fit(X, y[:, None])
    assert reg.predict(X).shape == (40,)  # was (40, 1)
    Xc, yc = load_iris(return_X_y=True)
    for bad, match in [(dict(class_weight={0: None}), r"class_weight\[0\] = None"),
                       (dict(shuffle="no"), "shuffle='no': use True or False")]:
        with pytest.raises(ValueError, match=match):
            MLPClassifier((4,), max_iter=1, backend="python", **bad).fit(Xc, yc)
    with pytest.raises(ValueError, match=r"classes= names 1 class \(0\)"):
        MLPClassifier((4,), backend="python").partial_fit(Xc, yc % 2 * 0, classes=[0])


def _forward(X, coefs, intercepts, hidden):
    """scikit-learn's MLP forward pass from its attributes (its _forward_pass, written out)."""
    h = X
    for k, (W, b) in enumerate(zip(coefs, intercepts)):
        h = h @ W + b
        if k < len(coefs) - 1:
            h = hidden(h)
    return h


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_attributes_are_scikit_learns():
    """coefs_/intercepts_ in scikit-learn's layout compute predict by its own forward pass (the
    oracle: a NumPy forward pass written from scikit-learn's definition); writing into them changes
    the model; loss_, best_loss_, t_ and n_layers_ count as scikit-learn's do."""
    from sklearn.neural_network import MLPClassifier as SkMLP

    X, y = load_iris(return_X_y=True)
    clf = MLPClassifier((8, 5), random_state=0, **FAST)
    assert not hasattr(clf, "coefs_") and not hasattr(clf, "out_activation_")
    clf.fit(X, y)
    sk = SkMLP((8, 5), max_iter=2, random_state=0).fit(X, y)
    assert [w.shape for w in clf.coefs_] == [w.shape for w in sk.coefs_]
    assert [b.shape for b in clf.intercepts_] == [b.shape for b in sk.intercepts_]
    assert (clf.n_layers_, clf.n_outputs_, clf.out_activation_) == (sk.n_layers_, sk.n_outputs_, "softmax")
    z = _forward(X, clf.coefs_, clf.intercepts_, lambda h: np.maximum(h, 0))
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), clf.predict_proba(X), rtol=1e-12, atol=1e-15)
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.t_ == 50 * len(X) and clf.validation_scores_ is None
    clf.partial_fit(X[:30], y[:30])
    assert clf.t_ == 50 * len(X) + 30 and clf.n_iter_ == 51
    clf.coefs_[-1][:] = 0
    clf.intercepts_[-1][:] = [0, 0, 1]
    assert (clf.predict(X) == 2).all()

    Y2 = np.c_[X[:, 0], X[:, 1] - X[:, 2]]
    reg = MLPRegressor((6,), activation="tanh", random_state=0, **FAST).fit(X, Y2)
    assert [w.shape for w in reg.coefs_] == [(4, 6), (6, 2)] and reg.intercepts_[-1].shape == (2,)
    assert (reg.n_layers_, reg.n_outputs_, reg.out_activation_) == (3, 2, "identity")
    np.testing.assert_allclose(_forward(X, reg.coefs_, reg.intercepts_, np.tanh), reg.predict(X), rtol=1e-12)
    assert reg.loss_ == reg.loss_curve_[-1] and reg.t_ == 50 * len(X)
