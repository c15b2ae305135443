"""Multi-head self-attention (issue 16): ``sg.attention`` and ``sg.nn.MultiHeadAttention``.

The forward pass against a NumPy reference, torch's ``scaled_dot_product_attention`` and
``nn.MultiheadAttention``; gradients against finite differences (sg.check_grads) and torch's
autograd; the Python and Numba backends, float64 and float32; causal and not, one head and
several; extreme scores; hypothesis over small shapes; a Sequential net that trains with
sg.fit and prints its formulas; the mistakes a user can make. A sequence of T positions × d
features is one (T·d) × 1 column, position by position: ``X.reshape(n, T * d)``. The Numba
builds are shared by the module (fixtures); the rest runs on the Python backend.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.errors import OptionError, ShapeError, SymgradError, UnsupportedModelError
from symgrad.native import attention as kernels
from symgrad.runtime.srepr_io import read_nodes, write_nodes

MS = sp.MatrixSymbol
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=2e-4, atol=2e-5)}
CASES = [(3, 4, 1, False), (3, 4, 2, True), (5, 6, 3, False), (4, 6, 2, True)]  # (T, d, heads, causal)


def attn_ref(X, Wq, Wk, Wv, Wo, heads, causal):
    """X (n, T, d) -> (n, T, d): per head softmax(Q·Kᵀ/√d_h)·V side by side, times Wo (NumPy)."""
    n, T, d = X.shape
    dh = d // heads
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    out = np.empty_like(Q)
    for h in range(heads):
        c = slice(h * dh, (h + 1) * dh)
        S = Q[..., c] @ K[..., c].transpose(0, 2, 1) / np.sqrt(dh)
        if causal:
            S = np.where(np.triu(np.ones((T, T), bool), 1), -np.inf, S)
        P = np.exp(S - S.max(-1, keepdims=True))
        out[..., c] = (P / P.sum(-1, keepdims=True)) @ V[..., c]
    return out @ Wo


def case(T, d, heads, causal, residual=False):
    """attention(x + s) with a parameter s, whose gradient is the mean δ_X: (A, weights, s, x)."""
    x, S = MS("x", T * d, 1), MS("s", T * d, 1)
    W = [MS(f"W{c}", d, d) for c in "qkvo"]
    A = sg.attention(x + S, *W, heads=heads, causal=causal, seq=(T, d))
    return (A + x + S if residual else A), W, S, x


def linear(A, wrt, x, dtype="float64", backend="python"):
    """sum(r ⊙ A) for data r: its gradient is A's adjoint applied to r."""
    r = MS("r", int(A.shape[0]), 1)
    return sg.compile(sg.msum(sp.HadamardProduct(A, r)), wrt, [x, r], dtype=dtype, backend=backend)


def draw(T, d, n, seed, dtype="float64", scale=0.7):
    rng = np.random.default_rng(seed)
    W = [(scale * rng.normal(size=(d, d))).astype(dtype) for _ in range(4)]
    s = (0.3 * rng.normal(size=(T * d, 1))).astype(dtype)
    return W, s, rng.normal(size=(n, T, d)).astype(dtype), rng.normal(size=(n, T, d)).astype(dtype)


def outputs(x, A, wrt, values, X, dtype="float64"):
    """The model's outputs for rows X (fit with no epochs, then predict)."""
    net = types.SimpleNamespace(x=x, expr=A, params=wrt)
    m = sg.fit(net, "mse", X, np.zeros((len(X), int(A.shape[0]))), epochs=0, params=values, dtype=dtype,
               backend="python")
    return m.predict(X).reshape(len(X), -1)


# -- forward -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("T, d, heads, causal", CASES)
def test_forward_matches_numpy(T, d, heads, causal, dtype):
    A, W, S, x = case(T, d, heads, causal)
    w, s, X, _ = draw(T, d, 4, 1, dtype)
    got = outputs(x, A, [*W, S], [*w, s], X.reshape(4, -1), dtype)
    want = attn_ref(X.astype(float) + s.reshape(T, d), *w, heads, causal)
    np.testing.assert_allclose(got, want.reshape(4, -1), **TOL[dtype])


