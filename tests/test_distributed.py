"""symgrad on Dask (issue 20): a real multi-process LocalCluster, started by the tests themselves.

Oracles: the same compiled model on the NumPy arrays in this process (the distributed sums must
equal it to 1e-12), and single-process full-batch training step for step.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import DataError

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

RTOL = 1e-12


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def decay():
    a, k, c, t, y = sp.symbols("a k c t y", real=True)
    f = sg.compile((a * sp.exp(-k * t) + c - y) ** 2, wrt=[a, k, c], data=[t, y])
    rng = np.random.default_rng(3)
    ts = rng.uniform(0, 4, 2001)
    ys = 2.5 * np.exp(-0.8 * ts) + 0.3 + 0.01 * rng.normal(size=ts.size)
    return f, ts, ys


# uneven chunks, a chunk of one row, and one chunk holding everything
CHUNKINGS = [(1, 700, 1000, 300), (2001,), (500, 500, 500, 500, 1)]


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=lambda c: f"{len(c)}-chunks")
def test_formula_value_grad_hvp_equal_single_process(client, decay, chunks):
    f, ts, ys = decay
    T, Y = da.from_array(ts, chunks=(chunks,)), da.from_array(ys, chunks=(chunks,))
    theta, v = [1.9, 0.6, 0.1], np.array([0.3, -1.2, 0.7])
    val, g = f.value_and_grad(theta, T, Y)
    want_v, want_g = f.value_and_grad(theta, ts, ys)
    np.testing.assert_allclose(val, want_v, rtol=RTOL)
    np.testing.assert_allclose(g, want_g, rtol=RTOL)
    np.testing.assert_allclose(f.value(theta, T, Y), want_v, rtol=RTOL)
    np.testing.assert_allclose(f.grad(theta, t=T, y=Y), want_g, rtol=RTOL)
    np.testing.assert_allclose(f.hvp(theta, v, T, Y), f.hvp(theta, v, ts, ys), rtol=RTOL)


def test_sum_reduction_and_lbfgs_reach_the_single_process_optimum(client, decay):
    from scipy.optimize import minimize

    f, ts, ys = decay
    a, k, c, t, y = sp.symbols("a k c t y", real=True)
    fs = sg.compile((a * sp.exp(-k * t) + c - y) ** 2, wrt=[a, k, c], data=[t, y], reduction="sum")
    T, Y = da.from_array(ts, chunks=600).persist(), da.from_array(ys, chunks=600).persist()
    np.testing.assert_allclose(fs.value([1, 1, 0], T, Y), fs.value([1, 1, 0], ts, ys), rtol=RTOL)
    here = minimize(f.value_and_grad, [1, 1, 0], args=(ts, ys), jac=True, method="L-BFGS-B")
    there = minimize(f.value_and_grad, [1, 1, 0], args=(T, Y), jac=True, method="L-BFGS-B")
    np.testing.assert_allclose(there.x, here.x, rtol=1e-8)
    np.testing.assert_allclose(there.x, [2.5, 0.8, 0.3], atol=0.02)


def test_tensor_model_over_dask_takes_theta_as_arrays(client):
    w, x = sp.MatrixSymbol("w", 3, 1), sp.MatrixSymbol("x", 3, 1)
    yv = sp.MatrixSymbol("y", 1, 1)
    loss = sg.losses.mse(w.T * x, yv)
    f = sg.compile(loss, wrt=[w], data=[x, yv])
    rng = np.random.default_rng(0)
    X, Yn = rng.normal(size=(101, 3)), rng.normal(size=(101, 1))
    W = [rng.normal(size=(3, 1))]
    v, g = f.value_and_grad(W, da.from_array(X, chunks=(40, 3)), da.from_array(Yn, chunks=(40, 1)))
    want_v, want_g = f.value_and_grad(W, X, Yn)
    np.testing.assert_allclose(v, want_v, rtol=RTOL)
    assert isinstance(g, list) and g[0].shape == (3, 1)
    np.testing.assert_allclose(g[0], want_g[0], rtol=RTOL)
    hv = f.hvp(W, [np.ones((3, 1))], da.from_array(X, chunks=(40, 3)), da.from_array(Yn, chunks=(40, 1)))
    np.testing.assert_allclose(hv[0], f.hvp(W, [np.ones((3, 1))], X, Yn)[0], rtol=RTOL)
    H = f.hessian(W, da.from_array(X, chunks=(40, 3)), da.from_array(Yn, chunks=(40, 1)))
    np.testing.assert_allclose(H, f.hessian(W, X, Yn), rtol=RTOL)


def test_hessian_residuals_jacobian_and_covariance_run_on_the_workers(client, decay, monkeypatch):
    # they converted the Dask arrays with np.asarray: all the data into the client's memory
    f, ts, ys = decay
    T, Y = da.from_array(ts, chunks=(1, 700, 1000, 300)), da.from_array(ys, chunks=(1, 700, 1000, 300))
    monkeypatch.setattr(type(T), "__array__", lambda *a, **k: pytest.fail("the data came to the client"))
    np.testing.assert_allclose(f.hessian([1, 1, 0], T, Y), f.hessian([1, 1, 0], ts, ys), rtol=RTOL)
    a, k, c, t, y = sp.symbols("a k c t y", real=True)
    r = sg.compile_residuals(a * sp.exp(-k * t) + c - y, wrt=[a, k, c], data=[t, y])
    theta = [2.4, 0.75, 0.3]
    np.testing.assert_allclose(r.residuals(theta, T, Y), r.residuals(theta, ts, ys), rtol=RTOL)
    np.testing.assert_allclose(r.jacobian(theta, T, Y), r.jacobian(theta, ts, ys), rtol=RTOL)
    np.testing.assert_allclose(r.covariance(theta, T, Y), r.covariance(theta, ts, ys), rtol=1e-10)
    np.testing.assert_allclose(r.covariance(theta, T, Y, absolute_sigma=True),
                               r.covariance(theta, ts, ys, absolute_sigma=True), rtol=1e-10)


def test_float32_results_come_back_in_float32(client):
    # value and value_and_grad's value over Dask came back as Python floats; in memory as float32
    a, t, y = sp.symbols("a t y", real=True)
    f = sg.compile((a * t - y) ** 2, wrt=[a], data=[t, y], dtype="float32")
    ts = np.linspace(0, 1, 1001, dtype=np.float32)
    ys = (0.3 * ts).astype(np.float32)
    T, Y = da.from_array(ts, chunks=300), da.from_array(ys, chunks=300)
    for there, here in ((f.value([1.0], T, Y), f.value([1.0], ts, ys)),
                        (f.value_and_grad([1.0], T, Y)[0], f.value_and_grad([1.0], ts, ys)[0])):
        assert type(there) is type(here) is np.float32
        np.testing.assert_allclose(there, here, rtol=1e-6)


def test_a_workers_non_finite_warning_reaches_the_client(client, decay):
    f, ts, ys = decay
    T, Y = da.from_array(ts, chunks=500), da.from_array(ys, chunks=500)
    with pytest.warns(sg.NonFiniteWarning, match=r"in the row chunk of rows \d+ to \d+: the value is not finite"):
        assert np.isinf(f.value([1, -400, 0], T, Y))
    log = sg.compile((sp.log(sp.Symbol("a", real=True) * sp.Symbol("t", real=True)) - sp.Symbol("y", real=True)) ** 2,
                     wrt=[sp.Symbol("a", real=True)], data=[sp.Symbol("t", real=True), sp.Symbol("y", real=True)])
    bad = np.where(np.arange(ts.size) == 725, -1.0, ts + 1)
    with pytest.warns(sg.NonFiniteWarning, match=r"rows 500 to 999: the value is not finite: sample 725 \(t = -1"):
        log.value([1.0], da.from_array(bad, chunks=500), Y)  # the whole data's row, not the chunk's 225


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data[:600] / 16.0, d.target[:600]
    return X, y, sg.nn.MLP([64, 12, 10], activation="tanh")


def _dask(X, y, rows):
    return da.from_array(X, chunks=(rows, X.shape[1])), da.from_array(y, chunks=rows)


def test_sync_training_is_single_process_full_batch_step_for_step(client, digits):
    X, y, net = digits
    Xd, yd = _dask(X, y, 170)  # uneven: 170, 170, 170, 90
    opt = sg.optim.Adam(0.02, clip_norm=0.5)
    dist = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, optimizer=opt, epochs=8)
    one = sg.fit(net, "softmax_cross_entropy", X, y, optimizer=opt, epochs=8, batch_size=len(X), shuffle=False)
    np.testing.assert_allclose(dist.history["loss"], one.history["loss"], rtol=1e-12)
    np.testing.assert_allclose(dist.history["grad_norms"], one.history["grad_norms"], rtol=1e-10)
    for p, q in zip(dist.params, one.params):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-13)
    assert dist.state.epoch == 8 and dist.state.t == one.state.t == 8
    # and it resumes like a single-process model
    more = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, epochs=2, resume=dist)
    np.testing.assert_allclose(more.history["loss"][:8], dist.history["loss"])
    assert len(more.history["loss"]) == 10 and more.history["loss"][-1] < dist.history["loss"][-1]


def test_dropout_on_dask_draws_the_single_process_masks(client, digits):
    """Sync steps with Dropout are the single-process full-batch steps: each mask entry is a hash
    of (step key, row in the whole data, column), whichever worker computes the row."""
    X, y, _ = digits
    nn = sg.nn
    net = nn.Sequential([nn.Dense(64, 16, "relu"), nn.Dropout(0.3), nn.Dense(16, 10)], 64)
    Xd, yd = _dask(X, y, 170)
    opt = sg.optim.Adam(0.02)
    dist = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, optimizer=opt, epochs=4, seed=3)
    one = sg.fit(net, "softmax_cross_entropy", X, y, optimizer=opt, epochs=4, batch_size=len(X), shuffle=False, seed=3)
    np.testing.assert_allclose(dist.history["loss"], one.history["loss"], rtol=1e-12)
    for p, q in zip(dist.params, one.params):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-13)
    more = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, epochs=2, resume=dist)
    one_more = sg.fit(net, "softmax_cross_entropy", X, y, epochs=2, batch_size=len(X), shuffle=False, resume=one)
    np.testing.assert_allclose(more.history["loss"], one_more.history["loss"], rtol=1e-12)
    with pytest.raises(sg.errors.OptionError, match="does not train BatchNorm.*Fix: train on one machine"):
        sg.fit(nn.Sequential([nn.Dense(64, 8), nn.BatchNorm(8), nn.Dense(8, 10)], 64), "softmax_cross_entropy",
               Xd, yd, client=client)
    # local SGD: each chunk its own masks; a run is reproducible and learns
    local = [sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, strategy="local", local_steps=2,
                    batch_size=32, optimizer=opt, epochs=4, seed=1) for _ in range(2)]
    np.testing.assert_array_equal(local[0].history["loss"], local[1].history["loss"])
    assert local[0].history["loss"][-1] < 0.8 * local[0].history["loss"][0]  # 2.31 -> 1.65 measured


def test_local_sgd_with_one_step_and_equal_chunks_is_synchronous_sgd(client, digits):
    X, y, net = digits
    Xd, yd = _dask(X, y, 150)  # four equal chunks
    opt = sg.optim.SGD(0.5)
    local = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, strategy="local", local_steps=1,
                   batch_size=150, shuffle=False, optimizer=opt, epochs=5)
    sync = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, optimizer=opt, epochs=5)
    for p, q in zip(local.params, sync.params):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(local.history["loss"], sync.history["loss"], rtol=1e-10)
    # a batch larger than a chunk is the chunk (the workers' buffers were sized by batch_size)
    huge = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, strategy="local", local_steps=1,
                  batch_size=10**9, shuffle=False, optimizer=opt, epochs=5)
    np.testing.assert_array_equal(huge.history["loss"], local.history["loss"])


def test_local_sgd_trains_float32_data_with_validation_and_early_stopping(client, digits):
    X, y, net = digits
    Xd, yd = _dask(X.astype(np.float32), y, 200)
    m = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, strategy="local", local_steps=4,
               batch_size=16, optimizer=sg.optim.Adam(0.01), epochs=6, validation=(X[:100], y[:100]),
               patience=3)
    assert m.dtype == np.float32 and m.params[0].dtype == np.float32
    assert m.history["loss"][-1] < 0.5 * m.history["loss"][0]
    assert len(m.history["val_loss"]) == len(m.history["loss"])
    assert m.evaluate(X, y)["accuracy"] > 0.85

    # a masked validation set is refused as fit refuses it in memory (its mask was dropped silently)
    masked = np.ma.masked_array(X[:100], mask=X[:100] > 0.9)
    with pytest.raises(DataError, match="^X_val is a masked array with masked entries"):
        sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, epochs=1, validation=(masked, y[:100]))

def test_a_killed_worker_is_replaced_and_training_is_unchanged(client, digits):
    X, y, net = digits
    Xd, yd = _dask(X, y, 150)
    Xd, yd = Xd.persist(), yd.persist()
    opt = sg.optim.Adam(0.02)

    def kill_one(epoch, result):
        if epoch == 2:  # the nanny restarts it; Dask recomputes its chunks from the graph
            pid = sorted(client.run(os.getpid).values())[0]
            os.kill(pid, signal.SIGKILL)
        return False

    hurt = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, optimizer=opt, epochs=5, callbacks=[kill_one])
    whole = sg.fit(net, "softmax_cross_entropy", X, y, optimizer=opt, epochs=5, batch_size=len(X), shuffle=False)
    for p, q in zip(hurt.params, whole.params):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-13)
    client.wait_for_workers(2, timeout=60)


def test_divergence_keeps_the_last_finite_parameters(client, digits):
    X, y, _ = digits
    net = sg.nn.MLP([64, 8, 1], activation="relu")
    for strategy in ("sync", "local"):
        with pytest.raises(sg.errors.DivergenceError) as info:
            sg.fit(net, "mse", *_dask(X.astype(np.float32), y * 1e3, 200), client=client, strategy=strategy,
                   optimizer=sg.optim.Momentum(10.0, beta=0.5), epochs=20)
        assert all(np.isfinite(p).all() for p in info.value.result.params)
        # the optimizer state is restored with the parameters (local SGD averages it per round)
        assert all(np.isfinite(s).all() for s in info.value.result.state.opt_state)
        assert len(info.value.result.history["loss"]) < 20


def test_cancelled_futures_are_submitted_again_once():
    """Dask cancels a step's futures when the scheduler forgets their keys while it replaces a killed
    worker (seen under load); the pure tasks are submitted once more, and a second cancellation, or
    any other failure, stops training with DistributedError."""
    from distributed.client import FutureCancelledError

    from symgrad.distributed.arrays import compute

    class Flaky:  # a client whose first ``fails`` gathers are cancelled
        def __init__(self, fails, error=FutureCancelledError):
            self.fails, self.error, self.submitted = fails, error, 0

        def compute(self, tasks):
            self.submitted += 1
            return tasks

        def gather(self, futures):
            if self.fails:
                self.fails -= 1
                raise self.error("k", "already forgotten") if self.error is FutureCancelledError else self.error("lost")
            return [2 * f for f in futures]

    once = Flaky(1)
    assert compute(once, [1, 2], "the test") == [2, 4] and once.submitted == 2
    for client in (Flaky(2), Flaky(1, OSError)):
        with pytest.raises(sg.errors.DistributedError, match="the Dask computation of the test failed.*Fix: .*persist"):
            compute(client, [1], "the test")


def test_dask_frames_are_refused_not_computed_on_the_client(decay):
    # a Dask Series went through NumPy's __array__: computed whole here, no error, no Client needed
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    frame = dd.from_pandas(pd.DataFrame({"t": np.linspace(0, 1, 40), "y": np.ones(40)}), npartitions=4)
    f, *_ = decay
    with pytest.raises(sg.errors.DataError, match="is a Dask Series.*to_dask_array"):
        f.value([2.5, 0.8, 0.3], frame["t"], frame["y"])
    with pytest.raises(sg.errors.DataError, match="X is a Dask DataFrame.*to_dask_array"):
        sg.fit(sg.nn.MLP([2, 1]), "mse", frame, frame["y"], epochs=1)


# -- bad input ---------------------------------------------------------------------------------

def test_bad_input_is_named_with_its_fix(client, digits, decay):
    X, y, net = digits
    with pytest.raises(sg.errors.DataError, match="client= trains on Dask arrays"):
        sg.fit(net, "softmax_cross_entropy", X, y, client=client)
    with pytest.raises(sg.errors.ShapeError, match=r"rechunk\(\{0: X.chunks\[0\]\}\)"):
        sg.fit(net, "softmax_cross_entropy", da.from_array(X, chunks=(100, 64)), da.from_array(y, chunks=150),
               client=client)
    with pytest.raises(sg.errors.OptionError, match="strategy"):
        sg.fit(net, "softmax_cross_entropy", *_dask(X, y, 200), client=client, strategy="async")
    with pytest.raises(sg.errors.OptionError, match="for training on Dask arrays"):
        sg.fit(net, "softmax_cross_entropy", X, y, strategy="local")
    bad = X.copy()
    bad[450, 3] = np.nan
    # the row of the whole data, not of the chunk (450 - 400 = 50)
    with pytest.raises(sg.errors.DataError, match=r"row chunk of rows 400 to 599.*non-finite.*\(450, 3\)"):
        sg.fit(net, "softmax_cross_entropy", *_dask(bad, y, 200), client=client, epochs=1)
    # the chunk is said up front, not spliced into the fix's code (np.unique(Y, the row chunk of rows 0 to 199,, ...))
    with pytest.raises(sg.errors.TargetError, match=r"^in the row chunk of rows \d+ to \d+: class labels .*"
                                                    r"np\.unique\(Y, return_inverse=True\)\[1\]"):
        sg.fit(sg.nn.MLP([64, 4, 3]), "softmax_cross_entropy", *_dask(X, y, 200), client=client, epochs=1)
    f, ts, ys = decay
    with pytest.raises(sg.errors.DataError, match="some data are Dask arrays"):
        f.value_and_grad([1, 1, 0], da.from_array(ts, chunks=500), ys)
    with pytest.raises(sg.errors.DataError, match=r"row chunk of rows 500 to 999.*non-finite value \(inf\) at index 600\."):
        f.value_and_grad([1, 1, 0], da.from_array(np.where(np.arange(ts.size) == 600, np.inf, ts), chunks=500),
                         da.from_array(ys, chunks=500))
    with pytest.raises(sg.errors.ShapeError, match=r"takes 2 data arrays \(\['t', 'y'\]\), got 1. Fix: pass one"):
        f.value([1, 1, 0], da.from_array(ts, chunks=500))
    a, b = sp.symbols("a b", real=True)
    rosenbrock = sg.compile((1 - a) ** 2 + 100 * (b - a**2) ** 2, wrt=[a, b])
    with pytest.raises(sg.errors.ShapeError, match="Fix: call it without Dask arrays"):
        rosenbrock.value([0, 0], da.ones((10, 1), chunks=5))


def test_in_memory_only_options_are_refused_with_dask(client, digits):
    from sklearn.metrics import f1_score

    X, y, net = digits
    with pytest.raises(sg.errors.OptionError, match="validation_split= slices in-memory arrays"):
        sg.fit(net, "softmax_cross_entropy", *_dask(X, y, 200), client=client, validation_split=0.2)
    with pytest.raises(sg.errors.OptionError, match="metrics= are computed on validation data"):
        sg.fit(net, "softmax_cross_entropy", *_dask(X, y, 200), client=client, metrics=[f1_score], epochs=1)
    m = sg.fit(net, "softmax_cross_entropy", *_dask(X, y, 200), client=client, epochs=2,
               validation=(X[:100], y[:100]), metrics={"f1": lambda t, p: f1_score(t, p, average="macro")})
    assert len(m.history["val_f1"]) == 2 and m.history["lr"] == [0.001, 0.001]


def test_a_failed_computation_becomes_a_distributed_error(client):
    import dask

    from symgrad.distributed.arrays import compute

    def broken():
        raise RuntimeError("disk on fire")

    with pytest.raises(sg.errors.DistributedError, match="disk on fire"):
        compute(client, [dask.delayed(broken)()], "a test")


def test_data_rewritten_between_fits_is_read_again(client, tmp_path):
    """Workers cache prepared chunks per fit: from_npy_stack names chunks by directory, so a
    cache by Dask key alone trained the second fit on the first fit's labels."""
    net = sg.nn.MLP([2, 2], activation="tanh")
    X = np.random.default_rng(0).standard_normal((400, 2))
    da.to_npy_stack(tmp_path / "X", da.from_array(X, chunks=(200, 2)))
    for flip in (False, True):
        y = ((X[:, 0] > 0) ^ flip).astype(int)
        da.to_npy_stack(tmp_path / "y", da.from_array(y, chunks=200))
        Xd, yd = da.from_npy_stack(tmp_path / "X"), da.from_npy_stack(tmp_path / "y")
        for strategy in ("sync", "local"):
            m = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, strategy=strategy, batch_size=200,
                       local_steps=1, shuffle=False, optimizer=sg.optim.SGD(0.5), epochs=3)
            ref = sg.fit(net, "softmax_cross_entropy", X, y, optimizer=sg.optim.SGD(0.5), epochs=3,
                         batch_size=len(X), shuffle=False)
            for p, q in zip(m.params, ref.params):
                np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-13, err_msg=f"flip={flip} {strategy}")


