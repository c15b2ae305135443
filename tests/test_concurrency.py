"""fit from callbacks, threads and forked processes (a user trial of 2026-12-06): the trained
numbers are the ones the model reports, whatever a callback rebinds; BLAS's thread count survives
fits that overlap in threads; a child forked after row blocks trains instead of dying."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import ShapeError

rng = np.random.default_rng(0)
X = rng.normal(size=(96, 5))
Y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
NET = sg.nn.MLP([5, 8, 3], activation="tanh")
KW = dict(optimizer=sg.optim.Adam(0.01), batch_size=16, seed=3, backend="python")


def _fit(epochs, **kw):
    return sg.fit(NET, "softmax_cross_entropy", X, Y, epochs=epochs, **KW, **kw)


def test_parameters_a_callback_rebinds_are_trained_on():
    """m.params[0] = ... (or m.load(path)) from a callback: training went on from the old values
    while the model returned the callback's arrays, frozen at that epoch. The oracle is the
    in-place write, which was honoured: fit 2 epochs, write, fit_more 3."""
    def halve_first(epoch, m):
        if epoch == 2:
            m.params[0] = m.params[0] * 0.5

    got = _fit(5, callbacks=[halve_first])
    two = _fit(2)
    two.params[0][...] *= 0.5
    want = two.fit_more(X, Y, epochs=3)
    for p, q in zip(got.params, want.params):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_allclose(got.history["loss"][2:], want.history["loss"][2:], rtol=0)
    assert got.evaluate(X, Y)["loss"] == want.evaluate(X, Y)["loss"]

    def reset_moments(epoch, m):  # new optimizer-state arrays: the kernel had kept updating the old ones
        if epoch == 2:
            m.state.opt_state = [np.zeros_like(s) for s in m.state.opt_state]

    got = _fit(5, callbacks=[reset_moments])
    two = _fit(2)
    for st in two.state.opt_state:
        st[...] = 0
    want = two.fit_more(X, Y, epochs=3)
    for p, q in zip(got.params, want.params):
        np.testing.assert_array_equal(p, q)

    def wrong_shape(epoch, m):
        m.params[1] = np.zeros(4)
    with pytest.raises(ShapeError, match="a callback set the model's parameters to shapes"):
        _fit(2, callbacks=[wrong_shape])


def test_fits_overlapping_in_threads_leave_blas_as_they_found_it():
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def counts():
        return [m["num_threads"] for m in threadpoolctl.threadpool_info() if m["user_api"] == "blas"]
    def one():
        sg.fit(NET, "softmax_cross_entropy", X, Y, epochs=3, seed=1, batch_size=16)
    one()  # the BLAS libraries symgrad loads are loaded before counting
    before = counts()
    for _ in range(5):
        ts = [threading.Thread(target=one) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert counts() == before


WIDE = sg.nn.MLP([5, 1024, 1024, 3], activation="relu")  # 1M multiply-adds a row: row blocks from 2 rows


def _child(q):
    m = sg.fit(WIDE, "softmax_cross_entropy", X, Y, epochs=2, seed=1, batch_size=16)
    q.put(float(m.history["loss"][-1]))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork here")
def test_a_child_forked_after_row_blocks_trains():
    """GNU OpenMP is not fork-safe: a child forked after the parent had run row blocks (Numba's
    prange) was killed at its first ('Terminating: fork() called from a process already using GNU
    OpenMP'), and a multiprocessing Pool waited for it forever."""
    from symgrad.runtime.execution import _PRANGE

    parent = sg.fit(WIDE, "softmax_cross_entropy", X, Y, epochs=2, seed=1, batch_size=16)
    assert _PRANGE["used"]  # the parent ran row blocks on Numba's threads
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    p.join(120)
    assert p.exitcode == 0, f"the forked child ended with {p.exitcode}"
    assert q.get(timeout=5) == pytest.approx(float(parent.history["loss"][-1]), rel=1e-6)
