"""BatchNorm (issue 18): training by the minibatch's statistics, running statistics that the
optimizer leaves alone, inference by them; checked against NumPy written from the definition,
central differences and (where installed) PyTorch's BatchNorm1d, step by step through fit."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import OptionError, ShapeError, UnsupportedModelError

nn = sg.nn
EPS, MOM = 1e-5, 0.1


def _net(momentum=MOM):
    return nn.Sequential([nn.Dense(5, 6, "tanh"), nn.BatchNorm(6, momentum=momentum), nn.Dense(6, 3)], 5)


def _data(n=24, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 5)) * 2 + 1).astype(dtype), rng.standard_normal((n, 3)).astype(dtype)


def _start(seed=0):
    """Initial parameters with running statistics away from (0, 1), so that inference differs from training."""
    W1, b1, g, b, m, v, W3, b3 = _net().init_params(seed)
    rng = np.random.default_rng(seed + 1)
    return [W1, b1, g + 0.1 * rng.standard_normal(g.shape), b + 0.1, m + 0.3, v * 1.7, W3, b3]


def _numpy(ps, X, Y, train: bool):
    """mse of W3·(γ ⊙ x̂ + β) + b3 with x̂ of a1 = tanh(W1 x + b1), by hand: (loss, grads of W1, b1, γ, β,
    running mean, running var, W3, b3, and the running statistics after the call)."""
    W1, b1, g, b, rm, rv, W3, b3 = ps
    a1 = np.tanh(X @ W1.T + b1.T)
    n, k = len(X), Y.shape[1]
    if train:
        mu, var = a1.mean(0), a1.var(0)  # biased
        new_rm, new_rv = (1 - MOM) * rm.ravel() + MOM * mu, (1 - MOM) * rv.ravel() + MOM * var * n / (n - 1)
    else:
        mu, var = rm.ravel(), rv.ravel()
        new_rm, new_rv = mu, var
    r = 1 / np.sqrt(var + EPS)
    xh = (a1 - mu) * r
    z2 = xh * g.T + b.T
    z3 = z2 @ W3.T + b3.T
    loss = np.sum((z3 - Y) ** 2) / k / n
    dz3 = 2 * (z3 - Y) / k / n
    dz2 = dz3 @ W3
    dxh = dz2 * g.T
    if train:
        da1 = r * (dxh - dxh.mean(0) - xh * (dxh * xh).mean(0))  # per feature, over the batch
        drm, drv = np.zeros_like(mu), np.zeros_like(var)
    else:
        da1 = r * dxh
        drm, drv = -(r * dxh).sum(0), (-0.5 * r**2 * xh * dxh).sum(0)
    dz1 = da1 * (1 - a1**2)
    grads = [dz1.T @ X, dz1.sum(0)[:, None], (dz2 * xh).sum(0)[:, None], dz2.sum(0)[:, None],
             drm[:, None], drv[:, None], dz3.T @ z2, dz3.sum(0)[:, None]]
    return loss, grads, new_rm, new_rv


@pytest.fixture(scope="module")
def module():
    X, Y = _data()
    return sg.fit(_net(), "mse", X, Y, epochs=0)._mod


def _flat(ps):
    return np.concatenate([p.ravel() for p in ps])


@pytest.mark.parametrize("train", [True, False])
def test_loss_grad_matches_numpy_and_finite_differences(module, train):
    X, Y = _data()
    ps = _start()
    theta = _flat(ps)
    g = np.empty_like(theta)
    args = (1, 0) if train else ()
    loss = module.loss_grad(theta, X, Y, g, *args)
    want_loss, want, rm, rv = _numpy(ps, X, Y, train)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(g, _flat(want), rtol=1e-9, atol=1e-12)
    # training moved the running statistics in place (PyTorch's train-mode forward does too)
    np.testing.assert_allclose(theta[48:54], rm, rtol=1e-12)
    np.testing.assert_allclose(theta[54:60], rv, rtol=1e-12)
    h, scratch = 1e-6, np.empty_like(theta)
    for j in range(0, theta.size, 3):
        e = np.zeros_like(theta)
        e[j] = h
        fd = (module.loss_grad(theta + e, X, Y, scratch, *args) - module.loss_grad(theta - e, X, Y, scratch, *args)) / (2 * h)
        assert fd == pytest.approx(g[j], rel=1e-5, abs=1e-8), j


def test_fit_steps_as_numpy_does_and_the_optimizer_leaves_the_statistics():
    """Three full-batch SGD steps with weight decay (which would shrink anything it touched)."""
    X, Y = _data()
    ps = _start()
    m = sg.fit(_net(), "mse", X, Y, epochs=3, batch_size=24, shuffle=False, params=[p.copy() for p in ps],
               optimizer=sg.optim.SGD(0.2, weight_decay=0.5))
    want = [p.copy() for p in ps]
    for _ in range(3):
        _, g, rm, rv = _numpy(want, X, Y, True)
        want = [p - 0.2 * (gk + 0.5 * p) for p, gk in zip(want, g)]
        want[4], want[5] = rm[:, None], rv[:, None]
    for got, w in zip(m.params, want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)
    _, _, rm, rv = _numpy(want, X, Y, False)
    pred = m.predict(X)  # inference: the running statistics
    W1, b1, g, b, rm, rv, W3, b3 = want
    xh = (np.tanh(X @ W1.T + b1.T) - rm.T) / np.sqrt(rv.T + EPS)
    np.testing.assert_allclose(pred, (xh * g.T + b.T) @ W3.T + b3.T, rtol=1e-10)


def test_matches_torch_batchnorm1d_through_training():
    torch = pytest.importorskip("torch")
    X, Y = _data(n=40, seed=3)
    ps = _start(3)
    m = sg.fit(_net(), "mse", X, Y, epochs=2, batch_size=8, shuffle=False, params=[p.copy() for p in ps],
               optimizer=sg.optim.Adam(1e-2))
    torch.set_default_dtype(torch.float64)
    lin1, bn, lin3 = torch.nn.Linear(5, 6), torch.nn.BatchNorm1d(6, eps=EPS, momentum=MOM), torch.nn.Linear(6, 3)
    with torch.no_grad():
        for t, v in zip([lin1.weight, lin1.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var, lin3.weight,
                         lin3.bias], ps):
            t.copy_(torch.tensor(v.reshape(t.shape)))
    net = torch.nn.Sequential(lin1, torch.nn.Tanh(), bn, lin3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(2):
        for s in range(0, 40, 8):
            opt.zero_grad()
            loss = torch.mean((net(torch.tensor(X[s:s + 8])) - torch.tensor(Y[s:s + 8])) ** 2)
            loss.backward()
            opt.step()
    torch.set_default_dtype(torch.float32)
    got = [lin1.weight, lin1.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var, lin3.weight, lin3.bias]
    for mine, theirs in zip(m.params, got):
        np.testing.assert_allclose(mine.ravel(), theirs.detach().numpy().ravel(), rtol=1e-7, atol=1e-9)
    net.eval()
    np.testing.assert_allclose(m.predict(X), net(torch.tensor(X)).detach().numpy(), rtol=1e-7, atol=1e-9)


def test_resume_save_float32_and_no_warning_about_the_statistics(tmp_path, recwarn):
    X, Y = _data(n=64, dtype=np.float32)
    kw = dict(batch_size=16, optimizer=sg.optim.Adam(1e-2), seed=2)
    straight = sg.fit(_net(), "mse", X, Y, epochs=4, **kw)
    half = sg.fit(_net(), "mse", X, Y, epochs=2, **kw)
    half.save(tmp_path / "bn.npz")
    resumed = sg.fit(_net(), "mse", X, Y, epochs=2, resume=sg.load(tmp_path / "bn.npz"), **kw)
    assert straight.dtype == np.float32
    for a, b in zip(straight.params, resumed.params):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(straight.params[4], 0) and not np.allclose(straight.params[5], 1)  # they moved
    assert not [w for w in recwarn if "mean2" in str(w.message) or "var2" in str(w.message)]
    rng = np.random.default_rng(9)
    cnn = sg.fit(_cnn(), "mse", rng.standard_normal((8, 36)), rng.standard_normal((8, 3)), epochs=2, batch_size=8)
    assert np.abs(cnn.grad_norms()["b1"]).max() < 1e-12  # the batch mean removes Conv2D's bias: by design,
    assert not [w for w in recwarn if "b1" in str(w.message)]  # not a vanishing gradient


def test_row_blocks_are_not_used_and_formulas_print_the_batch_rule():
    X, Y = _data(n=4096, seed=4)
    one = sg.fit(_net(), "mse", X, Y, epochs=1, batch_size=4096, threads=1)
    two = sg.fit(_net(), "mse", X, Y, epochs=1, batch_size=4096, threads=2)  # one block: the whole batch's statistics
    for a, b in zip(one.params, two.params):
        np.testing.assert_array_equal(a, b)
    text = str(sg.formulas(_net(), "mse"))
    assert "n2 = batchnorm(a1)" in text
    assert "δ_a1 = (δ_n2 - mean_B(δ_n2) - n2 ⊙ mean_B(n2 ⊙ δ_n2))/σ_B_a1" in text
    assert "∂ℓ/∂mean2" not in text and "predict and evaluate use running statistics" in text


@pytest.mark.parametrize("make, error, text", [
    (lambda: nn.BatchNorm(0), OptionError, "number of features"),
    (lambda: nn.BatchNorm(4, momentum=0), OptionError, "momentum"),
    (lambda: nn.BatchNorm(4, momentum=1.5), OptionError, "momentum"),
    (lambda: nn.BatchNorm(4, eps=-1), OptionError, "positive"),
    (lambda: nn.Sequential([nn.Dense(3, 4), nn.BatchNorm(5)], 3), ShapeError, r"BatchNorm\(4\)"),
    (lambda: nn.Sequential([nn.Conv2D(1, 2, 3), nn.BatchNorm(3)], (1, 5, 5)), ShapeError, "2 channels"),
    (lambda: nn.Sequential([nn.BatchNorm(4)], (3, 4)), ShapeError, "LayerNorm"),
    (lambda: sg.batchnorm(sp.MatrixSymbol("z", 4, 1), sp.MatrixSymbol("m", 3, 1), sp.MatrixSymbol("v", 3, 1)),
     ShapeError, "running statistics"),
])
def test_bad_input_names_the_fix(make, error, text):
    with pytest.raises(error, match=f"{text}.*Fix:|Fix:.*{text}"):
        make()


def test_a_minibatch_of_one_row_and_hessians_are_refused():
    X, Y = _data(n=25)
    with pytest.raises(OptionError, match="single row.*Fix:"):
        sg.fit(_net(), "mse", X, Y, epochs=1, batch_size=8)  # 25 = 3·8 + 1
    with pytest.raises(OptionError, match=r"the data have 1 row .*Fix: train on at least 2 rows\.$"):
        sg.fit(_net(), "mse", X[:1], Y[:1], epochs=1)  # "one row fewer or more" was no fix for one row
    net, y = _net(), sp.MatrixSymbol("y", 3, 1)
    f = sg.compile(sg.losses.mse(net.expr, y), net.params, [net.x, y])
    theta = _flat(_start())
    with pytest.raises(UnsupportedModelError, match="batch normalisation.*Fix:"):
        f.hvp(theta, np.ones_like(theta), *_data())


def test_divergence_keeps_finite_parameters_and_statistics():
    X, Y = _data()
    X[5] = 1e300  # the batch's variance overflows: its running variance would become inf
    net = nn.Sequential([nn.Dense(5, 6), nn.BatchNorm(6), nn.Dense(6, 3)], 5)
    with pytest.raises(sg.errors.DivergenceError) as info:
        sg.fit(net, "mse", X, Y, epochs=2, batch_size=12, shuffle=False)
    assert all(np.isfinite(p).all() for p in info.value.result.params)
    X[5] = 0.0
    Y[7] = 1e300  # the loss overflows (status 1): the running statistics stay finite too
    with pytest.raises(sg.errors.DivergenceError) as info:
        sg.fit(net, "mse", X, Y, epochs=2, batch_size=12, shuffle=False)
    assert all(np.isfinite(p).all() for p in info.value.result.params)


def _cnn():
    return nn.Sequential([nn.Conv2D(1, 2, 3), nn.BatchNorm(2), nn.Activation("relu"), nn.Flatten(), nn.Dense(32, 3)],
                         (1, 6, 6))


def test_images_per_channel_gradient_by_central_differences():
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((10, 36)), rng.standard_normal((10, 3))
    mod = sg.fit(_cnn(), "mse", X, Y, epochs=0)._mod
    ps = _cnn().init_params(1)
    ps[2], ps[3], ps[4], ps[5] = ps[2] * 1.3, ps[3] + 0.2, ps[4] + 0.1, ps[5] * 2  # γ, β, running mean, var
    theta = _flat(ps)
    for args in ((1, 0), ()):  # training, then inference
        g, scratch = np.empty_like(theta), np.empty_like(theta)
        mod.loss_grad(theta.copy(), X, Y, g, *args)
        for j in range(theta.size):
            e = np.zeros_like(theta)
            e[j] = 1e-6
            fd = (mod.loss_grad(theta + e, X, Y, scratch, *args) - mod.loss_grad(theta - e, X, Y, scratch, *args)) / 2e-6
            assert fd == pytest.approx(g[j], rel=1e-5, abs=1e-8), (args, j)
    text = str(sg.formulas(_cnn(), "mse"))
    assert "∂ℓ/∂gamma2 = Σ_hw (n2 ⊙ δ_z2)" in text and "∂ℓ/∂beta2 = Σ_hw δ_z2" in text


@pytest.mark.parametrize("n", [24, 25])  # 25: the last minibatch is one image (its 16 positions per channel)
def test_images_match_torch_batchnorm2d_through_training(n):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((n, 1, 6, 6)), rng.standard_normal((n, 3))
    ps = _cnn().init_params(2)
    m = sg.fit(_cnn(), "mse", X, Y, epochs=2, batch_size=8, shuffle=False, params=[p.copy() for p in ps],
               optimizer=sg.optim.Adam(1e-2))
    torch.set_default_dtype(torch.float64)
    conv, bn, lin = torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2, eps=EPS, momentum=MOM), torch.nn.Linear(32, 3)
    tensors = [conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var, lin.weight, lin.bias]
    with torch.no_grad():
        for t, v in zip(tensors, ps):
            t.copy_(torch.tensor(v.reshape(t.shape)))
    net = torch.nn.Sequential(conv, bn, torch.nn.ReLU(), torch.nn.Flatten(), lin)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(2):
        for s in range(0, n, 8):
            opt.zero_grad()
            torch.mean((net(torch.tensor(X[s:s + 8])) - torch.tensor(Y[s:s + 8])) ** 2).backward()
            opt.step()
    torch.set_default_dtype(torch.float32)
    for k, (mine, theirs) in enumerate(zip(m.params, tensors)):
        # the conv's bias, just before batch norm, has an exact gradient of 0: both trajectories
        # are rounding noise (~1e-17) that Adam divides by its eps (1e-8), so ~1e-10 per run
        # and summation-order dependent; it is held to 1e-8, the rest to 1e-9
        np.testing.assert_allclose(mine.ravel(), theirs.detach().numpy().ravel(), rtol=1e-7,
                                   atol=1e-8 if k == 1 else 1e-9)
    net.eval()
    np.testing.assert_allclose(m.predict(X), net(torch.tensor(X)).detach().numpy(), rtol=1e-7, atol=1e-9)


def test_float32_statistics_are_summed_in_float64():
    """A channel with mean 1000: float32 sums put the gradients 3e-2 off (torch's float32: 8e-4); the
    statistics are summed in float64. Oracle: torch float64 on the same float32 numbers."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((64, 2, 3, 3)) + 1000).astype(np.float32)
    Y = rng.standard_normal((64, 2)).astype(np.float32)
    net = nn.Sequential([nn.BatchNorm(2), nn.Flatten(), nn.Dense(18, 2)], input_shape=(2, 3, 3))
    ps = [p.astype(np.float32) for p in net.init_params(0)]
    m = sg.fit(net, "mse", X, Y, optimizer=sg.optim.SGD(1.0), epochs=1, batch_size=64, shuffle=False,
               params=[p.copy() for p in ps])
    t = [torch.tensor(p.astype(np.float64), requires_grad=True) for p in ps]
    xh = torch.nn.functional.batch_norm(torch.tensor(X.astype(np.float64)), None, None, t[0].reshape(-1),
                                        t[1].reshape(-1), True, MOM, EPS)
    torch.mean((xh.reshape(64, -1) @ t[4].T + t[5].reshape(-1) - torch.tensor(Y.astype(np.float64))) ** 2).backward()
    for k in (0, 1, 4, 5):  # γ, β, W, b: one SGD step of rate 1 is minus the gradient
        want = t[k].grad.numpy()
        got = ps[k].astype(np.float64) - m.params[k].astype(np.float64)
        assert np.abs(got - want).max() <= 2e-6 * np.abs(want).max(), k
