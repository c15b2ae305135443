"""No silent mistakes in fit, predict and evaluate (issue 18, section 4): each case below once
trained or answered quietly, or failed with a raw NumPy error; each now names its fix.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import DataError, OptionError, ShapeError, SymgradError, TargetError
from symgrad.lang import optim
from symgrad.lang.nn import MLP

PY = {"backend": "python", "epochs": 2, "batch_size": 8}


@pytest.fixture(scope="module")
def binary():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(24, 3))
    return MLP([3, 4, 1], activation="tanh"), X, (X[:, 0] > 0).astype(float)


@pytest.fixture(scope="module")
def trained(binary):
    net, X, Y = binary
    return sg.fit(net, "bce", X, Y, **PY)


def test_bce_refuses_minus_one_plus_one_labels(binary, trained):
    net, X, Y = binary
    pm = 2 * Y - 1
    with pytest.raises(TargetError, match=r"\[-1, 1\].*\(Y > 0\)\.astype\(float\)"):
        sg.fit(net, "bce", X, pm, **PY)
    with pytest.raises(TargetError, match="validation Y"):
        sg.fit(net, "bce", X, Y, validation=(X, pm), **PY)
    with pytest.raises(TargetError, match=r"\[0, 1\]"):
        trained.evaluate(X, pm)
    soft = np.clip(Y, 0.1, 0.9)  # probabilities are valid targets
    sg.fit(net, "bce", X, soft, **PY)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_and_evaluate_refuse_non_finite_input(bad, binary, trained):
    _, X, Y = binary
    Xb = X.copy()
    Xb[5, 2] = bad
    with pytest.raises(DataError, match=r"non-finite.*\(5, 2\).*Fix"):
        trained.predict(Xb)
    with pytest.raises(DataError, match="non-finite"):
        trained.evaluate(Xb, Y)


def test_wrong_input_width_names_the_columns(binary, trained):
    net, X, Y = binary
    with pytest.raises(ShapeError, match="2 columns.*takes 3"):
        sg.fit(net, "bce", X[:, :2], Y, **PY)
    with pytest.raises(ShapeError, match="4 columns.*takes 3"):
        trained.predict(np.hstack([X, X[:, :1]]))
    with pytest.raises(ShapeError, match="2 columns"):
        trained.evaluate(X[:, :2], Y)
    with pytest.raises(ShapeError, match="validation X has 2 columns"):
        sg.fit(net, "bce", X, Y, validation=(X[:, :2], Y), **PY)


def test_single_1d_sample_says_how_to_reshape(binary, trained):
    _, X, _ = binary
    with pytest.raises(ShapeError, match=r"1-D.*reshape\(1, -1\)"):
        trained.predict(X[0])
    assert trained.predict(X[:1]).shape == (1, 1)
    with pytest.raises(ShapeError, match="1-D"):
        trained.predict(X[0, :2])
    # with one input feature a 1-D array is unambiguous: one value per sample
    x1 = X[:, 0]
    m = sg.fit(MLP([1, 3, 1]), "mse", x1, x1**2, **PY)
    assert m.predict(x1).shape == (len(x1),)  # a single-output regressor gives a vector


def test_3d_input_is_refused_not_flattened(binary, trained):
    net, X, Y = binary
    X3 = np.repeat(X[:, :, None], 2, axis=2)
    with pytest.raises(ShapeError, match=r"\(24, 3, 2\).*does not flatten.*reshape"):
        sg.fit(MLP([6, 4, 1]), "bce", X3, Y, **PY)
    with pytest.raises(ShapeError, match="does not flatten"):
        trained.predict(X[:, :, None])
    flat = X3.reshape(len(X3), -1)  # the fix the message gives
    sg.fit(MLP([6, 4, 1]), "bce", flat, Y, **PY)


def test_patience_without_validation_is_refused(binary):
    net, X, Y = binary
    with pytest.raises(OptionError, match="patience=3.*validation=\\(X_val, Y_val\\)"):
        sg.fit(net, "bce", X, Y, patience=3, **PY)
    with pytest.raises(OptionError, match="patience=0"):
        sg.fit(net, "bce", X, Y, patience=0, validation=(X, Y), **PY)


@pytest.mark.parametrize("name, cls", [("adam", optim.Adam), ("Adam", optim.Adam), ("SGD", optim.SGD),
                                       ("rmsprop", optim.RMSProp), ("AdamW", optim.AdamW)])
def test_optimizer_by_name(name, cls, binary):
    net, X, Y = binary
    by_name = sg.fit(net, "bce", X, Y, optimizer=name, **PY)
    by_object = sg.fit(net, "bce", X, Y, optimizer=cls(), **PY)
    assert type(by_name.optimizer) is cls
    for a, b in zip(by_name.params, by_object.params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unknown_optimizer_names_the_fix(binary):
    net, X, Y = binary
    with pytest.raises(OptionError, match=r"unknown optimizer 'adamm'.*'adam'.*sg.optim.Adam\(lr=0.01\)"):
        sg.fit(net, "bce", X, Y, optimizer="adamm", **PY)
    with pytest.raises(OptionError, match="not a symgrad optimizer"):
        sg.fit(net, "bce", X, Y, optimizer=object(), **PY)


@pytest.mark.parametrize("batch_size", [0, -4, 2.5, True])
def test_batch_size_must_be_a_positive_integer(batch_size, binary):
    net, X, Y = binary
    with pytest.raises(OptionError, match=f"batch_size={batch_size!r}.*>= 1"):
        sg.fit(net, "bce", X, Y, backend="python", epochs=1, batch_size=batch_size)


def test_negative_epochs_refused(binary):
    net, X, Y = binary
    with pytest.raises(OptionError, match="epochs=-1"):
        sg.fit(net, "bce", X, Y, backend="python", epochs=-1)


def test_empty_x(binary, trained):
    net, X, Y = binary
    with pytest.raises(DataError, match="X has no rows"):
        sg.fit(net, "bce", X[:0], Y[:0], **PY)
    with pytest.raises(DataError, match="no rows"):
        trained.evaluate(X[:0], Y[:0])
    assert trained.predict(X[:0]).shape == (0, 1)  # an empty batch has an empty answer


@pytest.mark.parametrize("loss, fix", [("softmax_cross_entropy", "return_inverse"),
                                       ("bce", "positive_label"), ("mse", "numbers")])
def test_string_labels_name_the_encoding(loss, fix):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(12, 3))
    words = np.array(["cat", "dog", "emu"])[rng.integers(0, 3, 12)]
    n_out = 3 if loss == "softmax_cross_entropy" else 1
    with pytest.raises(TargetError, match=f"text labels \\(e.g. '(cat|dog|emu)'\\).*{fix}") as exc:
        sg.fit(MLP([3, 4, n_out]), loss, X, words, **PY)
    assert isinstance(exc.value, SymgradError)


def test_object_arrays_of_numbers_are_numbers():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12, 3))
    Y = np.array(list(rng.normal(size=12)), dtype=object)
    m = sg.fit(MLP([3, 4, 1]), "mse", X, Y, **PY)
    assert np.isfinite(m.history["loss"]).all()


def test_validation_must_be_a_pair(binary):
    net, X, Y = binary
    with pytest.raises(OptionError, match=r"validation= takes a pair \(X_val, Y_val\)"):
        sg.fit(net, "bce", X, Y, validation=(X,), **PY)


def test_softmax_targets_are_distributions_and_need_two_outputs():
    # 2·one-hot trained silently on logsumexp(z) - y·z, which is not the cross-entropy there:
    # 1.87 where torch's cross_entropy gives 3.02
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.integers(0, 3, 20)
    net = MLP([3, 4, 3])
    for bad in (2 * np.eye(3)[y], -np.eye(3)[y], np.eye(3)[y] + 1e-2):
        with pytest.raises(TargetError, match=r"is not a distribution over the classes.*Fix: one-hot rows"):
            sg.fit(net, "softmax_cross_entropy", X, bad, epochs=1, backend="python")
    # probabilities rounded to four decimals (read from a CSV file) are accepted
    sg.fit(net, "softmax_cross_entropy", X, np.tile([0.3334, 0.3333, 0.3334], (20, 1)), epochs=0, backend="python")
    soft = np.full((20, 3), 1 / 3, dtype=np.float32)  # float32 rounding of a uniform row is accepted
    m = sg.fit(net, "softmax_cross_entropy", X.astype(np.float32), soft, epochs=0, backend="python")
    z = m.predict(X.astype(np.float32)).astype(np.float64)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    assert abs(m.evaluate(X.astype(np.float32), soft)["loss"] - np.mean(lse - z.mean(1))) < 1e-5
    with pytest.raises(ShapeError, match=r"needs at least 2 outputs.*Fix: 'bce' for one output"):
        sg.fit(MLP([3, 4, 1]), "softmax_cross_entropy", X, (y > 0).astype(int), epochs=1, backend="python")
    with pytest.raises(ShapeError, match=r"Y has 1 columns.*Fix: pass the class labels as a 1-D array \(Y.ravel\(\)\)"):
        sg.fit(net, "softmax_cross_entropy", X, y[:, None], epochs=1, backend="python")
    reg = sg.fit(MLP([3, 2, 1]), "mse", X, y.astype(float), epochs=1, backend="python")
    with pytest.raises(OptionError, match=r"regression loss 'mse'.*Fix: model.predict\(X\)"):
        reg.predict_class(X[:2])


def test_predict_on_zero_samples_gives_zero_rows():
    # zero images (n, C, H, W) and zero windows of a language model raised NumPy's "cannot reshape
    # array of size 0"; flat rows gave (0, outputs), as scikit-learn's predict does not (it refuses)
    rng = np.random.default_rng(0)
    nn = sg.nn
    cnn = sg.fit(nn.Sequential([nn.Conv2D(1, 2, 3, padding=1), nn.Flatten(), nn.Dense(2 * 4 * 4, 3)],
                               input_shape=(1, 4, 4)),
                 "softmax_cross_entropy", rng.normal(size=(6, 1, 4, 4)), np.arange(6) % 3, epochs=1, backend="python")
    assert cnn.predict(np.zeros((0, 1, 4, 4))).shape == (0, 3) == cnn.predict(np.zeros((0, 16))).shape
    assert cnn.predict_class(np.zeros((0, 1, 4, 4))).shape == (0,)
    lm = sg.fit(nn.Transformer(5, 4, 2, layers=1, context=3), "token_cross_entropy",
                rng.integers(0, 5, (6, 3)).astype(float), rng.integers(0, 5, (6, 3)), epochs=1, backend="python")
    assert lm.predict(np.zeros((0, 3))).shape == (0, 3, 5) and lm.predict_class(np.zeros((0, 3))).shape == (0, 3)


def test_masked_entries_are_refused_by_the_estimators_and_formulas_at():
    """scikit-learn's checks read a masked array's data, masked entries included: the estimators
    trained on the values under the mask (X, y, sample_weight), and ``formulas(at=)`` traced them."""
    from symgrad.sklearn import MLPRegressor

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    Xm, ym = np.ma.masked_array(X, mask=X > 1.5), np.ma.masked_array(y, mask=y > 1.0)
    est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, backend="python")
    for args, kw, what in [((Xm, y), {}, "X"), ((X, ym), {}, "y"),
                           ((X, y), {"sample_weight": np.ma.masked_array(np.ones(20), mask=y > 1.0)},
                            "sample_weight")]:
        with pytest.raises(DataError, match=f"^{what} is a masked array with masked entries.*Fix:"):
            est.fit(*args, **kw)
    with pytest.raises(DataError, match="Complex data not supported: sample_weight"):
        est.fit(X, y, sample_weight=np.ones(20) + 1j)
    est.fit(np.ma.masked_array(X), y)  # nothing masked: its data
    with pytest.raises(DataError, match="^X is a masked array"):
        est.predict(Xm)
    net = MLP([3, 4, 3], activation="tanh")
    xm = np.ma.masked_array([999.0, -1.0, 2.0], mask=[True, False, False])
    with pytest.raises(DataError, match="^x is a masked array with masked entries"):
        sg.formulas(net, "softmax_cross_entropy", at=(net.init_params(0), xm, 2))


def test_a_transposed_weight_is_told_to_transpose_not_reshape():
    """A weight in scikit-learn's coefs_ layout (n_in, n_out): the reshape the message advised kept
    its numbers in the wrong places, silently."""
    net = MLP([3, 4, 1], activation="tanh")
    ps = [p.copy() for p in net.init_params(0)]
    wrong = [ps[0].T, *ps[1:]]
    with pytest.raises(ShapeError, match=r"params\['W1'\] has shape \(3, 4\); the model needs \(4, 3\). "
                                         r"Fix: params\['W1'\].T"):
        sg.fit(net, "mse", np.ones((4, 3)), np.ones(4), params=wrong, **PY)
    with pytest.raises(ShapeError, match=r"Fix: transpose it, W1.T"):
        sg.formulas(net, "mse", at=(wrong, np.ones(3), 1.0))
