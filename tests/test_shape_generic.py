"""Issue 21: models that differ only in their sizes share one generated module and one Numba
compilation (the sizes are run-time arguments, codegen/dims.py), and every size still computes
the right numbers."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad import build, jit

ROOT = str(Path(__file__).resolve().parents[1])
nn = sg.nn


def _net(n_in: int, width: int, n_out: int, act: str = "tanh"):
    return nn.Sequential([nn.Dense(n_in, width, act), nn.Dense(width, width // 2 + 1, "relu"),
                          nn.Dense(width // 2 + 1, n_out)], input_shape=(n_in,))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(d))
    return d


def _data(n_in: int, n_out: int, rows: int = 23, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, n_in)), rng.integers(0, n_out, rows)


def test_a_sweep_of_sizes_compiles_once(cache):
    """New widths, input and output sizes and batch sizes: one module file, one compilation of
    the training kernel, and each model trains to what the Python reference path computes.
    The last model has 10,506 parameters, the others under 300: no size picks another loop."""
    shapes = [(4, 6, 3), (4, 11, 3), (7, 5, 2), (3, 16, 5), (64, 90, 10)]
    kernels, files = [], set()
    for k, (n_in, width, n_out) in enumerate(shapes):
        net = _net(n_in, width, n_out)
        X, y = _data(n_in, n_out, seed=k)
        kw = dict(optimizer=sg.optim.Adam(0.01), epochs=2, batch_size=5 + k, seed=k)
        fast = sg.fit(net, "softmax_cross_entropy", X, y, **kw)
        ref = sg.fit(net, "softmax_cross_entropy", X, y, backend="python", **kw)
        np.testing.assert_allclose(fast.history["loss"], ref.history["loss"], rtol=1e-10)
        for a, b in zip(fast.params, ref.params, strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        kernels.append(fast._mod.module)
        files |= {p.name for p in cache.glob("sg_*.py")}
    assert len(files) == 1, files
    assert all(m is kernels[0] for m in kernels)  # one module object in this process
    assert len(kernels[0].train_chunk.signatures) == 1  # compiled once, for every size
    assert len(list(cache.glob("sg_*.dims"))) == len(shapes)  # each model remembers its sizes


@pytest.mark.parametrize("width", [3, 8, 13])
def test_each_width_gradient_matches_central_differences(width):
    """The compiled route shares the module too; its gradient at each width against central
    differences of its value (an oracle that shares nothing with the backward code)."""
    net = _net(4, width, 3, act="sigmoid")
    y = sp.MatrixSymbol("y", 3, 1)
    f = sg.compile(sg.losses.softmax_cross_entropy(net.expr, y), net.params, [net.x, y])
    rng = np.random.default_rng(width)
    theta = np.concatenate([p.ravel() for p in net.init_params(width)])
    X, Y = rng.normal(size=(9, 4)), np.eye(3)[rng.integers(0, 3, 9)]
    g = f.grad(theta, X, Y)
    h = 1e-6
    fd = np.array([(f.value(theta + h * e, X, Y) - f.value(theta - h * e, X, Y)) / (2 * h)
                   for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    # its first full-batch SGD step is θ − lr ∇ with that gradient
    Xs, labels = X, Y.argmax(axis=1)
    ps = [theta[a:b].reshape(p.shape) for p, a, b in zip(net.params, *_offsets(net))]
    r = sg.fit(net, "softmax_cross_entropy", Xs, labels, params=ps, optimizer=sg.optim.SGD(0.5), epochs=1,
               batch_size=len(Xs), shuffle=False)
    np.testing.assert_allclose(np.concatenate([p.ravel() for p in r.params]), theta - 0.5 * g, rtol=1e-12,
                               atol=1e-14)


def _offsets(net):
    sizes = [int(np.prod(p.shape)) for p in net.params]
    ends = np.cumsum(sizes)
    return ends - sizes, ends


def test_huber_deltas_share_one_module_and_each_computes_with_its_own(cache):
    """Huber's δ is read at run time (lang/constants.py, issue 21 section 3): a new δ compiles
    nothing, and each model's loss is NumPy's Huber loss at its own δ, its gradient the central
    differences of that value, and fit trains as the Python path does."""
    net = _net(3, 6, 2)
    y = sp.MatrixSymbol("y", 2, 1)
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(30, 3)), 3 * rng.normal(size=(30, 2))
    theta = np.concatenate([p.ravel() for p in net.init_params(2)])
    W1, b1, W2, b2, W3, b3 = (theta[a:b].reshape(p.shape) for p, a, b in zip(net.params, *_offsets(net)))
    z = np.maximum(np.tanh(X @ W1.T + b1.T) @ W2.T + b2.T, 0) @ W3.T + b3.T
    paths, kernels = set(), []
    for delta in (0.25, 1.0, 3.5):
        f = sg.compile(sg.losses.huber(net.expr, y, delta=delta), net.params, [net.x, y])
        r = np.abs(z - Y)
        want = np.where(r <= delta, r**2 / 2, delta * (r - delta / 2)).mean()
        assert f.value(theta, X, Y) == pytest.approx(want, rel=1e-12)
        h = 1e-6
        fd = np.array([(f.value(theta + h * e, X, Y) - f.value(theta - h * e, X, Y)) / (2 * h)
                       for e in np.eye(theta.size)])
        np.testing.assert_allclose(f.grad(theta, X, Y), fd, rtol=1e-6, atol=1e-8)
        paths.add(f.path)
        kw = dict(optimizer=sg.optim.Adam(0.01), epochs=2, batch_size=7, seed=1)
        loss = lambda p, t, d=delta: sg.losses.huber(p, t, delta=d)  # noqa: E731
        fast, ref = sg.fit(net, loss, X, Y, **kw), sg.fit(net, loss, X, Y, backend="python", **kw)
        np.testing.assert_allclose(fast.history["loss"], ref.history["loss"], rtol=1e-10)
        kernels.append(fast._mod.module)
    assert len(paths) == 1 and all(k is kernels[0] for k in kernels)
    assert len(kernels[0].train_chunk.signatures) == 1


def test_compiled_models_of_two_sizes_pickle_with_their_own_sizes():
    import pickle

    fs = []
    for width in (5, 9):
        net = _net(3, width, 2)
        y = sp.MatrixSymbol("y", 2, 1)
        fs.append((net, sg.compile(sg.losses.softmax_cross_entropy(net.expr, y), net.params, [net.x, y])))
    assert fs[0][1].path == fs[1][1].path
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(4, 3)), np.eye(2)[[0, 1, 1, 0]]
    for net, f in fs:
        back = pickle.loads(pickle.dumps(f))
        ps = net.init_params(1)
        np.testing.assert_array_equal(back.grad(ps, X, Y)[0], f.grad(ps, X, Y)[0])
        assert back.grad(ps, X, Y)[0].shape == ps[0].shape


_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import symgrad as sg
    nn = sg.nn
    width = int(sys.argv[1])
    net = nn.Sequential([nn.Dense(4, width, "tanh"), nn.Dense(width, 3)], input_shape=(4,))
    rng = np.random.default_rng(width)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    r = sg.fit(net, "softmax_cross_entropy", X, y, optimizer=sg.optim.Adam(0.01), epochs=3, batch_size=8)
    print(json.dumps(dict(loss=[float(v) for v in r.history["loss"]], file=r._mod.module.__file__)))
""")


