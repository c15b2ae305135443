"""Layer normalisation (issue 18, section 5): ``sg.layernorm`` and ``sg.nn.LayerNorm``.

The forward pass against NumPy and torch's ``layer_norm``; gradients against finite differences
(sg.check_grads), ``sympy.diff`` of a tiny model written with explicit entries, and torch's
autograd; the Python and Numba backends, in float32 and float64; a Sequential net that trains
and prints its formulas; the mistakes a user can make. The compiled models are shared by the
module (fixtures), and most checks run on the Python backend.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import sympy as sp
from test_latex import LATEX, _compile

import symgrad as sg
from symgrad.errors import OptionError, ShapeError, UnsupportedModelError
from symgrad.native import norms
from symgrad.runtime.srepr_io import read_nodes, write_nodes

MS = sp.MatrixSymbol
EPS = 1e-5


def ln_ref(x, eps=EPS):
    """x̂ of each row (or of each sample's whole image): NumPy, biased variance."""
    flat = x.reshape(len(x), -1)
    out = (flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + eps)
    return out.reshape(x.shape)


def mlp(eps=EPS, affine=True):
    return sg.nn.Sequential([sg.nn.Dense(3, 5, activation="tanh"), sg.nn.LayerNorm(5, eps=eps, affine=affine),
                             sg.nn.Dense(5, 2)], input_shape=3)


def mlp_ref(values, X, eps=EPS):
    """The mlp's outputs in NumPy; values in net.params order (W1, b1, gamma2, beta2, W3, b3)."""
    w1, b1, g, beta, w3, b3 = values
    z = ln_ref(np.tanh(X @ w1.T + b1.T), eps) * g.T + beta.T
    return z @ w3.T + b3.T


def perturbed(net, seed):
    """The net's initial parameters, γ and β moved off ones and zeros (their gradients then see them)."""
    rng = np.random.default_rng(seed)
    return [p + 0.3 * rng.normal(size=p.shape) for p in net.init_params(seed)]


@pytest.fixture(scope="module")
def models():
    """The mlp under mse: Python float64 and float32, Numba float64 and float32; data and values."""
    net, y = mlp(), MS("y", 2, 1)
    loss = sg.losses.mse(net.expr, y)
    f = {(b, d): sg.compile(loss, net.params, [net.x, y], dtype=d, backend=b)
         for b in ("python", "numba") for d in ("float64", "float32")}
    rng = np.random.default_rng(0)
    X, Y = 2 * rng.normal(size=(7, 3)), rng.normal(size=(7, 2))
    return types.SimpleNamespace(net=net, f=f, X=X, Y=Y, values=perturbed(net, 1))


@pytest.fixture(scope="module")
def trained():
    net = mlp()
    rng = np.random.default_rng(3)
    X = rng.normal(size=(256, 3))
    Y = np.stack([np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2], np.tanh(X @ [1.0, -2.0, 0.5])], axis=1)
    return net, X, sg.fit(net, "mse", X, Y, optimizer=sg.optim.Adam(0.02), epochs=40, batch_size=32)


# -- forward -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_forward_matches_numpy_and_torch(dtype):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(6, 9)) * [[1], [10], [1e-3], [1e3], [0.1], [5]] + 100).astype(dtype)
    out, rs = np.empty_like(x), np.empty((6, 1), dtype=dtype)
    norms.layernorm_fwd(x, out, rs, EPS)
    assert out.dtype == dtype and rs.dtype == dtype  # float32 stays float32
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out, ln_ref(x.astype(np.float64)), **tol)
    np.testing.assert_allclose(rs[:, 0], 1 / np.sqrt(x.astype(np.float64).var(1) + EPS), **tol)
    torch = pytest.importorskip("torch")
    want = torch.nn.functional.layer_norm(torch.tensor(x), (9,), eps=EPS).numpy()
    np.testing.assert_allclose(out, want, **tol)


