"""Training: gradients of layers/activations/losses, the fused kernel against an unfused
oracle, stopping rules, history, persistence, the NaN guard and input errors (issue 3).

Most checks run ``fit(..., backend="python")``, which executes the very same generated
module (``loss_grad``, ``opt_update``, ``train_chunk``) without Numba. Exactly three
Numba builds are shared through module-scoped fixtures: the float64 and float32
training kernels of one network, and one float32 ``compile`` of a custom-activation net.
"""

from __future__ import annotations

import contextlib
import copy
import re
import warnings

import numpy as np
import pytest
import sympy as sp
from optim_oracle import reference_step
from sympy.matrices.expressions.hadamard import HadamardPower

import symgrad as sg
from symgrad.errors import DataError, DivergenceError, DtypeError, ShapeError, SymgradError, TargetError
from symgrad.lang import optim
from symgrad.lang.losses import LOSSES
from symgrad.lang.nn import ACTIVATIONS, MLP
from symgrad.runtime.execution import _kernel, block_rows, sample_work
from symgrad.runtime.fit import GradientHealthWarning, fit_threads

MS = sp.MatrixSymbol
Z = sp.Symbol("z", real=True)

# -- helpers -------------------------------------------------------------------------------


def mish(z):
    return z * sp.tanh(sp.log(1 + sp.exp(z)))


MISH = sg.activation(mish)


def pseudo_huber(pred, target):
    """A custom loss of (prediction, target), written as any user would."""
    return sg.mean(sp.MatAdd(pred, -target).applyfunc(sp.Lambda(Z, sp.sqrt(1 + Z**2) - 1)))


def quartic(pred, target):
    return sg.msum(HadamardPower(pred - target, 4)) / 4


def loss_of(net, loss):
    y = MS("y", int(net.expr.shape[0]), 1)
    fn = LOSSES[loss] if isinstance(loss, str) else loss
    return fn(net.expr, y), y


def compiled(net, loss, dtype="float64", backend="python"):
    expr, y = loss_of(net, loss)
    return sg.compile(expr, net.params, [net.x, y], dtype=dtype, backend=backend)


def targets(loss, rng, n, n_out, labels=False):
    name = loss if isinstance(loss, str) else ""
    if name in ("softmax_cross_entropy", "cross_entropy"):
        k = rng.integers(0, n_out, n)
        return k if labels else np.eye(n_out)[k]
    if name in ("bce", "binary_cross_entropy"):
        return rng.integers(0, 2, (n, n_out)).astype(float)
    return rng.normal(size=(n, n_out))


def random_params(net, rng, scale=0.8):
    return [scale * rng.normal(size=(int(p.shape[0]), int(p.shape[1]))) for p in net.params]


def directional_fd(f, params, data, direction, eps):
    plus = [p + eps * d for p, d in zip(params, direction, strict=True)]
    minus = [p - eps * d for p, d in zip(params, direction, strict=True)]
    return (f.value(plus, *data) - f.value(minus, *data)) / (2 * eps)


def check_grads(f, params, data, rng, rtol=1e-6, eps=1e-5, floor=1e-9):
    """The reverse-mode gradient against central differences along random directions:
    one per parameter block and one through all blocks at once."""
    value, grads = f.value_and_grad(params, *data)
    assert np.isfinite(value)
    assert [g.shape for g in grads] == [p.shape for p in params]
    dt = params[0].dtype
    directions = [[rng.normal(size=p.shape).astype(dt) if i == k else np.zeros_like(p)
                   for i, p in enumerate(params)] for k in range(len(params))]
    directions.append([rng.normal(size=p.shape).astype(dt) for p in params])
    for d in directions:
        fd = directional_fd(f, params, data, d, eps)
        an = sum(float(np.vdot(g.astype(np.float64), u)) for g, u in zip(grads, d, strict=True))
        assert abs(fd - an) <= rtol * max(abs(fd), abs(an)) + floor, f"fd {fd!r} vs gradient {an!r}"
    return value, grads


def forward(params, X, act=np.tanh):
    """NumPy forward pass of a one-hidden-layer MLP (rows are samples)."""
    W1, b1, W2, b2 = params
    return act(X @ W1.T + b1.T) @ W2.T + b2.T


def softplus_np(z):
    return np.logaddexp(0.0, z)


NUMPY_LOSSES = {  # per-sample loss of logits/predictions z against targets Y (rows)
    "mse": lambda z, Y: ((z - Y) ** 2).mean(axis=1),
    "mae": lambda z, Y: np.abs(z - Y).mean(axis=1),
    "huber": lambda z, Y: np.where(np.abs(z - Y) <= 1, (z - Y) ** 2 / 2, np.abs(z - Y) - 0.5).mean(axis=1),
    "bce": lambda z, Y: (softplus_np(z) - Y * z).mean(axis=1),
    "binary_cross_entropy": lambda z, Y: (softplus_np(z) - Y * z).mean(axis=1),
    "softmax_cross_entropy": lambda z, Y: np.logaddexp.reduce(z, axis=1) - (z * Y).sum(axis=1),
    "cross_entropy": lambda z, Y: np.logaddexp.reduce(z, axis=1) - (z * Y).sum(axis=1),
    "pseudo_huber": lambda z, Y: (np.sqrt(1 + (z - Y) ** 2) - 1).mean(axis=1),
    "quartic": lambda z, Y: ((z - Y) ** 4).sum(axis=1) / 4,
}


@contextlib.contextmanager
def no_health_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradientHealthWarning)
        yield


# -- gradients: activations, losses, custom ones (float64, Python reference path) -----------


@pytest.mark.parametrize("act", [*ACTIVATIONS, "custom_mish"])
def test_activation_gradients_match_finite_differences(act):
    a = MISH if act == "custom_mish" else act
    rng = np.random.default_rng(sum(map(ord, act)))
    for net in (MLP([3, 4, 3, 2], activation=a), MLP([3, 4, 2], activation="tanh", output=a)):
        f = compiled(net, "mse")
        X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
        check_grads(f, random_params(net, rng), [X, Y], rng)


def test_custom_activation_is_used_as_written():
    assert str(MISH(Z)) == "z*tanh(softplus(z))"  # log(1 + exp(z)) stabilised to softplus
    net = MLP([3, 4, 2], activation=MISH)
    f = compiled(net, "mse")
    rng = np.random.default_rng(2)
    ps, X, Y = random_params(net, rng), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    mish_np = lambda z: z * np.tanh(softplus_np(z))  # noqa: E731
    want = ((forward(ps, X, mish_np) - Y) ** 2).mean()
    assert f.value(ps, X, Y) == pytest.approx(want, rel=1e-12)


