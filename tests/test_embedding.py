"""Token embeddings (issue 16): ``sg.embedding`` and ``sg.nn.Embedding``.

The forward pass against NumPy indexing and torch's ``F.embedding``; gradients against finite
differences (sg.check_grads) and torch's autograd, repeated ids accumulating; the Python and
Numba backends (and the kernels' Python versions), float64 and float32; a tiny language model
(Embedding, causal attention, Dense) that trains with sg.fit and prints its formulas; the
mistakes a user can make (ids out of range, negative or not whole numbers, sequences that do
not fit the context). The compiled functions are shared by the module (fixtures).
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import DataError, OptionError, ShapeError, SymgradError, UnsupportedModelError
from symgrad.native import embedding as kernels
from symgrad.runtime.srepr_io import read_nodes, write_nodes

MS = sp.MatrixSymbol
TOL = {"float64": dict(rtol=1e-12, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}
V, T, D = 7, 5, 3
E, P, X, R = MS("E", V, D), MS("P", T, D), MS("x", T, 1), MS("r", T * D, 1)
IDS = np.array([[1, 1, 3, 0, 1], [6, 2, 2, 2, 5], [0, 0, 0, 0, 0]], dtype=float)  # repeated ids


def draw(seed=0, dtype="float64", n=3):
    rng = np.random.default_rng(seed)
    e, p, r = rng.normal(size=(V, D)), rng.normal(size=(T, D)), rng.normal(size=(n, T * D))
    return [a.astype(dtype) for a in (e, p, r)]


def linear(h, wrt, dtype="float64", backend="python"):
    """sum(r ⊙ h) for data r: its gradient is h's adjoint applied to r."""
    return sg.compile(sg.msum(sp.HadamardProduct(h, R)), wrt, [X, R], dtype=dtype, backend=backend)


@pytest.fixture(scope="module")
def lin():
    """sum(r ⊙ (E[x] + P)) for both backends and dtypes."""
    h = sg.embedding(E, X, P)
    return {(b, dt): linear(h, [E, P], dt, b) for b in ("python", "numba") for dt in ("float64", "float32")}


def outputs(h, wrt, values, ids, dtype="float64"):
    """The (n, T·d) values of h for rows ids (fit with no epochs, then predict)."""
    net = types.SimpleNamespace(x=X, expr=h, params=wrt)
    m = sg.fit(net, "mse", ids, np.zeros((len(ids), int(h.shape[0]))), epochs=0, params=values, dtype=dtype,
               backend="python")
    return m.predict(ids)


# -- forward ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("positional", [False, True])
def test_forward_matches_numpy_indexing(positional, dtype):
    e, p, _ = draw(1, dtype)
    h = sg.embedding(E, X, P if positional else None)
    got = outputs(h, [E, P] if positional else [E], [e, p] if positional else [e], IDS.astype(dtype), dtype)
    want = e[IDS.astype(int)] + (p if positional else 0)
    np.testing.assert_allclose(got, want.reshape(len(IDS), -1), **TOL[dtype])


def test_forward_matches_torch_embedding():
    torch = pytest.importorskip("torch")
    e, p, _ = draw(2)
    want = (torch.nn.functional.embedding(torch.tensor(IDS.astype(int)), torch.tensor(e)) + torch.tensor(p)).numpy()
    got = outputs(sg.embedding(E, X, P), [E, P], [e, p], IDS)
    np.testing.assert_allclose(got, want.reshape(len(IDS), -1), rtol=1e-15, atol=0)


# -- gradients -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradients_match_torch_autograd_repeated_ids_accumulate(lin, dtype):
    torch = pytest.importorskip("torch")
    e, p, r = draw(3, dtype)
    te, tp = torch.tensor(e, requires_grad=True), torch.tensor(p, requires_grad=True)
    h = torch.nn.functional.embedding(torch.tensor(IDS.astype(int)), te) + tp
    ((h.reshape(len(IDS), -1) * torch.tensor(r)).sum() / len(IDS)).backward()
    value, (gE, gP) = lin["python", dtype].value_and_grad([e, p], IDS.astype(dtype), r)
    assert value == pytest.approx(float((h.reshape(len(IDS), -1) * torch.tensor(r)).sum().detach()) / len(IDS),
                                  rel=TOL[dtype]["rtol"])
    np.testing.assert_allclose(gE, te.grad.numpy(), **TOL[dtype])
    np.testing.assert_allclose(gP, tp.grad.numpy(), **TOL[dtype])
    assert not gE[4].any()  # id 4 appears nowhere: its row gets no gradient


