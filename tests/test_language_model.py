"""Language models (issue 16): the next-token loss, ``sg.nn.Transformer`` and ``sg.generate``.

The loss's kernel against NumPy and torch's ``F.cross_entropy`` (values and gradients, both
dtypes, extreme logits); a small Transformer's gradient against finite differences, and the
Numba kernel's against the Python backend's; training, predict/evaluate shapes, save and load;
sampling; and the mistakes a user can make (targets out of range or of the wrong shape, a text
prompt without an alphabet, a model that looks ahead). Compiled models are shared (fixtures).
"""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import OptionError, ShapeError, TargetError
from symgrad.native import tokens as kernels

MS = sp.MatrixSymbol
VOCAB, D, HEADS, CTX = 6, 8, 2, 5


def ref_loss(Z, Y):
    """Mean over positions of logsumexp − the target's logit, per sample: NumPy, float64."""
    n, T = Y.shape
    z = Z.reshape(n, T, -1).astype(np.float64)
    m = z.max(axis=2, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=2, keepdims=True)))[..., 0]
    picked = np.take_along_axis(z, Y.astype(int)[..., None], axis=2)[..., 0]
    return (lse - picked).mean(axis=1)


def run_kernel(Z, Y, dtype):
    n, T = Y.shape
    g = np.array([T, Z.shape[1] // T], dtype=np.int64)
    out, p = np.empty((n, 1), dtype=dtype), np.empty(Z.shape, dtype=dtype)
    kernels.token_ce_fwd(Z.astype(dtype), Y.astype(dtype), out, p, g)
    dz = np.zeros(Z.shape, dtype=dtype)
    kernels.token_ce_bwd(np.ones((n, 1), dtype=dtype), p, Y.astype(dtype), dz, g)
    return out[:, 0], dz


def kernel_case(dtype, scale):
    rng = np.random.default_rng(0)
    Z, Y = scale * rng.normal(size=(4, 3 * VOCAB)), rng.integers(0, VOCAB, size=(4, 3))
    loss, dz = run_kernel(Z, Y, dtype)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5 * scale)
    return Z, Y, loss, dz, tol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_kernel_matches_numpy(dtype, scale):
    Z, Y, loss, dz, tol = kernel_case(dtype, scale)
    assert np.isfinite(loss).all() and np.isfinite(dz).all()
    np.testing.assert_allclose(loss, ref_loss(Z.astype(dtype), Y), **tol)
    # the gradient against central differences of the NumPy loss (float64, moderate logits)
    if dtype == np.float64 and scale == 1.0:
        h, k = 1e-6, (1, 4)
        up, down = Z.copy(), Z.copy()
        up[k], down[k] = Z[k] + h, Z[k] - h
        fd = (ref_loss(up, Y)[k[0]] - ref_loss(down, Y)[k[0]]) / (2 * h)
        assert dz[k] == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_kernel_matches_torch(dtype, scale):
    torch = pytest.importorskip("torch")
    Z, Y, loss, dz, tol = kernel_case(dtype, scale)
    z = torch.tensor(Z.astype(dtype), requires_grad=True)
    want = torch.nn.functional.cross_entropy(z.reshape(-1, VOCAB), torch.tensor(Y).reshape(-1))
    want.backward()
    np.testing.assert_allclose(loss.mean(), want.item(), **tol)
    # torch averages over all 12 tokens; the kernel's per-sample loss is then averaged over 4 samples
    np.testing.assert_allclose(dz / 4, z.grad.numpy(), **(tol if scale == 1 else dict(rtol=1e-5, atol=1e-6)))


def test_kernel_refuses_a_target_outside_the_vocabulary():
    Z = np.zeros((1, 2 * VOCAB))
    for bad in (VOCAB, -1, 1.5, np.nan):
        with pytest.raises(TargetError, match="not a token id"):
            run_kernel(Z, np.array([[0.0, bad]]), np.float64)


def data(n=40, seed=0, period=3):
    """Windows of a periodic text with a little noise: next-token prediction has something to learn."""
    rng = np.random.default_rng(seed)
    text = np.tile(np.arange(period), 200)[: n + CTX + 1]
    text = np.where(rng.random(len(text)) < 0.05, rng.integers(0, VOCAB, len(text)), text)
    X = np.stack([text[i:i + CTX] for i in range(n)]).astype(float)
    Y = np.stack([text[i + 1:i + CTX + 1] for i in range(n)])
    return X, Y


def lm():
    return sg.nn.Transformer(VOCAB, D, HEADS, layers=1, context=CTX)


@pytest.fixture(scope="module")
def compiled():
    net, y = lm(), MS("y", CTX, 1)
    f = sg.compile(sg.losses.token_cross_entropy(net.expr, y), net.params, [net.x, y], backend="python")
    rng = np.random.default_rng(3)
    values = [v + 0.1 * rng.normal(size=v.shape) for v in net.init_params(1)]
    return types.SimpleNamespace(net=net, f=f, values=values)


def test_transformer_builder_shapes_and_names():
    net = lm()
    assert net.output_shape == (CTX, VOCAB) and net.x.shape == (CTX, 1)
    names = [str(p) for p in net.params]
    # Embedding 1; Residual 2 (LayerNorm 3, attention 4); Residual 5 (LayerNorm 6, MLP 7, 8); LayerNorm 9; logits 10
    assert names[:4] == ["E1", "P1", "gamma3", "beta3"] and names[-4:] == ["gamma9", "beta9", "W10", "b10"]
    assert "Transformer(vocab=6, d=8, heads=2, layers=1, context=5" in repr(net)
    with pytest.raises(ShapeError, match="heads"):
        sg.nn.Transformer(VOCAB, 10, 4, 1, CTX)
    with pytest.raises(OptionError, match="layers"):
        sg.nn.Transformer(VOCAB, D, HEADS, 0, CTX)


def test_transformer_gradient_matches_finite_differences(compiled):
    X, Y = data(3)
    assert sg.check_grads(compiled.f, compiled.values, X, Y.astype(float)).ok


@pytest.mark.numba
def test_fit_learns_predicts_evaluates_and_its_numba_gradient_equals_python(compiled):
    X, Y = data(120)
    m = sg.fit(lm(), "token_cross_entropy", X, Y, optimizer="adam", epochs=40, seed=0, dtype="float32",
               validation=(X[:20], Y[:20]))
    assert m.history["loss"][-1] < 0.5 * m.history["loss"][0]
    out = m.predict(X[:3])
    assert out.shape == (3, CTX, VOCAB) and out.dtype == np.float32
    assert m.predict_class(X[:3]).shape == (3, CTX)
    ev = m.evaluate(X, Y)
    assert ev["accuracy"] > 0.8 and ev["loss"] < m.history["loss"][0]
    np.testing.assert_allclose(ev["loss"], ref_loss(m.predict(X).reshape(len(X), -1), Y).mean(), rtol=1e-4)
    # one full-batch SGD step of the Numba kernel from known parameters: (before − after)/lr is its gradient
    lr, ps = 1e-2, [v.copy() for v in compiled.values]
    Xs, Ys = data(4, seed=5)
    step = sg.fit(lm(), "token_cross_entropy", Xs, Ys, optimizer=sg.optim.SGD(lr), epochs=1, batch_size=4,
                  params=[p.copy() for p in ps])
    _, want = compiled.f.value_and_grad(ps, Xs, Ys.astype(float))
    for before, after, g in zip(ps, step.params, want, strict=True):
        np.testing.assert_allclose((before - after) / lr, g, rtol=1e-6, atol=1e-9)


@pytest.mark.numba
def test_save_load_and_generate(tmp_path):
    X, Y = data(120)
    m = sg.fit(lm(), "token_cross_entropy", X, Y, optimizer="adam", epochs=20, seed=0)
    greedy = sg.generate(m, [0, 1], 8, temperature=0)
    assert greedy[:2] == [0, 1] and len(greedy) == 10
    assert greedy == [k % 3 for k in range(10)]  # the period of the data
    m.save(tmp_path / "lm.npz")
    back = sg.load(tmp_path / "lm.npz")
    assert sg.generate(back, [0, 1], 8, temperature=0) == greedy
    text = sg.generate(m, "ab", 6, temperature=1.0, alphabet="abcdef", seed=1)
    assert isinstance(text, str) and text.startswith("ab") and len(text) == 8 and set(text) <= set("abcdef")
    assert text == sg.generate(m, "ab", 6, temperature=1.0, alphabet="abcdef", seed=1)  # the seed fixes it
    words = [f"w{k}" for k in range(VOCAB)]  # an alphabet of words: the prompt may be a list of them
    assert sg.generate(m, ["w0", "w1"], 8, temperature=0, alphabet=words) == "".join(words[k] for k in greedy)
    long = sg.generate(m, [0] * 12, 3, temperature=0)  # a prompt longer than the context: its last CTX ids
    assert len(long) == 15
    for bad, match in [(dict(prompt="ab"), "alphabet"), (dict(prompt=[]), "empty"), (dict(prompt=[VOCAB]), "token ids"),
                       (dict(prompt="az", alphabet="abcdef"), "lacks"), (dict(prompt=[0], temperature=-1), "temperature"),
                       (dict(prompt="ab", alphabet="abc"), f"has 3 tokens, but the model's vocabulary has {VOCAB} ids"),
                       (dict(prompt="ab", alphabet="abcdefgh"), "has 8 tokens"),
                       (dict(prompt=[0], n=-1), "n="), (dict(prompt=[0], seed=-1), "seed="),  # seeds: NumPy's errors
                       (dict(prompt=[0], seed="x"), "seed="), (dict(prompt=[0], seed=1.5), "seed="),
                       (dict(prompt=[0], top_k=3), "no option 'top_k'. Fix: .*temperature")]:  # was a TypeError
        args = dict(n=2) | bad
        with pytest.raises(OptionError, match=match):
            sg.generate(m, **args)


def test_a_language_model_with_dropout_generates():
    # dropout is elementwise and off in predict, yet generate() refused it: "a position sees later ones"
    nn = sg.nn
    net = nn.Sequential([nn.Embedding(VOCAB, D, context=CTX, positional=True), nn.Dropout(0.1),
                         nn.Residual([nn.LayerNorm(D), nn.MultiHeadAttention(D, HEADS, causal=True)]),
                         nn.LayerNorm(D), nn.PositionwiseDense(D, VOCAB)], input_shape=CTX)
    X, Y = data(20)
    m = sg.fit(net, "token_cross_entropy", X, Y, epochs=1, seed=0, backend="python")
    ids = [1, 2]
    for _ in range(3):  # greedy decoding by hand, from predict on the prompt padded with zeros
        x = np.zeros((1, CTX))
        x[0, :len(ids)] = ids
        ids.append(int(np.argmax(m.predict(x)[0, len(ids) - 1])))
    assert sg.generate(m, [1, 2], 3, temperature=0) == ids
    with warnings.catch_warnings():  # a subnormal temperature is greedy too, without NumPy's overflow warnings
        warnings.simplefilter("error")
        assert sg.generate(m, [1, 2], 3, temperature=5e-324) == ids


def test_a_transformer_of_context_one_generates():
    # a bigram model: its LayerNorm over a (1, d) sequence is per position, as at any context
    ids = np.tile([0, 1, 2], 40)
    X, Y = ids[:-1, None].astype(float), ids[1:, None]
    net = sg.nn.Transformer(vocab=3, d=8, heads=2, layers=1, context=1)
    with warnings.catch_warnings():  # at one position Q and K get no gradient: softmax over one key is 1
        warnings.simplefilter("ignore", sg.GradientHealthWarning)
        m = sg.fit(net, "token_cross_entropy", X, Y, optimizer=sg.optim.Adam(0.05), epochs=30, seed=0,
                   backend="python")
    assert sg.generate(m, [0, 1], 4, temperature=0) == [0, 1, 2, 0, 1, 2]


@pytest.mark.numba
def test_bad_targets_and_models_say_the_fix():
    X, Y = data(10)
    net = lm()
    with pytest.raises(TargetError, match=r"\[0, 6\)"):
        sg.fit(net, "token_cross_entropy", X, np.where(Y == 0, VOCAB, Y), epochs=1)
    with pytest.raises(TargetError, match="not a token id"):
        sg.fit(net, "token_cross_entropy", X, Y + 0.5, epochs=1)
    with pytest.raises(ShapeError, match="one target id per position"):
        sg.fit(net, "token_cross_entropy", X, Y[:, :-1], epochs=1)
    longer = np.hstack([X, X[:, :1]])  # windows one longer than the context
    fix = rf"the model's context is {CTX} positions. Fix: X\[:, -{CTX}:\] .*context={CTX + 1}"
    with pytest.raises(ShapeError, match=fix):
        sg.fit(net, "token_cross_entropy", longer, Y, epochs=1)
    with pytest.raises(ShapeError, match=fix):
        sg.fit(net, "token_cross_entropy", X, Y, epochs=1).predict(longer)
    flat = sg.nn.MLP([CTX, 4, 3])
    with pytest.raises(ShapeError, match="PositionwiseDense"):
        sg.fit(flat, "token_cross_entropy", X, Y, epochs=1)
    ahead = sg.nn.Sequential([sg.nn.Embedding(VOCAB, D, CTX, positional=True), sg.nn.MultiHeadAttention(D, 2),
                              sg.nn.PositionwiseDense(D, VOCAB)], input_shape=CTX)
    m = sg.fit(ahead, "token_cross_entropy", X, Y, epochs=1)
    with pytest.raises(OptionError, match="causal"):
        sg.generate(m, [0], 2)
    with pytest.raises(OptionError, match="language model"):
        sg.generate(sg.fit(sg.nn.MLP([CTX, 3]), "mse", X, Y[:, :3].astype(float), epochs=1), [0], 2)


def test_formulas_print_the_fused_rule_in_text_and_latex():
    f = sg.formulas(lm(), "token_cross_entropy")
    text = str(f)
    assert "  δ_z10 = (softmax(z10_t) - onehot(y_t))/5" in text, text
    assert "  ℓ = token_ce(z10, y)" in text, text
    mpl = pytest.importorskip("matplotlib.mathtext")
    parser = mpl.MathTextParser("agg")
    for line in f._repr_latex_().strip("$").split(r"\\"):
        if line.strip() and "aligned" not in line:
            parser.parse(f"${line.strip().strip('&')}$")


def test_metrics_of_a_language_model_get_token_ids():
    # a metric got y_true as (n, T) ids and y_pred as (n, T·V) logits: every scikit-learn metric failed
    skm = pytest.importorskip("sklearn.metrics")
    X, Y = data(30)
    seen = {}

    def probe(y_true, y_pred):
        seen["shapes"] = (np.shape(y_true), np.shape(y_pred))
        return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))

    m = sg.fit(lm(), "token_cross_entropy", X, Y, epochs=2, seed=0, validation=(X[:6], Y[:6]),
               metrics={"probe": probe, "acc": skm.accuracy_score}, backend="python")
    assert seen["shapes"] == ((6 * CTX,), (6 * CTX,))
    own = float(np.mean(m.predict(X[:6]).argmax(axis=2) == Y[:6]))  # the next-token accuracy, counted here
    assert m.history["val_probe"][-1] == m.history["val_acc"][-1] == m.history["val_accuracy"][-1] == own