# every loss on a vector output; the next-token loss takes a sequence (tests/test_language_model.py)
@pytest.mark.parametrize("loss", [*(n for n in LOSSES if n != "token_cross_entropy"), "pseudo_huber", "quartic"])
def test_loss_value_and_gradients(loss):
    """Each loss equals its NumPy definition (mean over samples) and its gradient matches
    finite differences, through a 3-4-3 tanh network."""
    fn = {"pseudo_huber": pseudo_huber, "quartic": quartic}.get(loss, loss)
    rng = np.random.default_rng(sum(map(ord, loss)))
    net = MLP([3, 4, 3], activation="tanh")
    f = compiled(net, fn)
    ps, X = random_params(net, rng), rng.normal(size=(7, 3))
    Y = targets(loss, rng, 7, 3)
    assert f.value(ps, X, Y) == pytest.approx(NUMPY_LOSSES[loss](forward(ps, X), Y).mean(), rel=1e-12)
    check_grads(f, ps, [X, Y], rng)


SINGLE_OUTPUT_CASES = [("mae", "tanh"), ("huber", "tanh"), ("mse", "gelu"), ("mse", "silu")]


@pytest.mark.parametrize("loss,out_act", SINGLE_OUTPUT_CASES)
def test_single_output_models_compile(loss, out_act):
    net = MLP([3, 4, 1], activation="tanh", output=out_act if loss == "mse" else "identity")
    f = compiled(net, loss)
    rng = np.random.default_rng(0)
    check_grads(f, random_params(net, rng), [rng.normal(size=(5, 3)), rng.normal(size=(5, 1))], rng)


def test_fit_accepts_custom_loss():
    rng = np.random.default_rng(4)
    net = MLP([3, 4, 2], activation="tanh")
    X, Y = rng.normal(size=(16, 3)), rng.normal(size=(16, 2))
    init = net.init_params(0)
    m = sg.fit(net, pseudo_huber, X, Y, optimizer=optim.Adam(0.05), epochs=15, batch_size=16,
               params=[p.copy() for p in init], backend="python")
    assert m.history["loss"][0] == pytest.approx(compiled(net, pseudo_huber).value(init, X, Y), rel=1e-12)
    assert m.history["loss"][-1] < m.history["loss"][0]


# -- one fused step == value_and_grad + the optimizer's hand-written reference step --------

OPTIMIZERS = {
    "SGD": optim.SGD(0.1),
    "SGD_wd": optim.SGD(0.1, weight_decay=0.01),
    "Momentum": optim.Momentum(0.1, beta=0.8),
    "Nesterov": optim.Nesterov(0.1, beta=0.8),
    "Adam": optim.Adam(0.01),
    "Adam_hyper": optim.Adam(0.01, beta1=0.7, beta2=0.95, eps=1e-5, weight_decay=0.02),  # read from `hyper`
    "AdamW": optim.AdamW(0.01, weight_decay=0.05),
    "AdaGrad": optim.AdaGrad(0.1),
    "RMSProp": optim.RMSProp(0.01),
    "SGD_steplr": optim.SGD(0.1, schedule=optim.StepLR(step_size=1, gamma=0.5)),
    "Adam_cosine": optim.Adam(0.01, schedule=optim.CosineLR(t_max=3)),
}


def unfused(opt, f, params, X, Y, epochs, batch_size, seed, clip=False):
    """The reference loop: fit's permutations, value_and_grad per batch, reference_step."""
    ps = [p.copy() for p in params]
    states = [opt.init_state(p.shape) for p in ps]
    rng, t, losses, norms = np.random.default_rng(seed), 0, [], []
    for e in range(epochs):
        perm = rng.permutation(len(X))
        step = copy.copy(opt)
        step.lr = opt.lr_at(e)
        total, gn = 0.0, np.zeros(len(ps))
        starts = range(0, len(X), batch_size)
        for s in starts:
            idx = perm[s:s + batch_size]
            v, gs = f.value_and_grad(ps, X[idx], Y[idx])
            total += v * len(idx)
            gn += [np.linalg.norm(g) for g in gs]
            if clip:
                scale = optim.clip_scale(float(np.sqrt(sum((g * g).sum() for g in gs))), opt.clip_norm)
                gs = [g * scale for g in gs]
            t += 1
            for p, g, st in zip(ps, gs, states, strict=True):
                reference_step(step, p, g, st, t)
        losses.append(total / len(X))
        norms.append(gn / len(starts))
    return ps, losses, norms


def _ce_problem(seed: int, n: int):
    """A 3-4-3 tanh net, n samples of 3 classes: (net, X, labels, one-hot Y, compiled loss, init)."""
    rng = np.random.default_rng(seed)
    net = MLP([3, 4, 3], activation="tanh")
    X, labels = rng.normal(size=(n, 3)), rng.integers(0, 3, n)
    return net, X, labels, np.eye(3)[labels], compiled(net, "softmax_cross_entropy"), net.init_params(5)


@pytest.fixture(scope="module")
def ce_problem():
    return _ce_problem(11, 12)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fused_full_batch_steps_equal_unfused_reference(name, ce_problem):
    """Three full-batch epochs (three steps): the fused kernel vs value_and_grad + reference_step,
    including the step counter t, optimizer state, weight decay and lr schedules."""
    net, X, labels, Y, f, init = ce_problem
    opt = OPTIMIZERS[name]
    m = sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=opt, epochs=3, batch_size=len(X),
               params=[p.copy() for p in init], backend="python")
    want, losses, norms = unfused(opt, f, init, X, Y, 3, len(X), seed=0)
    for got, w in zip(m.params, want, strict=True):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(m.history["loss"], losses, rtol=1e-10)
    np.testing.assert_allclose(m.history["grad_norms"], norms, rtol=1e-10)
    assert m.history["loss"][0] == pytest.approx(f.value(init, X, Y), rel=1e-13)


def test_one_fused_step_equals_one_unfused_step(ce_problem):
    net, X, labels, Y, f, init = ce_problem
    opt = optim.Adam(0.03)
    m = sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=opt, epochs=1, batch_size=len(X),
               params=[p.copy() for p in init], backend="python")
    _, gs = f.value_and_grad(init, X, Y)
    ps, st = [p.copy() for p in init], [opt.init_state(p.shape) for p in init]
    for p, g, s in zip(ps, gs, st, strict=True):
        reference_step(opt, p, g, s, 1)
    for got, w in zip(m.params, ps, strict=True):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-14)


