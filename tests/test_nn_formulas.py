"""Layer builders, readable backprop (delta-rule) formulas, initialisation and optimizer
printouts (issue 3, items 1, 4 and 5). Everything runs on the Python reference path."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct

import symgrad as sg
from symgrad.lang import optim
from symgrad.lang.losses import LOSSES
from symgrad.lang.nn import MLP, Dense
from symgrad.lang.ops import sigmoid, softplus

MS = sp.MatrixSymbol


def backward_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.split("Backward", 1)[1].splitlines()[1:] if ln.strip()]


def forward_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.split("Backward", 1)[0].splitlines()[1:] if ln.strip()]


# -- the seed's one-hidden-layer sigmoid network: the textbook equations -------------------------

SEED_BACKWARD = [
    "δ_z2 = sigmoid(z2) - y",
    "δ_a1 = W2ᵀ·δ_z2",
    "δ_z1 = a1 ⊙ δ_a1 ⊙ (1 - a1)",
    "∂ℓ/∂b2 = δ_z2",
    "∂ℓ/∂W2 = δ_z2·a1ᵀ",
    "∂ℓ/∂b1 = δ_z1",
    "∂ℓ/∂W1 = δ_z1·xᵀ",
]


def test_seed_network_prints_textbook_delta_rule():
    text = str(sg.formulas(MLP([2, 3, 1], activation="sigmoid"), "bce"))
    assert text.startswith("Forward (per sample)\n")
    assert forward_lines(text)[:3] == ["z1 = W1·x + b1", "a1 = sigmoid(z1)", "z2 = W2·a1 + b2"]
    assert forward_lines(text)[3].startswith("ℓ = ")
    assert "Backward (delta rule; ⊙ is the elementwise product, ᵀ the transpose)" in text
    assert backward_lines(text) == SEED_BACKWARD


@pytest.mark.parametrize("act,line", [
    ("tanh", "δ_z1 = δ_a1 ⊙ (1 - a1^2)"),
    ("relu", "δ_z1 = δ_a1 ⊙ 𝟙[z1 > 0]"),  # the indicator, its convention at 0 stated once
    ("leaky_relu", "δ_z1 = δ_a1 ⊙ {1 if z1 > 0, 1/100 otherwise}"),
    ("elu", "δ_z1 = δ_a1 ⊙ {1 if z1 > 0, exp(z1) otherwise}"),
    ("softplus", "δ_z1 = δ_a1 ⊙ sigmoid(z1)"),
])
def test_activation_derivatives_in_simplified_form(act, line):
    lines = backward_lines(str(sg.formulas(MLP([2, 3, 1], activation=act), "bce")))
    assert lines[:3] == ["δ_z2 = sigmoid(z2) - y", "δ_a1 = W2ᵀ·δ_z2", line]


def test_identity_hidden_layer_has_no_activation_line():
    text = str(sg.formulas(MLP([2, 3, 1], activation="identity"), "bce"))
    assert forward_lines(text)[:2] == ["z1 = W1·x + b1", "z2 = W2·z1 + b2"]
    assert backward_lines(text)[:2] == ["δ_z2 = sigmoid(z2) - y", "δ_z1 = W2ᵀ·δ_z2"]


def test_softmax_cross_entropy_delta_is_p_minus_y():
    text = str(sg.formulas(MLP([2, 4, 3, 3], activation="sigmoid"), "softmax_cross_entropy"))
    lines = backward_lines(text)
    assert lines[:5] == [
        "δ_z3 = softmax(z3) - y",
        "δ_a2 = W3ᵀ·δ_z3",
        "δ_z2 = a2 ⊙ δ_a2 ⊙ (1 - a2)",  # δ_l = (W_{l+1}ᵀ δ_{l+1}) ⊙ f'(z_l)
        "δ_a1 = W2ᵀ·δ_z2",
        "δ_z1 = a1 ⊙ δ_a1 ⊙ (1 - a1)",
    ]
    assert "∂ℓ/∂W3 = δ_z3·a2ᵀ" in lines and "∂ℓ/∂W1 = δ_z1·xᵀ" in lines
    assert "ℓ = softmax_ce(z3, y)" in forward_lines(text)


def test_mse_delta_is_residual():
    lines = backward_lines(str(sg.formulas(MLP([2, 3, 2], activation="sigmoid"), "mse")))
    assert lines[0] == "δ_z2 = z2 - y"  # d/dz mean((z - y)^2) over 2 units = (z - y)


def test_custom_activation_derivative_is_derived_and_printed():
    mish = sg.activation(lambda z: z * sp.tanh(sp.log(1 + sp.exp(z))))
    lines = backward_lines(str(sg.formulas(MLP([2, 3, 2], activation=mish), "softmax_cross_entropy")))
    dz1 = lines[2]
    assert dz1.startswith("δ_z1 = δ_a1 ⊙ ")
    assert "tanh(softplus(z1))" in dz1 and "sigmoid(z1)" in dz1 and "exp" not in dz1


def test_latex_form():
    tex = sg.formulas(MLP([2, 3, 1], activation="sigmoid"), "bce").latex()
    assert tex.startswith("\\begin{aligned}") and tex.rstrip().endswith("\\end{aligned}")
    assert r"\delta_{z_{2}}" in tex and r"\odot" in tex  # textbook names: z_1, W_1
    assert r"\delta_{z_{1}} &= a_{1} \odot \delta_{a_{1}} \odot \left(1 - a_{1}\right)" in tex
    assert r"\frac{\partial \ell}{\partial W_{1}} &= \delta_{z_{1}}\,x^{\top}" in tex
    assert r"\delta_{a_{1}} &= W_{2}^{\top}\,\delta_{z_{2}}" in tex


def half_sq(pred, target):
    """A custom loss written the natural way (``pred - target`` evaluates, flattening z2)."""
    return sg.msum(HadamardPower(pred - target, 2)) / 2


def test_formulas_accept_custom_loss():
    lines = backward_lines(str(sg.formulas(MLP([2, 3, 2], activation="tanh"), half_sq)))
    assert "δ_z1 = δ_a1 ⊙ (1 - a1^2)" in lines
    assert "∂ℓ/∂W1 = δ_z1·xᵀ" in lines
    # a custom loss of the logits alone keeps the z2 node: δ_z2 = z2 for ½‖z‖²
    lines = backward_lines(str(sg.formulas(MLP([2, 3, 2], activation="tanh"),
                                           lambda p, t: sg.msum(HadamardPower(p, 2)) / 2)))
    assert lines[:3] == ["δ_z2 = z2", "δ_a1 = W2ᵀ·δ_z2", "δ_z1 = δ_a1 ⊙ (1 - a1^2)"]


def test_custom_loss_keeps_output_delta():
    lines = backward_lines(str(sg.formulas(MLP([2, 3, 2], activation="tanh"), half_sq)))
    assert lines[0] == "δ_z2 = z2 - y"


# -- the model objects ---------------------------------------------------------------------------


def test_model_expr_is_a_sympy_matrix_expression():
    net = MLP([2, 3, 1], activation="sigmoid")
    assert isinstance(net.expr, sp.MatrixExpr) and net.expr.shape == (1, 1)
    assert str(net.expr) == "W2*Lambda(z, sigmoid(z)).(W1*x + b1) + b2"
    assert [str(p) for p in net.params] == ["W1", "b1", "W2", "b2"]
    assert [p.shape for p in net.params] == [(3, 2), (3, 1), (1, 3), (1, 1)]
    assert all(isinstance(p, sp.MatrixSymbol) for p in net.params)
    assert net.x == MS("x", 2, 1)
    assert net.expr.free_symbols >= {*net.params, net.x}
    z, a = Dense(2, 3, "tanh")(net.x)
    assert str(z) == "W1*x + b1" and str(a) == "Lambda(z, tanh(z)).(W1*x + b1)"


def _hand_network(n_in, n_hidden, n_out):
    """The same network as MLP([n_in, n_hidden, n_out], activation="sigmoid"), by hand."""
    x = MS("x", n_in, 1)
    W1, b1 = MS("W1", n_hidden, n_in), MS("b1", n_hidden, 1)
    W2, b2 = MS("W2", n_out, n_hidden), MS("b2", n_out, 1)
    out = W2 * (W1 * x + b1).applyfunc(sigmoid) + b2
    return SimpleNamespace(expr=out, params=[W1, b1, W2, b2], x=x)


@pytest.mark.parametrize("loss", ["bce", "mse", "softmax_cross_entropy", "hand_bce"])
def test_hand_written_network_gives_identical_gradients(loss):
    n_out = 2 if loss != "softmax_cross_entropy" else 3
    net, hand = MLP([3, 4, n_out], activation="sigmoid"), _hand_network(3, 4, n_out)
    y = MS("y", n_out, 1)
    if loss == "hand_bce":  # the loss written by hand as well: mean(softplus(z) - y ⊙ z)
        hand_loss = sg.mean(hand.expr.applyfunc(softplus) - HadamardProduct(y, hand.expr))
        lib_loss = LOSSES["bce"](net.expr, y)
    else:
        hand_loss, lib_loss = LOSSES[loss](hand.expr, y), LOSSES[loss](net.expr, y)
    fh = sg.compile(hand_loss, hand.params, [hand.x, y], backend="python")
    fm = sg.compile(lib_loss, net.params, [net.x, y], backend="python")
    rng = np.random.default_rng(1)
    ps = net.init_params(3)
    X = rng.normal(size=(6, 3))
    Y = np.eye(n_out)[rng.integers(0, n_out, 6)] if loss != "mse" else rng.normal(size=(6, n_out))
    vh, gh = fh.value_and_grad(ps, X, Y)
    vm, gm = fm.value_and_grad(ps, X, Y)
    assert vh == pytest.approx(vm, rel=1e-14)
    for a, b in zip(gh, gm, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_hand_written_network_trains_identically():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 3))
    labels = rng.integers(0, 2, 20)
    net, hand = MLP([3, 4, 2], activation="sigmoid"), _hand_network(3, 4, 2)
    init = net.init_params(0)
    kw = dict(optimizer=optim.Adam(0.05), epochs=3, batch_size=6, backend="python")
    a = sg.fit(net, "softmax_cross_entropy", X, labels, params=[p.copy() for p in init], **kw)
    b = sg.fit(hand, "softmax_cross_entropy", X, labels, params=[p.copy() for p in init], **kw)
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-13)
    for p, q in zip(a.params, b.params, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-12, atol=1e-15)


def test_hand_written_network_formulas_same_gradient_structure():
    """Without MLP's labels the printout names intermediates itself, but the math is the same."""
    text = str(sg.formulas(_hand_network(2, 3, 1), "bce"))
    assert ") - y\n" in text and "sigmoid(" in text and "⊙ (1 - " in text