def test_two_processes_building_two_widths_at_once(cache):
    """Both write the same module (and Numba's cache for it) at the same time: neither sees a
    broken file, each trains its own width, and a later process agrees with both."""
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(cache), PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = [sys.executable, "-c", _SCRIPT]
    procs = {w: subprocess.Popen([*run, str(w)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in (6, 10)}
    first = {}
    for w, p in procs.items():
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "rebuilding" not in err, err
        first[w] = json.loads(out.strip().splitlines()[-1])
    assert first[6]["file"] == first[10]["file"]
    assert len(list(cache.glob("sg_*.py"))) == 1 and not list(cache.rglob("*.tmp*"))
    for w in (6, 10):  # a third process, from the cache both wrote
        again = subprocess.run([*run, str(w)], env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout.strip().splitlines()[-1])["loss"] == first[w]["loss"]
    assert first[6]["loss"] != first[10]["loss"]


def test_a_damaged_size_record_is_rebuilt(cache):
    net = _net(3, 4, 2)
    X, y = _data(3, 2)
    a = sg.fit(net, "softmax_cross_entropy", X, y, epochs=1, batch_size=8, backend="python")
    (record,) = cache.glob("sg_*.dims")
    record.write_text(record.read_text() + " 1")  # its checksum no longer matches
    jit._TRUSTED.clear()
    build._BUILT.clear()  # this process's memo of built models, as a new process starts
    with pytest.warns(UserWarning, match="rebuilding"):
        b = sg.fit(net, "softmax_cross_entropy", X, y, epochs=1, batch_size=8, backend="python")
    assert b.history["loss"] == a.history["loss"]


@pytest.mark.parametrize("kind", ["transformer", "cnn"])
def test_transformers_and_cnns_of_other_sizes_share_one_module(kind):
    """Attention's heads, d, context and vocabulary, a CNN's channels and image size: sizes the
    native kernels read from their geometry. Each size trains as the Python reference path does."""
    rng = np.random.default_rng(3)
    runs = []
    for k, size in enumerate([(6, 8, 2, 5), (9, 12, 4, 7)] if kind == "transformer" else [(3, 8), (5, 10)]):
        if kind == "transformer":
            vocab, d, heads, T = size
            net, loss = nn.Transformer(vocab, d, heads, layers=1, context=T), "token_cross_entropy"
            X = rng.integers(0, vocab, (6, T)).astype(float)
            Y = np.roll(X, -1, axis=1)
        else:
            c, hw = size
            net = nn.Sequential([nn.Conv2D(1, c, 3, padding=1, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
                                 nn.Dense(c * (hw // 2) ** 2, 3)], input_shape=(1, hw, hw))
            loss, X, Y = "softmax_cross_entropy", rng.normal(size=(7, 1, hw, hw)), rng.integers(0, 3, 7)
        kw = dict(optimizer=sg.optim.Adam(0.01), epochs=2, batch_size=4, seed=k)
        fast = sg.fit(net, loss, X, Y, **kw)
        ref = sg.fit(net, loss, X, Y, backend="python", **kw)
        np.testing.assert_allclose(fast.history["loss"], ref.history["loss"], rtol=1e-9)
        for a, b in zip(fast.params, ref.params, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-11)
        runs.append(fast._mod.module)
    assert runs[0] is runs[1]
