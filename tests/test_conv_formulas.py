"""The printed formulas of convolution and pooling (issue 15, item 2), in text and LaTeX.

Forward ``z = K ⋆ x + b`` with the kernel's shape, stride and padding stated after it; backward
``∂ℓ/∂K = pad_p(x) ⋆ dilate_s(δ_z)``, ``∂ℓ/∂b = Σ δ_z`` and the full convolution
``δ_x = crop_p(pad_k−1(dilate_s(δ_z)) ⋆ rot180(K))``; max pooling routes δ to the arg-max (its
tie convention printed), average pooling spreads δ/k². A legend explains each operation used.
The printed expressions are also *evaluated* with NumPy, by the legend's definitions, against an
adjoint written with loops: the formulas are right, not only well printed.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp
from scipy.signal import correlate2d

import symgrad as sg
from symgrad.explain.imaging import Conv, Correlate, Crop, Dilate, Pad, Rot180, SumPositions, Upsample

nn = sg.nn


def _lines(f) -> list[str]:
    return str(f).splitlines()


@pytest.fixture(scope="module")
def same_max():  # stride 1, padding "same", max pooling
    net = nn.Sequential([nn.Conv2D(1, 2, 3, padding="same", activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
                         nn.Dense(8, 3)], input_shape=(1, 4, 4))
    return sg.formulas(net, "softmax_cross_entropy")


@pytest.fixture(scope="module")
def strided_avg():  # stride 2 with padding 1 after a same-padded layer, average pooling
    net = nn.Sequential([nn.Conv2D(1, 2, 3, padding=1, activation="tanh"),
                         nn.Conv2D(2, 3, 3, stride=2, padding=1, activation="relu"), nn.AvgPool2D(2), nn.Flatten(),
                         nn.Dense(12, 2)], input_shape=(1, 8, 8))
    return sg.formulas(net, "softmax_cross_entropy")


@pytest.fixture(scope="module")
def rectangular():  # a 3×2 kernel, stride (2,1), padding (1,0), overlapping 3×3 max pooling
    net = nn.Sequential([nn.Conv2D(2, 3, 3, padding=1), nn.Conv2D(3, 2, (3, 2), stride=(2, 1), padding=(1, 0)),
                         nn.MaxPool2D(3, stride=1), nn.Flatten(), nn.Dense(4, 2)], input_shape=(2, 6, 5))
    return sg.formulas(net, "mse")


@pytest.fixture(scope="module")
def valid():  # two valid (unpadded, stride 1) convolutions: no pad on the input, no crop, no dilation
    net = nn.Sequential([nn.Conv2D(1, 2, 3), nn.Conv2D(2, 2, 3), nn.Flatten(), nn.Dense(8, 1)], input_shape=(1, 6, 6))
    return sg.formulas(net, "mse")


CONV_LEGEND = [
    "Convolution: ⋆ is cross-correlation (the smaller operand slides over the larger, shared channels summed; "
    "in the backward valid, stride 1);",
    "    rot180 turns each kernel by 180° and swaps its channels (pad_k−1(A) ⋆ rot180(K) is the full convolution "
    "A ∗ K);",
    "    dilate_s puts s − 1 zeros between the entries of δ (and after them, to its size at stride 1);",
    "    pad_p adds p zero rows and columns at each border; crop_p removes p rows and columns at each border;",
    "    Σ sums over the positions, per channel",
]
TIE = ("maxpool: at a tie δ goes to the window's first largest value in row-major order "
       "(a NaN counts as largest)")


def test_stride_one_same_padding_and_max_pooling(same_max):
    assert _lines(same_max) == [
        "Forward (per sample)",
        "  z1 = K1 ⋆ x + b1   (K1: 2×1×3×3, stride 1, padding 1)",
        "  a1 = relu(z1)",
        "  p2 = maxpool_2(a1)",
        "  z4 = W4·p2 + b4",
        "  ℓ = softmax_ce(z4, y)",
        "Backward (delta rule; ⊙ is the elementwise product, ᵀ the transpose)",
        "Convolution: ⋆ is cross-correlation (the smaller operand slides over the larger, shared channels summed; "
        "in the backward valid, stride 1);",
        "    pad_p adds p zero rows and columns at each border; Σ sums over the positions, per channel",
        "Pooling: maxpool_k takes each k×k window's largest value;",
        "    maxunpool_k puts each window's δ at the window's arg-max, 0 elsewhere",
        "  δ_z4 = softmax(z4) - y",
        "  δ_p2 = W4ᵀ·δ_z4",
        "  δ_a1 = maxunpool_2(δ_p2)",
        "  δ_z1 = δ_a1 ⊙ 𝟙[z1 > 0]",
        "  ∂ℓ/∂b4 = δ_z4",
        "  ∂ℓ/∂W4 = δ_z4·p2ᵀ",
        "  ∂ℓ/∂b1 = Σ δ_z1",
        "  ∂ℓ/∂K1 = pad_1(x) ⋆ δ_z1",
        "Conventions at kinks: relu'(0) = 0, so relu'(z) = 𝟙[z > 0]; " + TIE,
    ]


def test_stride_two_with_padding_and_average_pooling(strided_avg):
    lines = _lines(strided_avg)
    assert lines[1:8] == [
        "  z1 = K1 ⋆ x + b1   (K1: 2×1×3×3, stride 1, padding 1)",
        "  a1 = tanh(z1)",
        "  z2 = K2 ⋆ a1 + b2   (K2: 3×2×3×3, stride 2, padding 1)",
        "  a2 = relu(z2)",
        "  p3 = avgpool_2(a2)",
        "  z5 = W5·p3 + b5",
        "  ℓ = softmax_ce(z5, y)",
    ]
    start = lines.index("Backward (delta rule; ⊙ is the elementwise product, ᵀ the transpose)")
    assert lines[start + 1:start + 7] == CONV_LEGEND + [
        "Pooling: avgpool_k takes each k×k window's mean; upsample_k copies each window's δ to all its entries"]
    assert lines[start + 7:] == [
        "  δ_z5 = softmax(z5) - y",
        "  δ_p3 = W5ᵀ·δ_z5",
        "  δ_a2 = upsample_2(δ_p3)/4",  # δ/k²: each window's delta spread evenly
        "  δ_z2 = δ_a2 ⊙ 𝟙[z2 > 0]",
        "  δ_a1 = crop_1(pad_2(dilate_2(δ_z2)) ⋆ rot180(K2))",  # stride: dilate; padding: crop
        "  δ_z1 = δ_a1 ⊙ (1 - a1^2)",
        "  ∂ℓ/∂b5 = δ_z5",
        "  ∂ℓ/∂W5 = δ_z5·p3ᵀ",
        "  ∂ℓ/∂b2 = Σ δ_z2",
        "  ∂ℓ/∂K2 = pad_1(a1) ⋆ dilate_2(δ_z2)",
        "  ∂ℓ/∂b1 = Σ δ_z1",
        "  ∂ℓ/∂K1 = pad_1(x) ⋆ δ_z1",
        "Conventions at kinks: relu'(0) = 0, so relu'(z) = 𝟙[z > 0]",  # no max pooling: no tie note
    ]


def test_rectangular_geometry_and_overlapping_pooling(rectangular):
    lines = [s.strip() for s in _lines(rectangular)]
    for line in ("z2 = K2 ⋆ z1 + b2   (K2: 2×3×3×2, stride (2,1), padding (1,0))",
                 "p3 = maxpool_3(z2)   (stride 1; the windows overlap, their deltas add up)",
                 "δ_z2 = maxunpool_3(δ_p3)",
                 "δ_z1 = crop_(1,0)(pad_(2,1)(dilate_(2,1)(δ_z2)) ⋆ rot180(K2))",
                 "∂ℓ/∂K2 = pad_(1,0)(z1) ⋆ dilate_(2,1)(δ_z2)",
                 "Conventions at kinks: " + TIE):
        assert line in lines


def test_valid_convolution_is_a_plain_full_correlation(valid):
    lines = [s.strip() for s in _lines(valid)]
    assert "z2 = K2 ⋆ z1 + b2   (K2: 2×2×3×3, stride 1, padding 0)" in lines
    assert "δ_z1 = pad_2(δ_z2) ⋆ rot180(K2)" in lines
    assert "∂ℓ/∂K2 = z1 ⋆ δ_z2" in lines and "∂ℓ/∂K1 = x ⋆ δ_z1" in lines
    text = str(valid)
    assert "crop" not in text and "dilate" not in text and "Pooling:" not in text and "Conventions" not in text


def test_legend_only_for_the_layers_a_model_has():
    mlp = str(sg.formulas(nn.MLP([2, 3, 2], activation="relu"), "mse"))
    assert "Convolution:" not in mlp and "Pooling:" not in mlp and "maxpool" not in mlp
    assert mlp.splitlines()[-1] == "Conventions at kinks: relu'(0) = 0, so relu'(z) = 𝟙[z > 0]"


def test_formulas_are_expressions_not_strings(strided_avg):
    """The delta rules are SymPy trees of the notation's operations: no name holds an operator."""
    rows = dict(strided_avg.backward)
    assert isinstance(rows["δ_a1"], Crop) and isinstance(rows["∂ℓ/∂K2"], Correlate)
    assert isinstance(rows["∂ℓ/∂b2"], SumPositions)
    names = {s.name for _, e in strided_avg.forward + strided_avg.backward for s in e.free_symbols}
    assert not any(op in n for n in names for op in ("⋆", "∗", "Σ", "rot180", "pad", "crop", "dilate", "pool"))