@pytest.mark.parametrize("T, d, heads, causal", CASES)
def test_forward_matches_torch_sdpa_and_multihead_attention(T, d, heads, causal):
    torch = pytest.importorskip("torch")
    mha = torch.nn.MultiheadAttention(d, heads, bias=False, batch_first=True, dtype=torch.float64)
    wq, wk, wv = (m.detach().numpy().T for m in mha.in_proj_weight.chunk(3))
    wo = mha.out_proj.weight.detach().numpy().T  # out = X·W: PyTorch's weights transposed
    X = np.random.default_rng(2).normal(size=(3, T, d))
    tx = torch.tensor(X)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
    want = mha(tx, tx, tx, need_weights=False, attn_mask=mask)[0].detach().numpy()
    q, k, v = ((tx @ torch.tensor(w)).reshape(3, T, heads, -1).transpose(1, 2) for w in (wq, wk, wv))
    o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    sdpa = (o.transpose(1, 2).reshape(3, T, d) @ torch.tensor(wo)).numpy()
    np.testing.assert_allclose(sdpa, want, rtol=1e-12, atol=1e-12)
    A, W, S, x = case(T, d, heads, causal)
    got = outputs(x, A, [*W, S], [wq, wk, wv, wo, np.zeros((T * d, 1))], X.reshape(3, -1))
    np.testing.assert_allclose(got, want.reshape(3, -1), rtol=1e-10, atol=1e-12)


def test_the_kernel_saves_a_causal_p_with_zeros_above_the_diagonal():
    T, d, H = 4, 4, 2
    x = np.random.default_rng(3).normal(size=(2, T * d))
    w = np.eye(d)
    out, q, k, v, o = np.empty((5, 2, T * d))
    p = np.empty((2, H * T * T))
    kernels.attention_fwd(x, w, w, w, w, out, q, k, v, p, o, np.array([T, d, H, 1]))
    P = p.reshape(2, H, T, T)
    assert np.all(P[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0)
    np.testing.assert_allclose(P.sum(-1), 1, rtol=1e-14)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_kernels_python_versions_equal_their_compiled_ones(dtype):
    """The native kernels run as Python (``py_func``: NumPy products, libm exp) and compiled."""
    T, d, H, B = 3, 4, 2, 2
    rng = np.random.default_rng(10)
    x, dout = rng.normal(size=(2, B, T * d)).astype(dtype)
    w = list(rng.normal(size=(4, d, d)).astype(dtype))
    g = np.array([T, d, H, 1])
    runs = []
    for fwd, bwd in ((kernels.attention_fwd, kernels.attention_bwd),
                     (kernels.attention_fwd.py_func, kernels.attention_bwd.py_func)):
        out, q, k, v, o = np.zeros((5, B, T * d), dtype)
        p, dx, dw = np.zeros((B, H * T * T), dtype), np.zeros((B, T * d), dtype), np.zeros((4, d, d), dtype)
        fwd(x, *w, out, q, k, v, p, o, g)
        bwd(x, *w, q, k, v, p, o, dout, dx, *dw, g, True)
        runs.append([out, p, dx, *dw])
    for a, b in zip(*runs, strict=True):
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("causal", [False, True])
def test_extreme_scores_stay_finite(causal, dtype):
    """Scores of ±1e4: the softmax subtracts each row's largest score, so P is a finite one-hot."""
    T, d = 4, 2
    A, W, S, x = case(T, d, 1, causal)
    rng = np.random.default_rng(4)
    w = [np.eye(d) * 100, np.eye(d) * 100, rng.normal(size=(d, d)), rng.normal(size=(d, d))]
    w, s = [a.astype(dtype) for a in w], np.zeros((T * d, 1), dtype)
    X = (rng.choice([-1.0, 1.0], size=(3, T, d)) * np.array([1.0, 0.5])).astype(dtype)  # scores ±1e4
    got = outputs(x, A, [*W, S], [*w, s], X.reshape(3, -1), dtype)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, attn_ref(X.astype(float), *w, 1, causal).reshape(3, -1), **TOL[dtype])
    value, grads = linear(A, [*W, S], x, dtype).value_and_grad([*w, s], X.reshape(3, -1), X.reshape(3, -1))
    assert np.isfinite(value) and all(np.isfinite(g).all() for g in grads)