@pytest.mark.parametrize("case", ["hand_network", "mlp_custom_loss"])
def test_forward_line_prints_matrix_products(case):
    if case == "hand_network":
        text = str(sg.formulas(_hand_network(2, 3, 1), "bce"))
    else:
        text = str(sg.formulas(MLP([2, 3, 2], activation="tanh"), half_sq))
    assert "W1 ⊙ x" not in text and "W2 ⊙" not in text


# -- initialisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("act,scheme", [("relu", "he"), ("leaky_relu", "he"), ("gelu", "he"),
                                        ("tanh", "xavier"), ("sigmoid", "xavier")])
def test_default_init_scheme(act, scheme):
    assert MLP([4, 3, 2], activation=act).init == scheme


def _check_std(W, want):
    n = W.size
    assert W.std() == pytest.approx(want, rel=5 / np.sqrt(2 * n))  # five standard errors
    assert abs(W.mean()) < 5 * want / np.sqrt(n)


def test_he_init_statistics():
    net = MLP([800, 400, 50], activation="relu")
    W1, b1, W2, b2 = net.init_params(seed=0)
    _check_std(W1, np.sqrt(2 / 800))
    _check_std(W2, np.sqrt(2 / 400))
    assert W1.shape == (400, 800) and W2.shape == (50, 400)
    assert not b1.any() and not b2.any() and b1.shape == (400, 1)


