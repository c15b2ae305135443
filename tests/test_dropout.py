"""Dropout (issue 18): the mask, the training gradient against oracles that share no code with the
generator, fit's use of it (one thread or two, straight or resumed), inference, and bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import OptionError, ShapeError, UnsupportedModelError
from symgrad.native.noise import dropout_bwd, dropout_fwd, keep_u, step_key

nn = sg.nn
M64 = (1 << 64) - 1


def _mix(z: int) -> int:
    """SplitMix64's finaliser in Python integers: the mask's definition, written again."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _mask(key: int, rows: int, cols: int, p: float, row0: int = 0) -> np.ndarray:
    g = 0x9E3779B97F4A7C15
    u = [[(_mix(key ^ _mix(((r + row0) * g + c) & M64)) >> 11) / 2.0**53 for c in range(cols)] for r in range(rows)]
    return (np.array(u) >= p).astype(float)


def _net(p=0.4, widths=(5, 7, 3)):
    return nn.Sequential([nn.Dense(widths[0], widths[1], "tanh"), nn.Dropout(p), nn.Dense(widths[1], widths[2])],
                         widths[0])


def _data(n=40, d=5, k=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)


@pytest.fixture(scope="module")
def trained():
    X, Y = _data()
    return sg.fit(_net(), "mse", X, Y, epochs=0, optimizer=sg.optim.SGD(0.1))


def test_mask_is_the_hash_its_rate_p_and_kept_entries_scaled():
    key = int(step_key(7, 3))
    x, out = np.ones((300, 40)), np.empty((300, 40))
    dropout_fwd(x, out, 0.3, key, 0)
    m = _mask(key, 300, 40, 0.3)
    assert np.array_equal(out, m / 0.7)  # exactly the hash written again in Python integers
    assert abs((out == 0).mean() - 0.3) < 0.015  # 12,000 draws: 0.3 ± 3.6σ
    assert not np.array_equal(out[:, :20], out[:, 20:]) and not np.array_equal(out[:150], out[150:])
    tail = np.empty((100, 40))
    dropout_fwd(x[200:], tail, 0.3, key, 200)  # a row block starting at row 200 draws rows 200..299
    assert np.array_equal(tail, out[200:])
    other = np.empty_like(out)
    dropout_fwd(x, other, 0.3, int(step_key(7, 4)), 0)
    assert 0.3 < (other != out).mean() < 0.5  # the next step: a new mask (2·0.3·0.7 = 0.42 differ)
    dropout_fwd(x, other, 0.3, 0, 0)
    assert np.array_equal(other, x)  # key 0: inference
    dx = np.full((300, 40), 5.0)
    dropout_bwd(np.ones((300, 40)), dx, 0.3, key, 0, False)
    assert np.array_equal(dx, 5.0 + m / 0.7)
    assert all(step_key(s, t) != 0 for s in (0, 1, 2**62) for t in (0, 1, 10**9))
    assert 0.0 <= keep_u(key, 0, 0) < 1.0


def _numpy_loss_grad(ps, X, Y, mask, p):
    """mse (the mean over outputs and samples) of W3·(m ⊙ tanh(W1 x + b1))/(1 − p) + b3, and its
    gradient, by hand."""
    W1, b1, W3, b3 = ps
    z1 = X @ W1.T + b1.T
    a1 = np.tanh(z1)
    d2 = mask * a1 / (1 - p)
    z3 = d2 @ W3.T + b3.T
    n, k = Y.shape
    loss = np.sum((z3 - Y) ** 2) / k / n
    dz3 = 2 * (z3 - Y) / k / n
    dd2 = dz3 @ W3
    dz1 = mask * dd2 / (1 - p) * (1 - a1**2)
    return loss, [dz1.T @ X, dz1.sum(0)[:, None], dz3.T @ d2, dz3.sum(0)[:, None]]


