"""``formulas(net, loss, at=(params, x, y))`` through every layer kind (issue 17, "Teaching"):
convolution, max and average pooling, Flatten, LayerNorm (of a vector, an image, each position
of a sequence), attention (causal and not), embedding (with and without positions), the
position-wise Dense, Residual blocks and Dense, under mse, bce and cross-entropy.

The oracles share no code with the trace: ``sg.compile``'s gradient (the native Numba kernels),
central finite differences of the compiled loss, and forward passes written out with loops here.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import DataError, OptionError, ShapeError, SymgradError
from symgrad.lang.losses import LOSSES, target_symbol

nn = sg.nn


def _models():
    """name -> (network, loss, x or None for random features, y): one of each kind at least."""
    return {
        "conv, relu, max pooling": (
            nn.Sequential([nn.Conv2D(1, 2, 3, padding=1, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
                           nn.Dense(8, 3)], input_shape=(1, 4, 4)), "cross_entropy", np.arange(16.0) / 16, 1),
        "strided conv, average pooling, image LayerNorm": (
            nn.Sequential([nn.Conv2D(2, 3, (3, 2), stride=2, padding=(1, 0), activation="tanh"),
                           nn.AvgPool2D(2, stride=1), nn.LayerNorm((3, 2, 2)), nn.Flatten(), nn.Dense(12, 2)],
                          input_shape=(2, 6, 7)), "mse", None, [0.3, -0.7]),
        "overlapping max pooling": (
            nn.Sequential([nn.Conv2D(1, 2, 2, activation="tanh"), nn.MaxPool2D(3, stride=2), nn.Flatten(),
                           nn.Dense(8, 1)], input_shape=(1, 6, 6)), "bce", None, 1),
        "residual sequence, causal attention": (
            nn.Sequential([nn.Residual([nn.LayerNorm(4), nn.MultiHeadAttention(4, heads=2, causal=True)]),
                           nn.Residual([nn.LayerNorm(4), nn.PositionwiseDense(4, 6, "gelu"),
                                        nn.PositionwiseDense(6, 4)]),
                           nn.LayerNorm(12), nn.Flatten(), nn.Dense(12, 1)], input_shape=(3, 4)), "bce", None, 0),
        "positional embedding, attention": (
            nn.Sequential([nn.Embedding(5, 4, context=3, positional=True), nn.MultiHeadAttention(4), nn.Flatten(),
                           nn.Dense(12, 3)], input_shape=3), "cross_entropy", np.array([2, 0, 2]), 2),
        "embedding, position-wise dense": (
            nn.Sequential([nn.Embedding(5, 2), nn.PositionwiseDense(2, 2, "tanh", bias=False), nn.Flatten(),
                           nn.Dense(6, 1, "sigmoid")], input_shape=3), "mse", np.array([4, 4, 1]), 0.25),
        "transformer language model": (
            nn.Transformer(5, 4, 2, 1, 3, mlp=1), "token_cross_entropy", np.array([1, 4, 0]), np.array([4, 0, 2])),
        "dense, vector LayerNorm": (
            nn.Sequential([nn.Dense(3, 4, "tanh"), nn.LayerNorm(4), nn.Dense(4, 1)], input_shape=3), "bce", None, 1),
    }


MODELS = _models()


def _point(net, x, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=tuple(int(d) for d in p.shape)) for p in net.params]
    return params, (rng.normal(size=int(net.x.shape[0])) if x is None else x)


def _compiled(net, loss):
    target = target_symbol(LOSSES[loss], net.expr)  # T ids for the token loss, else a column like the output
    return sg.compile(LOSSES[loss](net.expr, target), net.params, [net.x, target], backend="python")


def _rows(net, loss, x, y):
    """The sample as the compiled loss takes it: one row of x, one row of y (one-hot for a label)."""
    n_out = int(net.expr.shape[0])
    Y = np.eye(n_out)[y] if loss == "cross_entropy" else np.ravel(y).astype(float)
    return np.asarray(x, float).reshape(1, -1), Y.reshape(1, -1)


def _printed_norms(text: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"‖∂ℓ/∂(\w+)‖ [=≈] (\S+)$", text, re.M)}


@pytest.mark.parametrize("name", list(MODELS))
def test_trace_gradients_equal_the_compiled_gradient_and_finite_differences(name):
    net, loss, x, y = MODELS[name]
    params, x = _point(net, x)
    f = sg.formulas(net, loss, at=(params, x, y))
    c = _compiled(net, loss)
    X, Y = _rows(net, loss, x, y)
    value, grads = c.value_and_grad(params, X, Y)
    assert float(np.ravel(f.values["ℓ"])[0]) == pytest.approx(value, rel=1e-12)
    norms = _printed_norms(str(f))
    assert set(norms) == {str(p) for p in net.params}
    for p, g in zip(net.params, grads, strict=True):
        np.testing.assert_allclose(f.values[f"∂ℓ/∂{p}"], g, rtol=1e-10, atol=1e-13, err_msg=str(p))
        assert norms[str(p)] == pytest.approx(np.linalg.norm(g), rel=1e-5, abs=1e-300), str(p)
    # central differences of the compiled loss along a random direction, against the trace's gradient
    rng = np.random.default_rng(1)
    v = [rng.normal(size=np.shape(p)) for p in params]
    h = 1e-6
    ahead = c.value([p + h * d for p, d in zip(params, v)], X, Y)
    behind = c.value([p - h * d for p, d in zip(params, v)], X, Y)
    slope = sum(float(np.sum(f.values[f"∂ℓ/∂{p}"] * d)) for p, d in zip(net.params, v))
    assert (ahead - behind) / (2 * h) == pytest.approx(slope, rel=1e-6, abs=1e-9)


def test_check_grads_agrees_for_the_convolutional_model():
    net, loss, x, y = MODELS["strided conv, average pooling, image LayerNorm"]
    params, x = _point(net, x)
    assert sg.check_grads(_compiled(net, loss), params, *_rows(net, loss, x, y)).ok


def _conv_loops(K, b, x, stride, pad):
    """z[o, i, j] = b[o] + Σ_(c,u,v) K[o, c, u, v] · x_padded[c, i·s + u, j·s + v], written out."""
    xp = np.pad(x, ((0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    Co, C, kh, kw = K.shape
    Ho, Wo = (xp.shape[1] - kh) // stride[0] + 1, (xp.shape[2] - kw) // stride[1] + 1
    z = np.zeros((Co, Ho, Wo))
    for o in range(Co):
        for i in range(Ho):
            for j in range(Wo):
                window = xp[:, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
                z[o, i, j] = b[o] + np.sum(K[o] * window)
    return z


def _pool_loops(a, k, s, reduce):
    C, H, W = a.shape
    out = np.zeros((C, (H - k) // s + 1, (W - k) // s + 1))
    for c, i, j in np.ndindex(out.shape):
        out[c, i, j] = reduce(a[c, i * s:i * s + k, j * s:j * s + k])
    return out


def test_image_values_equal_loops_and_print_in_their_shape():
    net, loss, x, y = MODELS["strided conv, average pooling, image LayerNorm"]
    params, x = _point(net, x)
    f = sg.formulas(net, loss, at=(params, x, y))
    K1, b1 = params[0].reshape(3, 2, 3, 2), params[1].ravel()
    with pytest.raises(sg.errors.ShapeError, match=r"K1 has shape \(3, 2, 3, 2\).*Fix: reshape it, K1.reshape\(3, 12\)"):
        sg.formulas(net, loss, at=([K1, *params[1:]], x, y))  # a kernel as torch holds it
    z1 = _conv_loops(K1, b1, x.reshape(2, 6, 7), (2, 2), (1, 0))
    p2 = _pool_loops(np.tanh(z1), 2, 1, np.mean)
    n3 = (p2 - p2.mean()) / np.sqrt(p2.var() + 1e-5)
    for name, want in (("z1", z1), ("a1", np.tanh(z1)), ("p2", p2), ("n3", n3)):
        assert f.values[name].shape == want.shape == f.values[f"δ_{name}"].shape, name
        np.testing.assert_allclose(f.values[name], want, rtol=1e-12, atol=1e-14, err_msg=name)
    lines = {ln.split(" = ", 1)[0].strip(): ln for ln in str(f).splitlines() if " = " in ln}
    assert re.search(r"≈ \[(\S+, ){3}…(, \S+){3}\] \(3×3×3, ‖·‖ ≈ \S+\)", lines["z1"]), lines["z1"]
    assert lines["δ_p2"].endswith(f"(3×2×2, ‖·‖ ≈ {np.linalg.norm(f.values['δ_p2']):#.6g})")
    assert str(f).startswith("At one sample: x ≈ [") and "(2×6×7, ‖·‖ ≈" in str(f).splitlines()[0]


def test_max_pooling_routes_delta_to_the_first_largest_value():
    net, loss, x, y = MODELS["overlapping max pooling"]
    params, x = _point(net, x)
    f = sg.formulas(net, loss, at=(params, x, y))
    a1 = np.tanh(_conv_loops(params[0].reshape(2, 1, 2, 2), params[1].ravel(), x.reshape(1, 6, 6), (1, 1), (0, 0)))
    np.testing.assert_allclose(f.values["p2"], _pool_loops(a1, 3, 2, np.max), rtol=1e-13)
    # each window's δ lands on its arg-max, overlapping windows adding up
    want = np.zeros_like(a1)
    for c, i, j in np.ndindex(f.values["p2"].shape):
        u, v = np.unravel_index(np.argmax(a1[c, 2 * i:2 * i + 3, 2 * j:2 * j + 3]), (3, 3))
        want[c, 2 * i + u, 2 * j + v] += f.values["δ_p2"][c, i, j]
    np.testing.assert_allclose(f.values["δ_a1"], want, rtol=1e-13)


def _attention_loops(X, Wq, Wk, Wv, Wo, heads, causal):
    T, d = X.shape
    dh = d // heads
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    out = np.zeros((T, d))
    for h in range(heads):
        cols = slice(h * dh, (h + 1) * dh)
        for t in range(T):
            seen = t + 1 if causal else T
            s = np.array([Q[t, cols] @ K[u, cols] for u in range(seen)]) / np.sqrt(dh)
            p = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
            out[t, cols] = p @ V[:seen, cols]
    return out @ Wo


def test_sequence_values_equal_loops():
    net, loss, x, y = MODELS["residual sequence, causal attention"]
    params, x = _point(net, x)
    f = sg.formulas(net, loss, at=(params, x.reshape(3, 4), y))  # one sequence as (T, d) too
    X = x.reshape(3, 4)
    n2 = (X - X.mean(1, keepdims=True)) / np.sqrt(X.var(1, keepdims=True) + 1e-5)
    z2 = n2 * params[0].ravel() + params[1].ravel()
    a3 = _attention_loops(z2, *params[2:6], heads=2, causal=True)
    for name, want in (("n2", n2), ("z2", z2), ("a3", a3), ("r1", X + a3)):
        assert f.values[name].shape == (3, 4), name
        np.testing.assert_allclose(f.values[name], want, rtol=1e-12, atol=1e-14, err_msg=name)
    assert str(f) == str(sg.formulas(net, loss, at=(params, x, y)))


def test_embedding_values_and_repeated_ids_accumulate():
    net, loss, ids, y = MODELS["positional embedding, attention"]
    params, _ = _point(net, ids)
    f = sg.formulas(net, loss, at=(params, ids, y))
    E, P = params[:2]
    np.testing.assert_allclose(f.values["h1"], E[ids] + P, rtol=1e-15)
    np.testing.assert_allclose(f.values["a2"], _attention_loops(E[ids] + P, *params[2:6], 1, False), rtol=1e-12)
    d = f.values["δ_h1"]
    want = np.zeros_like(E)
    want[2], want[0] = d[0] + d[2], d[1]  # id 2 at positions 0 and 2; rows of absent ids get 0
    np.testing.assert_allclose(f.values["∂ℓ/∂E1"], want, rtol=1e-15)
    np.testing.assert_allclose(f.values["∂ℓ/∂P1"], d, rtol=1e-15)


def test_image_input_in_any_layout_gives_the_same_printout():
    net, loss, x, y = MODELS["conv, relu, max pooling"]
    params, x = _point(net, x)
    text = str(sg.formulas(net, loss, at=(params, x, y)))
    for same in (x.reshape(4, 4), x.reshape(1, 4, 4), x.reshape(1, 16), x.reshape(1, 1, 4, 4)):
        assert str(sg.formulas(net, loss, at=(params, same, np.eye(3)[y]))) == text


def test_latex_of_a_tensor_trace_holds_every_line():
    net, loss, x, y = MODELS["residual sequence, causal attention"]
    params, x = _point(net, x)
    f = sg.formulas(net, loss, at=(params, x, y))
    lines = f.latex_lines()
    assert len(lines) == len([r for r in str(f).splitlines() if r.strip()])
    shaped = [ln for ln in lines if r"\ (3 \times 4,\ \|\cdot\| \approx" in ln]
    assert shaped and all(ln.isascii() for ln in shaped)
    mathtext = pytest.importorskip("matplotlib.mathtext", reason="matplotlib is in the [test] extra")
    parser = mathtext.MathTextParser("path")
    for line in lines:
        parser.parse(f"${line}$")


def _bad_points():
    conv, _, _, _ = MODELS["conv, relu, max pooling"]
    seq, _, _, _ = MODELS["residual sequence, causal attention"]
    emb, _, _, _ = MODELS["embedding, position-wise dense"]
    pc, ps, pe = (_point(m, None)[0] for m in (conv, seq, emb))
    return {
        "image of the wrong size": (conv, "cross_entropy", (pc, np.zeros((5, 5)), 1), ShapeError),
        "two images": (conv, "cross_entropy", (pc, np.zeros((2, 1, 4, 4)), 1), ShapeError),
        "too few image features": (conv, "cross_entropy", (pc, np.zeros(15), 1), ShapeError),
        "too few params": (conv, "cross_entropy", (pc[:3], np.zeros(16), 1), OptionError),
        "too many params": (conv, "cross_entropy", (pc + pc[:1], np.zeros(16), 1), OptionError),
        "transposed kernel": (conv, "cross_entropy", ([pc[0].T, *pc[1:]], np.zeros(16), 1), ShapeError),
        "sequence transposed": (seq, "bce", (ps, np.zeros((4, 3)), 1), ShapeError),
        "token id outside the vocabulary": (emb, "mse", (pe, [1, 2, 5], 0.5), DataError),
        "token id not whole": (emb, "mse", (pe, [1, 2.5, 0], 0.5), DataError),
        "target id outside the vocabulary": (MODELS["transformer language model"][0], "token_cross_entropy",
                                             (_point(MODELS["transformer language model"][0], None)[0], [1, 2, 3],
                                              [2, 3, 5]), DataError),
    }


@pytest.mark.parametrize("case", list(_bad_points()))
def test_bad_points_are_refused_with_the_fix(case):
    net, loss, at, error = _bad_points()[case]
    with pytest.raises(error) as err:
        sg.formulas(net, loss, at=at)
    assert isinstance(err.value, SymgradError) and "Fix" in str(err.value)


def test_a_sequence_target_in_its_own_shape_is_one_sample():
    # y of (T, k) was refused with "got x of shape (1, 3, 4)": x was right (the batch axis was ours),
    # y had to be flat
    nn = sg.nn
    net = nn.Sequential([nn.LayerNorm(4), nn.MultiHeadAttention(4, 2), nn.PositionwiseDense(4, 2)], input_shape=(3, 4))
    rng = np.random.default_rng(5)
    ps = [rng.normal(size=p.shape) for p in net.params]
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 2))
    assert str(sg.formulas(net, "mse", at=(ps, x, y))) == str(sg.formulas(net, "mse", at=(ps, x, y.ravel())))
    with pytest.raises(ShapeError, match=re.escape("y its target (6 numbers); got x of shape (3, 4) and y of shape (3, 3)")):
        sg.formulas(net, "mse", at=(ps, x, rng.normal(size=(3, 3))))