# -- gradients -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("T, d, heads, causal", CASES)
def test_gradients_match_torch_autograd(T, d, heads, causal, dtype):
    torch = pytest.importorskip("torch")
    A, W, S, x = case(T, d, heads, causal)
    w, s, X, R = draw(T, d, 3, 5, dtype)
    tw = [torch.tensor(a, requires_grad=True) for a in (*w, s)]
    tx = torch.tensor(X) + tw[4].reshape(T, d)
    q, k, v = ((tx @ m).reshape(3, T, heads, -1).transpose(1, 2) for m in tw[:3])
    o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    out = o.transpose(1, 2).reshape(3, T, d) @ tw[3]
    ((out * torch.tensor(R)).sum() / 3).backward()
    value, grads = linear(A, [*W, S], x, dtype).value_and_grad([*w, s], X.reshape(3, -1), R.reshape(3, -1))
    assert value == pytest.approx(float((out * torch.tensor(R)).sum().detach()) / 3, rel=TOL[dtype]["rtol"])
    for got, t in zip(grads, tw, strict=True):
        np.testing.assert_allclose(got, t.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("T, d, heads, causal, residual", [(c + (r,)) for c, r in zip(CASES, [False, True] * 2)])
def test_gradients_match_finite_differences(T, d, heads, causal, residual, dtype):
    A, W, S, x = case(T, d, heads, causal, residual)
    f = sg.compile(sg.msum(sp.HadamardPower(A, 2)) / 2, [*W, S], [x], dtype=dtype, backend="python")
    w, s, X, _ = draw(T, d, 3, 6, dtype)
    assert sg.check_grads(f, [*w, s], X.reshape(3, -1)).ok


@pytest.mark.parametrize("T, heads", [(4, 1), (5, 2)])
def test_masked_entries_get_zero_gradient(T, heads):
    """Causal: the output at position t does not depend on later positions, so δ_X is 0 there."""
    d = 4
    A, W, S, x = case(T, d, heads, True)
    w, s, X, _ = draw(T, d, 2, 7)
    for t in range(T):
        R = np.zeros((2, T, d))
        R[:, t] = 1.0
        _, (*_, ds) = linear(A, [*W, S], x).value_and_grad([*w, s], X.reshape(2, -1), R.reshape(2, -1))
        ds = ds.reshape(T, d)
        assert np.all(ds[t + 1:] == 0) and np.abs(ds[:t + 1]).min() > 0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(T=st.integers(1, 4), dh=st.integers(1, 3), heads=st.integers(1, 3), causal=st.booleans(),
       n=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_hypothesis_small_shapes_match_the_reference_and_finite_differences(T, dh, heads, causal, n, seed):
    d = dh * heads
    A, W, S, x = case(T, d, heads, causal)
    w, s, X, R = draw(T, d, n, seed)
    f = linear(A, [*W, S], x)
    want = (attn_ref(X + s.reshape(T, d), *w, heads, causal) * R).sum() / n
    assert f.value([*w, s], X.reshape(n, -1), R.reshape(n, -1)) == pytest.approx(want, rel=1e-10, abs=1e-12)
    assert sg.check_grads(f, [*w, s], X.reshape(n, -1), R.reshape(n, -1)).ok


# -- a Sequential net: Python and Numba, fit, formulas --------------------------------------------

T0, D0 = 4, 4


def net():
    return sg.nn.Sequential([sg.nn.MultiHeadAttention(D0, 2, causal=True), sg.nn.Flatten(), sg.nn.Dense(T0 * D0, 3)],
                            input_shape=(T0, D0))


@pytest.fixture(scope="module")
def models():
    """The net under softmax cross-entropy, compiled for both backends and dtypes."""
    m, y = net(), MS("y", 3, 1)
    loss = sg.losses.softmax_cross_entropy(m.expr, y)
    return m, {(b, dt): sg.compile(loss, m.params, [m.x, y], dtype=dt, backend=b)
               for b in ("python", "numba") for dt in ("float64", "float32")}


@pytest.mark.numba
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numba_equals_python(models, dtype):
    m, f = models
    rng = np.random.default_rng(8)
    ps = [p.astype(dtype) for p in m.init_params(3)]
    X, Y = rng.normal(size=(6, T0 * D0)).astype(dtype), np.eye(3, dtype=dtype)[rng.integers(0, 3, 6)]
    v_nb, g_nb = f["numba", dtype].value_and_grad(ps, X, Y)
    v_py, g_py = f["python", dtype].value_and_grad(ps, X, Y)
    assert v_nb == pytest.approx(v_py, rel=TOL[dtype]["rtol"])
    for a, b in zip(g_nb, g_py, strict=True):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, **TOL[dtype])
    if dtype == "float64":
        assert sg.check_grads(f["python", dtype], ps, X, Y).ok


@pytest.mark.numba
def test_sequential_trains_with_fit():
    """Which of the first and last positions has the larger first feature: attention must look back."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(256, T0, D0))
    y = (X[:, -1, 0] > X[:, 0, 0]).astype(int)
    m = sg.fit(net(), "cross_entropy", X.reshape(256, -1), y, optimizer=sg.optim.Adam(0.02), epochs=40,
               batch_size=32, dtype="float32", seed=1)
    assert m.history["loss"][-1] < 0.5 * m.history["loss"][0]
    assert (m.predict_class(X.reshape(256, -1)) == y).mean() > 0.85


def test_formulas_print_the_attention_rules():
    text = str(sg.formulas(net(), "cross_entropy"))
    for line in ["  a1 = softmax(mask(Q1·K1ᵀ/√2))·V1·Wo1   (Q1 = x·Wq1, K1 = x·Wk1, V1 = x·Wv1; 2 heads of d_h = 2, "
                 "causal)", "S = Q·Kᵀ/√d_h, P = softmax(S), O = P·V", "δ_V = Pᵀ·δ_O",
                 "δ_S = P ⊙ (δ_P − rowsum(δ_P ⊙ P))", "δ_Q = δ_S·K/√d_h, δ_K = δ_Sᵀ·Q/√d_h",
                 "masked entries get zero gradient", "  δ_a1 = W3ᵀ·δ_z3", "  ∂ℓ/∂Wo1 = O1ᵀ·δ_a1",
                 "  ∂ℓ/∂Wv1 = xᵀ·δ_V1", "  ∂ℓ/∂Wq1 = xᵀ·δ_Q1"]:
        assert line in text
    two = sg.nn.Sequential([sg.nn.MultiHeadAttention(4), sg.nn.MultiHeadAttention(4), sg.nn.Flatten(),
                            sg.nn.Dense(8, 2)], input_shape=(2, 4))
    printout = sg.formulas(two, "cross_entropy")
    assert "  δ_a1 = δ_K2·Wk2ᵀ + δ_Q2·Wq2ᵀ + δ_V2·Wv2ᵀ" in str(printout) and "mask" not in str(printout)
    assert r"\delta_{Q_{2}}\,Wq_{2}^{\top}" in printout.latex()
    mathtext = pytest.importorskip("matplotlib.mathtext")
    for s in printout.latex_lines():
        mathtext.MathTextParser("path").parse(f"${s}$")


def test_the_expression_prints_and_reads_back():
    m = net()
    assert str(m.expr) == "W3*attention(x; Wq1, Wk1, Wv1, Wo1, heads=2, causal) + b3"
    assert read_nodes(*write_nodes(m.expr)) == [m.expr]
    (A,) = [e for e in sp.preorder_traversal(m.expr) if isinstance(e, sg.attention)]
    assert (A.seq, A.heads, A.causal, A.shape) == ((T0, D0), 2, True, (T0 * D0, 1))
    W = MS("W", D0, D0)
    assert sg.attention(sg.elementwise(sp.tanh, 2 * A + m.x), W, W, W, W).seq == (T0, D0)  # read from A


# -- mistakes --------------------------------------------------------------------------------------


def test_heads_must_divide_d():
    W = [MS("W", 6, 6)] * 4
    with pytest.raises(ShapeError, match=r"Fix: heads among \[1, 2, 3, 6\]"):
        sg.attention(MS("x", 12, 1), *W, heads=4, seq=(2, 6))
    with pytest.raises(SymgradError, match="Fix: heads among"):
        sg.nn.MultiHeadAttention(6, 4)
    with pytest.raises(OptionError, match="positive integer"):
        sg.nn.MultiHeadAttention(6, True)


def test_bad_shapes_say_the_fix():
    W = [MS("W", 4, 4)] * 4
    with pytest.raises(ShapeError, match=r"Fix: pass seq=\(T, d\)"):
        sg.attention(MS("x", 12, 1), *W)
    with pytest.raises(ShapeError, match="Fix: seq must match the input"):
        sg.attention(MS("x", 12, 1), *W, seq=(4, 4))
    with pytest.raises(ShapeError, match=r"Fix: Wo = MatrixSymbol\('Wo', 4, 4\)"):
        sg.attention(MS("x", 12, 1), *W[:3], MS("V", 4, 3), seq=(3, 4))
    with pytest.raises(ShapeError, match=r"Fix: MultiHeadAttention\(5, heads\)"):
        sg.nn.Sequential([sg.nn.MultiHeadAttention(4), sg.nn.Flatten(), sg.nn.Dense(15, 1)], input_shape=(3, 5))
    with pytest.raises(ShapeError, match=r"input_shape=\(T, d\)"):
        sg.nn.Sequential([sg.nn.MultiHeadAttention(4), sg.nn.Dense(12, 1)], input_shape=12)
    # a network may end with a sequence (a language model's logits at each position) ...
    assert sg.nn.Sequential([sg.nn.MultiHeadAttention(4)], input_shape=(3, 4)).output_shape == (3, 4)
    with pytest.raises(ShapeError, match=r"ends with an image"):  # ... but not with an image
        sg.nn.Sequential([sg.nn.Conv2D(1, 2, 3)], input_shape=(1, 4, 4))


def test_weights_that_depend_on_the_data_are_refused():
    x, W = MS("x", 8, 1), [MS(f"W{c}", 4, 4) for c in "qkvo"]
    A = sg.attention(x, *W, seq=(2, 4))
    with pytest.raises(UnsupportedModelError, match="Fix: put them in wrt"):
        sg.compile(sg.msum(A), W[:3], [x, W[3]], backend="python")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_nan_score_makes_its_softmax_row_nan_but_not_where_it_is_masked(dtype):
    """The softmax computes exp up to a multiple of 8 columns of a causal row, masked ones too,
    then zeroes those: a NaN (or huge) score there must not reach P."""
    T = 21
    s = np.random.default_rng(12).normal(size=(T, T)).astype(dtype)
    s[13, 4] = np.nan  # row 13 sees column 4
    s[2, 5] = np.nan  # row 2 does not (columns 0..2), but its exps run to column 7
    s[3, 6] = 1e30  # exp overflows there, also masked
    kernels._softmax_rows(s, s.dtype.type(0.5), True)
    assert np.isnan(s[13, :14]).all() and (s[13, 14:] == 0).all()
    rows = [r for r in range(T) if r != 13]
    assert np.isfinite(s[rows]).all()
    np.testing.assert_allclose(s[rows].sum(axis=1), 1, rtol=1e-6)
    assert (s[np.triu_indices(T, 1)][~np.isnan(s[np.triu_indices(T, 1)])] == 0).all()
