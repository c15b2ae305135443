"""Dtypes and data the way NumPy and scikit-learn do it (issue 18, section 3): the model's dtype
follows X unless dtype= is given, other data is converted to it rather than refused, predict
works in bounded memory and gives (n,) for a single-output regressor.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import DataError, DtypeError, SymgradError, TargetError
from symgrad.lang.nn import MLP
from symgrad.runtime import trained as trained_module

PY = {"backend": "python", "epochs": 2, "batch_size": 8}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(24, 3))
    return MLP([3, 4, 1], activation="tanh"), X, X[:, 0] - 0.5 * X[:, 1]


@pytest.fixture(scope="module")
def fit64(data):
    net, X, Y = data
    return sg.fit(net, "mse", X, Y, **PY)


@pytest.fixture(scope="module")
def fit32(data):
    net, X, Y = data
    return sg.fit(net, "mse", X.astype(np.float32), Y, **PY)


def _same(a, b):
    assert a.dtype == b.dtype
    assert a.history["loss"] == b.history["loss"]
    for p, q in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(p, q)


def test_float32_data_trains_a_float32_model(fit32):
    assert fit32.dtype == np.float32
    assert all(p.dtype == np.float32 for p in fit32.params)
    # the history holds float32 losses (exact in float32), computed by the float32 kernel
    assert all(np.float32(v) == v for v in fit32.history["loss"])
    assert all(np.float32(v) == v for row in fit32.history["grad_norms"] for v in row)


def test_float64_y_and_validation_are_converted_for_float32_x(data, fit32):
    net, X, Y = data
    X32 = X.astype(np.float32)
    same = sg.fit(net, "mse", X32, Y.astype(np.float32), **PY)
    _same(same, fit32)
    val = sg.fit(net, "mse", X32, Y, validation=(X, Y), **PY)  # float64 validation data
    assert val.dtype == np.float32 and len(val.history["val_loss"]) == 2
    assert val.history["val_loss"][-1] == pytest.approx(val.evaluate(X32, Y)["loss"], rel=1e-6)


def test_explicit_dtype_wins_and_converts(data, fit64, fit32):
    net, X, Y = data
    up = sg.fit(net, "mse", X.astype(np.float32), Y, dtype="float64", **PY)
    assert up.dtype == np.float64 and all(p.dtype == np.float64 for p in up.params)
    _same(up, sg.fit(net, "mse", X.astype(np.float32).astype(np.float64), Y, **PY))
    down = sg.fit(net, "mse", X, Y, dtype="float32", **PY)  # float64 X rounded, as scikit-learn does
    _same(down, fit32)


@pytest.mark.parametrize("kind", ["int64", "int8", "uint16", "bool", "list", "object", "float16"])
def test_other_numbers_train_float64_as_their_float_values(kind):
    rng = np.random.default_rng(5)
    Xi = rng.integers(0, 4, size=(16, 2))
    X = {"int64": Xi, "int8": Xi.astype(np.int8), "uint16": Xi.astype(np.uint16), "bool": Xi > 1,
         "list": Xi.tolist(), "object": Xi.astype(object), "float16": Xi.astype(np.float16)}[kind]
    Y = (Xi[:, 0] > 1).astype(int)  # integer 0/1 targets
    net = MLP([2, 3, 1], activation="tanh")
    m = sg.fit(net, "bce", X, Y, **PY)
    assert m.dtype == np.float64
    _same(m, sg.fit(net, "bce", np.asarray(X, dtype=np.float64), Y.astype(float), **PY))
    np.testing.assert_array_equal(m.predict(X), m.predict(np.asarray(X, dtype=np.float64)))


class FrameLike:
    """What a pandas DataFrame looks like to NumPy: an object with ``__array__``."""

    def __init__(self, values):
        self.values = values

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)


def test_array_likes_follow_their_dtype(data, fit32):
    net, X, Y = data
    _same(sg.fit(net, "mse", FrameLike(X.astype(np.float32)), Y, **PY), fit32)
    assert sg.fit(net, "mse", FrameLike(X), Y, **PY).dtype == np.float64


def test_pandas_frames_are_converted(data, fit64, fit32):
    pd = pytest.importorskip("pandas")
    net, X, Y = data
    _same(sg.fit(net, "mse", pd.DataFrame(X), pd.Series(Y), **PY), fit64)
    _same(sg.fit(net, "mse", pd.DataFrame(X.astype(np.float32)), Y, **PY), fit32)
    mixed = pd.DataFrame({"a": (X[:, 0] > 0).astype(int), "b": X[:, 1], "c": X[:, 2] > 0})
    assert sg.fit(net, "mse", mixed, Y, **PY).dtype == np.float64
    np.testing.assert_array_equal(fit64.predict(pd.DataFrame(X)), fit64.predict(X))


def test_float64_predict_and_evaluate_data_for_a_float32_model(data, fit32):
    _, X, Y = data
    out = fit32.predict(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, fit32.predict(X.astype(np.float32)))
    assert fit32.evaluate(X, Y) == fit32.evaluate(X.astype(np.float32), Y.astype(np.float32))
    big = X.copy()
    big[3, 1] = 1e39  # finite, beyond float32: it was "X holds a non-finite value (inf)", after NumPy's warning
    with pytest.raises(DtypeError, match=r"X holds 1e\+39, beyond float32's range.*dtype='float64'"):
        fit32.predict(big)


def test_resume_keeps_the_models_dtype(data, fit32):
    _, X, Y = data
    more = fit32.fit_more(X, Y, epochs=1)  # float64 data for a float32 model
    assert more.dtype == np.float32 and all(p.dtype == np.float32 for p in more.params)


@pytest.mark.parametrize("bad, err, match", [
    (lambda X: X + 1j, DataError, r"Complex data not supported: X has dtype complex128.*Fix"),
    (lambda X: X.astype(str), DtypeError, r"X has dtype <U\d+, not numbers.*Fix"),
    (lambda X: np.array([[{"a": 1}] * 3] * len(X), dtype=object), DtypeError,
     r"X holds objects that are not numbers.*argument must be a string.* number.*Fix"),
    (lambda X: [[1.0, 2.0, 3.0], [1.0, 2.0]], SymgradError, r"X could not be read as an array.*Fix"),
])
def test_data_that_holds_no_numbers_is_named(bad, err, match, data):
    net, X, Y = data
    with pytest.raises(err, match=match):
        sg.fit(net, "mse", bad(X), Y, **PY)


def test_messages_name_fits_own_arguments(data):
    net, X, Y = data
    with pytest.raises(DataError, match="Complex data not supported: validation X"):
        sg.fit(net, "mse", X, Y, validation=(X + 1j, Y), **PY)
    with pytest.raises(DtypeError, match="validation X has dtype <U.*not numbers"):
        sg.fit(net, "mse", X, Y, validation=(X.astype(str), Y), **PY)
    with pytest.raises(TargetError, match="validation Y holds text"):
        sg.fit(net, "mse", X, Y, validation=(X, Y.astype(str)), **PY)


def test_sparse_input_says_toarray(data, fit64):
    sparse = pytest.importorskip("scipy.sparse")
    net, X, Y = data
    with pytest.raises(DtypeError, match=r"sparse.*X.toarray\(\)"):
        sg.fit(net, "mse", sparse.csr_matrix(X), Y, **PY)
    with pytest.raises(TypeError, match="sparse"):  # what scikit-learn's checks look for
        fit64.predict(sparse.csr_matrix(X))


# -- predict: bounded memory, the shapes scikit-learn users expect -----------------------------

def test_chunked_predict_and_evaluate_equal_one_call(data, monkeypatch):
    net, X, _ = data
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    m = sg.fit(MLP([3, 4, 3], activation="tanh"), "softmax_cross_entropy", X, labels, **PY)
    whole, ev = m.predict(X), m.evaluate(X, labels)
    calls = []
    real = m._mod.predict
    monkeypatch.setattr(m, "_module", type("Mod", (), {"predict": staticmethod(
        lambda *a: calls.append(len(a[-1])) or real(*a)), "loss": staticmethod(m._mod.loss)}))
    monkeypatch.setattr(trained_module, "PREDICT_ROWS", 5)
    np.testing.assert_allclose(m.predict(X), whole, rtol=1e-13, atol=1e-15)
    assert calls == [5, 5, 5, 5, 4]  # 24 rows, at most 5 per native call
    chunked = m.evaluate(X, labels)
    assert chunked["accuracy"] == ev["accuracy"]
    assert chunked["loss"] == pytest.approx(ev["loss"], rel=1e-13)
    np.testing.assert_array_equal(m.predict_class(X), whole.argmax(axis=1))
    assert m.predict(X[:0]).shape == (0, 3)


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_single_output_regressor_predicts_a_vector(loss, data):
    net, X, Y = data
    m = sg.fit(net, loss, X, Y, **PY)
    out = m.predict(X)
    assert out.shape == (len(X),) and out.flags.c_contiguous
    assert m.predict(X[:0]).shape == (0,)
    assert out.shape == Y.shape  # so out - Y is the residual, not an (n, n) table


def test_other_models_keep_one_column_per_output(data):
    net, X, Y = data
    bce = sg.fit(net, "bce", X, Y > 0, **PY)
    logits = bce.predict(X)
    assert logits.shape == (len(X), 1)  # one column of logits per label, as evaluate() compares them
    np.testing.assert_array_equal(bce.predict_class(X), (logits[:, 0] > 0).astype(int))
    two = sg.fit(MLP([3, 4, 2]), "mse", X, np.stack([Y, -Y], axis=1), **PY)
    assert two.predict(X).shape == (len(X), 2)
    # several labels at once (multi-label bce): one 0/1 per label, as evaluate()'s accuracy counts them
    labels = np.stack([Y > 0, X[:, 0] > 0], axis=1).astype(float)
    multi = sg.fit(MLP([3, 4, 2]), "bce", X, labels, **PY)
    np.testing.assert_array_equal(multi.predict_class(X), (multi.predict(X) > 0).astype(int))
    assert multi.evaluate(X, labels)["accuracy"] == pytest.approx((multi.predict_class(X) == labels).mean())


@pytest.mark.numba
def test_float32_data_trains_float32_with_numba(data):
    net, X, Y = data
    X32 = X.astype(np.float32)
    m = sg.fit(net, "mse", X32, Y, epochs=3, batch_size=8)
    assert m.dtype == np.float32 and all(p.dtype == np.float32 for p in m.params)
    out = m.predict(X)  # float64 data for the float32 model
    assert out.dtype == np.float32 and out.shape == (len(X),)
    py = sg.fit(net, "mse", X32, Y, epochs=3, batch_size=8, backend="python")
    np.testing.assert_allclose(out, py.predict(X32), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", ["numba", "python"])
def test_a_compiled_formula_answers_in_its_dtype_and_refuses_other_series(backend):
    import sympy as sp

    pd = pytest.importorskip("pandas")
    c, y = sp.symbols("c y", real=True)
    f = sg.compile((c - y) ** 2, wrt=[c], data=[y], dtype="float32", backend=backend)
    v, g = f.value_and_grad([0.5], pd.Series(np.ones(3, np.float32)))
    assert type(v) is np.float32 and type(f.value([0.5], [1.0, 2.0])) is np.float32 and g.dtype == np.float32
    # a float64 Series was rounded to float32 silently, where a float64 ndarray is refused
    with pytest.raises(DtypeError, match=r"data 'y' has dtype float64.*Fix: pass it as arr.astype\(np.float32\)"):
        f.value([0.5], pd.Series(np.ones(3)))