def test_xavier_init_statistics():
    for net in (MLP([800, 400, 50], activation="tanh"), MLP([800, 400, 50], activation="relu", init="xavier")):
        W1, _, W2, _ = net.init_params(seed=1)
        _check_std(W1, np.sqrt(2 / (800 + 400)))
        _check_std(W2, np.sqrt(2 / (400 + 50)))


def test_init_is_seeded_and_typed():
    net = MLP([5, 7, 3], activation="relu")
    a, b, c = net.init_params(4), net.init_params(4), net.init_params(5)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    f32 = net.init_params(4, np.float32)
    assert all(p.dtype == np.float32 for p in f32)
    np.testing.assert_allclose(f32[0], a[0], rtol=1e-6)
    # fit's default initialisation is init_params(seed)
    X, y = np.zeros((4, 5)), np.zeros(4, dtype=int)
    m = sg.fit(net, "softmax_cross_entropy", X, y, epochs=0, seed=4, backend="python")
    assert all(np.array_equal(p, q) for p, q in zip(m.params, a, strict=True))


def test_swish_alias_initialises_like_silu():
    assert MLP([4, 3, 2], activation="swish").init == MLP([4, 3, 2], activation="silu").init


# -- optimizer printouts ----------------------------------------------------------------------------


def test_adam_prints_its_update_rules():
    assert str(optim.Adam(1e-3)) == (
        "Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08)\n"
        "m ← β1·m + (1 − β1)·g\n"
        "v ← β2·v + (1 − β2)·g²\n"
        "m̂ ← m/(1 − β1^t)\n"
        "v̂ ← v/(1 − β2^t)\n"
        "p ← p − lr·m̂/(√v̂ + ε)"
    )
    assert str(sg.optim.Adam(1e-3)) == str(optim.Adam(lr=1e-3))
    tex = optim.Adam(1e-3).latex()
    assert "\\hat{m} &\\leftarrow \\frac{m}{1 - \\beta_{1}^{t}}" in tex