def test_a_constant_vector_normalises_to_zero_with_finite_gradients(models):
    """Variance 0: ε keeps 1/σ finite (1/√ε), x̂ = 0 and the gradients are finite."""
    x = np.full((2, 4), 3.0)
    out, rs = np.empty_like(x), np.empty((2, 1))
    norms.layernorm_fwd(x, out, rs, EPS)
    assert np.all(out == 0) and np.allclose(rs, 1 / np.sqrt(EPS))
    f, values = models.f["python", "float64"], models.values
    w1 = np.zeros_like(values[0])  # z1 = b1 for every sample: a constant vector when b1 is
    grads = f.grad([w1, np.full((5, 1), 0.7), *values[2:]], models.X, models.Y)
    assert all(np.isfinite(g).all() for g in grads)


def test_sequential_forward_matches_numpy_and_torch(models):
    net, values, X = models.net, models.values, models.X
    m = sg.fit(net, "mse", X, models.Y, epochs=0, params=values, backend="python")
    np.testing.assert_allclose(m.predict(X), mlp_ref(values, X), rtol=1e-12, atol=1e-12)
    torch = pytest.importorskip("torch")
    w1, b1, g, beta, w3, b3 = (torch.tensor(v) for v in values)
    h = torch.nn.functional.layer_norm(torch.tanh(torch.tensor(X) @ w1.T + b1.T), (5,), g.ravel(), beta.ravel(), EPS)
    np.testing.assert_allclose(m.predict(X), (h @ w3.T + b3.T).numpy(), rtol=1e-12, atol=1e-12)


def test_explicit_matrices_evaluate():
    v = sp.Matrix([1, 2, 6])
    got = sg.layernorm(v, eps=sp.Rational(1, 10))
    assert isinstance(got, sp.MatrixBase)
    np.testing.assert_allclose(np.array(got, dtype=float).ravel(), ln_ref(np.array([[1.0, 2, 6]]), 0.1).ravel())
    z = MS("z", 3, 1)
    assert sg.layernorm(z).as_explicit().subs({z: v}).doit() == sg.layernorm(v, eps=1e-5)


# -- gradients ---------------------------------------------------------------------------------


def test_gradients_match_finite_differences(models):
    assert sg.check_grads(models.f["python", "float64"], models.values, models.X, models.Y).ok


def test_gradients_match_sympy_diff_of_explicit_entries():
    """A tiny model, x (2) -> W x + b (3) -> γ ⊙ layernorm + β, squared error: compiled against
    sympy.diff of the same model built from explicit entries (layernorm evaluates on them)."""
    x, W, b, g, beta, y = MS("x", 2, 1), MS("W", 3, 2), MS("b", 3, 1), MS("g", 3, 1), MS("beta", 3, 1), MS("y", 3, 1)
    params = [W, b, g, beta]
    z = sp.HadamardProduct(g, sg.layernorm(W * x + b, eps=0.01)) + beta
    f = sg.compile(sg.msum(sp.HadamardPower(z - y, 2)) / 2, params, [x, y], backend="python")
    rng = np.random.default_rng(4)
    values, X, Y = [rng.normal(size=p.shape) for p in params], rng.normal(size=(1, 2)), rng.normal(size=(1, 3))
    ent = [sp.Matrix(*p.shape, lambda i, j, n=str(p): sp.Symbol(f"{n}_{i}{j}", real=True)) for p in params]
    Wm, bm, gm, betam = ent
    ze = sg.layernorm(Wm * sp.Matrix(X.T) + bm, eps=0.01)
    assert isinstance(ze, sp.MatrixBase)
    loss = sum((gm[k] * ze[k] + betam[k] - Y[0, k]) ** 2 for k in range(3)) / 2
    syms = [s for m in ent for s in m]
    at = dict(zip(syms, np.concatenate([v.ravel() for v in values])))
    want = [float(sp.diff(loss, s).subs(at)) for s in syms]
    value, grads = f.value_and_grad(values, X, Y)
    assert value == pytest.approx(float(loss.subs(at)), rel=1e-12)
    np.testing.assert_allclose(np.concatenate([gr.ravel() for gr in grads]), want, rtol=1e-10, atol=1e-12)


