"""Issue 21, section 2: a layer kind's kernels are compiled once and shared by every model that
holds them (symgrad/shared_kernels.py). A new depth compiles only its glue; a glue function
read back from Numba's cache calls the kernels by address in a new process; the numbers are
the Python reference path's."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from numba.core import event

import symgrad as sg
from symgrad import shared_kernels

ROOT = str(Path(__file__).resolve().parents[1])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(d))
    return d


class _Compiled(event.Listener):
    """The files whose functions Numba compiles (or loads from its cache) while listening."""

    def __init__(self):
        self.files: list[str] = []

    def on_start(self, ev):
        self.files.append(Path(ev.data["dispatcher"].py_func.__code__.co_filename).name)

    def on_end(self, ev):
        pass


def _fit(hidden, X, y, backend="numba"):
    net = sg.nn.MLP([X.shape[1], *hidden, 4], activation="relu")
    return sg.fit(net, "softmax_cross_entropy", X, y, optimizer=sg.optim.Adam(0.01), epochs=2,
                  batch_size=16, seed=3, backend=backend)


def _data(n_in=12, rows=40):
    rng = np.random.default_rng(0)
    return rng.normal(size=(rows, n_in)).astype(np.float32), rng.integers(0, 4, rows)


def test_a_new_depth_compiles_only_its_glue(cache):
    """The second depth's fit compiles functions of its own module only: every kernel it calls
    is the first depth's, from the shared files. Both train to the Python path's numbers."""
    X, y = _data()
    first = _fit((80, 60), X, y)
    kernels = {p.name for p in cache.glob("sgk_*.py")}
    assert kernels
    listener = _Compiled()
    with event.install_listener("numba:compile", listener):
        second = _fit((70, 60, 50), X, y)
    module = Path(second._mod.module.__file__).name
    assert module != Path(first._mod.module.__file__).name
    assert listener.files and set(listener.files) <= {module, "arrayobj.py", "builtins.py"}, listener.files
    assert {p.name for p in cache.glob("sgk_*.py")} == kernels  # no new kernel file
    for fit in (first, second):
        ref = _fit(tuple(p.shape[0] for p in fit.params[:-2:2]), X, y, backend="python")
        np.testing.assert_allclose(fit.history["loss"], ref.history["loss"], rtol=2e-5)
        for a, b in zip(fit.params, ref.params, strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba.core import event
    import symgrad as sg
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 12)).astype(np.float32), rng.integers(0, 4, 40)
    compiled = []
    class L(event.Listener):
        def on_start(self, ev):
            compiled.append(ev.data["dispatcher"].py_func.__name__)
        def on_end(self, ev):
            pass
    with event.install_listener("numba:compile", L()):
        net = sg.nn.MLP([12, 70, 60, 50, 4], activation="relu")
        fit = sg.fit(net, "softmax_cross_entropy", X, y, optimizer=sg.optim.Adam(0.01), epochs=2,
                     batch_size=16, seed=3)
    stats = fit._mod.module.train_chunk.stats
    print("RESULT " + json.dumps({"loss": fit.history["loss"], "hits": sum(stats.cache_hits.values()),
                                  "misses": sum(stats.cache_misses.values())}))
""")


def _run(cache: Path) -> dict:
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(cache), PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.split("RESULT ")[-1])


def test_cached_glue_calls_the_kernels_in_a_new_process(cache):
    """A new process reads the training loop from Numba's cache (it re-registers the kernels'
    symbols before the code loads) and trains to the same numbers; with the kernels' compiled
    code deleted, the kernels compile again and the cached loop still calls them."""
    cold = _run(cache)
    assert cold["misses"] == 1
    warm = _run(cache)
    assert warm["hits"] == 1 and warm["misses"] == 0
    assert warm["loss"] == cold["loss"]
    for f in (cache / "__pycache__").glob("sgk_*"):
        f.unlink()
    again = _run(cache)
    assert again["hits"] == 1 and again["loss"] == cold["loss"]


def test_only_standalone_kernels_are_shared():
    """A kernel is shared with the definitions it reads; one that reads the model's own
    functions or constants stays in the module."""
    text = textwrap.dedent('''
        import numba
        from symgrad.native import attention
        F = np.float32
        LIMIT = F(3.0)
        SIZED = ('loss',)


        @jit_inline
        def relu(z):
            return z if z > F(0.0) else F(0.0)


        @jit
        def map0_fwd(a, out):
            for i in range(a.shape[0]):
                out[i] = relu(a[i])


        @jit
        def attend(a):
            attention.attention_fwd(a)


        @jit
        def clipped(a):
            return min(a, LIMIT)


        @jit
        def loss(dims, a):
            return map0_fwd(a, a)


        @jit
        def uses_loss(dims, a):
            return loss(dims, a)


        @jit_glue
        def train_chunk(dims, a):
            map0_fwd_c(a, a)
    ''')
    shared = shared_kernels.shareable(text, ("loss",))
    assert list(shared) == ["relu", "attend", "map0_fwd"]  # each after the kernels it calls
    block, calls, imports = shared["map0_fwd"]
    # named for no model: map0_fwd of one model is map2_fwd of another
    assert block.startswith("@jit\ndef shared(a, out):") and calls == ["relu"] and imports == []
    assert shared["attend"][2] == ["from symgrad.native import attention"]
    source = shared_kernels.kernel_source("float32", block, {"relu": "sgk_0.py"})
    assert "relu = kernel('sgk_0.py')" in source and "F = np.float32" in source


