"""Models that pickle, save, load and resume (issue 18, section 2).

Resuming is checked bitwise against one straight run on the Python backend, which runs the
same generated module as Numba; one Numba compiled object checks the pickle of dispatchers.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad import jit
from symgrad.errors import ModelFileError, OptionError, ShapeError, SymgradError
from symgrad.lang import optim
from symgrad.lang.nn import ACTIVATIONS, MLP
from symgrad.lang.walk import postorder
from symgrad.runtime.srepr_io import read_nodes, read_srepr, write_nodes, write_srepr

Z = sp.Symbol("z", real=True)


def pseudo_huber(pred, target):
    return sg.mean(sp.MatAdd(pred, -target).applyfunc(sp.Lambda(Z, sp.sqrt(1 + Z**2) - 1)))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5).astype(int)


def _fit(X, labels, epochs, opt=None, **kw):
    opt = opt or optim.Adam(0.05, schedule=optim.StepLR(step_size=3, gamma=0.5))
    kw = {"batch_size": 7, "backend": "python", **kw}
    return sg.fit(MLP([3, 5, 3], activation="tanh"), "softmax_cross_entropy", X, labels, optimizer=opt,
                  epochs=epochs, **kw)


def _same(a, b):
    for p, q in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(p, q)
        assert p.dtype == q.dtype


OPTIMIZERS = {
    "adam_steplr": optim.Adam(0.05, schedule=optim.StepLR(step_size=3, gamma=0.5)),
    "momentum_clip": optim.Momentum(0.1, clip_norm=0.5),
    "rmsprop_cosine": optim.RMSProp(0.01, schedule=optim.CosineLR(t_max=8)),
    "adamw": optim.AdamW(0.02),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_save_load_resume_equals_one_straight_run(name, data, tmp_path):
    X, labels = data
    opt = OPTIMIZERS[name]
    straight = _fit(X, labels, 10, opt)
    first = _fit(X, labels, 5, opt)
    first.save(tmp_path / "m.npz")
    loaded = sg.load(tmp_path / "m.npz")
    _same(loaded, first)
    assert loaded.state.epoch == 5 and loaded.state.t == first.state.t > 0
    resumed = loaded.fit_more(X, labels, epochs=5)
    _same(resumed, straight)
    assert resumed.history["loss"] == straight.history["loss"]  # the history continues too
    assert resumed.state.rng_state == straight.state.rng_state
    for a, b in zip(resumed.state.opt_state, straight.state.opt_state, strict=True):
        np.testing.assert_array_equal(a, b)


def test_resume_through_fit_and_unshuffled(data):
    X, labels = data
    kw = {"shuffle": False, "batch_size": 30}
    straight = _fit(X, labels, 6, **kw)
    first = _fit(X, labels, 2, **kw)
    net = first.model
    resumed = sg.fit(net, "softmax_cross_entropy", X, labels, epochs=4, resume=first, backend="python", **kw)
    _same(resumed, straight)
    _same(first, _fit(X, labels, 2, **kw))  # the resumed-from model is not changed


def test_pickle_roundtrip_predicts_and_resumes(data):
    X, labels = data
    first = _fit(X, labels, 4)
    clone = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(clone.predict(X), first.predict(X))
    assert clone.evaluate(X, labels) == first.evaluate(X, labels)
    _same(clone.fit_more(X, labels, epochs=3), _fit(X, labels, 7))


def test_joblib_dump_and_load(data, tmp_path):
    joblib = pytest.importorskip("joblib")
    X, labels = data
    m = _fit(X, labels, 3)
    joblib.dump(m, tmp_path / "m.joblib")
    clone = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_array_equal(clone.predict(X), m.predict(X))


def test_unpickle_rebuilds_when_the_cache_lost_the_module(data):
    X, labels = data
    Y = np.eye(3)[labels]
    m = sg.fit(MLP([3, 4, 3], activation="relu"), pseudo_huber, X, Y, epochs=2, backend="python")
    blob, want, path = pickle.dumps(m), m.predict(X), Path(m._mod.__file__)
    path.unlink()  # a cleared cache, or another machine
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone.predict(X), want)
    assert path.exists()  # rebuilt from the stored network and loss expression
    assert clone.evaluate(X, Y) == m.evaluate(X, Y)


def test_custom_loss_saves_loads_and_resumes(data, tmp_path):
    X, labels = data
    Y = np.eye(3)[labels]
    net = MLP([3, 4, 3], activation="gelu")
    kw = {"optimizer": optim.Adam(0.02), "batch_size": 8, "backend": "python"}
    straight = sg.fit(net, pseudo_huber, X, Y, epochs=6, **kw)
    first = sg.fit(net, pseudo_huber, X, Y, epochs=3, **kw)
    first.save(tmp_path / "custom")  # np.savez appends .npz; load finds it either way
    loaded = sg.load(tmp_path / "custom")
    assert loaded._loss_name == "pseudo_huber"
    assert loaded.evaluate(X, Y) == first.evaluate(X, Y)
    _same(loaded.fit_more(X, Y, epochs=3), straight)


def test_file_is_plain_arrays_and_json(data, tmp_path):
    X, labels = data
    m = _fit(X, labels, 3)
    m.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:  # no pickled objects inside
        header = json.loads(str(f["header"]))
        assert sorted(f.files) == sorted(["header", "param_0", "param_1", "param_2", "param_3",
                                          "state_m", "state_v"])
    assert header["format"] == "symgrad-model" and header["dtype"] == "float64"
    assert header["optimizer"]["class"] == "Adam" and header["optimizer"]["schedule"]["class"] == "StepLR"
    assert header["state"]["epoch"] == 3 and header["state"]["batch_size"] == 7
    h = header["model"]
    assert header["version"] == 2 and read_nodes(h["nodes"], [h["expr"]]) == [m.model.expr]
    assert len(h["nodes"]) == len(set(h["nodes"])), "each subexpression is written once"


def test_files_of_format_1_still_load(data, tmp_path):
    """Format 1 held one srepr string per expression; a file saved by it loads the same model."""
    X, labels = data
    m = _fit(X, labels, 3)
    m.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(str(arrays.pop("header")))
    spec = m.model
    header["version"] = 1
    header["model"] = {"expr": write_srepr(spec.expr), "params": write_srepr(sp.Tuple(*spec.params)),
                       "x": write_srepr(spec.x), "labels": [[write_srepr(k), v] for k, v in spec.labels.items()]}
    np.savez(tmp_path / "old.npz", header=np.array(json.dumps(header)), **arrays)
    old = sg.load(tmp_path / "old.npz")
    assert old.model.expr == spec.expr and old.model.labels == spec.labels
    np.testing.assert_array_equal(old.predict(X), m.predict(X))


def test_class_and_instance_load(data, tmp_path):
    X, labels = data
    m = _fit(X, labels, 3)
    m.save(tmp_path / "m.npz")
    fresh = sg.Trained.load(tmp_path / "m.npz")  # a new model, as sg.load
    np.testing.assert_array_equal(fresh.predict(X), m.predict(X))
    other = sg.fit(MLP([3, 6, 3]), "softmax_cross_entropy", X, labels, epochs=0, backend="python")
    with pytest.raises(ShapeError, match="do not match.*sg.load"):
        other.load(tmp_path / "m.npz")
    python_twin = sg.load(tmp_path / "m.npz", backend="python")
    assert python_twin.backend == "python"


def _rewrite(path, change):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(str(arrays.pop("header")))
    change(header, arrays)
    np.savez(path, header=np.array(json.dumps(header)), **arrays)


CORRUPTIONS = {
    "truncated": ("truncated", "corrupt"),
    "garbage": ("garbage", "corrupt or not a model file"),
    "foreign_npz": ("foreign", "not written by Trained.save"),
    "legacy_params_only": ("legacy", "older symgrad saved only parameters.*trained.load"),
    "code_in_expression": (lambda h, a: h["model"]["nodes"].__setitem__(0, "__import__('os').system('true')"),
                           "not a SymPy or symgrad expression"),
    "expression_out_of_range": (lambda h, a: h["model"].update(expr=10**6), "not one of the .* lines written"),
    "wrong_param_shape": (lambda h, a: a.update(param_0=np.zeros((2, 2))), r"parameter arrays .* do not match"),
    "missing_state": (lambda h, a: a.pop("state_v"), "optimizer state 'v'"),
    "newer_format": (lambda h, a: h.update(version=99), "newer symgrad"),
    "unknown_optimizer": (lambda h, a: h["optimizer"].update({"class": "Lion"}), "optimizer 'Lion'"),
    "missing_key": (lambda h, a: h.pop("state"), "header does not describe a model"),
}


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_corrupt_or_foreign_files_are_named(case, data, tmp_path):
    X, labels = data
    path = tmp_path / "m.npz"
    _fit(X, labels, 1).save(path)
    how, message = CORRUPTIONS[case]
    if how in ("truncated", "garbage"):
        path.write_bytes(path.read_bytes()[:300] if how == "truncated" else b"not a zip file" * 10)
    elif how == "foreign":
        np.savez(path, weights=np.zeros(3), bias=np.ones(2))
    elif how == "legacy":
        np.savez(path, np.zeros((5, 3)), np.zeros((5, 1)))
    else:
        _rewrite(path, how)
    with pytest.raises(ModelFileError, match=message) as exc:
        sg.load(path)
    assert isinstance(exc.value, SymgradError)


def test_flipped_byte_is_caught_by_the_zip_checksum(data, tmp_path):
    X, labels = data
    path = tmp_path / "m.npz"
    _fit(X, labels, 1).save(path)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("param_0.npy")
    raw = bytearray(path.read_bytes())
    raw[info.header_offset + 30 + len(info.filename) + info.file_size - 3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="corrupt"):
        sg.load(path)


def test_resume_refuses_another_network_loss_or_optimizer(data):
    X, labels = data
    m = _fit(X, labels, 2)
    with pytest.raises(OptionError, match=r"another network.*W1\(5, 3\).*this fit's model is .*W1\(6, 3\).*resume.model"):
        sg.fit(MLP([3, 6, 3], activation="tanh"), "softmax_cross_entropy", X, labels, resume=m, backend="python")
    with pytest.raises(OptionError, match="loss 'softmax_cross_entropy'"):
        sg.fit(m.model, "mse", X, np.eye(3)[labels], resume=m, backend="python")
    with pytest.raises(OptionError, match="same kind of optimizer"):
        sg.fit(m.model, "softmax_cross_entropy", X, labels, resume=m, optimizer=optim.SGD(0.1),
               backend="python")
    with pytest.raises(OptionError, match="params= and resume="):
        sg.fit(m.model, "softmax_cross_entropy", X, labels, resume=m, params=m.params, backend="python")


def test_save_refuses_what_a_file_cannot_rebuild(data, tmp_path):
    X, labels = data
    m = _fit(X, labels, 1, optim.SGD(0.1, schedule=lambda lr, epoch: lr / (1 + epoch)))
    with pytest.raises(OptionError, match="schedule.*pickle"):
        m.save(tmp_path / "m.npz")
    m = _fit(X, labels, 1)
    m.history["note"] = [object()]
    with pytest.raises(OptionError, match="history holds object"):
        m.save(tmp_path / "m.npz")


@pytest.mark.parametrize("act", [*ACTIVATIONS, "custom"])
def test_mlp_pickles(act):
    a = sg.activation(lambda z: z * sp.tanh(z)) if act == "custom" else act
    net = MLP([2, 3, 2], activation=a)
    clone = pickle.loads(pickle.dumps(net))
    assert clone.expr == net.expr and clone.labels == net.labels and clone.params == net.params


def test_srepr_text_round_trips_and_refuses_code():
    net = MLP([3, 4, 2], activation="elu", output="softmax")
    for e in (net.expr, sg.losses.mse(net.expr, sp.MatrixSymbol("y", 2, 1)), *net.labels):
        assert read_srepr(write_srepr(e)) == e and read_nodes(*write_nodes(e)) == [e]
    for bad in ("__import__('os').system('true')", "Tuple('__import__(\"os\")')", "Symbol('x', real='a')",
                "Add(Symbol('x'), lambda: 1)", "(1).__class__"):
        with pytest.raises(ModelFileError):
            read_srepr(bad)
        with pytest.raises(ModelFileError):
            read_nodes(["Symbol('x')", bad], [1])
    for lines, roots in ((["Symbol('x')", "sin(_0)"], [2]), (["sin(_1)", "Symbol('x')"], [0]),
                         (["Symbol('x')", "_0.__class__"], [1]), (["Symbol('x')"], ["_0"])):
        with pytest.raises(ModelFileError):  # a line or root naming no earlier line
            read_nodes(lines, roots)


def _networks():
    nn = sg.nn
    yield from (MLP([3, 4, 2], activation=a) for a in ACTIVATIONS)
    yield nn.Sequential([nn.Conv2D(1, 2, 3, padding="same", activation="relu"), nn.BatchNorm(2), nn.MaxPool2D(2),
                         nn.Flatten(), nn.Dropout(0.25), nn.Dense(2 * 3 * 3, 3)], input_shape=(1, 6, 6))
    yield nn.Sequential([nn.Conv2D(1, 2, 3, stride=2), nn.AvgPool2D(2), nn.Flatten(), nn.Dense(8, 2, "softmax")],
                        input_shape=(1, 9, 9))
    yield nn.Transformer(7, 4, 2, 2, 3)


@pytest.mark.parametrize("net", list(_networks()), ids=lambda n: str(n)[:40])
def test_node_lines_round_trip_every_layer_kind(net):
    """What a model file holds, for each layer kind: one line per distinct subexpression, read
    back to the same expression and labels."""
    keys = list(net.labels)
    lines, roots = write_nodes(net.expr, *keys)
    assert len(lines) == len(postorder(sp.Tuple(net.expr, *keys))) - 1  # each once; the Tuple is not written
    expr, *back = read_nodes(lines, roots)
    assert expr == net.expr and back == keys


def _compiled_objects():
    a, t, y = sp.symbols("a t y", real=True)
    f = sg.compile((sp.exp(-a * t) - y) ** 2, wrt=[a], data=[t, y], backend="python")
    r = sg.compile_residuals(a * sp.exp(-a * t) - y, [a], [t, y], backend="python")
    net = MLP([3, 4, 2], activation="tanh")
    yy = sp.MatrixSymbol("y", 2, 1)
    T = sg.compile(sg.losses.mse(net.expr, yy), net.params, [net.x, yy], backend="python")
    return f, r, T, net


def test_compiled_objects_pickle_without_the_cache(tmp_path, monkeypatch):
    f, r, T, net = _compiled_objects()
    t_, Y = np.linspace(0, 1, 5), np.zeros((6, 2))
    y_ = np.exp(-0.5 * t_)
    blobs = [pickle.dumps(o) for o in (f, r, T)]
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path / "other-machine"))
    f2, r2, T2 = [pickle.loads(b) for b in blobs]
    assert f2.value([0.3], t_, y_) == f.value([0.3], t_, y_)
    np.testing.assert_array_equal(r2.jacobian([0.3], t_, y_), r.jacobian([0.3], t_, y_))
    ps, X = net.init_params(0), np.random.default_rng(0).normal(size=(6, 3))
    assert T2.value(ps, X, Y) == T.value(ps, X, Y)
    np.testing.assert_array_equal(T2.hvp(ps, ps, X, Y)[0], T.hvp(ps, ps, X, Y)[0])
    assert T2.path.parent == jit.cache_dir()


@pytest.mark.numba
def test_numba_trained_pickles_and_resumes_exactly(data):
    X, labels = data
    kw = {"optimizer": optim.Adam(0.05), "batch_size": 7}
    net = MLP([3, 5, 3], activation="tanh")
    straight = sg.fit(net, "softmax_cross_entropy", X, labels, epochs=6, **kw)
    clone = pickle.loads(pickle.dumps(sg.fit(net, "softmax_cross_entropy", X, labels, epochs=3, **kw)))
    assert clone.backend == "numba" and hasattr(clone._mod.train_chunk, "overloads")
    np.testing.assert_array_equal(clone.predict(X), clone._mod.predict(*clone.params, X))
    _same(clone.fit_more(X, labels, epochs=3), straight)


def test_a_missing_file_names_the_path_and_is_still_a_file_not_found_error(tmp_path):
    from symgrad.errors import MissingModelFileError

    with pytest.raises(FileNotFoundError) as err:
        sg.load(tmp_path / "typo.npz")
    assert isinstance(err.value, MissingModelFileError) and "typo.npz" in str(err.value) and "Fix" in str(err.value)


def test_bare_arrays_named_as_the_parameters_load_into_the_model(tmp_path, monkeypatch):
    # np.savez(path, W1=..., b1=...) was refused by sg.load with "call trained.load(path) on it", and
    # trained.load refused it with the same advice; and a relative SYMGRAD_CACHE_DIR kept module paths
    # relative, so that after os.chdir a compiled function no longer pickled ("gone from the cache")
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 3)), rng.normal(size=30)
    m = sg.fit(MLP([3, 4, 1]), "mse", X, Y, epochs=1, backend="python")
    named, ordered = tmp_path / "named.npz", tmp_path / "ordered.npz"
    np.savez(named, **{str(s): p * 2 for s, p in zip(m.model.params, m.params)})
    np.savez(ordered, *[p * 3 for p in m.params])
    with pytest.raises(ModelFileError, match="no symgrad header"):
        sg.load(named)
    for path, k in ((named, 2), (ordered, 3)):
        m2 = sg.fit(MLP([3, 4, 1]), "mse", X, Y, epochs=1, backend="python")
        m2.load(path)
        for got, p in zip(m2.params, m.params):
            np.testing.assert_array_equal(got, k * p)
    np.savez(named, W1=m.params[0], bias=m.params[1])
    with pytest.raises(ModelFileError, match=r"arrays named \['W1', 'bias'\]; the model's parameters are"):
        m.load(named)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", "relative_cache")
    a = sp.Symbol("a", real=True)
    f = sg.compile((a - 1) ** 2, wrt=[a], backend="python")
    assert Path(f.path).is_absolute() and Path(f.path).parent == tmp_path / "a" / "relative_cache"
    monkeypatch.chdir(tmp_path / "b")
    assert pickle.loads(pickle.dumps(f)).value([3.0]) == 4.0
