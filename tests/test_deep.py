"""Deep models: loss_grad is outlined into segment functions; gradients stay exact."""

import re
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from optim_oracle import reference_step

import symgrad as sg
from symgrad.build import generate


def _deep(depth):
    net = sg.nn.MLP([3] + [5] * depth + [2], activation="tanh")
    y = sp.MatrixSymbol("y", 2, 1)
    return net, y, sg.losses.softmax_cross_entropy(net.expr, y)


def test_deep_loss_grad_is_outlined_and_exact():
    net, y, loss = _deep(14)
    f = sg.compile(loss, net.params, [net.x, y], backend="python")
    assert "def fwd_seg0(" in f.source and "def bwd_seg0(" in f.source
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(7, 3)), np.eye(2)[rng.integers(0, 2, 7)]
    assert sg.check_grads(f, net.init_params(0), X, Y).fd_error < 1e-7


def test_outlined_and_inline_give_identical_gradients(monkeypatch):
    import symgrad.codegen.program as program

    net, y, loss = _deep(14)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(5, 3)), np.eye(2)[rng.integers(0, 2, 5)]
    ps = net.init_params(2)
    outlined = sg.compile(loss, net.params, [net.x, y], backend="python").value_and_grad(ps, X, Y)
    monkeypatch.setattr(program, "OUTLINE_NODES", 10**6)
    src, dims = generate(loss, net.params, [net.x, y], "mean", "float64")
    assert "fwd_seg0" not in src
    ns: dict = {"_JIT": False}
    exec(compile(src, "<inline>", "exec"), ns)  # the reference twin, inline
    g = np.empty(sum(p.size for p in ps))
    v = ns["loss_grad"](dims, np.concatenate([p.ravel() for p in ps]), X, Y, g)
    assert v == outlined[0]
    np.testing.assert_array_equal(g, np.concatenate([b.ravel() for b in outlined[1]]))


def test_repeated_layers_share_segment_functions():
    """A deep stack of equal layers compiles a handful of segment functions, not one per call."""
    net, y, loss = _deep(30)
    src, _ = generate(loss, net.params, [net.x, y], "mean", "float64")
    defs = re.findall(r"^def (\w+_seg\d+)\(", src, re.M)
    calls = re.findall(r"^    (?:[\w, ]+ = )?(\w+_seg\d+)_c\(", src, re.M)
    assert len(calls) >= 20 and len(defs) <= 6 and set(calls) == set(defs)
    # the glue is not optimised, and calls segments through overloads so Numba can cache it
    assert "@jit_glue\ndef loss_grad(" in src and "fwd_seg0_c = callee(fwd_seg0)" in src


def test_deep_training_kernel_equals_unfused_steps():
    """The glued training loop (loss_grad called per step, flat parameter buffer) against
    value_and_grad + the optimizer's reference step, on the Python reference path."""
    net, y, loss = _deep(14)
    f = sg.compile(loss, net.params, [net.x, y], backend="python")
    rng = np.random.default_rng(3)
    X, labels = rng.normal(size=(10, 3)), rng.integers(0, 2, 10)
    init, opt = net.init_params(4), sg.optim.Adam(0.01, clip_norm=0.5)
    m = sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=opt, epochs=2, batch_size=4, shuffle=False,
               params=[p.copy() for p in init], backend="python")
    assert "@jit_glue\ndef train_chunk(" in m._mod.__loader__.get_data(m._mod.__file__).decode()
    ps, states, t = [p.copy() for p in init], [opt.init_state(p.shape) for p in init], 0
    for _ in range(2):
        for s in range(0, 10, 4):
            _, gs = f.value_and_grad(ps, X[s:s + 4], np.eye(2)[labels[s:s + 4]])
            scale = sg.optim.clip_scale(float(np.sqrt(sum((g * g).sum() for g in gs))), 0.5)
            t += 1
            for p, g, st in zip(ps, gs, states, strict=True):
                reference_step(opt, p, g * scale, st, t)
    for got, want in zip(m.params, ps, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13)


@pytest.mark.numba
def test_deep_numba_kernel_is_cacheable_and_matches_python():
    """The glued deep training kernel under Numba: same parameters as the Python path, and
    cacheable. (A function Numba cannot cache is recompiled in every new process: the
    unoptimised glue once called segments as dispatchers, whose references Numba counts as
    'dynamic globals', and a 32-layer warm start took 25 s.)"""
    net, _, _ = _deep(14)
    rng = np.random.default_rng(5)
    X, labels = rng.normal(size=(10, 3)), rng.integers(0, 2, 10)
    kw = {"optimizer": sg.optim.Adam(0.01), "epochs": 2, "batch_size": 4, "params": net.init_params(6)}
    m = sg.fit(net, "softmax_cross_entropy", X, labels, **kw)
    ref = sg.fit(net, "softmax_cross_entropy", X, labels, backend="python", **kw)
    for got, want in zip(m.params, ref.params, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    (cres,) = m._mod.train_chunk.overloads.values()  # loss_grad and the segments are linked into it
    assert not cres.library.has_dynamic_globals, "Numba cannot cache this training kernel"


@pytest.mark.numba
@pytest.mark.parametrize("sizes", [[64, 64, 2], [3, 4, 2]], ids=["wide", "tiny"])
def test_shallow_model_trains_through_glue_and_is_cacheable(sizes):
    """Every training loop, a tiny model's too, is compiled as glue (no LLVM optimiser, kernels
    called through overloads): same parameters as the Python path, and Numba can still cache it.
    Clipping is on, so the clip kernel runs."""
    net = sg.nn.MLP(sizes, activation="relu")
    rng = np.random.default_rng(8)
    X, labels = rng.normal(size=(20, sizes[0])), rng.integers(0, 2, 20)
    kw = {"optimizer": sg.optim.Adam(0.01, clip_norm=0.5), "epochs": 2, "batch_size": 8, "params": net.init_params(2)}
    m = sg.fit(net, "softmax_cross_entropy", X, labels, **kw)
    ref = sg.fit(net, "softmax_cross_entropy", X, labels, backend="python", **kw)
    for got, want in zip(m.params, ref.params, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    assert "@jit_glue\ndef train_chunk(" in Path(m._mod.__file__).read_text()
    (cres,) = m._mod.train_chunk.overloads.values()
    assert not cres.library.has_dynamic_globals, "Numba cannot cache this training kernel"
