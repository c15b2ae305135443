"""The row-block step (codegen/train_par.py): blocks' gradients in parallel, then the sum, the
norms and the update one slice of the parameters per thread. Checked against the one-block loop
and the unfused reference loop, through every update path (fused, clipped, stateful optimizers)."""

from __future__ import annotations

import numpy as np
import pytest
from test_train import compiled, unfused

import symgrad as sg
from symgrad.errors import DivergenceError
from symgrad.lang import optim
from symgrad.lang.nn import MLP
from symgrad.runtime.fit import fit_threads

# a 3-10-3 net: 73 parameters, so that three slices (cut at multiples of 16: 0-16, 16-48, 48-73)
# split W1 and W2 across threads
N_ROWS = 4100


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(7)
    net = MLP([3, 10, 3], activation="tanh")
    X, labels = rng.normal(size=(N_ROWS, 3)), rng.integers(0, 3, N_ROWS)
    return net, X, labels, np.eye(3)[labels], compiled(net, "softmax_cross_entropy"), net.init_params(3)


UPDATES = {
    "sgd": optim.SGD(0.5),
    "adam": optim.Adam(0.05, weight_decay=0.01),
    "momentum": optim.Momentum(0.1),
    "adam, clipped": optim.Adam(0.05, clip_norm=0.02),  # the norm first, then the update on one thread
}


@pytest.mark.parametrize("name", list(UPDATES))
def test_row_block_steps_equal_one_block_and_the_unfused_loop(name, problem):
    net, X, labels, Y, f, init = problem
    opt = UPDATES[name]
    assert fit_threads(N_ROWS, 3, backend="python") == 3
    kw = dict(optimizer=opt, epochs=2, batch_size=N_ROWS, params=[p.copy() for p in init], backend="python", seed=1)
    split = sg.fit(net, "softmax_cross_entropy", X, labels, threads=3, **kw)
    whole = sg.fit(net, "softmax_cross_entropy", X, labels, threads=1, **kw)
    want, losses, norms = unfused(opt, f, init, X, Y, 2, N_ROWS, seed=1, clip=opt.clip_norm is not None)
    for a, b, w in zip(split.params, whole.params, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(a, w, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(split.history["loss"], losses, rtol=1e-12)
    # each parameter's norm, added up from its parts in the slices of different threads
    np.testing.assert_allclose(split.history["grad_norms"], norms, rtol=1e-12)
    for a, b in zip(split.state.opt_state, whole.state.opt_state, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
    if opt.clip_norm is not None:  # the clip was active: otherwise this case tests nothing new
        assert min(np.linalg.norm(g) for g in norms[0]) > opt.clip_norm


def _module(problem, opt):
    net, X, labels, *_ = problem
    m = sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=opt, epochs=0, backend="python")
    return m._module.module, m._module.OFFSETS


def test_a_slice_whose_gradient_is_not_finite_is_left_unchanged(problem):
    """A non-finite gradient refuses the step: the slice that holds it keeps its parameters and
    optimizer state (no NaN reaches Adam's moments), the other slices update as Adam would, and
    the squared norms say which parameters were not finite."""
    opt = optim.Adam(0.1)
    mod, offsets = _module(problem, opt)
    n, rng = int(offsets[-1]), np.random.default_rng(0)
    theta, gpart = rng.normal(size=n), rng.normal(size=(3, n))
    m, v = rng.normal(size=n) * 0.1, rng.random(n) * 0.1
    gpart[1, 20] = np.nan  # W1's 21st entry: the second slice, 16-48
    th, mm, vv = theta.copy(), m.copy(), v.copy()
    grad, norms2, sqs = np.empty(n), np.empty((3, len(offsets) - 1)), np.empty(3)
    wpart = np.array([0.25, 0.5, 0.25])
    mod.par_update(th, grad, gpart, wpart, mm, vv, 0.1, 3, opt.hyper_values(), offsets, norms2, sqs, True)
    for a, b in ((0, 16), (48, n)):  # finite slices: Adam's step on the weighted sum of the blocks
        p, ms, vs = theta[a:b].copy(), m[a:b].copy(), v[a:b].copy()
        mod.opt_update(p, wpart @ gpart[:, a:b], ms, vs, 0.1, 3, opt.hyper_values())
        np.testing.assert_array_equal(th[a:b], p)
        np.testing.assert_array_equal(mm[a:b], ms)
        np.testing.assert_array_equal(vv[a:b], vs)
    np.testing.assert_array_equal(th[16:48], theta[16:48])
    np.testing.assert_array_equal(mm[16:48], m[16:48])
    np.testing.assert_array_equal(vv[16:48], v[16:48])
    bad = ~np.isfinite(norms2)  # (slice, parameter): only W1's part in the second slice
    assert bad[1, 0] and bad.sum() == 1
    assert np.isfinite(sqs).all()


def test_divergence_on_row_blocks_keeps_the_last_whole_epoch(problem):
    """A loss that overflows on row blocks: a DivergenceError, the last whole epoch's parameters
    (here the initial ones) and optimizer state without NaN."""
    net, X, labels, *_ = problem
    huge = [p * 1e300 for p in net.init_params(3)]
    with pytest.raises(DivergenceError) as err:
        sg.fit(net, "softmax_cross_entropy", X * 1e10, labels, optimizer=optim.Adam(0.1), epochs=2,
               batch_size=N_ROWS, params=huge, backend="python", threads=3)
    result = err.value.result
    for a, b in zip(result.params, huge, strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(a).all() for a in result.state.opt_state)


def _numpy_loss(ps, X, labels):
    """The 3-10-3 tanh net's mean softmax cross-entropy, in NumPy (no generated code)."""
    W1, b1, W2, b2 = ps
    z = np.tanh(X @ W1.T + b1[:, 0]) @ W2.T + b2[:, 0]
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(X)), labels]))


def test_one_step_on_row_blocks_follows_the_finite_difference_gradient(problem):
    """One full-batch SGD step on three row blocks moves each parameter by -lr times the whole
    batch's gradient, here from central differences of a NumPy forward (an oracle that shares
    no code with the generator or the blocks' sum)."""
    net, X, labels, _, _, init = problem
    lr = 0.5
    m = sg.fit(net, "softmax_cross_entropy", X, labels, optimizer=optim.SGD(lr), epochs=1, batch_size=N_ROWS,
               params=[p.copy() for p in init], backend="python", threads=3, shuffle=False)
    h = 1e-6
    for k, p in enumerate(init):
        fd = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            up, down = [q.copy() for q in init], [q.copy() for q in init]
            up[k][i] += h
            down[k][i] -= h
            fd[i] = (_numpy_loss(up, X, labels) - _numpy_loss(down, X, labels)) / (2 * h)
        np.testing.assert_allclose((p - m.params[k]) / lr, fd, rtol=1e-6, atol=1e-9)