class _TiedNet:
    """out = Wᵀ tanh(W x + b) + U V x + C x: W is used twice and b enters a map, so the backward adds
    to their gradients; C, U and V are each the weight of one product with a batched operand
    (U V x is lowered as U (V x)), whose gradient is written whole. The training step zeroes only
    the gradients it adds to (codegen/train.py, _zero_spans): here two spans, W and b."""

    def __init__(self):
        self.x = MS("x", 3, 1)
        W, C, b, U, V = MS("W", 4, 3), MS("C", 3, 3), MS("b", 4, 1), MS("U", 3, 2), MS("V", 2, 3)
        self.params = [W, C, b, U, V]
        self.expr = W.T * sg.elementwise(sp.tanh, W * self.x + b) + U * V * self.x + C * self.x

    def init_params(self, seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        return [rng.normal(scale=0.5, size=(int(p.shape[0]), int(p.shape[1]))).astype(dtype) for p in self.params]


@pytest.mark.parametrize("backend", ["python", "numba"])
def test_fused_steps_with_shared_and_product_weights(backend):
    """Minibatch steps reuse one gradient buffer: a gradient that is added to must start each step at
    zero, or every step after the first would carry the last one's (caught against the unfused loop)."""
    net, rng = _TiedNet(), np.random.default_rng(3)
    text = sg.build.training_module(net, "mse", optim.SGD(0.05), "float64")[0].read_text()
    assert "zero_spans_c(grad, ZERO)" in text  # some gradients zeroed, not all (W and b, apart)
    X, Y = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
    f = sg.compile(sg.losses.mse(net.expr, MS("y", 3, 1)), net.params, [net.x, MS("y", 3, 1)], backend="python")
    init, opt = net.init_params(1), optim.SGD(0.05)
    assert sg.check_grads(f, init, X[:4], Y[:4]).fd_error < 1e-7  # the reference's gradient: finite differences
    m = sg.fit(net, "mse", X, Y, optimizer=opt, epochs=2, batch_size=4, params=[p.copy() for p in init],
               backend=backend)
    want, losses, norms = unfused(opt, f, init, X, Y, 2, 4, seed=0)
    for got, w in zip(m.params, want, strict=True):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(m.history["loss"], losses, rtol=1e-10)
    np.testing.assert_allclose(m.history["grad_norms"], norms, rtol=1e-10)


def test_fused_clip_norm_equals_clip_scale(ce_problem):
    net, X, labels, Y, f, init = ce_problem
    opt = optim.Adam(0.01, clip_norm=0.1)
    m = sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=opt, epochs=3, batch_size=len(X),
               params=[p.copy() for p in init], backend="python")
    want, _, _ = unfused(opt, f, init, X, Y, 3, len(X), seed=0, clip=True)
    for got, w in zip(m.params, want, strict=True):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-14)


def test_clip_norm_bounds_the_step(ce_problem):
    """With SGD, the clipped step has global norm lr * clip_norm (up to clip_scale's 1e-6)."""
    net, X, labels, Y, f, init = ce_problem
    m = sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=optim.SGD(1.0, clip_norm=1e-3), epochs=1,
               batch_size=len(X), params=[p.copy() for p in init], backend="python")
    step = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(m.params, init, strict=True)))
    assert step == pytest.approx(1e-3, rel=1e-5)


@pytest.mark.parametrize("batch_size", [5, 12, 100])
def test_partial_last_batch_matches_unfused_loop(batch_size, ce_problem):
    """n = 12 with batches of 5 (5, 5, 2), exactly n, and larger than n."""
    net, X, labels, Y, f, init = ce_problem
    opt = optim.Momentum(0.1)
    m = sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=opt, epochs=3, batch_size=batch_size,
               seed=7, params=[p.copy() for p in init], backend="python")
    want, losses, norms = unfused(opt, f, init, X, Y, 3, batch_size, seed=7)
    for got, w in zip(m.params, want, strict=True):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(m.history["loss"], losses, rtol=1e-10)
    np.testing.assert_allclose(m.history["grad_norms"], norms, rtol=1e-10)


def test_chunking_does_not_change_results(ce_problem):
    net, X, labels, _, _, init = ce_problem
    runs = [sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=optim.Adam(0.05), epochs=5,
                   batch_size=5, params=[p.copy() for p in init], chunk_epochs=c, backend="python")
            for c in (1, 2, None)]
    for r in runs[1:]:
        assert r.history["loss"] == runs[0].history["loss"]
        for a, b in zip(r.params, runs[0].params, strict=True):
            np.testing.assert_array_equal(a, b)


def test_repeated_builds_reuse_the_module_but_not_across_settings(ce_problem, tmp_path):
    from symgrad.build import training_module

    net = ce_problem[0]
    a = training_module(net, "softmax_cross_entropy", optim.Adam(0.05), "float64")

    def same(built) -> bool:  # (file, loss name, outputs) and the sizes (an array)
        return built[:3] == a[:3] and np.array_equal(built[3], a[3])

    assert same(training_module(net, "softmax_cross_entropy", optim.Adam(0.01), "float64"))  # lr is an argument
    # so are the other hyperparameters, weight decay turned on included (issue 21); another optimizer is not
    for opt in (optim.Adam(0.05, beta1=0.5, eps=1e-3), optim.Adam(0.05, weight_decay=0.1)):
        assert same(training_module(net, "softmax_cross_entropy", opt, "float64"))
    other = [training_module(net, "softmax_cross_entropy", opt, "float64")[0]
             for opt in (optim.AdamW(0.05), optim.AdamW(0.05, weight_decay=0.0), optim.SGD(0.05))]
    assert len({a[0], *other}) == 3 and other[0] == other[1]
    assert training_module(net, "mse", optim.Adam(0.05), "float64")[0] != a[0]
    assert training_module(net, "softmax_cross_entropy", optim.Adam(0.05), "float32")[0] != a[0]
    a[0].unlink()  # a deleted cache file is rebuilt, not trusted from memory
    assert training_module(net, "softmax_cross_entropy", optim.Adam(0.05), "float64")[0].exists()


def test_python_fit_is_deterministic_per_seed(ce_problem):
    net, X, labels, *_ = ce_problem
    kw = dict(optimizer=optim.Adam(0.05), epochs=4, batch_size=5, backend="python")
    a, b = (sg.fit(net, "softmax_cross_entropy", X, labels, seed=3, **kw) for _ in range(2))
    c = sg.fit(net, "softmax_cross_entropy", X, labels, seed=4, **kw)
    assert a.history["loss"] == b.history["loss"] and a.history["grad_norms"] == b.history["grad_norms"]
    assert all(np.array_equal(p, q) for p, q in zip(a.params, b.params, strict=True))
    assert not np.array_equal(a.params[0], c.params[0]) and a.history["loss"] != c.history["loss"]


# -- the Numba kernels (three builds, shared) ------------------------------------------------