@pytest.mark.parametrize("opt,rule", [
    (optim.SGD(0.1), "p ← p − lr·g"),
    (optim.Momentum(0.1), "v ← β·v + g"),
    (optim.Nesterov(0.1), "p ← p − lr·(g + β·v)"),
    (optim.AdamW(1e-3), "p ← (1 − lr·λ)·p"),
    (optim.AdaGrad(0.1), "s ← s + g²"),
    (optim.RMSProp(0.1), "s ← α·s + (1 − α)·g²"),
])
def test_every_optimizer_prints_rules(opt, rule):
    assert rule in str(opt).splitlines()


@pytest.mark.parametrize("loss, line", [("mae", "ℓ = |z1 - y|"), ("huber", "ℓ = {(z1 - y)^2/2 if |z1 - y| ≤ κ")])
def test_a_one_output_network_prints_its_entrywise_loss(loss, line):
    # SymPy's constructor, run again by xreplace when the layer is named, applied Abs to the 1×1
    # matrix as a whole: mae printed msum(sqrt(y·Adjoint(y.T) - ...)) and huber raised a TypeError
    text = str(sg.formulas(sg.nn.MLP([2, 1]), loss))
    assert line in text and "Adjoint" not in text and "δ_z1 = " in text


def test_losses_read_as_the_textbook_writes_them():
    # msum(...)/2 read like the ½ of the squared error, Huber's δ was the delta rule's δ, and
    # 2 ⊙ (z2 - y) multiplied a vector by a number elementwise (· is the matrix product there); the
    # condition read |y - z2| beside sign(z2 - y)
    mse2 = str(sg.formulas(sg.nn.MLP([2, 3, 2], activation="tanh"), "mse"))
    assert "ℓ = mean((z2 - y)^2)" in mse2 and "δ_z2 = z2 - y" in mse2
    mse1 = str(sg.formulas(sg.nn.MLP([2, 3, 1], activation="tanh"), "mse"))
    assert "ℓ = (z2 - y)^2" in mse1 and "δ_z2 = 2(z2 - y)" in mse1
    huber = sg.formulas(sg.nn.MLP([2, 3, 1], activation="tanh"), "huber")
    assert "δ_z2 = {z2 - y if |z2 - y| ≤ κ, κ sign(z2 - y) otherwise}" in str(huber)
    assert "Constants: κ = 1 (Huber's threshold, PyTorch's delta" in str(huber)
    tex = huber.latex()
    assert r"\kappa\, \operatorname{sign}" in tex and r"\delta \odot" not in tex