def test_data_against_a_declared_assumption_is_refused_on_dask_too(client):
    """Issue 19: a symbol declared positive lets SymPy fold sqrt(x**2) to x; each chunk's data is
    checked against it on the worker, as in one process, naming the chunk."""
    a, x = sp.Symbol("a", real=True), sp.Symbol("x", positive=True)
    f = sg.compile(a * sp.sqrt(x**2), wrt=[a], data=[x])
    xs = np.linspace(0.5, 3.0, 600)
    assert f.value([2.0], da.from_array(xs, chunks=200)) == pytest.approx(f.value([2.0], xs), rel=RTOL)
    bad = xs.copy()
    bad[450] = -1.0
    with pytest.raises(sg.errors.AssumptionError, match=r"row chunk of rows 400 to 599.*positive.*Fix:"):
        f.value([2.0], da.from_array(bad, chunks=200))


def test_parameters_a_callback_rebinds_are_trained_on_dask(client, digits):
    X, y, net = digits
    Xd, yd = _dask(X, y, 200)

    def halve_first(epoch, m):
        if epoch == 2:
            m.params[0] = m.params[0] * 0.5
    got = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, epochs=4, callbacks=[halve_first])
    two = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, epochs=2)
    two.params[0][...] *= 0.5
    want = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, epochs=2, resume=two)
    for p, q in zip(got.params, want.params):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-15)


