"""The table of tensor kinds (``symgrad/kinds``): a new kind is one class, defined here in the
test file itself, that lowers, generates forward and backward code, prints its delta rule, and
trains; its gradient is checked against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.derive.ir import TNode
from symgrad.explain.notation import sym
from symgrad.kinds import KINDS, Kind, register

MS = sp.MatrixSymbol


class scale(sp.MatrixExpr):  # noqa: N801 (named like SymPy's functions)
    """s ⊙ X for a learned 1×1 scale s: the toy kind."""

    def __new__(cls, s, x):
        return sp.Basic.__new__(cls, s, x)

    @property
    def shape(self):
        return self.args[1].shape


@pytest.fixture(scope="module")
def scale_kind():
    @register
    class Scale(Kind):
        name = "scale"
        lowers = (scale,)

        def lower(self, lowerer, e):
            s, x = (lowerer.matrix(a) for a in e.args)
            return lowerer._add(TNode("scale", "", x.shape, True, [s, x]), e)

        def forward(self, prog, n):
            s, x = n.inputs
            return prog.decl(n.name, n) + [
                "    for i in range(B):", f"        for j in range({n.length}):",
                f"            {n.name}[i, j] = {prog.flat(s, prog.v(s))}[0] * {prog.v(x)}[i, j]"]

        def backward(self, prog, n):
            s, x = n.inputs
            lines = ["    for i in range(B):", f"        for j in range({n.length}):"]
            if id(x) in prog.need:
                lines.append(f"            {prog.d(x)}[i, j] += {prog.flat(s, prog.v(s))}[0] * {prog.d(n)}[i, j]")
            if id(s) in prog.need:
                lines.append(f"            {prog.dflat(s)}[0] += {prog.v(x)}[i, j] * {prog.d(n)}[i, j]")
            return lines

        def delta(self, c, n):
            s, x = n.inputs
            c.add(x, c.ref(n) * sym(s.label))
            c.add(s, sym(f"Σ({x.label} ⊙ ({c.ref(n)}))"))

    yield KINDS["scale"]
    del KINDS["scale"]


class ScaledNet:
    """W2 · (s ⊙ tanh(W1·x + b1)): a model with the toy kind in its middle."""

    def __init__(self):
        self.x = MS("x", 3, 1)
        self.W1, self.b1, self.s, self.W2 = MS("W1", 4, 3), MS("b1", 4, 1), MS("s", 1, 1), MS("W2", 2, 4)
        self.params = [self.W1, self.b1, self.s, self.W2]
        self.expr = self.W2 * scale(self.s, (self.W1 * self.x + self.b1).applyfunc(sp.tanh))

    def init_params(self, seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        return [(0.5 * rng.normal(size=p.shape)).astype(dtype) for p in self.params]


def test_a_new_kind_compiles_with_exact_gradients(scale_kind):
    net, y = ScaledNet(), MS("y", 2, 1)
    f = sg.compile(sg.losses.mse(net.expr, y), net.params, [net.x, y], backend="python")
    assert "# v" in f.source and ": scale" in f.source  # the kind's own forward emitter ran
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    assert sg.check_grads(f, net.init_params(2), X, Y).fd_error < 1e-7
    numba = sg.compile(sg.losses.mse(net.expr, y), net.params, [net.x, y])
    ps = net.init_params(3)
    for a, b in zip(numba.grad(ps, X, Y), f.grad(ps, X, Y), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_a_new_kind_trains_and_prints(scale_kind):
    net = ScaledNet()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    Y = np.tanh(X @ rng.normal(size=(3, 2)))
    m = sg.fit(net, "mse", X, Y, optimizer=sg.optim.Adam(0.05), epochs=30, batch_size=16, backend="python")
    assert m.history["loss"][-1] < 0.5 * m.history["loss"][0]
    text = str(sg.formulas(net, "mse"))
    assert "v9 = scale(s, v8)" in text  # the default show(): kind(inputs)
    assert "∂ℓ/∂s = Σ(v8 ⊙ (W2ᵀ·(W2·v9 - y)))" in text  # the kind's own delta rule
    assert "∂ℓ/∂b1 = (W2ᵀ·(W2·v9 - y)) ⊙ s ⊙ (1 - v8^2)" in text  # and the map's, through it


def test_the_built_in_kinds_are_one_table():
    assert {"map", "matmul", "sum", "select", "softmax", "logsumexp", "softmax_ce"} <= set(KINDS)
    for k in KINDS.values():  # each overrides its emitters and its delta rule
        assert type(k).forward is not Kind.forward and type(k).backward is not Kind.backward
        assert type(k).delta is not Kind.delta
