"""Deep models: loss_grad is outlined into segment functions; gradients stay exact."""

import numpy as np
import sympy as sp

import symgrad as sg
from symgrad.tensor.api import generate


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
    import symgrad.tensor.program as program

    net, y, loss = _deep(14)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(5, 3)), np.eye(2)[rng.integers(0, 2, 5)]
    ps = net.init_params(2)
    outlined = sg.compile(loss, net.params, [net.x, y], backend="python").value_and_grad(ps, X, Y)
    monkeypatch.setattr(program, "OUTLINE_NODES", 10**6)
    src = generate(loss, net.params, [net.x, y], "mean", "float64")
    assert "fwd_seg0" not in src
    ns: dict = {"_JIT": False}
    exec(compile(src, "<inline>", "exec"), ns)  # the reference twin, inline
    gs = [np.empty_like(p) for p in ps]
    v = ns["loss_grad"](*ps, X, Y, *gs)
    assert v == outlined[0]
    for a, b in zip(gs, outlined[1]):
        np.testing.assert_array_equal(a, b)
