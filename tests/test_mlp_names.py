"""MLP(bias=False, names=...): the notes' one-hidden-layer net, printed in the notes' letters
(a_j = Σ α_ji x_i, z_j = σ(a_j), b = Σ β_j z_j), trained and differentiated exactly."""

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import OptionError

NOTES = {"weights": ["alpha", "beta"], "pre": ["a", "b"], "act": ["z", "out"]}


def test_the_notes_net_prints_in_the_notes_letters():
    net = sg.nn.MLP([3, 4, 1], "sigmoid", output="sigmoid", bias=False, names=NOTES)
    assert net.params == [sp.MatrixSymbol("alpha", 4, 3), sp.MatrixSymbol("beta", 1, 4)]
    text = str(sg.formulas(net, "mse"))
    for line in ("a = alpha·x", "z = sigmoid(a)", "b = beta·z", "out = sigmoid(b)",
                 "δ_z = betaᵀ·δ_b", "δ_a = z ⊙ δ_z ⊙ (1 - z)", "∂ℓ/∂beta = δ_b·zᵀ", "∂ℓ/∂alpha = δ_a·xᵀ",
                 "ℓ = (out - y)^2"):  # a 1x1 output's power as the others: ^, not **
        assert f"  {line}\n" in text + "\n", (line, text)
    tex = sg.formulas(net, "mse").latex()
    assert r"\frac{\partial \ell}{\partial \alpha}" in tex and r"\delta_{a}" in tex


def test_the_printed_rule_is_the_compiled_gradient():
    # evaluate the printed delta rule by hand in NumPy and compare with the compiled gradient
    net = sg.nn.MLP([3, 4, 1], "sigmoid", output="sigmoid", bias=False, names=NOTES)
    rng = np.random.default_rng(0)
    alpha, beta = net.init_params(1)
    x, t = rng.normal(size=3), np.array([0.3])
    y = sp.MatrixSymbol("y", 1, 1)
    f = sg.compile(sg.losses.mse(net.expr, y), net.params, [net.x, y])
    g_alpha, g_beta = f.grad([alpha, beta], x.reshape(1, 3), t.reshape(1, 1))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    a = alpha @ x
    z = sig(a)
    out = sig(beta @ z)
    d_out = 2 * (out - t)
    d_b = out * d_out * (1 - out)
    d_z = beta.T @ d_b
    d_a = z * d_z * (1 - z)
    np.testing.assert_allclose(g_beta, np.outer(d_b, z), rtol=1e-12)
    np.testing.assert_allclose(g_alpha, np.outer(d_a, x), rtol=1e-12)


def test_a_net_without_bias_trains_and_checks():
    net = sg.nn.MLP([2, 5, 1], "tanh", bias=False)
    assert [str(p) for p in net.params] == ["W1", "W2"] and "bias=False" in repr(net)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(64, 2))
    Y = (X[:, 0] * X[:, 1] > 0).astype(float)
    m = sg.fit(net, "bce", X, Y, optimizer=sg.optim.Adam(0.05), epochs=20, batch_size=16)
    assert m.history["loss"][-1] < m.history["loss"][0]
    y = sp.MatrixSymbol("y", 1, 1)
    f = sg.compile(sg.losses.binary_cross_entropy(net.expr, y), net.params, [net.x, y])
    assert sg.check_grads(f, net.init_params(3), X[:8], Y[:8].reshape(-1, 1)).fd_error < 1e-6


@pytest.mark.parametrize("names, fragment", [
    ({"weight": "V"}, "unknown keys ['weight']"),
    ({"pre": ["a"]}, "a list of 2 names"),
    ({"pre": "z", "act": ["z1", "q"]}, "the same name twice"),
    ({"act": ["h", "y"]}, "names the input or the target"),
    ({"act": ["h", "t"], "target": "t"}, "names the input or the target"),
    ({"target": "x"}, "not 'x'"),
    ({"target": ""}, "the target's name"),
])
def test_bad_names_are_refused(names, fragment):
    with pytest.raises(OptionError, match="Fix|give|each") as err:
        sg.nn.MLP([3, 4, 1], "sigmoid", names=names)
    assert fragment in str(err.value)


def test_one_activation_per_hidden_layer():
    net = sg.nn.MLP([2, 3, 4, 1], activation=["relu", "tanh"])
    text = str(sg.formulas(net, "mse"))
    assert "a1 = relu(z1)" in text and "a2 = tanh(z2)" in text and "a3" not in text
    X = np.random.default_rng(0).normal(size=(32, 2))
    m = sg.fit(net, "mse", X, X[:, 0] * X[:, 1], epochs=5, batch_size=8, backend="python")
    assert len(m.history["loss"]) == 5 and np.isfinite(m.history["loss"]).all()
    with pytest.raises(OptionError, match="gives 1 activations for 2 hidden layers. Fix"):
        sg.nn.MLP([2, 3, 4, 1], activation=["relu"])


def test_the_notes_letters_output_y_and_target_y_star():
    """The notes call the output y and the target y*: names={'act': [..., 'y'], 'target': 'y*'}."""
    net = sg.nn.MLP([3, 2, 1], "sigmoid", output="sigmoid", bias=False,
                    names={"weights": ["alpha", "beta"], "pre": ["a", "b"], "act": ["z", "y"], "target": "y*"})
    f = sg.formulas(net, "mse")
    text = str(f)
    assert "y = sigmoid(b)" in text and "δ_y = 2(y - y*)" in text, text
    assert r"y^{*}" in f._repr_latex_()
    traced = str(sg.formulas(net, "mse", at=(net.init_params(0), [1.0, 0.5, -1.0], 1.0)))
    assert "y* = 1" in traced and "δ_y = 2(y - y*) ≈" in traced
    X = np.random.default_rng(0).normal(size=(40, 3))
    m = sg.fit(net, "mse", X, (X[:, 0] > 0).astype(float), epochs=2, backend="python")  # training is unchanged
    assert np.isfinite(m.history["loss"]).all()


def test_an_mlps_repr_shows_its_activations():
    # two nets differing in their activations printed alike (GridSearchCV's best_params_ among others)
    assert repr(sg.nn.MLP([2, 3, 1], activation="tanh", output="sigmoid")) == \
        "MLP([2, 3, 1], activation='tanh', output='sigmoid', init='xavier')"
    assert repr(sg.nn.MLP([2, 3, 4, 1], activation=["relu", "tanh"])) == \
        "MLP([2, 3, 4, 1], activation=['relu', 'tanh'], init='xavier')"
    assert repr(sg.nn.MLP([3, 1], bias=False)) == "MLP([3, 1], init='he', bias=False)"