def test_training_gradient_matches_numpy_and_finite_differences(trained):
    X, Y = _data()
    theta = np.concatenate([p.ravel() for p in trained.params])
    key = int(step_key(11, 0))
    g = np.empty_like(theta)
    loss = trained._mod.loss_grad(theta, X, Y, g, key, 0)
    want_loss, want = _numpy_loss_grad([p.copy() for p in trained.params], X, Y, _mask(key, 40, 7, 0.4), 0.4)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(g, np.concatenate([w.ravel() for w in want]), rtol=1e-10, atol=1e-12)
    # central differences of the compiled loss under the same (fixed) mask
    h, scratch = 1e-6, np.empty_like(theta)
    for j in range(0, theta.size, 5):
        e = np.zeros_like(theta)
        e[j] = h
        fd = (trained._mod.loss_grad(theta + e, X, Y, scratch, key, 0)
              - trained._mod.loss_grad(theta - e, X, Y, scratch, key, 0)) / (2 * h)
        assert fd == pytest.approx(g[j], rel=1e-5, abs=1e-8)
    # without a key (evaluate, f.grad): inference, the network without its Dropout
    g0 = np.empty_like(theta)
    loss0 = trained._mod.loss_grad(theta, X, Y, g0)
    want0, wantg0 = _numpy_loss_grad([p.copy() for p in trained.params], X, Y, np.ones((40, 7)), 0.0)
    assert loss0 == pytest.approx(want0, rel=1e-12)
    np.testing.assert_allclose(g0, np.concatenate([w.ravel() for w in wantg0]), rtol=1e-10, atol=1e-12)


def test_fit_takes_each_step_with_that_steps_mask():
    """One full-batch SGD epoch without shuffling is θ − lr·∇ℓ under the mask of (epoch seed, step 0)."""
    X, Y = _data()
    net = _net()
    start = net.init_params(3)
    m = sg.fit(net, "mse", X, Y, epochs=1, batch_size=40, shuffle=False, seed=3, optimizer=sg.optim.SGD(0.5))
    seed = int(np.random.default_rng(3).integers(1, 2**62, size=1)[0])  # fit's per-epoch seed
    _, g = _numpy_loss_grad(start, X, Y, _mask(int(step_key(seed, 0)), 40, 7, 0.4), 0.4)
    for got, p0, gk in zip(m.params, start, g):
        np.testing.assert_allclose(got, p0 - 0.5 * gk, rtol=1e-10, atol=1e-12)


def test_two_threads_draw_what_one_thread_draws_and_resume_is_exact():
    X, Y = _data(n=4096, d=5, k=3, seed=1)
    net = _net(0.25)
    kw = dict(batch_size=4096, optimizer=sg.optim.Adam(1e-2), seed=5)
    one = sg.fit(net, "mse", X, Y, epochs=4, threads=1, **kw)
    two = sg.fit(net, "mse", X, Y, epochs=4, threads=2, **kw)  # row blocks of 2048, one per thread
    for a, b in zip(one.params, two.params):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)  # the same masks; sums in another order
    small = dict(batch_size=64, optimizer=sg.optim.Adam(1e-2), seed=5)
    straight = sg.fit(net, "mse", X[:512], Y[:512], epochs=4, **small)
    half = sg.fit(net, "mse", X[:512], Y[:512], epochs=2, **small)
    resumed = sg.fit(net, "mse", X[:512], Y[:512], epochs=2, resume=pickle.loads(pickle.dumps(half)), **small)
    for a, b in zip(straight.params, resumed.params):
        np.testing.assert_array_equal(a, b)
    shorter_chunks = sg.fit(net, "mse", X[:512], Y[:512], epochs=4, chunk_epochs=1, **small)
    for a, b in zip(straight.params, shorter_chunks.params):
        np.testing.assert_array_equal(a, b)


def test_inference_is_the_network_without_dropout(tmp_path):
    X, Y = _data(dtype=np.float32)
    m = sg.fit(_net(0.5), "mse", X, Y, epochs=3, optimizer=sg.optim.Adam(1e-2))
    assert m.dtype == np.float32 and m.params[0].dtype == np.float32
    plain = nn.Sequential([nn.Dense(5, 7, "tanh"), nn.Dense(7, 3)], 5)
    ref = sg.fit(plain, "mse", X, Y, epochs=0, params=[p.copy() for p in m.params])
    np.testing.assert_array_equal(m.predict(X), ref.predict(X))
    assert m.evaluate(X, Y)["loss"] == pytest.approx(ref.evaluate(X, Y)["loss"], rel=1e-6)
    m.save(tmp_path / "drop.npz")
    back = sg.load(tmp_path / "drop.npz")
    assert "dropout" in str(back.model.expr)
    np.testing.assert_array_equal(back.predict(X), m.predict(X))


def test_a_formula_model_with_dropout_compiles_in_inference():
    net, y = _net(), sp.MatrixSymbol("y", 3, 1)
    f = sg.compile(sg.losses.mse(net.expr, y), net.params, [net.x, y])
    X, Y = _data()
    theta = np.concatenate([p.ravel() for p in net.init_params(0)])
    _, want = _numpy_loss_grad(net.init_params(0), X, Y, np.ones((40, 7)), 0.0)
    np.testing.assert_allclose(f.grad(theta, X, Y), np.concatenate([w.ravel() for w in want]), rtol=1e-10, atol=1e-12)
    with pytest.raises(UnsupportedModelError, match="dropout.*Fix:"):
        f.hvp(theta, np.ones_like(theta), X, Y)