def test_repeated_ids_accumulate_in_the_kernel():
    dout = np.random.default_rng(4).normal(size=(2, T * D))
    ids = np.array([[2.0] * T, [2.0, 0, 2, 2, 2]])
    dE, dP = np.zeros((V, D)), np.zeros((T, D))
    kernels.embedding_bwd(ids, dout, dE, dP, np.array([T, D, V, 1]))
    d3 = dout.reshape(2, T, D)
    np.testing.assert_allclose(dE[2], d3.sum((0, 1)) - d3[1, 1], rtol=1e-14)
    np.testing.assert_allclose(dE[0], d3[1, 1], rtol=1e-14)
    np.testing.assert_allclose(dP, d3.sum(0), rtol=1e-14)
    assert not np.delete(dE, [0, 2], axis=0).any()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradients_match_finite_differences(dtype):
    """Through a nonlinearity, so that the deltas differ from position to position."""
    h = sg.embedding(E, X, P)
    f = sg.compile(sg.msum(sp.HadamardPower(sg.elementwise(sp.tanh, h), 2)) / 2, [E, P], [X], dtype=dtype,
                   backend="python")
    e, p, _ = draw(5, dtype)
    assert sg.check_grads(f, [e, p], IDS.astype(dtype)).ok


@pytest.mark.numba
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numba_equals_python(lin, dtype):
    e, p, r = draw(6, dtype)
    v_nb, g_nb = lin["numba", dtype].value_and_grad([e, p], IDS.astype(dtype), r)
    v_py, g_py = lin["python", dtype].value_and_grad([e, p], IDS.astype(dtype), r)
    assert v_nb == pytest.approx(v_py, rel=TOL[dtype]["rtol"])
    for a, b in zip(g_nb, g_py, strict=True):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_kernels_python_versions_equal_their_compiled_ones(dtype):
    e, p, dout = draw(7, dtype)
    g, runs = np.array([T, D, V, 1]), []
    for fwd, bwd in ((kernels.embedding_fwd, kernels.embedding_bwd),
                     (kernels.embedding_fwd.py_func, kernels.embedding_bwd.py_func)):
        out, dE, dP = np.zeros((len(IDS), T * D), dtype), np.zeros((V, D), dtype), np.zeros((T, D), dtype)
        fwd(IDS.astype(dtype), e, p, out, g)
        bwd(IDS.astype(dtype), dout, dE, dP, g)
        runs.append([out, dE, dP])
    for a, b in zip(*runs, strict=True):
        np.testing.assert_allclose(a, b, **TOL[dtype])


# -- a tiny language model: fit, formulas ----------------------------------------------------------

VOCAB, CTX, DM = 5, 4, 8


def lm(positional=True):
    return sg.nn.Sequential([sg.nn.Embedding(VOCAB, DM, context=CTX, positional=positional),
                             sg.nn.MultiHeadAttention(DM, 2, causal=True), sg.nn.Flatten(),
                             sg.nn.Dense(CTX * DM, VOCAB)], input_shape=CTX)


def toy(n=256, seed=0):
    """The next token is the first one again (plus one): a copy task over the context."""
    Xs = np.random.default_rng(seed).integers(0, VOCAB, size=(n, CTX)).astype(float)
    return Xs, ((Xs[:, 0] + 1) % VOCAB).astype(int)


@pytest.fixture(scope="module")
def trained():
    Xs, y = toy()
    return sg.fit(lm(), "cross_entropy", Xs, y, optimizer=sg.optim.Adam(0.02), epochs=25, batch_size=32,
                  dtype="float32", seed=1)


@pytest.mark.numba
def test_the_language_model_trains_with_fit(trained):
    Xs, y = toy(seed=2)
    assert trained.history["loss"][-1] < 0.3 * trained.history["loss"][0]
    assert (trained.predict_class(Xs) == y).mean() > 0.9
    (E1, P1, *_) = trained.params
    assert E1.shape == (VOCAB, DM) and P1.shape == (CTX, DM) and E1.dtype == np.float32


def test_the_language_model_checks_its_gradients():
    m, y = lm(), MS("y", VOCAB, 1)
    f = sg.compile(sg.losses.softmax_cross_entropy(m.expr, y), m.params, [m.x, y], backend="python")
    Xs, labels = toy(6, seed=3)
    assert sg.check_grads(f, m.init_params(4), Xs, np.eye(VOCAB)[labels]).ok


def test_formulas_print_the_embedding_rules():
    printout = sg.formulas(lm(), "cross_entropy")
    text = str(printout)
    for line in ["  h1 = E1[x] + P1", "Q2 = h1·Wq2", "E[ids] stacks row id_t of the table E",
                 "∂ℓ/∂E[k] = Σ_{t: id_t = k} δ_h[t]", "repeated ids accumulate", "the ids get no gradient",
                 "  δ_h1 = δ_K2·Wk2ᵀ + δ_Q2·Wq2ᵀ + δ_V2·Wv2ᵀ", "  ∂ℓ/∂P1 = δ_h1",
                 "  ∂ℓ/∂E1 = Σ_{t: x_t = k} δ_h1[t]   (row k)"]:
        assert line in text
    assert "+ P1" not in str(sg.formulas(lm(positional=False), "cross_entropy"))
    assert r"\sum_{t:\, x_{t} = k} \delta_{h_{1}}[t]" in printout.latex()
    mathtext = pytest.importorskip("matplotlib.mathtext")
    for s in printout.latex_lines():
        mathtext.MathTextParser("path").parse(f"${s}$")