def test_a_language_model_trains_on_dask_as_in_memory(client):
    # the workers and validation= prepared token targets without their positions: n_out // None, a raw
    # TypeError (in a DistributedError that blamed lost workers)
    V, T = 5, 6
    net = sg.nn.Transformer(vocab=V, d=8, heads=2, layers=1, context=T)
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, V, (40, T)).astype(float), rng.integers(0, V, (40, T))
    start = sg.fit(net, "token_cross_entropy", X, Y, epochs=0).params
    opts = dict(epochs=2, optimizer=sg.optim.SGD(0.5), validation=(X[:8], Y[:8]))
    dist = sg.fit(net, "token_cross_entropy", *_dask(X, Y, 15), client=client, params=[p.copy() for p in start], **opts)
    one = sg.fit(net, "token_cross_entropy", X, Y, batch_size=40, shuffle=False, params=[p.copy() for p in start], **opts)
    np.testing.assert_allclose(dist.history["val_loss"], one.history["val_loss"], rtol=1e-12)
    for p, q in zip(dist.params, one.params):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-13)


def test_a_client_closed_during_a_fit_or_before_it_is_a_distributed_error(client, digits):
    # closed from a callback, it escaped as distributed's ClosedClientError and lost the epochs trained;
    # passed closed, as RuntimeError('IOLoop is closed')
    X, y, net = digits
    Xd, yd = _dask(X, y, 200)
    other = distributed.Client(client.cluster)

    def close_after_two(epoch, model):
        if epoch == 2:
            other.close()

    with pytest.raises(sg.errors.DistributedError) as info:
        sg.fit(net, "softmax_cross_entropy", Xd, yd, client=other, optimizer=sg.optim.Adam(0.01), epochs=5,
               callbacks=[close_after_two])
    two = sg.fit(net, "softmax_cross_entropy", Xd, yd, client=client, optimizer=sg.optim.Adam(0.01), epochs=2)
    assert len(info.value.result.history["loss"]) == 2
    for a, b in zip(info.value.result.params, two.params):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(sg.errors.DistributedError, match="is closed. Fix"):
        sg.fit(net, "softmax_cross_entropy", Xd, yd, client=other, epochs=1)


def test_a_scatter_dask_refuses_is_a_distributed_error():
    from symgrad.distributed.arrays import scatter

    class NoWorkers:
        def scatter(self, *args, **kwargs):
            raise TimeoutError("No valid workers found")

    with pytest.raises(sg.errors.DistributedError, match="No valid workers found.*Fix: check that the cluster"):
        scatter(NoWorkers(), object(), "the compiled model")


def test_a_callback_that_rebinds_the_optimizer_state_is_checked_on_dask_too(client):
    # sync_states was not called on Dask: a wrong shape escaped as Numba's raw TypeError
    X = np.random.default_rng(0).normal(size=(80, 3))
    y = X @ np.array([1.0, -2.0, 0.5])

    def cb(epoch, m):
        if epoch == 1:
            m.state.opt_state = [np.zeros(3)]

    with pytest.raises(sg.errors.ShapeError, match="optimizer state"):
        sg.fit(sg.nn.MLP([3, 4, 1]), "mse", *_dask(X, y, 40), client=client, optimizer=sg.optim.Adam(0.01),
               epochs=3, callbacks=[cb])
