"""ReduceLROnPlateau: the rate follows the monitored loss, as torch's scheduler does, and a
resumed or reloaded fit continues exactly (the rate is replayed from the history)."""

import math

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import OptionError
from symgrad.lang.schedules import OptimizerConfigError

SEQUENCES = [
    [3.0, 2.0, 2.5, 2.4, 2.6, 1.0, 1.2, 1.3, 1.1, 0.99999, 1.5],
    [1.0] * 12,
    [5.0, 4.0, 3.0, 2.0, 1.0, 0.5],
    [2.0, float("nan"), 2.5, 2.0, 3.0, 1.0, 4.0, 4.0, 4.0],
]
SETTINGS = [dict(factor=0.5, patience=1), dict(factor=0.1, patience=0, cooldown=2),
            dict(factor=0.5, patience=2, threshold=0.1, min_lr=0.3)]


@pytest.mark.parametrize("values", SEQUENCES)
@pytest.mark.parametrize("settings", SETTINGS)
def test_rates_match_torch(values, settings):
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", threshold_mode="rel", **settings)
    s = sg.optim.ReduceLROnPlateau(**settings)
    for e, v in enumerate(values):
        assert math.isclose(s.from_history(1.0, values[:e]), opt.param_groups[0]["lr"], rel_tol=1e-12), (e, values)
        ref.step(v)


def test_rates_by_hand():
    # patience 1: the third epoch without improvement on 2.0 halves the rate; threshold 0.1 is relative
    s = sg.optim.ReduceLROnPlateau(factor=0.5, patience=1)
    assert [s.from_history(1.0, [3.0, 2.0, 2.5, 2.4, 2.6][:e]) for e in range(6)] == [1, 1, 1, 1, 0.5, 0.5]
    s = sg.optim.ReduceLROnPlateau(factor=0.5, patience=0, threshold=0.1)
    assert s.from_history(1.0, [1.0, 0.95]) == 0.5  # 5% is not a 10% improvement
    assert s.from_history(1.0, [1.0, 0.85]) == 1.0


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    Y = np.sin(X @ np.array([1.0, -2.0, 0.5]))
    return X, Y


def test_fit_lowers_the_rate_and_resumes_exactly():
    X, Y = _data()
    net = sg.nn.MLP([3, 8, 1], activation="tanh")
    opt = sg.optim.SGD(0.5, schedule=sg.optim.ReduceLROnPlateau(factor=0.5, patience=0, threshold=0.2,
                                                                      monitor="loss"))
    m = sg.fit(net, "mse", X, Y, optimizer=opt, epochs=12, batch_size=200, shuffle=False, backend="python")
    lrs, losses = m.history["lr"], m.history["loss"]
    assert lrs[0] == 0.5 and min(lrs) < 0.5  # it did lower the rate
    for e in range(1, 12):  # each epoch's rate is the schedule's replay of the losses before it
        assert math.isclose(lrs[e], opt.schedule.from_history(0.5, losses[:e]), rel_tol=1e-6)
    first = sg.fit(net, "mse", X, Y, optimizer=opt, epochs=5, batch_size=200, shuffle=False, backend="python")
    resumed = first.fit_more(X, Y, epochs=7)
    for a, b in zip(resumed.params, m.params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_val_loss_needs_validation_and_saves(tmp_path):
    X, Y = _data()
    net = sg.nn.MLP([3, 4, 1])
    opt = sg.optim.Adam(0.01, schedule=sg.optim.ReduceLROnPlateau(patience=2))
    with pytest.raises(OptionError, match="validation_split=0.1, or ReduceLROnPlateau\\(monitor='loss'\\)"):
        sg.fit(net, "mse", X, Y, optimizer=opt, epochs=2, backend="python")
    m = sg.fit(net, "mse", X, Y, optimizer=opt, epochs=3, validation_split=0.2, backend="python")
    assert len(m.history["val_loss"]) == 3
    m.save(tmp_path / "m.npz")
    assert sg.load(tmp_path / "m.npz").optimizer.schedule == opt.schedule


@pytest.mark.parametrize("kwargs", [dict(factor=1.0), dict(factor=0), dict(patience=-1), dict(patience=1.5),
                                    dict(cooldown=-2), dict(min_lr=-1.0), dict(threshold=-0.1),
                                    dict(monitor="accuracy")])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(OptimizerConfigError, match="use"):
        sg.optim.ReduceLROnPlateau(**kwargs)