def test_a_new_mix_of_kinds_shares_the_kernels_it_has_seen(cache):
    """Kernel files name no model: a tanh layer before the ReLU renumbers the map kernels
    (ReLU's is map0 in one model and another number in the next), and the ReLU kernel is still
    the one compiled for the first model."""
    X, y = _data()
    relu = _fit((80, 60), X, y)._mod.module
    nn = sg.nn
    net = nn.Sequential([nn.Dense(12, 80, "tanh"), nn.Dense(80, 60, "relu"), nn.Dense(60, 4)], input_shape=(12,))
    mixed = sg.fit(net, "softmax_cross_entropy", X, y, optimizer=sg.optim.Adam(0.01), epochs=2, batch_size=16, seed=3)
    module = mixed._mod.module
    assert "relu" in relu.map0_fwd.py_func.__globals__ and "map0_fwd" in vars(module)
    assert module.map0_fwd is not relu.map0_fwd  # tanh's
    assert any(v is relu.map0_fwd for k, v in vars(module).items() if k.startswith("map") and k != "map0_fwd")
    ref = sg.fit(net, "softmax_cross_entropy", X, y, optimizer=sg.optim.Adam(0.01), epochs=2, batch_size=16,
                 seed=3, backend="python")
    np.testing.assert_allclose(mixed.history["loss"], ref.history["loss"], rtol=2e-5)


def test_with_numba_disabled_the_module_runs_as_python(tmp_path):
    """NUMBA_DISABLE_JIT=1 makes every decorator return the plain function: the loader then runs
    the module as the Python path (nothing to share), and training matches that path."""
    code = textwrap.dedent("""
        import numpy as np, symgrad as sg
        rng = np.random.default_rng(0)
        X, y = rng.normal(size=(40, 12)), rng.integers(0, 4, 40)
        kw = dict(epochs=1, batch_size=16, seed=1)
        net = sg.nn.MLP([12, 80, 60, 4], activation="relu")
        a = sg.fit(net, "softmax_cross_entropy", X, y, **kw).history["loss"]
        b = sg.fit(net, "softmax_cross_entropy", X, y, backend="python", **kw).history["loss"]
        print("RESULT", a == b, a[0] > 0)
    """)
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(tmp_path), PYTHONPATH=ROOT, NUMBA_DISABLE_JIT="1")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split("RESULT ")[-1].split() == ["True", "True"]


def test_prebuild_makes_a_first_model_compile_only_its_glue(cache):
    """After a prebuild of the kinds a model uses, its first fit writes no kernel file and
    compiles only its own module's functions; unknown choices are refused with the fix."""
    from symgrad import prebuild
    from symgrad.__main__ import main
    from symgrad.errors import OptionError

    done = prebuild.prebuild(dtypes=("float32",), activations=("relu",), losses=("softmax_cross_entropy",),
                             optimizers=("Adam",))
    assert [r[:4] for r in done] == [("float32", "relu", "softmax_cross_entropy", "Adam")]
    kernels = {p.name for p in cache.glob("sgk_*.py")}
    X, y = _data()
    listener = _Compiled()
    with event.install_listener("numba:compile", listener):
        fit = _fit((70, 60, 50), X, y)
    assert {p.name for p in cache.glob("sgk_*.py")} == kernels
    assert set(listener.files) <= {Path(fit._mod.module.__file__).name, "arrayobj.py", "builtins.py"}
    with pytest.raises(OptionError, match="swish"):
        prebuild.prebuild(activations=("swish",))
    assert main(["prebuild", "--dtype", "float16"]) == 2  # the same check, printed


_PAR_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import symgrad as sg
    from symgrad.runtime.execution import fit_threads, sample_work
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(12, 1000)) / 30, rng.integers(0, 3, 12)
    net = sg.nn.MLP([1000, 1000, 3], activation="tanh")  # 1M multiply-adds per row: blocks of 2
    fit = sg.fit(net, "softmax_cross_entropy", X, y, optimizer=sg.optim.Adam(0.01), epochs=2, batch_size=4, seed=3)
    stats = fit._mod.module.train_chunk_par.stats
    print("RESULT " + json.dumps({"loss": fit.history["loss"], "hits": sum(stats.cache_hits.values()),
                                  "misses": sum(stats.cache_misses.values()),
                                  "blocks": fit_threads(4, work=sample_work(net.expr))}))
""")


def test_cached_parallel_loop_calls_loss_grad_in_a_new_process(cache):
    """The row blocks' kernel calls the module's loss_grad by address (no copy of it linked in):
    read back from Numba's cache in a new process, it registers that symbol again and trains to
    the same numbers."""
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(cache), PYTHONPATH=ROOT)
    runs = []
    for _ in range(2):
        p = subprocess.run([sys.executable, "-c", _PAR_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
        runs.append(json.loads(p.stdout.split("RESULT ")[-1]))
    cold, warm = runs
    if cold["blocks"] < 2:
        pytest.skip("Numba has one thread here: fit never splits a batch")
    assert cold["misses"] == 1 and warm["hits"] == 1 and warm["misses"] == 0
    assert warm["loss"] == cold["loss"]