def test_gradients_match_torch_autograd(models):
    torch = pytest.importorskip("torch")
    values, X, Y = models.values, models.X, models.Y
    ts = [torch.tensor(v, requires_grad=True) for v in values]
    w1, b1, g, beta, w3, b3 = ts
    h = torch.nn.functional.layer_norm(torch.tanh(torch.tensor(X) @ w1.T + b1.T), (5,), g.ravel(), beta.ravel(), EPS)
    loss = (((h @ w3.T + b3.T) - torch.tensor(Y)) ** 2).sum(1).mean() / 2
    loss.backward()
    value, grads = models.f["python", "float64"].value_and_grad(values, X, Y)
    assert value == pytest.approx(float(loss.detach()), rel=1e-12)
    for got, t in zip(grads, ts, strict=True):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.numba
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numba_equals_python(models, dtype):
    values = [v.astype(dtype) for v in models.values]
    X, Y = models.X.astype(dtype), models.Y.astype(dtype)
    v_nb, g_nb = models.f["numba", dtype].value_and_grad(values, X, Y)
    v_py, g_py = models.f["python", dtype].value_and_grad(values, X, Y)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
    assert v_nb == pytest.approx(v_py, rel=tol["rtol"])
    for a, b in zip(g_nb, g_py, strict=True):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, **tol)


