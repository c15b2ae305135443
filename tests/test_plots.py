"""trained.plot() and trained.plot_gradients() (issue 17, "Plots"): the curves they draw, the PNG
they write, gradient norms named per parameter, and the vanishing-gradient warning of the notes'
8-layer sigmoid net, with the fixes it names.

matplotlib is the optional [plot] extra (and in [test]); the Agg backend needs no display.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import OptionError, SymgradError
from symgrad.runtime.epochs import GradientHealthWarning

matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is the [plot] extra (and in [test])")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after the backend is chosen

PNG = b"\x89PNG\r\n\x1a\n"


def agreement(truth, guess) -> float:
    return float(np.mean(truth == guess))


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(90, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)
    return X, y


@pytest.fixture(scope="module")
def trained(blobs):
    X, y = blobs
    return sg.fit(sg.nn.MLP([4, 6, 3]), "softmax_cross_entropy", X[:60], y[:60], epochs=4, batch_size=20,
                  validation=(X[60:], y[60:]), metrics={"agreement": agreement}, backend="python")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines()]


def test_plot_draws_training_and_validation_curves(trained):
    ax = trained.plot()
    h = trained.history
    assert _labels(ax) == ["training loss", "validation loss"]
    train, val = ax.get_lines()
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_allclose(train.get_ydata(), h["loss"])
    np.testing.assert_allclose(val.get_ydata(), h["val_loss"])
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss"
    twin = next(a for a in ax.figure.axes if a is not ax)  # scores on a second y axis
    assert _labels(twin) == ["validation accuracy", "validation agreement"]
    np.testing.assert_allclose(twin.get_lines()[0].get_ydata(), h["val_accuracy"])
    legend = [t.get_text() for a in ax.figure.axes if a.get_legend() for t in a.get_legend().get_texts()]
    assert legend == ["training loss", "validation loss", "validation accuracy", "validation agreement"]


def test_plot_without_validation_has_one_curve_and_one_axis(blobs):
    X, y = blobs
    m = sg.fit(sg.nn.MLP([4, 3, 3]), "softmax_cross_entropy", X, y, epochs=2, backend="python")
    ax = m.plot()
    assert _labels(ax) == ["training loss"] and len(ax.figure.axes) == 1


def test_plot_into_given_axes_and_write_png(trained, tmp_path):
    fig, (left, right) = plt.subplots(1, 2)
    assert trained.plot(ax=left) is left
    path = tmp_path / "curves.png"
    assert trained.plot_gradients(ax=right, path=str(path)) is right
    assert path.read_bytes()[:8] == PNG
    alone = tmp_path / "alone.png"
    trained.plot(path=alone)  # a pathlib.Path works too
    assert alone.read_bytes()[:8] == PNG and alone.stat().st_size > 1000


def test_plot_gradients_one_log_scale_curve_per_parameter(trained):
    ax = trained.plot_gradients()
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"
    names = [str(p) for p in trained.model.params]
    assert _labels(ax) == names == ["W1", "b1", "W2", "b2"]
    norms = np.array(trained.history["grad_norms"])
    for k, line in enumerate(ax.get_lines()):
        np.testing.assert_allclose(line.get_ydata(), norms[:, k])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == names


def test_grad_norms_are_named_per_parameter(trained):
    named = trained.grad_norms()
    assert list(named) == ["W1", "b1", "W2", "b2"]
    np.testing.assert_array_equal(np.column_stack(list(named.values())), trained.history["grad_norms"])
    assert all(v.shape == (4,) for v in named.values())


def test_grad_norms_survive_save_and_load(trained, tmp_path):
    """history keeps its shape (one row per epoch), so saved models load as before."""
    path = tmp_path / "m.npz"
    trained.save(str(path))
    back = sg.load(str(path))
    assert back.history["grad_norms"] == trained.history["grad_norms"]
    assert list(back.grad_norms()) == list(trained.grad_norms())
    assert _labels(back.plot_gradients()) == ["W1", "b1", "W2", "b2"]


def test_a_zero_norm_is_a_gap_not_an_error():
    m = sg.Trained([np.zeros((2, 2)), np.zeros(2)], {"loss": [1.0, 0.5], "grad_norms": [[0.0, 1.0], [1e-3, 0.5]]})
    ax = m.plot_gradients()
    first = ax.get_lines()[0].get_ydata()
    assert np.isnan(first[0]) and first[1] == 1e-3
    assert _labels(m.plot()) == ["training loss"]


def test_nothing_to_plot_says_how_to_get_a_history():
    m = sg.Trained([np.zeros(2)])
    with pytest.raises(OptionError, match="sg.fit"):
        m.plot()
    with pytest.raises(OptionError, match="sg.fit"):
        m.plot_gradients()


def test_missing_matplotlib_names_the_extra(trained, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import matplotlib.pyplot fails
    with pytest.raises(SymgradError, match=r"pip install 'symgrad\[plot\]'"):
        trained.plot()
    with pytest.raises(SymgradError, match=r"pip install 'symgrad\[plot\]'"):
        trained.plot_gradients()


# -- the notes' vanishing-gradient demonstration ---------------------------------------------------

DEEP = [8] + [16] * 8 + [1]


def _deep_fit(activation: str):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 8))
    Y = (X[:, 0] > 0).astype(float)
    return sg.fit(sg.nn.MLP(DEEP, activation=activation), "bce", X, Y, optimizer=sg.optim.SGD(0.1), epochs=3,
                  batch_size=32, backend="python")


def test_eight_layer_sigmoid_net_warns_vanishing_and_names_the_fixes(tmp_path):
    with pytest.warns(GradientHealthWarning, match="vanishing") as got:
        m = _deep_fit("sigmoid")
    message = next(str(w.message) for w in got if "vanishing" in str(w.message))
    assert "'W1'" in message
    for fix in ("ReLU", "He initialisation", "normalisation", "skip connections"):
        assert fix in message, fix
    norms = m.grad_norms()
    first, last = norms["W1"][0], norms["W9"][0]
    assert 1e-8 < first < 1e-4 * last  # relative, not below an absolute 1e-8 (W1 ~1.5e-6, W9 ~0.5)
    ax = m.plot_gradients(path=tmp_path / "vanishing.png")
    lines = dict(zip(_labels(ax), ax.get_lines()))
    assert lines["W1"].get_ydata()[0] < 1e-4 * lines["W9"].get_ydata()[0]
    assert (tmp_path / "vanishing.png").read_bytes()[:8] == PNG


def test_the_named_fix_relu_with_he_initialisation_trains_without_the_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientHealthWarning)
        m = _deep_fit("relu")
    norms = m.grad_norms()
    assert norms["W1"][0] > 1e-2 * norms["W9"][0]
