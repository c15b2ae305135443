"""Issue 19, training faults: after a divergence the kept parameters are the last whole epoch's
(every step of it finite), also inside a chunk of several epochs, and their loss is finite."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import DivergenceError


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    return X, X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.standard_normal((64, 1))


def test_an_overflow_mid_chunk_keeps_the_epochs_before_it():
    X, Y = _data()
    net = sg.nn.MLP([3, 8, 1], activation="tanh")
    jump = sg.optim.SGD(1e-3, schedule=sg.optim.StepLR(step_size=5, gamma=1e303))  # lr 1e300 from epoch 5 on
    with pytest.raises(DivergenceError, match=r"epoch 6;.*last whole epoch \(5\)") as info:
        sg.fit(net, "mse", X, Y, epochs=10, batch_size=16, optimizer=jump)  # one native call of 10 epochs
    kept = info.value.result
    five = sg.fit(net, "mse", X, Y, epochs=5, batch_size=16, optimizer=sg.optim.SGD(1e-3))
    assert len(kept.history["loss"]) == 5
    for a, b in zip(kept.params, five.params):
        np.testing.assert_array_equal(a, b)  # not the chunk's start (0 epochs), as before


@pytest.mark.filterwarnings("ignore::symgrad.GradientHealthWarning")
def test_a_diverging_net_keeps_parameters_whose_loss_is_finite():
    X, Y = _data()
    with pytest.raises(DivergenceError) as info:
        sg.fit(sg.nn.MLP([3, 16, 16, 1], activation="tanh"), "mse", X * 1e3, Y * 1e3, epochs=50, batch_size=8,
               optimizer=sg.optim.SGD(1.0))
    kept = info.value.result
    assert all(np.isfinite(p).all() for p in kept.params)
    assert np.isfinite(kept.evaluate(X * 1e3, Y * 1e3)["loss"])