def test_the_expression_prints_and_reads_back():
    m = lm()
    assert str(m.expr) == "W4*attention(E1[x] + P1; Wq2, Wk2, Wv2, Wo2, heads=2, causal) + b4"
    assert read_nodes(*write_nodes(m.expr)) == [m.expr]
    (h,) = [e for e in sp.preorder_traversal(m.expr) if isinstance(e, sg.embedding)]
    assert (h.seq, h.vocab, h.positional, h.shape) == ((CTX, DM), VOCAB, True, (CTX * DM, 1))
    assert sg.embedding(E, X, seq=(T, D)).geometry == (T, D, V, 0)


# -- mistakes --------------------------------------------------------------------------------------

BAD = [(70, r"token id 70 \(position 2, in row 1 .*outside the vocabulary of 7 ids .*Fix: .*Embedding\(71, d\)"),
       (-1, r"token id -1 .*outside the vocabulary of 7 ids \(0 to 6\)\. Fix: map the tokens"),
       (2.5, r"token id 2.5 .* not a whole number.* Fix: pass the ids themselves")]


@pytest.mark.parametrize("backend", ["python", pytest.param("numba", marks=pytest.mark.numba)])
@pytest.mark.parametrize("bad, message", BAD)
def test_bad_ids_in_compiled_functions_say_the_fix(lin, bad, message, backend):
    e, p, r = draw(8)
    ids = IDS.copy()
    ids[1, 2] = bad
    for call in (lin[backend, "float64"].value, lin[backend, "float64"].value_and_grad):
        with pytest.raises(DataError, match=message):
            call([e, p], ids, r)


@pytest.mark.numba
@pytest.mark.parametrize("bad, message", BAD)
def test_bad_ids_in_fit_and_predict_say_the_fix(trained, bad, message):
    Xs, y = toy(8, seed=5)
    Xs[1, 2] = bad
    with pytest.raises(SymgradError, match=message.replace("7 ids", "5 ids").replace("0 to 6", "0 to 4")):
        trained.predict(Xs)
    with pytest.raises(SymgradError, match="Fix: "):
        sg.fit(lm(), "cross_entropy", Xs, y, epochs=1, batch_size=8, dtype="float32")


def test_sequences_that_do_not_fit_the_context_say_the_fix():
    with pytest.raises(ShapeError, match=r"context of 4 positions but the input has 6. Fix: "
                                         r"Sequential\(\.\.\., input_shape=4\)"):
        sg.nn.Sequential([sg.nn.Embedding(5, 8, context=4), sg.nn.Flatten(), sg.nn.Dense(48, 5)], input_shape=6)
    Xs, y = toy(4)
    with pytest.raises(ShapeError, match="the model takes 4. Fix: "):
        sg.fit(lm(), "cross_entropy", np.hstack([Xs, Xs]), y, epochs=0, backend="python")
    with pytest.raises(ShapeError, match=r"seq=\(5, 3\)"):
        sg.embedding(E, X, seq=(6, 3))
    with pytest.raises(ShapeError, match=r"Fix: P = MatrixSymbol\('P', 5, 3\)"):
        sg.embedding(E, X, MS("P", 6, 3))


def test_bad_layers_say_the_fix():
    with pytest.raises(OptionError, match="Fix: give the context length"):
        sg.nn.Embedding(5, 8, positional=True)
    with pytest.raises(OptionError, match="positive integer"):
        sg.nn.Embedding(0, 8)
    with pytest.raises(ShapeError, match="Fix: make it the first layer"):
        sg.nn.Sequential([sg.nn.Flatten(), sg.nn.Embedding(5, 8), sg.nn.Flatten(), sg.nn.Dense(32, 5)],
                         input_shape=4)
    with pytest.raises(UnsupportedModelError, match="Fix: put them in data"):
        sg.compile(sg.msum(sg.embedding(E, X)), [E, X], [], backend="python")
    with pytest.raises(UnsupportedModelError, match="Fix: put them in wrt"):
        sg.compile(sg.msum(sg.embedding(E, X, P)), [E], [X, P], backend="python")


def test_bad_ids_are_refused_before_the_threaded_kernel_with_their_row():
    # a kernel on several threads cannot raise its own error: fit and predict check the ids first
    net = sg.nn.Sequential([sg.nn.Embedding(7, 4, context=3), sg.nn.Flatten(), sg.nn.Dense(12, 7)], input_shape=3)
    X = np.random.default_rng(0).integers(0, 7, size=(4096, 3)).astype(float)
    X[3000, 1] = 9
    with pytest.raises(DataError, match=r"token id 9 \(position 1, in row 3000.*Fix: map the tokens"):
        sg.fit(net, "softmax_cross_entropy", X, X[:, 0].astype(int), epochs=1, batch_size=4096, backend="python")
    X[3000, 1] = 2.5
    with pytest.raises(DataError, match="not a whole number"):
        sg.fit(net, "softmax_cross_entropy", X, X[:, 0].astype(int), epochs=1, batch_size=4096, backend="python")