NB = dict(sizes=[4, 6, 3], activation="relu", n=50, batch_size=16, epochs=4)


@pytest.fixture(scope="module")
def nb_data():
    rng = np.random.default_rng(21)
    X = rng.normal(size=(NB["n"], 4))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    return MLP(NB["sizes"], activation=NB["activation"]), X, labels


def _nb_fit(net, X, labels, dtype, seed=0, backend="numba", params=None):
    dt = np.dtype(dtype)
    return sg.fit(net, "softmax_cross_entropy", X.astype(dt), labels, optimizer=optim.Adam(0.02),
                  epochs=NB["epochs"], batch_size=NB["batch_size"], seed=seed, dtype=dtype, backend=backend,
                  params=params)


@pytest.fixture(scope="module")
def nb_fit64(nb_data):
    net, X, labels = nb_data
    return _nb_fit(net, X, labels, "float64"), _nb_fit(net, X, labels, "float64")


@pytest.fixture(scope="module")
def nb_fit32(nb_data):
    net, X, labels = nb_data
    return _nb_fit(net, X, labels, "float32")


@pytest.mark.numba
def test_numba_training_is_deterministic(nb_data, nb_fit64):
    net, X, labels = nb_data
    a, b = nb_fit64
    assert a.history["loss"] == b.history["loss"]
    assert a.history["grad_norms"] == b.history["grad_norms"]
    assert all(np.array_equal(p, q) for p, q in zip(a.params, b.params, strict=True))
    c = _nb_fit(net, X, labels, "float64", seed=1)
    assert a.history["loss"] != c.history["loss"]
    assert not any(np.array_equal(p, q) for p, q in zip(a.params[::2], c.params[::2], strict=True))