def _rms(p, t):
    return (sg.msum(sg.elementwise(lambda r: r**2, p - t)) / 3) ** sp.Rational(1, 2)


def _merged(p, t):  # the residual's MatAdd swallows the layer's own sum, W2·a1 + b2
    return sg.mean(sg.elementwise(lambda r: sp.Abs(r) ** 3, p - t)) + sg.msum(sg.elementwise(lambda r: r**2, p)) / 3


@pytest.mark.parametrize("loss, ell, delta, tex_delta", [
    (_rms, "ℓ = sqrt(mean((z2 - y)^2))", "δ_z2 = sqrt(3)(z2 - y)/(3 sqrt(Σ(v13)))",
     r"\frac{\sqrt{3}}{3}\, \left(\frac{z_{2} - y}{\sqrt{\sum v_{13}}}\right)"),
    (lambda p, t: 5 * _rms(p, t) ** 3, "ℓ = 5·(mean((z2 - y)^2))^(3/2)", "⊙ sqrt(Σ(v13))",
     r"\frac{5 \sqrt{3}}{3}\, \left("),
    (_merged, "ℓ = mean(z2^2) + mean((z2 - y)^2·|z2 - y|)", "δ_z2 = 2 z2/3 + (z2 - y) ⊙ ((z2 - y) ⊙ sign(z2 - y) + 2 |z2 - y|)/3",
     r"\left|{z_{2} - y}\right|"),
    ("mse", "ℓ = mean((z2 - y)^2)", "δ_z2 = 2(z2 - y)/3", r"\frac{2\, \left(z_{2} - y\right)}{3}"),
])
def test_custom_losses_print_in_the_layers_names(loss, ell, delta, tex_delta):
    # a root mean square printed sqrt(3)·sqrt(Σ((W2·a1 + b2 - y)^2))/3 and its delta sum(v13); the
    # LaTeX put ⊙ between numbers (5 ⊙ sqrt(3)) and between 2 and (z2 - y); a power of a sum crashed
    f = sg.formulas(sg.nn.MLP([3, 4, 3], activation="tanh"), loss)
    text, tex = str(f), f.latex()
    assert ell in text and delta in text and "W2·a1 + b2 - y" not in text and "sum(" not in text
    assert tex_delta in tex and not re.search(r"\d \\odot", tex)


