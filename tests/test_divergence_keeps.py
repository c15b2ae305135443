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


@pytest.mark.filterwarnings("ignore::symgrad.GradientHealthWarning")
@pytest.mark.parametrize("opt", ["Momentum", "Adam"])
def test_a_divergence_keeps_the_optimizer_state_and_generator_of_the_last_whole_epoch(opt):
    # the kernel put the parameters back, but a momentum of 3e104 and a step count 4 ahead stayed,
    # so resume=err.result with the smaller rate the message advises diverged at once
    X, Y = _data()
    net = sg.nn.MLP([3, 8, 1], activation="relu")
    jump = getattr(sg.optim, opt)(0.01, schedule=sg.optim.StepLR(step_size=3, gamma=1e300))
    with pytest.raises(DivergenceError, match=r"epoch 4;") as info:  # 4 steps an epoch; epochs 1-3 fine
        sg.fit(net, "mse", X, Y, epochs=10, batch_size=16, optimizer=jump, seed=1, chunk_epochs=10)
    kept = info.value.result
    clean = sg.fit(net, "mse", X, Y, epochs=3, batch_size=16, optimizer=jump, seed=1)
    assert kept.state.t == clean.state.t == 12 and kept.state.epoch == 3
    for a, b in zip(kept.state.opt_state + kept.params, clean.state.opt_state + clean.params):
        np.testing.assert_array_equal(a, b)
    assert kept.state.rng_state == clean.state.rng_state  # the next epoch's shuffle is the clean run's
    small = getattr(sg.optim, opt)(1e-3)
    went_on = sg.fit(net, "mse", X, Y, epochs=2, batch_size=16, optimizer=small, resume=kept)
    same = sg.fit(net, "mse", X, Y, epochs=2, batch_size=16, optimizer=small, resume=clean)
    for a, b in zip(went_on.params, same.params):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("schedule, said", [(lambda lr, e: -lr, "gave -0.1"), (lambda lr, e: float("nan"), "gave nan"),
                                            (lambda e: 0.1, "TypeError"), (lambda lr, e: "0.1x", "gave '0.1x'")])
def test_a_schedule_that_gives_no_rate_is_refused(schedule, said):
    # a negative rate trained uphill silently; NaN read as an overflow; the others escaped raw
    X, Y = _data()
    with pytest.raises(sg.errors.OptionError, match=f"{said}.*epoch 0.*Fix"):
        sg.fit(sg.nn.MLP([3, 1]), "mse", X, Y, epochs=2, optimizer=sg.optim.SGD(0.1, schedule=schedule))
    m = sg.fit(sg.nn.MLP([3, 1]), "mse", X, Y, epochs=2, optimizer=sg.optim.SGD(0.1, schedule=lambda lr, e: lr / (1 + e)))
    assert m.history["lr"] == [0.1, 0.05]


def test_gradient_clipping_fires_as_torch_clip_grad_norm_does():
    # torch scales by c/(‖g‖ + 1e-6) whenever that is below 1, i.e. from ‖g‖ > c − 1e-6: the kernel
    # waited for ‖g‖ > c, a step 0.4% off for c just above a small gradient's norm
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 2))
    w = np.array([[0.3, -0.2]])
    Y = X @ w.T + 1e-4 * rng.normal(size=(16, 1))
    r = X @ w.T - Y  # the gradient of the mean squared error by hand, at W = w, b = 0
    g = np.concatenate([(2 * r * X).mean(0), [(2 * r).mean()]])
    norm = np.sqrt((g**2).sum())
    c = norm + 5e-7
    m = sg.fit(sg.nn.MLP([2, 1]), "mse", X, Y, optimizer=sg.optim.SGD(1.0, clip_norm=c), epochs=1, batch_size=16,
               shuffle=False, params=[w.copy(), np.zeros((1, 1))])
    want = -g * c / (norm + 1e-6)
    np.testing.assert_allclose(np.concatenate([m.params[0].ravel() - w.ravel(), m.params[1].ravel()]), want, rtol=1e-9)


def test_callbacks_see_the_epoch_on_which_training_stops():
    X, Y = _data()
    seen = []
    m = sg.fit(sg.nn.MLP([3, 1]), "mse", X, Y, optimizer=sg.optim.SGD(0.1), epochs=50, batch_size=8, threshold=0.05,
               callbacks=[lambda epoch, model: True, lambda epoch, model: seen.append(epoch)])
    assert seen == [1] and len(m.history["loss"]) == 1  # the first callback stopped it; the second saw epoch 1
    seen.clear()
    m = sg.fit(sg.nn.MLP([3, 1]), "mse", X, Y, optimizer=sg.optim.SGD(0.1), epochs=50, batch_size=8, threshold=0.05,
               callbacks=[lambda epoch, model: seen.append(epoch)])
    assert seen == list(range(1, len(m.history["loss"]) + 1)) and len(seen) > 1


@pytest.mark.parametrize("schedule", [lambda lr, e: np.where(e < 1, lr, lr / 2), lambda lr, e: np.asarray(lr),
                                      lambda lr, e: __import__("decimal").Decimal(str(lr))])
def test_a_schedule_may_give_any_real_number(schedule):
    # a 0-d array (np.where's answer for scalars) or a Decimal trained before the rate was checked
    X, Y = _data()
    m = sg.fit(sg.nn.MLP([3, 1]), "mse", X, Y, epochs=2, optimizer=sg.optim.SGD(0.1, schedule=schedule))
    assert m.history["lr"][0] == 0.1


def test_a_schedule_that_fails_later_keeps_the_epochs_trained():
    # a table of rates shorter than the run raised a raw IndexError, and the epochs were lost
    X, Y = _data()
    table = [0.1, 0.05, 0.02]
    with pytest.raises(sg.errors.OptionError, match="IndexError.*epoch 3") as info:
        sg.fit(sg.nn.MLP([3, 1]), "mse", X, Y, epochs=5, chunk_epochs=1,
               optimizer=sg.optim.SGD(0.1, schedule=lambda lr, e: table[e]))
    assert info.value.result.state.epoch == 3 and len(info.value.result.history["loss"]) == 3
    with pytest.raises(sg.errors.DivergenceError):  # past float64's range is inf, as the message says
        sg.fit(sg.nn.MLP([3, 1]), "mse", X, Y, epochs=2, optimizer=sg.optim.SGD(0.1, schedule=lambda lr, e: 10**400))