@pytest.mark.numba
def test_numba_kernel_matches_python_kernel_and_unfused_loop(nb_data, nb_fit64):
    """n = 50, batch 16: three full batches and a last partial one of 2, four epochs."""
    net, X, labels = nb_data
    nb = nb_fit64[0]
    py = _nb_fit(net, X, labels, "float64", backend="python")
    for a, b in zip(nb.params, py.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(nb.history["loss"], py.history["loss"], rtol=1e-10)
    f = compiled(net, "softmax_cross_entropy")
    want, losses, norms = unfused(optim.Adam(0.02), f, net.init_params(0), X, np.eye(3)[labels],
                                  NB["epochs"], NB["batch_size"], seed=0)
    for a, w in zip(nb.params, want, strict=True):
        np.testing.assert_allclose(a, w, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(nb.history["loss"], losses, rtol=1e-10)
    np.testing.assert_allclose(nb.history["grad_norms"], norms, rtol=1e-10)
    assert nb.history["loss"][-1] < nb.history["loss"][0]


@pytest.mark.numba
def test_float32_training_keeps_float32(nb_data, nb_fit32, nb_fit64):
    net, X, labels = nb_data
    m32 = nb_fit32
    assert m32.dtype == np.float32
    assert all(p.dtype == np.float32 for p in m32.params)
    out = m32.predict(X.astype(np.float32))
    assert out.dtype == np.float32 and out.shape == (len(X), 3)
    for a, b in zip(m32.params, nb_fit64[0].params, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(m32.history["loss"], nb_fit64[0].history["loss"], rtol=1e-4)
    again = _nb_fit(net, X, labels, "float32")
    assert again.history["loss"] == m32.history["loss"]
    assert all(np.array_equal(p, q) for p, q in zip(again.params, m32.params, strict=True))
    # the Python reference path honours float32 too, and agrees with Numba
    py = _nb_fit(net, X, labels, "float32", backend="python")
    assert all(p.dtype == np.float32 for p in py.params)
    for a, b in zip(m32.params, py.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def mish32():
    net = MLP([3, 5, 3], activation=MISH)
    return net, compiled(net, "softmax_cross_entropy", dtype="float32", backend="numba")


@pytest.mark.numba
def test_float32_numba_gradients_custom_activation(mish32):
    net, f32 = mish32
    rng = np.random.default_rng(8)
    ps = random_params(net, rng)
    X = rng.normal(size=(9, 3))
    Y = np.eye(3)[rng.integers(0, 3, 9)]
    ps32, X32, Y32 = [p.astype(np.float32) for p in ps], X.astype(np.float32), Y.astype(np.float32)
    v32, g32 = f32.value_and_grad(ps32, X32, Y32)
    assert isinstance(v32, (float, np.floating)) and all(g.dtype == np.float32 for g in g32)
    v64, g64 = compiled(net, "softmax_cross_entropy").value_and_grad(ps, X, Y)
    assert float(v32) == pytest.approx(v64, rel=1e-5)
    for a, b in zip(g32, g64, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    check_grads(f32, ps32, [X32, Y32], rng, rtol=1e-2, eps=1e-2, floor=1e-3)


# -- stabilised losses at logits of +-1e3 ------------------------------------------------------


def _extreme_params(dtype, logits):
    """A 2-3-k tanh net whose output is the constant ``logits`` for every input."""
    k = len(logits)
    return [np.ones((3, 2), dtype), np.zeros((3, 1), dtype), np.zeros((k, 3), dtype),
            np.array(logits, dtype).reshape(k, 1)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bce_finite_at_extreme_logits(dtype):
    dt = np.dtype(dtype)
    net = MLP([2, 3, 2], activation="tanh")
    f = compiled(net, "bce", dtype=dtype)
    X = np.ones((4, 2), dt)
    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dt)
    v, gs = f.value_and_grad(_extreme_params(dt, [1000.0, -1000.0]), X, Y)
    assert np.isfinite(v) and all(np.isfinite(g).all() and g.dtype == dt for g in gs)
    # per unit: softplus(z) - y z = 0 when right, 1000 when wrong; half the entries are wrong
    assert float(v) == pytest.approx(500.0, rel=1e-6)
    # d/db2 = mean over samples of (sigmoid(z) - y) / n_out
    np.testing.assert_allclose(gs[3].ravel(), [(1 - 0.5) / 2, (0 - 0.5) / 2], rtol=1e-6)


def _check_softmax_extreme(f, ps, X, dt):
    Y = np.eye(3, dtype=dt)  # one sample per class; logits [1000, -1000, 0] for every sample
    v, gs = f.value_and_grad(ps, X, Y)
    assert np.isfinite(v) and all(np.isfinite(g).all() and g.dtype == dt for g in gs)
    assert float(v) == pytest.approx(1000.0, rel=1e-6)  # per-sample losses 0, 2000, 1000
    # d/db2 = mean over samples of softmax(z) - y = [1, 0, 0] - mean(one-hots)
    np.testing.assert_allclose(gs[3].ravel(), [1 - 1 / 3, -1 / 3, -1 / 3], rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_ce_finite_at_extreme_logits(dtype):
    dt = np.dtype(dtype)
    f = compiled(MLP([2, 3, 3], activation="tanh"), "softmax_cross_entropy", dtype=dtype)
    _check_softmax_extreme(f, _extreme_params(dt, [1000.0, -1000.0, 0.0]), np.ones((3, 2), dt), dt)


@pytest.mark.numba
def test_softmax_ce_finite_at_extreme_logits_numba_float32(mish32):
    _, f32 = mish32
    dt = np.dtype(np.float32)
    ps = [np.ones((5, 3), dt), np.zeros((5, 1), dt), np.zeros((3, 5), dt), np.array([[1e3], [-1e3], [0]], dt)]
    _check_softmax_extreme(f32, ps, np.ones((3, 3), dt), dt)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_with_extreme_logits_stays_finite(dtype):
    dt = np.dtype(dtype)
    net = MLP([2, 3, 2], activation="tanh")
    X = np.ones((4, 2), dt)
    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dt)
    m = sg.fit(net, "bce", X, Y, optimizer=optim.SGD(1e-3), epochs=2, batch_size=2, dtype=dtype,
               params=_extreme_params(dt, [1000.0, -1000.0]), backend="python")
    assert np.isfinite(m.history["loss"]).all()
    assert m.evaluate(X, Y)["loss"] == pytest.approx(500.0, rel=1e-3)


# -- stopping rules, callbacks, history ----------------------------------------------------------


@pytest.fixture(scope="module")
def bce_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 2))
    Y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(float)
    return MLP([2, 4, 1], activation="tanh"), X, Y


def test_threshold_stops_at_first_epoch_below_with_chunk_1(bce_problem):
    net, X, Y = bce_problem
    m = sg.fit(net, "bce", X, Y, optimizer=optim.Adam(0.05), epochs=40, batch_size=16, threshold=0.3,
               chunk_epochs=1, backend="python")
    h = m.history["loss"]
    assert 1 < len(h) < 40
    assert h[-1] <= 0.3 and all(v > 0.3 for v in h[:-1])


def test_threshold_stops_at_first_epoch_below_default_chunking(bce_problem):
    net, X, Y = bce_problem
    m = sg.fit(net, "bce", X, Y, optimizer=optim.Adam(0.05), epochs=40, batch_size=16, threshold=0.3,
               backend="python")
    h = m.history["loss"]
    assert h[-1] <= 0.3 and all(v > 0.3 for v in h[:-1])


def test_threshold_stops_early_and_epochs_bound(bce_problem):
    net, X, Y = bce_problem
    m = sg.fit(net, "bce", X, Y, optimizer=optim.Adam(0.05), epochs=200, batch_size=16, threshold=0.3,
               backend="python")
    assert len(m.history["loss"]) < 200 and m.history["loss"][-1] <= 0.3
    m = sg.fit(net, "bce", X, Y, optimizer=optim.Adam(0.05), epochs=7, batch_size=16, threshold=1e-9,
               backend="python")
    assert len(m.history["loss"]) == 7


def test_early_stopping_restores_best_params(bce_problem):
    """Validation targets are the flipped training labels: validation loss rises as training
    improves, so the best epoch comes early and training stops ``patience`` epochs later."""
    net, X, Y = bce_problem
    kw = dict(optimizer=optim.Adam(0.05), batch_size=16, seed=2, backend="python")
    m = sg.fit(net, "bce", X, Y, epochs=50, validation=(X, 1 - Y), patience=3, **kw)
    val = m.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) == len(m.history["loss"]) == best + 1 + 3 < 50
    ref = sg.fit(net, "bce", X, Y, epochs=best + 1, **kw)  # same seed: same init and permutations
    for a, b in zip(m.params, ref.params, strict=True):
        np.testing.assert_array_equal(a, b)
    assert m.evaluate(X, 1 - Y)["loss"] == pytest.approx(val[best], rel=1e-12)


def test_callbacks_see_history_and_can_stop(bce_problem):
    net, X, Y = bce_problem
    calls = []

    def cb(epoch, result):
        calls.append((epoch, len(result.history["loss"]), result.params[0].copy()))
        return epoch >= 3

    m = sg.fit(net, "bce", X, Y, optimizer=optim.Adam(0.05), epochs=20, batch_size=16, callbacks=[cb],
               backend="python")
    assert [(e, n) for e, n, _ in calls] == [(1, 1), (2, 2), (3, 3)]
    assert len(m.history["loss"]) == 3
    assert not np.array_equal(calls[0][2], calls[1][2])  # parameters move between callbacks
    np.testing.assert_array_equal(calls[-1][2], m.params[0])
    stop = sg.fit(net, "bce", X, Y, epochs=6, callbacks=[lambda e, r: np.float64(e) >= 2], backend="python")
    assert len(stop.history["loss"]) == 2  # NumPy's True stops too
    with pytest.warns(RuntimeWarning, match=r"returned 0\.\d+: only True stops the training.*Fix: return True") as got:
        logged = sg.fit(net, "bce", X, Y, epochs=4, callbacks=[lambda e, r: r.history["loss"][-1]], backend="python")
    assert len(logged.history["loss"]) == 4 and len(got) == 1  # it goes on, warned once


def test_history_per_epoch(ce_problem):
    net, X, labels, Y, f, init = ce_problem
    Xv, lv = X[:6], labels[:6]
    m = sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=optim.Adam(0.05), epochs=4, batch_size=5,
               validation=(Xv, lv), backend="python")
    h = m.history
    assert set(h) >= {"loss", "val_loss", "val_accuracy", "grad_norms"}
    assert len(h["loss"]) == len(h["val_loss"]) == len(h["val_accuracy"]) == len(h["grad_norms"]) == 4
    assert all(len(g) == len(net.params) and all(v >= 0 for v in g) for g in h["grad_norms"])
    assert all(0.0 <= a <= 1.0 for a in h["val_accuracy"])
    ev = m.evaluate(Xv, lv)
    assert h["val_loss"][-1] == pytest.approx(ev["loss"], rel=1e-12)
    assert h["val_accuracy"][-1] == ev["accuracy"]
    # regression losses have no accuracy
    r = sg.fit(net, "mse", X, Y, epochs=2, batch_size=6, validation=(Xv, Y[:6]), backend="python")
    assert len(r.history["val_loss"]) == 2 and r.history["val_accuracy"] == []
    assert set(r.evaluate(Xv, Y[:6])) == {"loss"}


def test_predict_and_evaluate(ce_problem, bce_problem):
    net, X, labels, Y, f, init = ce_problem
    m = sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=optim.Adam(0.05), epochs=3, batch_size=4,
               backend="python")
    out = m.predict(X)
    assert out.shape == (len(X), 3)
    np.testing.assert_allclose(out, forward(m.params, X), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(m.predict_class(X), out.argmax(axis=1))
    ev = m.evaluate(X, labels)
    assert ev["loss"] == pytest.approx(f.value(m.params, X, Y), rel=1e-12)
    assert ev["accuracy"] == pytest.approx((out.argmax(axis=1) == labels).mean())
    assert m.evaluate(X, Y) == ev  # one-hot targets are accepted too

    bnet, BX, BY = bce_problem
    b = sg.fit(bnet, "bce", BX, BY, optimizer=optim.Adam(0.05), epochs=5, batch_size=16, backend="python")
    logits = b.predict(BX)[:, 0]
    ev = b.evaluate(BX, BY)
    assert ev["accuracy"] == pytest.approx(((logits > 0) == (BY > 0.5)).mean())
    assert ev["loss"] == pytest.approx(NUMPY_LOSSES["bce"](logits[:, None], BY[:, None]).mean(), rel=1e-12)


def test_save_load_roundtrip(ce_problem, tmp_path):
    net, X, labels, *_ = ce_problem
    m = sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=optim.Adam(0.05), epochs=3, batch_size=4,
               backend="python")
    path = tmp_path / "w.npz"
    m.save(str(path))
    fresh = sg.fit(net, "softmax_cross_entropy", X, labels, epochs=0, seed=9, backend="python")
    assert not np.array_equal(fresh.predict(X), m.predict(X))
    fresh.load(str(path))
    for a, b in zip(fresh.params, m.params, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    np.testing.assert_array_equal(fresh.predict(X), m.predict(X))
    other = sg.fit(MLP([3, 5, 3], activation="tanh"), "softmax_cross_entropy", X, labels, epochs=0,
                   backend="python")
    with pytest.raises(ShapeError, match="do not match"):
        other.load(str(path))


# -- gradient health and the NaN guard ------------------------------------------------------------


def test_vanishing_gradients_warn():
    rng = np.random.default_rng(0)
    net = MLP([4, 8, 8, 8, 8, 1], activation="sigmoid")
    params = [1e-3 * rng.normal(size=p.shape) if k % 2 == 0 else np.zeros(p.shape)
              for k, p in enumerate(net.init_params(0))]
    X = rng.normal(size=(32, 4))
    Y = (X[:, 0] > 0).astype(float)
    with pytest.warns(GradientHealthWarning, match=r"vanishing.*W1"):
        m = sg.fit(net, "bce", X, Y, optimizer=optim.SGD(0.1), epochs=1, batch_size=32, params=params,
                   backend="python")
    assert m.history["grad_norms"][0][0] < 1e-8


def test_exploding_gradients_warn_and_healthy_net_does_not():
    rng = np.random.default_rng(1)
    net = MLP([3, 2], activation="identity")
    X, Y = 1e3 * rng.normal(size=(16, 3)), 1e3 * rng.normal(size=(16, 2))
    with pytest.warns(GradientHealthWarning, match="exploding"):
        sg.fit(net, "mse", X, Y, optimizer=optim.SGD(0.0), epochs=1, batch_size=16, backend="python")
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientHealthWarning)
        sg.fit(net, "mse", X / 1e3, Y / 1e3, optimizer=optim.SGD(0.01), epochs=3, batch_size=4,
               backend="python")