def test_hand_written_chain_states_each_geometry_once():
    X, K, b, Q, W, c = (sp.MatrixSymbol(*a) for a in (("x", 36, 1), ("K", 2, 9), ("b", 2, 1), ("Q", 2, 18),
                                                       ("W", 3, 8), ("c", 3, 1)))
    z = sg.conv2d(K, X, b, padding=1, in_shape=(1, 6, 6)).applyfunc(sg.ops.relu)
    p = sg.avgpool2d(sg.conv2d(Q, z).applyfunc(sp.tanh), 2)
    text = str(sg.formulas(SimpleNamespace(expr=W * p + c, params=[K, b, Q, W, c], x=X), "mse"))
    assert text.count("(K: 2×1×3×3, stride 1, padding 1)") == 1 and text.count("(Q: 2×2×3×3, stride 1") == 1
    assert "∂ℓ/∂Q = relu(K ⋆ x + b) ⋆ (" in text  # a product operand of ⋆ is parenthesised


@pytest.fixture(scope="module")
def example():  # the network: same-padded and strided convolutions, both poolings
    net = nn.Sequential([nn.Conv2D(1, 16, 3, padding="same", activation="relu"), nn.MaxPool2D(2),
                         nn.Conv2D(16, 32, 3, stride=2, padding=1, activation="relu"), nn.AvgPool2D(2), nn.Flatten(),
                         nn.Dense(32, 10)], input_shape=(1, 8, 8))
    return sg.formulas(net, "softmax_cross_entropy")