@pytest.mark.parametrize("k, ell, tex_ell", [
    (1, "ℓ = bce_logits(z2, y)", r"\ell &= \operatorname{BCE}_{\text{logits}}\left(z_{2}, y\right)"),
    (3, "ℓ = mean(bce_logits(z2, y))",
     r"\ell &= \operatorname{mean}\left(\operatorname{BCE}_{\text{logits}}\left(z_{2}, y\right)\right)"),
])
def test_binary_cross_entropy_prints_as_its_mean(k, ell, tex_ell):
    # it printed bce_sum(z2, y)/3, read as a sum, and a sum over one output's one term
    f = sg.formulas(sg.nn.MLP([3, 4, k], activation="tanh"), "bce")
    assert ell in str(f) and tex_ell in f.latex()


def test_a_learnable_scale_prints_as_its_element_and_its_gradient_as_a_sum():
    """s[0, 0]·W3·tanh(W1·x): ∂ℓ/∂s is the sum over the entries its scale multiplies (it printed as a
    vector), no 0-terms (the product W3·v was made twice, one unused), s printed as written. The
    printed ∂ℓ/∂s at a sample equals the compiled gradient (the oracle: a NumPy forward pass's finite
    differences)."""
    class Model:
        def __init__(self, expr, params, x):
            self.expr, self.params, self.x = expr, params, x

    W1, W3, x, s = (sp.MatrixSymbol(n, *shape) for n, shape in (("W1", (4, 3)), ("W3", (3, 4)), ("x", (3, 1)),
                                                                 ("s", (1, 1))))
    net = Model(s[0, 0] * (W3 * sg.elementwise(sp.tanh, W1 * x)), [W1, W3, s], x)
    ps = [np.full((4, 3), 0.1), np.full((3, 4), 0.2), np.array([[2.0]])]
    X, Y = np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 0.0])
    text = str(sg.formulas(net, "mse", at=(ps, X, Y)))
    assert "∂ℓ/∂s = Σ (" in text and "s[0, 0]" in text and "select" not in text and "0·" not in text
    assert "Vector: Σ sums a vector's entries" in text  # the legend says what the Σ means

    def loss(scale):
        return np.mean((scale * (ps[1] @ np.tanh(ps[0] @ X)) - Y) ** 2)

    want = (loss(2.0 + 1e-6) - loss(2.0 - 1e-6)) / 2e-6
    shown = float(re.search(r"‖∂ℓ/∂s‖ ≈ ([0-9.e+-]+)", text).group(1))
    assert shown == pytest.approx(abs(want), rel=1e-5)


def test_a_reciprocal_in_a_sum_prints_without_a_power_of_one():
    # 1/(z² + 2) − 1/(e^z + 3) printed as "1/(z1^2 + 2)^1 - ...": a Pow(base, 1) left unevaluated
    act = sg.activation(lambda z: 1 / (2 + z**2) - 1 / (3 + sp.exp(z)))
    text = str(sg.formulas(sg.nn.MLP([2, 3, 1], act), "mse"))
    assert "a1 = 1/(z1^2 + 2) - 1/(exp(z1) + 3)" in text and ")^1" not in text
    act = sg.activation(lambda z: 3 / ((z**2 + 1) ** 2 * (z**2 + 2)))
    assert ")^1" not in str(sg.formulas(sg.nn.MLP([2, 3, 1], act), "mse"))


def test_activation_none_is_no_activation_as_in_keras():
    # Dense(..., activation=None) was an OptionError, where MLP(output=None) and Keras mean the identity
    none, ident = Dense(3, 2, activation=None), Dense(3, 2)
    assert repr(none) == repr(ident) == "Dense(3, 2, activation='identity')"
    assert sg.nn.Sequential([none], 3).expr == sg.nn.Sequential([ident], 3).expr
    conv = sg.nn.Conv2D(1, 2, 3, activation=None)
    assert "activation='identity'" in repr(conv)
    nets = [sg.nn.Sequential([c, sg.nn.Flatten(), sg.nn.Dense(18, 1)], (1, 5, 5)) for c in (conv, sg.nn.Conv2D(1, 2, 3))]
    assert str(nets[0].expr) == str(nets[1].expr)