def _diverging():
    rng = np.random.default_rng(0)
    return MLP([3, 2], activation="identity"), rng.normal(size=(32, 3)), 1e3 * rng.normal(size=(32, 2))


def test_divergence_raises_naming_the_epoch_and_keeps_params_finite():
    net, X, Y = _diverging()
    init = net.init_params(0)
    ps = [p.copy() for p in init]
    with no_health_warnings(), np.errstate(over="ignore", invalid="ignore"), \
            pytest.raises(DivergenceError, match=r"NaN/Inf in epoch \d+.*Try") as exc:
        sg.fit(net, "mse", X, Y, optimizer=optim.SGD(1e6), epochs=30, batch_size=8, params=ps,
               backend="python")
    assert isinstance(exc.value, SymgradError)
    epoch = int(re.search(r"epoch (\d+)", str(exc.value)).group(1))
    assert all(np.isfinite(p).all() for p in ps), "fit left non-finite values in the params= arrays"
    # the named epoch is the first bad one: one epoch fewer trains without error
    with no_health_warnings(), np.errstate(over="ignore"):
        m = sg.fit(net, "mse", X, Y, optimizer=optim.SGD(1e6), epochs=epoch - 1, batch_size=8,
                   params=[p.copy() for p in init], backend="python")
    assert len(m.history["loss"]) == epoch - 1 and np.isfinite(m.history["loss"]).all()


def test_divergence_from_overflowing_update_keeps_params_finite():
    rng = np.random.default_rng(0)
    net = MLP([3, 2], activation="identity")
    X, Y = 10 * rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    ps = net.init_params(0)
    with no_health_warnings(), np.errstate(over="ignore", invalid="ignore"), pytest.raises(DivergenceError):
        sg.fit(net, "mae", X, Y, optimizer=optim.SGD(1e308), epochs=3, batch_size=4, params=ps,
               backend="python")
    assert all(np.isfinite(p).all() for p in ps)


def test_fit_does_not_modify_params_argument(bce_problem):
    net, X, Y = bce_problem
    init = net.init_params(0)
    ps = [p.copy() for p in init]
    m = sg.fit(net, "bce", X, Y, optimizer=optim.SGD(0.1), epochs=2, batch_size=16, params=ps,
               backend="python")
    assert not np.array_equal(m.params[0], init[0])
    for p, q in zip(ps, init, strict=True):
        np.testing.assert_array_equal(p, q)


# -- bad input ----------------------------------------------------------------------------------------


def test_bad_labels(ce_problem):
    net, X, labels, *_ = ce_problem
    for bad in (np.where(labels == 0, 3, labels), np.where(labels == 0, -1, labels)):
        with pytest.raises(TargetError, match=r"class labels must be integers in \[0, 3\)"):
            sg.fit(net, "softmax_cross_entropy", X, bad, epochs=1, backend="python")
    with pytest.raises(TargetError, match=r"integers \(whole numbers\) in \[0, 3\)"):
        sg.fit(net, "softmax_cross_entropy", X, labels + 0.5, epochs=1, backend="python")
    with pytest.raises(TargetError, match=r"^Y has missing labels \(NaN"):
        sg.fit(net, "softmax_cross_entropy", X, np.where(labels == 0, np.nan, labels), epochs=1, backend="python")