def test_latex_fragments(example):
    tex = example.latex()
    for piece in (r"z_{1} &= K_{1} \star x + b_{1}\quad (K_{1}\text{: }16 \times 1 \times 3 \times 3"
                  r"\text{, stride 1, padding 1})",
                  r"p_{2} &= \operatorname{maxpool}_{2}\left(a_{1}\right)",
                  r"\delta_{p_{2}} &= \operatorname{crop}_{1}\left(\operatorname{pad}_{2}\left(\operatorname{dilate}_{2}"
                  r"\left(\delta_{z_{3}}\right)\right) \star \operatorname{rot180}\left(K_{3}\right)\right)",
                  r"\delta_{a_{3}} &= \frac{\operatorname{upsample}_{2}\left(\delta_{p_{4}}\right)}{4}",
                  r"\delta_{a_{1}} &= \operatorname{maxunpool}_{2}\left(\delta_{p_{2}}\right)",
                  r"\frac{\partial \ell}{\partial b_{3}} &= \sum \delta_{z_{3}}",
                  r"\frac{\partial \ell}{\partial K_{3}} &= \operatorname{pad}_{1}\left(p_{2}\right) \star "
                  r"\operatorname{dilate}_{2}\left(\delta_{z_{3}}\right)",
                  r"&\text{Convolution: }\star\text{ is cross-correlation",
                  r"\operatorname{pad}_{k-1}(A) \star \operatorname{rot180}(K)\text{ is the full convolution }A \ast K",
                  r"\operatorname{maxpool}\text{: at a tie }\delta\text{ goes to the window's first largest value"):
        assert piece in tex, piece
    lines = example.latex_lines()
    assert all(s.isascii() for s in lines), [s for s in lines if not s.isascii()]
    assert len(lines) == len(str(example).splitlines())