def test_formulas_print_the_mask_rule():
    text = str(sg.formulas(_net(0.25), "mse"))
    assert "d2 = dropout_0.25(a1)" in text and "δ_a1 = m_d2 ⊙ δ_d2/(1 - 0.25)" in text
    assert "m ⊙ x/(1 - p) in training" in text


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, "0.5", True, None, float("nan")])
def test_bad_p_names_the_fix(p):
    with pytest.raises(OptionError, match=r"probability.*Fix:"):
        nn.Dropout(p)
    with pytest.raises(OptionError, match=r"probability.*Fix:"):
        sg.dropout(sp.MatrixSymbol("h", 3, 1), p)


def test_dropout_of_no_data_or_a_matrix_is_refused():
    W = sp.MatrixSymbol("W", 2, 1)
    with pytest.raises(ShapeError, match="column vector.*Fix:"):
        sg.dropout(sp.MatrixSymbol("A", 2, 2), 0.5)
    x, y = sp.MatrixSymbol("x", 2, 1), sp.MatrixSymbol("y", 2, 1)
    with pytest.raises(UnsupportedModelError, match="same for every sample.*Fix:"):
        sg.compile(sg.losses.mse(sg.dropout(W, 0.5) + x, y), [W], [x, y])


def test_rates_and_norm_constants_share_one_module_and_each_computes_with_its_own(tmp_path, monkeypatch):
    """Dropout's rate, like the normalisations' ε and momentum, is read from the model's dims at
    run time (issue 21, section 3): other rates generate the same text, one compilation, and each
    model's gradient is NumPy's at its own rate."""
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    X, Y = _data()
    key = int(step_key(5, 2))
    mods = []
    for p in (0.1, 0.4, 0.75):
        m = sg.fit(_net(p), "mse", X, Y, epochs=1, optimizer=sg.optim.SGD(0.1), seed=1)
        theta, g = np.concatenate([q.ravel() for q in m.params]), np.empty(sum(q.size for q in m.params))
        loss = m._mod.loss_grad(theta, X, Y, g, key, 0)
        want_loss, want = _numpy_loss_grad([q.copy() for q in m.params], X, Y, _mask(key, 40, 7, p), p)
        assert loss == pytest.approx(want_loss, rel=1e-12)
        np.testing.assert_allclose(g, np.concatenate([w.ravel() for w in want]), rtol=1e-10, atol=1e-12)
        mods.append(m._mod.module)
    assert all(mod is mods[0] for mod in mods) and len(list(tmp_path.glob("sg_*.py"))) == 1
    assert len(mods[0].train_chunk.signatures) == 1
    # batch norm's ε and momentum, layer norm's ε: one module for two sets, each model's first
    # full-batch step against NumPy written from the definitions (training loss, running stats)
    mods = []
    for eps, mom in ((1e-5, 0.1), (0.5, 0.7)):
        net = nn.Sequential([nn.Dense(5, 6), nn.BatchNorm(6, eps=eps, momentum=mom), nn.LayerNorm(6, eps=eps),
                             nn.Dense(6, 3)], 5)
        ps = net.init_params(3)
        W1, b1, g2, be2, _, _, g3, be3, W4, b4 = ps
        m = sg.fit(net, "mse", X, Y, params=ps, epochs=1, batch_size=len(X), shuffle=False,
                   optimizer=sg.optim.SGD(0.1))
        z = X @ W1.T + b1.T
        bn = g2.T * (z - z.mean(0)) / np.sqrt(z.var(0) + eps) + be2.T
        ln = g3.T * (bn - bn.mean(1, keepdims=True)) / np.sqrt(bn.var(1, keepdims=True) + eps) + be3.T
        assert m.history["loss"][0] == pytest.approx(np.mean((ln @ W4.T + b4.T - Y) ** 2), rel=1e-10)
        np.testing.assert_allclose(m.params[4].ravel(), mom * z.mean(0), rtol=1e-10)  # running mean from 0
        np.testing.assert_allclose(m.params[5].ravel(), (1 - mom) + mom * z.var(0, ddof=1), rtol=1e-10)
        mods.append(m._mod.module)
    assert mods[0] is mods[1] and len(list(tmp_path.glob("sg_*.py"))) == 2


# Dask training with dropout: tests/test_distributed.py (the single-process masks, on a cluster).