def test_class_labels_stored_as_floats_or_bools_are_taken_as_integers(ce_problem):
    # as scikit-learn takes them: labels read from a CSV file or a DataFrame column are often floats
    net, X, labels, *_ = ce_problem
    runs = [sg.fit(net, "softmax_cross_entropy", X, y, epochs=2, seed=1, backend="python")
            for y in (labels, labels.astype(np.float32), labels.astype(object))]
    for m in runs[1:]:
        for p, q in zip(m.params, runs[0].params, strict=True):
            np.testing.assert_array_equal(p, q)
    two = sg.nn.MLP([X.shape[1], 5, 2])
    a, b = (sg.fit(two, "softmax_cross_entropy", X, y, epochs=1, seed=1, backend="python")
            for y in (labels > 0, (labels > 0).astype(int)))
    np.testing.assert_array_equal(a.params[0], b.params[0])
    with pytest.raises(ShapeError, match="3 outputs"):
        sg.fit(net, "softmax_cross_entropy", X, np.eye(4)[labels], epochs=1, backend="python")


def test_bad_data(ce_problem):
    net, X, labels, *_ = ce_problem
    with pytest.raises(DataError, match="12 rows but Y has 11"):
        sg.fit(net, "softmax_cross_entropy", X, labels[:-1], epochs=1, backend="python")
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(DataError, match=r"X holds a non-finite value.*\(3, 1\)"):
        sg.fit(net, "softmax_cross_entropy", Xn, labels, epochs=1, backend="python")
    Y = np.zeros((12, 3))
    Y[0, 0] = np.inf
    with pytest.raises(DataError, match="Y holds a non-finite"):
        sg.fit(net, "mse", X, Y, epochs=1, backend="python")
    with pytest.raises(DtypeError, match="X has dtype <U.*not numbers.*Fix"):
        sg.fit(net, "softmax_cross_entropy", X.astype(str), labels, epochs=1, backend="python")


def test_unknown_names():
    X, Y = np.zeros((4, 2)), np.zeros((4, 1))
    with pytest.raises(SymgradError, match="unknown loss 'msee'.*Known"):
        sg.fit(MLP([2, 3, 1]), "msee", X, Y, epochs=1, backend="python")
    with pytest.raises(SymgradError, match="unknown activation 'rellu'.*Known"):
        MLP([2, 3, 1], activation="rellu")
    with pytest.raises(SymgradError, match="unknown activation"):
        MLP([2, 3, 1], activation="tanh", output="nope")
    with pytest.raises(SymgradError, match="one argument"):
        sg.activation(lambda z: z * sp.Symbol("k"))
    with pytest.raises(SymgradError, match="at least"):
        MLP([3])


@pytest.mark.parametrize("case", ["W1_transposed", "b1_too_small", "too_few"])
def test_wrong_param_shapes(case, bce_problem):
    net, X, Y = bce_problem
    init = net.init_params(0)
    bad = {"W1_transposed": [init[0].T.copy(), *init[1:]],
           "b1_too_small": [init[0], np.zeros((1, 1)), *init[2:]],
           "too_few": init[:2]}[case]
    with pytest.raises(ShapeError):
        sg.fit(net, "bce", X, Y, epochs=1, params=bad, backend="python")


def test_unshuffled_full_batch_is_gradient_descent():
    """shuffle=False with one batch: exactly full-batch gradient descent on the compiled loss."""
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(40, 3)), (rng.random(40) > 0.5).astype(float)
    net = sg.nn.MLP([3, 4, 1], activation="tanh")
    p0 = net.init_params(1)
    m = sg.fit(net, "bce", X, Y, optimizer=sg.optim.SGD(0.3), epochs=3, batch_size=40, shuffle=False,
               params=p0, backend="python")
    y = sp.MatrixSymbol("y", 1, 1)
    f = sg.compile(sg.losses.binary_cross_entropy(net.expr, y), net.params, [net.x, y], backend="python")
    ps = [p.copy() for p in p0]
    for _ in range(3):
        _, g = f.value_and_grad(ps, X, Y)
        ps = [p - 0.3 * gi for p, gi in zip(ps, g)]
    for a, b in zip(m.params, ps):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_softmax_output_activation_gradients():
    """softmax as a layer activation (a vector op): exact gradients, Python and Numba agree."""
    net = sg.nn.MLP([3, 4, 3], activation="tanh", output="softmax")
    y = sp.MatrixSymbol("y", 3, 1)
    loss = sg.losses.mse(net.expr, y)
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(6, 3)), np.eye(3)[rng.integers(0, 3, 6)]
    ps = net.init_params(0)
    f = sg.compile(loss, net.params, [net.x, y], backend="python")
    assert sg.check_grads(f, ps, X, Y).fd_error < 1e-7
    vp, gp = f.value_and_grad(ps, X, Y)
    vn, gn = sg.compile(loss, net.params, [net.x, y]).value_and_grad(ps, X, Y)
    assert abs(vn - vp) < 1e-12 and all(np.allclose(a, b, rtol=1e-10, atol=1e-13) for a, b in zip(gn, gp))
    pred = sg.compile(sg.msum(net.expr), net.params, [net.x], backend="python")
    assert abs(pred.value(ps, X) - 1.0) < 1e-12  # each row of probabilities sums to one
    assert "δ_a2" in str(sg.formulas(net, "mse"))


# --- large minibatches: row blocks in parallel (train_chunk_par) ------------------------------


@pytest.fixture(scope="module")
def big_problem():
    """Enough rows (4,100) for fit to split a batch of these small rows into row blocks (2,048)."""
    return _ce_problem(3, 4100)


