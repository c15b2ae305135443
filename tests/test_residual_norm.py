"""Per-position layer norm, residual connections and a pre-norm transformer block (issue 16, item 2).

``sg.layernorm(x, seq=(T, d))`` and ``sg.nn.LayerNorm(d)`` on a sequence against torch's
``layer_norm`` over the last dim; ``sg.nn.Residual`` and ``sg.nn.PositionwiseDense``: shapes,
names, mistakes, gradients against finite differences; a pre-norm block that trains with sg.fit
and prints its formulas. A sequence (T, d) is one (T·d) × 1 column, position by position.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import OptionError, ShapeError
from symgrad.lang.rowwise import residual
from symgrad.native import norms, rowwise
from symgrad.runtime.srepr_io import read_nodes, write_nodes

MS = sp.MatrixSymbol
EPS = 1e-5
T, D = 4, 8
TOL = {"float64": dict(rtol=1e-9, atol=1e-11), "float32": dict(rtol=2e-4, atol=2e-5)}


def ln_rows(X, eps=EPS):
    """Each position (last axis) of X (n, T, d) normalised: NumPy, biased variance."""
    return (X - X.mean(-1, keepdims=True)) / np.sqrt(X.var(-1, keepdims=True) + eps)


def block():
    """A pre-norm transformer block, then a linear read-out of 3 classes."""
    return sg.nn.Sequential([
        sg.nn.Residual([sg.nn.LayerNorm(D), sg.nn.MultiHeadAttention(D, 2, causal=True)]),
        sg.nn.Residual([sg.nn.LayerNorm(D), sg.nn.PositionwiseDense(D, 4 * D, "gelu"), sg.nn.PositionwiseDense(4 * D, D)]),
        sg.nn.Flatten(), sg.nn.Dense(T * D, 3)], input_shape=(T, D))


def perturbed(values, seed):
    rng = np.random.default_rng(seed)
    return [v + 0.3 * rng.normal(size=v.shape) for v in values]


@pytest.fixture(scope="module")
def models():
    """The block under softmax cross-entropy on the Python backend (sg.fit builds the Numba one)."""
    m, y = block(), MS("y", 3, 1)
    f = sg.compile(sg.losses.softmax_cross_entropy(m.expr, y), m.params, [m.x, y], backend="python")
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(5, T * D)), np.eye(3)[rng.integers(0, 3, 5)]
    return types.SimpleNamespace(m=m, f=f, X=X, Y=Y, values=perturbed(m.init_params(1), 2))


# -- per-position layer norm ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_normalises_each_position(dtype):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(3, T, D)) * rng.uniform(0.01, 100, size=(3, T, 1)) + 50).astype(dtype)
    out, rs = np.empty((3, T * D), dtype=dtype), np.empty((3, T), dtype=dtype)
    norms.layernorm_fwd(x.reshape(3, -1), out, rs, EPS)
    want = ln_rows(x.astype(np.float64))
    np.testing.assert_allclose(out.reshape(3, T, D), want, **TOL[np.dtype(dtype).name])
    np.testing.assert_allclose(rs, 1 / np.sqrt(x.astype(np.float64).var(-1) + EPS), **TOL[np.dtype(dtype).name])
    torch = pytest.importorskip("torch")
    got = torch.nn.functional.layer_norm(torch.tensor(x), (D,), eps=EPS).numpy()
    np.testing.assert_allclose(out.reshape(3, T, D), got, **TOL[np.dtype(dtype).name])


def ln_net():
    return sg.nn.Sequential([sg.nn.LayerNorm(D), sg.nn.Flatten(), sg.nn.Dense(T * D, 2)], input_shape=(T, D))


def test_layernorm_layer_matches_torch_forward_and_gradients():
    net, y = ln_net(), MS("y", 2, 1)
    assert [str(p) for p in net.params] == ["gamma1", "beta1", "W3", "b3"] and net.params[0].shape == (D, 1)
    f = sg.compile(sg.msum(sp.HadamardPower(net.expr - y, 2)), net.params, [net.x, y], backend="python")
    rng = np.random.default_rng(2)
    X, Y = 3 * rng.normal(size=(6, T * D)) + 1, rng.normal(size=(6, 2))
    values = perturbed(net.init_params(0), 3)
    assert sg.check_grads(f, values, X, Y).ok
    value, grads = f.value_and_grad(values, X, Y)
    g, b, W, c = values
    want = (ln_rows(X.reshape(6, T, D)) * g.ravel() + b.ravel()).reshape(6, -1) @ W.T + c.T
    assert value == pytest.approx(np.sum((want - Y) ** 2) / 6, rel=1e-10)
    torch = pytest.importorskip("torch")
    tv = [torch.tensor(v, requires_grad=True) for v in values]
    h = torch.nn.functional.layer_norm(torch.tensor(X).reshape(6, T, D), (D,), tv[0].ravel(), tv[1].ravel(), EPS)
    out = h.reshape(6, -1) @ tv[2].T + tv[3].T
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-10, atol=1e-12)
    probe = rng.normal(size=(6, 2))  # a linear loss: compare gradients through the same seed
    fl = sg.compile(sg.msum(sp.HadamardProduct(net.expr, y)), net.params, [net.x, y], backend="python")
    (out * torch.tensor(probe)).sum().div(6).backward()
    _, ours = fl.value_and_grad(values, X, probe)
    for got, t in zip(ours, tv, strict=True):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_layernorm_seq_expression():
    x = MS("x", T * D, 1)
    e = sg.layernorm(x, seq=(T, D))
    assert (e.seq, e.shape, str(e)) == ((T, D), (T * D, 1), f"layernorm(x, seq=({T}, {D}))")
    assert read_nodes(*write_nodes(e)) == [e] and sg.layernorm(x).seq is None
    v = sp.Matrix([1, 3, 10, 20])
    got = np.array(sg.layernorm(v, eps=sp.Rational(1, 10), seq=(2, 2)), dtype=float).ravel()
    np.testing.assert_allclose(got, ln_rows(np.array([[1.0, 3], [10, 20]]), 0.1).ravel())
    with pytest.raises(ShapeError, match="Fix: e.g. seq="):
        sg.layernorm(x, seq=(3, D))
    with pytest.raises(ShapeError, match="at least 2 features"):
        sg.layernorm(x, seq=(T * D, 1))
    with pytest.raises(ShapeError, match=r"Fix: LayerNorm\(8\) per position, or LayerNorm\(32\)"):
        sg.nn.Sequential([sg.nn.LayerNorm(5), sg.nn.Flatten(), sg.nn.Dense(32, 1)], input_shape=(T, D))
    whole = sg.nn.Sequential([sg.nn.LayerNorm(T * D), sg.nn.Flatten(), sg.nn.Dense(32, 1)], input_shape=(T, D))
    (n,) = [a for a in sp.preorder_traversal(whole.expr) if isinstance(a, sg.layernorm)]
    assert n.seq is None  # LayerNorm(T·d) still normalises the whole sequence


# -- Residual and PositionwiseDense ---------------------------------------------------------------


def test_positionwise_dense_forward_and_gradients():
    net = sg.nn.Sequential([sg.nn.PositionwiseDense(D, 3, "tanh"), sg.nn.Flatten(), sg.nn.Dense(T * 3, 1)],
                           input_shape=(T, D))
    assert [(str(p), p.shape) for p in net.params[:2]] == [("W1", (D, 3)), ("b1", (3, 1))]
    f = sg.compile(sg.msum(sp.HadamardPower(net.expr, 2)), net.params, [net.x], backend="python")
    rng = np.random.default_rng(5)
    X, values = rng.normal(size=(4, T * D)), perturbed(net.init_params(0), 6)
    W, b, V, c = values
    want = np.tanh(X.reshape(4, T, D) @ W + b.ravel()).reshape(4, -1) @ V.T + c.T
    assert f.value(values, X) == pytest.approx(np.sum(want ** 2) / 4, rel=1e-10)  # the mean over samples
    assert sg.check_grads(f, values, X).ok
    out = np.empty((4, T * 3))
    rowwise.rowmatmul_fwd(X, W, out)
    np.testing.assert_allclose(out.reshape(4, T, 3), X.reshape(4, T, D) @ W)


def test_residual_names_shapes_and_gradients():
    net = sg.nn.Sequential([sg.nn.Dense(3, 4, "tanh"), sg.nn.Residual([sg.nn.Dense(4, 6, "tanh"), sg.nn.Dense(6, 4)]),
                            sg.nn.Dense(4, 2)], input_shape=3)
    assert [str(p) for p in net.params] == ["W1", "b1", "W3", "b3", "W4", "b4", "W5", "b5"]
    a1, a3 = "Lambda(z, tanh(z)).(W1*x + b1)", "Lambda(z, tanh(z)).(W3*a1 + b3)"
    assert "r2" in net.labels.values() and str(net.expr).replace(a1, "a1").replace(a3, "a3") == "W5*(a1 + W4*a3 + b4) + b5"
    f = sg.compile(sg.losses.mse(net.expr, MS("y", 2, 1)), net.params, [net.x, MS("y", 2, 1)], backend="python")
    rng = np.random.default_rng(7)
    assert sg.check_grads(f, perturbed(net.init_params(0), 8), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))).ok
    text = str(sg.formulas(net, "mse"))
    assert "  r2 = a1 + z4" in text and "  δ_a1 = W3ᵀ·δ_z3 + δ_r2" in text


def test_residual_mistakes_say_the_fix():
    with pytest.raises(ShapeError, match=r"Fix: end the block with PositionwiseDense\(16, 8\)"):
        sg.nn.Sequential([sg.nn.Residual([sg.nn.PositionwiseDense(D, 16)]), sg.nn.Flatten(), sg.nn.Dense(64, 1)],
                         input_shape=(T, D))
    with pytest.raises(ShapeError, match=r"Fix: end the block with Dense\(5, 3\)"):
        sg.nn.Sequential([sg.nn.Residual([sg.nn.Dense(3, 5)]), sg.nn.Dense(5, 1)], input_shape=3)
    with pytest.raises(OptionError, match="Fix: e.g. Residual"):
        sg.nn.Residual([])
    with pytest.raises(ShapeError, match=r"Fix: PositionwiseDense\(8, 4"):
        sg.nn.Sequential([sg.nn.PositionwiseDense(5, 4), sg.nn.Flatten(), sg.nn.Dense(16, 1)], input_shape=(T, D))
    with pytest.raises(ShapeError, match="takes a sequence"):
        sg.nn.Sequential([sg.nn.PositionwiseDense(3, 4)], input_shape=3)


# -- the pre-norm block ---------------------------------------------------------------------------


def test_block_names_and_expression(models):
    m = models.m
    assert [str(p) for p in m.params] == ["gamma2", "beta2", "Wq3", "Wk3", "Wv3", "Wo3", "gamma5", "beta5",
                                          "W6", "b6", "W7", "b7", "W9", "b9"]
    assert str(m.expr).startswith("W9*(x + attention(") and read_nodes(*write_nodes(m.expr)) == [m.expr]
    (r4,) = [e for e in sp.preorder_traversal(m.expr) if m.labels.get(e) == "r4"]
    assert isinstance(r4, residual) and str(r4.args[1]).startswith("broadcast(b7, 4) + rowmatmul(")


def test_block_gradients_match_finite_differences(models):
    assert sg.check_grads(models.f, models.values, models.X, models.Y).ok


@pytest.mark.numba
def test_block_trains_with_fit_and_its_numba_gradient_equals_python(models):
    """Whether the last position's first feature exceeds the first position's: the block must look
    back. Then one full-batch SGD step of the same (built once) float32 kernel from known parameters:
    (before - after)/lr is its gradient, against the Python backend's."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(256, T, D))
    y = (X[:, -1, 0] > X[:, 0, 0]).astype(int)
    m = sg.fit(block(), "cross_entropy", X.reshape(256, -1), y, optimizer=sg.optim.SGD(0.1), epochs=30,
               batch_size=32, dtype="float32", seed=1)
    assert m.history["loss"][-1] < 0.5 * m.history["loss"][0]
    lr, ps = 1e-2, [v.astype(np.float32) for v in models.values]
    labels = models.Y.argmax(1)
    step = sg.fit(block(), "cross_entropy", models.X.astype(np.float32), labels, optimizer=sg.optim.SGD(lr), epochs=1,
                  batch_size=len(labels), dtype="float32", params=[p.copy() for p in ps])
    _, want = models.f.value_and_grad(models.values, models.X, models.Y)
    for before, after, g in zip(ps, step.params, want, strict=True):
        np.testing.assert_allclose((before - after) / lr, g, rtol=1e-3, atol=1e-4)


def test_block_prints_its_formulas():
    text = str(sg.formulas(block(), "cross_entropy"))
    for line in ["  n2 = layernorm_pos(x)", "  z2 = beta2 + gamma2 ⊙ n2", "  r1 = a3 + x", "  z6 = z5·W6 + b6",
                 "  r4 = r1 + z7", "  z9 = W9·r4 + b9",
                 "  δ_r1 = δ_r4 + (δ_n5 - rowmean(δ_n5) - n5 ⊙ rowmean(n5 ⊙ δ_n5))/σ_r1",  # both paths
                 "  δ_a6 = δ_z7·W7ᵀ", "  ∂ℓ/∂W6 = z5ᵀ·δ_z6", "  ∂ℓ/∂b6 = Σ_t δ_z6", "  ∂ℓ/∂gamma5 = Σ_t (n5 ⊙ δ_z5)",
                 "Normalisation: layernorm_pos(X) = (X - rowmean(X))/σ_X", "per position",
                 "Sequence: Σ_t sums over the positions"]:
        assert line in text, (line, text)
    latex = sg.formulas(block(), "cross_entropy").latex()
    assert r"\operatorname{layernorm}_{\text{pos}}" in latex and r"\operatorname{rowmean}" in latex