def test_mathtext_renders_every_line(example, rectangular):
    mathtext = pytest.importorskip("matplotlib.mathtext", reason="matplotlib is in the [test] extra")
    parser = mathtext.MathTextParser("path")
    for s in example.latex_lines() + rectangular.latex_lines():
        parser.parse(f"${s}$")


LATEX = shutil.which("pdflatex") or shutil.which("latex")


@pytest.mark.skipif(LATEX is None, reason="no pdflatex installed")
def test_latex_compiles_with_amsmath_only(example, rectangular, valid, tmp_path):
    strings = [f.latex() for f in (example, rectangular, valid)] + example.latex_lines() + rectangular.latex_lines()
    body = "\n".join(f"\\[\n{s}\n\\]" for s in strings)
    doc = "\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n" + body + "\n\\end{document}\n"
    (tmp_path / "t.tex").write_text(doc)
    run = subprocess.run([LATEX, "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]


# -- the printed formulas compute the gradient --------------------------------------------------------

def _run(e, env: dict, stride1: tuple[int, int]):
    """Evaluate a printed expression with NumPy, each operation as the legend defines it. Images
    are (C, H, W), kernels (c_out, c_in, kh, kw); ``stride1`` is the size dilate_s fills up to."""
    if isinstance(e, sp.Symbol):
        return env[e.name]
    if e.is_Number:
        return float(e)
    if isinstance(e, sp.Mul):
        return math.prod(_run(x, env, stride1) for x in e.args)
    a = [_run(x, env, stride1) for x in e.args[:2] if not x.is_Integer]
    m, n = (int(v) for v in e.args[1:3]) if isinstance(e, (Pad, Crop, Dilate, Upsample)) else (0, 0)
    if isinstance(e, Pad):
        return np.pad(a[0], ((0, 0), (m, m), (n, n)))
    if isinstance(e, Crop):
        return a[0][:, m:a[0].shape[1] - m, n:a[0].shape[2] - n]
    if isinstance(e, Dilate):
        out = np.zeros(a[0].shape[:1] + stride1)
        out[:, :m * a[0].shape[1]:m, :n * a[0].shape[2]:n] = a[0]
        return out
    if isinstance(e, Upsample):
        return np.repeat(np.repeat(a[0], m, axis=1), n, axis=2)
    if isinstance(e, Rot180):
        return a[0][:, :, ::-1, ::-1].swapaxes(0, 1)
    if isinstance(e, SumPositions):
        return a[0].sum(axis=(1, 2))
    if isinstance(e, Correlate):  # Conv too, at stride 1 and no padding: the smaller slides over the larger
        small, large = (a[1], a[0]) if a[1].shape[-1] <= a[0].shape[-1] else (a[0], a[1])
        if small.ndim == 4:  # a bank of kernels: the channels they share are summed
            out = np.array([sum(correlate2d(large[c], k[c], mode="valid") for c in range(len(k))) for k in small])
        else:  # two images: every pair of channels
            out = np.array([[correlate2d(big, s, mode="valid") for big in large] for s in small])
        return out + np.reshape(_run(e.args[2], env, stride1), (-1, 1, 1)) if isinstance(e, Conv) else out
    raise AssertionError(f"no NumPy meaning for {e!r}")


def _conv_adjoint(x, K, d, stride, pad):
    """Loops: the forward correlation at a stride and padding, and its adjoint for output delta d."""
    (sh, sw), (ph, pw), (kh, kw) = stride, pad, K.shape[2:]
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    z, dK, dxp = np.zeros(d.shape), np.zeros_like(K), np.zeros_like(xp)
    for o, i, j in np.ndindex(d.shape):
        window = xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw]
        z[o, i, j] = (window * K[o]).sum()
        dK[o] += d[o, i, j] * window
        dxp[:, i * sh:i * sh + kh, j * sw:j * sw + kw] += d[o, i, j] * K[o]
    return z, dK, dxp[:, ph:ph + x.shape[1], pw:pw + x.shape[2]]


def test_printed_conv_formulas_compute_the_gradient(rectangular, valid):
    rng = np.random.default_rng(15)
    # K2: 2×3×3×2 on z1 (3×6×5), stride (2,1), padding (1,0): 3×4 outputs, the last padded row unused
    z1, K2, d = rng.normal(size=(3, 6, 5)), rng.normal(size=(2, 3, 3, 2)), rng.normal(size=(2, 3, 4))
    _, dK, dx = _conv_adjoint(z1, K2, d, (2, 1), (1, 0))
    rows, env = dict(rectangular.backward), {"z1": z1, "K2": K2, "δ_z2": d}
    assert np.allclose(_run(rows["∂ℓ/∂K2"], env, (6, 4)), dK)
    assert np.allclose(_run(rows["δ_z1"], env, (6, 4)), dx)
    assert np.allclose(_run(rows["∂ℓ/∂b2"], env, (6, 4)), d.sum(axis=(1, 2)))
    # the valid case, forward included: z2 = K2 ⋆ z1 + b2
    z1, K2, b2, d = (rng.normal(size=n) for n in ((2, 4, 4), (2, 2, 3, 3), 2, (2, 2, 2)))
    z, dK, dx = _conv_adjoint(z1, K2, d, (1, 1), (0, 0))
    rows, env = dict(valid.backward), {"z1": z1, "K2": K2, "b2": b2, "δ_z2": d}
    assert np.allclose(_run(dict(valid.forward)["z2"], env, (2, 2)), z + b2[:, None, None])
    assert np.allclose(_run(rows["∂ℓ/∂K2"], env, (2, 2)), dK)
    assert np.allclose(_run(rows["δ_z1"], env, (2, 2)), dx)


def test_printed_average_pooling_delta_spreads_delta_over_k_squared(strided_avg):
    d = np.random.default_rng(4).normal(size=(3, 2, 2))
    expected = np.zeros((3, 4, 4))
    for c, i, j in np.ndindex(d.shape):
        expected[c, 2 * i:2 * i + 2, 2 * j:2 * j + 2] += d[c, i, j] / 4
    assert np.allclose(_run(dict(strided_avg.backward)["δ_a2"], {"δ_p3": d}, (0, 0)), expected)


def test_a_pool_prints_its_window_and_stride_in_the_expression():
    # a (2, 3) max pool of stride 1 printed as maxpool2d(..., 2): a 2×2 pool of stride 2, another operation
    nn = sg.nn
    net = nn.Sequential([nn.Conv2D(1, 2, 3), nn.MaxPool2D((2, 3), stride=1), nn.AvgPool2D((3, 1), stride=(1, 2)),
                         nn.MaxPool2D(1), nn.Flatten(), nn.Dense(12, 2)], input_shape=(1, 8, 7))
    text, tex = str(net.expr), sp.latex(net.expr)
    assert "(2, 3), stride=1)" in text and "(3, 1), stride=(1, 2))" in text and ", 1)" in text
    assert r"\operatorname{maxpool}_{2,3;\,s=1}" in tex and r"_{3,1;\,s=1,2}" in tex