@pytest.mark.parametrize("batch_size", [4100, 2500])
def test_row_blocks_equal_the_unsplit_batch_and_the_unfused_loop(batch_size, big_problem):
    """Three blocks of a 4,100-row batch (and 2,500 + 1,600: the short last batch is one block)
    give the loss and gradients of the whole batch: weighted by their rows, up to rounding."""
    net, X, labels, Y, f, init = big_problem
    assert fit_threads(batch_size, 3, backend="python") == 3
    kw = dict(optimizer=optim.Adam(0.05), epochs=2, batch_size=batch_size, params=[p.copy() for p in init],
              backend="python", seed=4)
    split = sg.fit(net, "softmax_cross_entropy", X, labels, threads=3, **kw)
    whole = sg.fit(net, "softmax_cross_entropy", X, labels, threads=1, **kw)
    want, losses, _ = unfused(optim.Adam(0.05), f, init, X, Y, 2, batch_size, seed=4)
    for a, b, w in zip(split.params, whole.params, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(a, w, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(split.history["loss"], losses, rtol=1e-12)


@pytest.mark.numba
@pytest.mark.parametrize("opt", [optim.SGD(0.5), optim.Adam(0.05, clip_norm=0.02)], ids=["update in parallel", "clipped"])
def test_numba_parallel_kernel_matches_serial(opt, big_problem):
    net, X, labels, _, _, init = big_problem
    if fit_threads(len(X)) < 2:
        pytest.skip("Numba has one thread here: fit never splits a batch")
    kw = dict(optimizer=opt, epochs=3, batch_size=len(X), params=[p.copy() for p in init], shuffle=False)
    par = sg.fit(net, "softmax_cross_entropy", X, labels, **kw)
    ser = sg.fit(net, "softmax_cross_entropy", X, labels, threads=1, **kw)
    np.testing.assert_allclose(par.history["loss"], ser.history["loss"], rtol=1e-12)
    for a, b in zip(par.params, ser.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_fit_threads_rules():
    assert fit_threads(2047, 4, backend="python") == 1  # too few rows to split
    assert fit_threads(10_000, 1) == 1
    with pytest.raises(SymgradError, match="threads=0"):
        fit_threads(10_000, 0)
    # a block holds 1,024 rows, or fewer rows holding 2M multiply-adds
    assert (block_rows(0), block_rows(17_024), block_rows(10**7)) == (1024, 118, 1)
    assert fit_threads(235, 2, backend="python", work=17_024) == 1  # the digits MLP splits from 236 rows
    assert fit_threads(236, 2, backend="python", work=17_024) == 2
    assert fit_threads(64, 2, backend="python", work=84_000) == 2  # the digits CNN's batch of 64


def test_the_parallel_kernel_is_told_its_block_size():
    class Module:
        train_chunk = "serial"

        def train_chunk_par(self, **kw):
            return kw

    kernel, n = _kernel(Module(), 2, 8, "python", work=1_000_000)
    assert n is None and kernel() == {"threads": 2, "par_rows": 2}
    assert _kernel(Module(), 2, 3, "python", work=1_000_000) == ("serial", None)  # 3 rows: one block


def test_one_thread_splits_a_heavy_batch_of_shared_weights_into_two_blocks():
    """With one thread and one BLAS thread, a minibatch of convolution- or attention-like work
    (each weight used at many positions) of 16M multiply-adds or more runs as two row blocks, one
    after the other (cache_blocks); dense layers (work = weights) and lighter batches do not."""
    from symgrad.runtime.execution import CACHE_WORK, cache_blocks

    class Module:
        train_chunk = "serial"

        def train_chunk_par(self, **kw):
            return kw

    kernel, n = _kernel(Module(), 1, 64, "numba", work=416_520, n_params=61_706, blas_threads=1)
    assert n == 1 and kernel() == {"threads": 2, "par_rows": 1}  # LeNet-5: Numba runs one thread
    assert _kernel(Module(), 1, 64, "numba", work=416_520, n_params=61_706, blas_threads=None)[0] == "serial"
    # on one core BLAS has no second thread to split the products with: two blocks with any BLAS setting
    import symgrad.runtime.execution as execution

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(execution, "usable_cores", lambda: 1)
        assert _kernel(Module(), 1, 64, "numba", work=416_520, n_params=61_706)[0]() == {"threads": 2, "par_rows": 1}
    assert _kernel(Module(), 1, 64, "numba", work=84_224, n_params=6_570, blas_threads=1)[0] == "serial"
    assert cache_blocks(64, 1_860_000, 1_860_000) == 1  # a dense net: each weight once per sample
    assert cache_blocks(2, CACHE_WORK // 2, 1) == 2 and cache_blocks(2, CACHE_WORK // 2 - 1, 1) == 1
    assert cache_blocks(1, CACHE_WORK, 1) == 1


@pytest.mark.numba
def test_two_blocks_on_one_thread_equal_two_blocks_on_two_threads():
    """The same two row blocks, one after the other or in parallel: bit-identical parameters."""
    from test_conv_train import cnn, data

    from symgrad.runtime.execution import cache_blocks

    net, (X, labels) = cnn(), data(6_000)
    work = sample_work(net.expr)
    assert cache_blocks(len(X), work, sum(int(np.prod(p.shape)) for p in net.params)) == 2
    if fit_threads(len(X), work=work) < 2:
        pytest.skip("Numba has one thread here")
    init = net.init_params(seed=0)
    kw = dict(optimizer=optim.SGD(0.1), epochs=2, batch_size=len(X), shuffle=False, dtype="float64")
    two = sg.fit(net, "softmax_cross_entropy", X, labels, params=[p.copy() for p in init], **kw)
    one = sg.fit(net, "softmax_cross_entropy", X, labels, params=[p.copy() for p in init], threads=1,
                 blas_threads=1, **kw)
    for a, b in zip(two.params, one.params, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(one.history["loss"]).all() and one.history["loss"][1] < one.history["loss"][0]


@pytest.mark.numba
def test_small_batches_of_heavy_rows_split_and_match_the_serial_kernel():
    """Rows of 1M multiply-adds each: a batch of 4 is two blocks of 2 rows, on two threads."""
    net = sg.nn.MLP([1000, 1000, 3], activation="tanh")
    work = sample_work(net.expr)
    if fit_threads(4, work=work) < 2:
        pytest.skip("Numba has one thread here: fit never splits a batch")
    rng = np.random.default_rng(3)
    X, labels = rng.standard_normal((12, 1000)) / 30, rng.integers(0, 3, 12)
    init = net.init_params(seed=0)
    kw = dict(optimizer=optim.Adam(1e-3), epochs=2, batch_size=4, seed=1)
    par = sg.fit(net, "softmax_cross_entropy", X, labels, params=[p.copy() for p in init], **kw)
    ser = sg.fit(net, "softmax_cross_entropy", X, labels, params=[p.copy() for p in init], threads=1, **kw)
    np.testing.assert_allclose(par.history["loss"], ser.history["loss"], rtol=1e-12)
    for a, b in zip(par.params, ser.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_chunks_grow_until_a_native_call_lasts_long_enough():
    from symgrad.runtime.fit import CHUNK_SECONDS, _grow_chunk

    assert _grow_chunk(10, CHUNK_SECONDS / 200, 0) == 200  # 200 fast epochs per call
    assert _grow_chunk(10, 1.0, 0) == 10  # never shrinks
    assert _grow_chunk(10, 1e-9, 0) == 1000  # at most 1000 epochs per call
    assert _grow_chunk(10, 1e-9, 2**20) == 4  # shuffled: a call holds the indices of at most 2**22 rows