def test_float32_gradients_are_float32_and_near_float64(models):
    f32, f64 = models.f["python", "float32"], models.f["python", "float64"]
    values = models.values
    g32 = f32.grad([v.astype(np.float32) for v in values], models.X.astype(np.float32), models.Y.astype(np.float32))
    for a, b in zip(g32, f64.grad(values, models.X, models.Y), strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


def test_images_normalise_over_all_channels_like_torch():
    """Conv2D -> LayerNorm((C, H, W)) -> Flatten -> Dense against torch's LayerNorm([C, H, W])."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    net = sg.nn.Sequential([sg.nn.Conv2D(1, 2, 3, padding=1), sg.nn.LayerNorm((2, 3, 4)), sg.nn.Flatten(),
                            sg.nn.Dense(24, 2)], input_shape=(1, 3, 4))
    y = MS("y", 2, 1)
    f = sg.compile(sg.losses.mse(net.expr, y), net.params, [net.x, y], backend="python")
    rng = np.random.default_rng(6)
    values, X, Y = perturbed(net, 2), rng.normal(size=(3, 1, 3, 4)), rng.normal(size=(3, 2))
    k, b, g, beta, w, c = ts = [torch.tensor(v, requires_grad=True) for v in values]
    h = F.layer_norm(F.conv2d(torch.tensor(X), k.reshape(2, 1, 3, 3), b.ravel(), padding=1), (2, 3, 4),
                     g.reshape(2, 3, 4), beta.reshape(2, 3, 4), EPS)
    loss = (((h.reshape(3, -1) @ w.T + c.T) - torch.tensor(Y)) ** 2).sum(1).mean() / 2
    loss.backward()
    value, grads = f.value_and_grad(values, X.reshape(3, -1), Y)
    assert value == pytest.approx(float(loss.detach()), rel=1e-12)
    for got, t in zip(grads, ts, strict=True):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-12)


# -- the layer: parameters, training, formulas -------------------------------------------------


def test_layer_parameters_and_initialisation():
    net, plain = mlp(), sg.nn.Sequential([sg.nn.Dense(3, 5, activation="tanh"), sg.nn.Dense(5, 2)], input_shape=3)
    assert [str(p) for p in net.params] == ["W1", "b1", "gamma2", "beta2", "W3", "b3"]
    w1, b1, g, beta, w3, b3 = net.init_params(7, dtype=np.float32)
    assert g.shape == beta.shape == (5, 1) and g.dtype == np.float32
    assert np.all(g == 1) and np.all(beta == 0)
    # γ and β draw nothing: the other layers start where they would without the LayerNorm
    p1, _, p2, _ = plain.init_params(7, dtype=np.float32)
    np.testing.assert_array_equal(w1, p1)
    np.testing.assert_array_equal(w3, p2)
    assert [str(p) for p in mlp(affine=False).params] == ["W1", "b1", "W3", "b3"]
    assert read_nodes(*write_nodes(net.expr)) == [net.expr]  # a saved model's expression reads back


def test_sequential_with_layernorm_trains(trained):
    net, X, m = trained
    assert m.history["loss"][-1] < 0.3 * m.history["loss"][0]
    np.testing.assert_allclose(m.predict(X), mlp_ref(m.params, X), rtol=1e-10, atol=1e-12)


FORMULAS = """\
Forward (per sample)
  z1 = W1·x + b1
  a1 = tanh(z1)
  n2 = layernorm(a1)
  z2 = beta2 + gamma2 ⊙ n2
  z3 = W3·z2 + b3
  ℓ = mean((z3 - y)^2)
Backward (delta rule; ⊙ is the elementwise product, ᵀ the transpose)
Normalisation: layernorm(x) = (x - mean(x))/σ_x, σ_x = √(var(x) + ε) over each sample's entries (var biased; ε = 1e-05 unless given)
  δ_z3 = z3 - y
  δ_z2 = W3ᵀ·δ_z3
  δ_n2 = gamma2 ⊙ δ_z2
  δ_a1 = (δ_n2 - mean(δ_n2) - n2 ⊙ mean(n2 ⊙ δ_n2))/σ_a1
  δ_z1 = δ_a1 ⊙ (1 - a1^2)
  ∂ℓ/∂b3 = δ_z3
  ∂ℓ/∂W3 = δ_z3·z2ᵀ
  ∂ℓ/∂beta2 = δ_z2
  ∂ℓ/∂gamma2 = n2 ⊙ δ_z2
  ∂ℓ/∂b1 = δ_z1
  ∂ℓ/∂W1 = δ_z1·xᵀ"""


def test_formulas_print_the_layernorm_delta_rule():
    assert str(sg.formulas(mlp(), "mse")) == FORMULAS
    text = str(sg.formulas(mlp(eps=1e-3, affine=False), "cross_entropy"))
    assert "  n2 = layernorm(a1, ε=0.001)" in text and "  z3 = W3·n2 + b3" in text
    assert "  δ_n2 = W3ᵀ·δ_z3" in text and "gamma" not in text


def test_formulas_of_an_unnamed_layernorm_name_its_value():
    x, s = MS("x", 3, 1), MS("s", 3, 1)
    from symgrad.explain.network import network_formulas

    text = str(network_formulas(sg.msum(sg.elementwise(sp.tanh, sg.layernorm(x + s))), [s], [x]))
    assert "  v3 = layernorm(s + x)" in text
    assert "  ∂ℓ/∂s = (1 - v4^2 - mean(1 - v4^2) - v3 ⊙ mean(v3 ⊙ (1 - v4^2)))/σ_(s + x)" in text


def test_latex_lines_render_and_compile(tmp_path):
    printout = sg.formulas(mlp(eps=1e-3), "mse")
    block, lines = printout.latex(), printout.latex_lines()
    assert r"\frac{1}{\sigma_{a_{1}}} \left(\delta_{n_{2}} - \operatorname{mean}\left(\delta_{n_{2}}\right)" in block
    assert r"\operatorname{layernorm}_{\varepsilon = 0.001}\left(a_{1}\right)" in block
    assert any(r"\sqrt{\operatorname{var}(x) + \varepsilon}" in s for s in lines)
    mathtext = pytest.importorskip("matplotlib.mathtext")
    parser = mathtext.MathTextParser("path")
    for s in lines:
        parser.parse(f"${s}$")
    if LATEX is None:
        pytest.skip("no latex installed")
    assert _compile(f"\\[\n{block}\n\\]", tmp_path).returncode == 0


# -- mistakes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0, -1e-5, float("nan"), float("inf"), "small", True])
def test_eps_must_be_a_positive_number(eps):
    with pytest.raises(OptionError, match="Fix: eps=1e-5"):
        sg.layernorm(MS("z", 3, 1), eps=eps)
    with pytest.raises(OptionError, match="Fix: eps=1e-5"):
        sg.nn.LayerNorm(3, eps=eps)


def test_bad_shapes_say_the_fix():
    with pytest.raises(ShapeError, match="at least 2 entries"):
        sg.layernorm(MS("z", 1, 1))
    with pytest.raises(OptionError, match="at least 2 features"):
        sg.nn.LayerNorm(1)
    with pytest.raises(ShapeError, match="column vector"):
        sg.layernorm(MS("z", 1, 3))
    with pytest.raises(ShapeError, match=r"Fix: LayerNorm\(5\)"):
        sg.nn.Sequential([sg.nn.Dense(3, 5), sg.nn.LayerNorm(4)], input_shape=3)
    with pytest.raises(ShapeError, match=r"Fix: LayerNorm\(\(2, 3, 3\)\)"):
        sg.nn.Sequential([sg.nn.Conv2D(1, 2, 3, padding=1), sg.nn.LayerNorm((3, 3, 2))], input_shape=(1, 3, 3))
    with pytest.raises(OptionError, match="Fix"):
        sg.nn.LayerNorm((4, 0))


def test_unsupported_uses_say_the_fix():
    s, x, y = MS("s", 3, 1), MS("x", 3, 1), MS("y", 3, 1)
    with pytest.raises(UnsupportedModelError, match="depends on the data"):
        sg.compile(sg.msum(sp.HadamardProduct(sg.layernorm(s), x)), [s], [x], backend="python")
    f = sg.compile(sg.losses.mse(sg.layernorm(x + s), y), [s], [x, y], backend="python")
    with pytest.raises(UnsupportedModelError, match="no Hessian-vector rule through layer normalisation"):
        f.hvp([np.ones((3, 1))], [np.ones((3, 1))], np.eye(3), np.eye(3))


def test_layer_objects_in_a_second_model_leave_the_first_one_as_built():
    """A second Sequential from the same layer objects renames their symbols; the first model's params
    stay the ones its expression holds (they were renamed under it, and fit(params=) put arrays on the
    wrong layers). A layer with parameters used twice in one model is refused (no shared weights)."""
    a, b = sg.nn.Dense(3, 3, "tanh"), sg.nn.Dense(3, 3)
    net1 = sg.nn.Sequential([a, b], input_shape=3)
    sg.nn.Sequential([b, sg.nn.LayerNorm(3), a], input_shape=3)
    assert [str(p) for p in net1.params] == ["W1", "b1", "W2", "b2"]
    assert set(net1.params) == net1.expr.free_symbols - {net1.x}
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    Wa, ba, Wb, bb = (rng.standard_normal(s) for s in [(3, 3), (3, 1), (3, 3), (3, 1)])
    m = sg.fit(net1, "mse", X, Y, epochs=0, params=[Wa, ba, Wb, bb], backend="python")
    np.testing.assert_allclose(m.predict(X), np.tanh(X @ Wa.T + ba.T) @ Wb.T + bb.T, rtol=1e-12)
    with pytest.raises(sg.errors.OptionError, match="used twice.*Fix: a new layer object"):
        sg.nn.Sequential([a, sg.nn.Residual([a])], input_shape=3)
    pool = sg.nn.MaxPool2D(2)  # no parameters: the same object may be used twice
    sg.nn.Sequential([pool, pool, sg.nn.Flatten(), sg.nn.Dense(4, 2)], input_shape=(1, 8, 8))
