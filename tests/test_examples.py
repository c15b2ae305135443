"""Every example runs, in its quick mode, as a real subprocess (as a user would run it)."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))
# examples that need an optional extra: skipped, not failed, where it is not installed
NEEDS = {"distributed_fit.py": ("dask", "distributed")}


def _number(pattern: str, out: str) -> float:
    m = re.search(pattern, out)
    assert m, f"no line matching {pattern!r} in the output:\n{out[-2000:]}"
    return float(m.group(1))


def check_distributed_fit(out: str) -> None:
    """The Dask results agree with single-process symgrad (the example prints, the test judges)."""
    num = r"([-+0-9.eE]+|nan|inf)"
    assert _number(rf"Dask vs single-process: max rel \|Δθ\| = {num}", out) <= 1e-6
    assert _number(rf"sync vs single-process: max \|Δθ\| = {num}", out) <= 1e-10
    assert _number(rf"local SGD: test accuracy = {num}", out) >= 0.9
    assert _number(rf"out-of-core local SGD: held-out accuracy = {num}", out) >= 0.9


NUM = r"([-+0-9.eE]+|nan|inf)"


def _check_conv_formulas(out: str) -> None:
    """The printed formulas of a network whose layers 1 and 3 are convolutions (stable fragments
    only: the exact notation of padding and unpooling may be refined)."""
    assert "z1 = K1 ⋆ x + b1" in out, out[:3000]
    assert "z3 = K3 ⋆ p2 + b3" in out, out[:3000]
    grad_k1 = re.search(r"∂ℓ/∂K1 = (.*)", out)
    assert grad_k1 and "x" in grad_k1.group(1) and "⋆ δ_z1" in grad_k1.group(1), out[:3000]
    assert re.search(r"∂ℓ/∂K3 = .*p2.*⋆ δ_z3", out), out[:3000]
    assert re.search(r"∂ℓ/∂b1 = Σ δ_z1", out), out[:3000]
    assert re.search(r"δ_p2 = .*δ_z3.*rot180\(K3\)", out), out[:3000]  # δ_X = δ_Z ∗ rot180(K)
    assert re.search(r"δ_a1 = \S*unpool\S*\(δ_p2\)", out), out[:3000]  # max pooling routes δ to the arg-max


def check_digits_cnn(out: str) -> None:
    """The CNN's formulas, each seed's accuracy, their mean, and the MLP on the same split."""
    _check_conv_formulas(out)
    seeds = [float(a) for a in re.findall(rf"seed \d+: .*test accuracy {NUM}", out)]
    assert seeds, out[-2000:]
    assert min(seeds) >= 0.95, seeds
    mean = _number(rf"CNN mean test accuracy over \d+ seeds?: {NUM}", out)
    assert abs(mean - sum(seeds) / len(seeds)) < 1e-3, (mean, seeds)
    assert mean >= 0.95, mean
    mlp = _number(rf"MLP demo .* test accuracy on the same split: {NUM}", out)
    assert 0.85 <= mlp <= 1.0, mlp


def check_lenet_digits(out: str) -> None:
    """28x28 images made from the digits, LeNet-5's formulas, and its test accuracy."""
    assert re.search(r"training images \(\d+, 1, 28, 28\)", out), out[:2000]
    assert "test images (360, 1, 28, 28)" in out, out[:2000]
    _check_conv_formulas(out)
    assert "z8 = W8·a7 + b8" in out, out[:3000]
    assert _number(rf"test accuracy {NUM}", out) >= 0.85


def check_teach_backprop(out: str) -> None:
    """The notes' worked examples: the seed trace's value, textbook mode's agreement with the stable
    form, Case 2's delta rule in the notes' letters, and vanishing gradients (warned, measured, plotted)."""
    assert re.search(r"∂J/∂x = .* ≈ 4\.56079$", out, re.M), out[:3000]
    assert "What symgrad compiles" in out, out[:6000]
    agree = re.findall(r"^  ∂J/∂\S+ :  (.*)$", out, re.M)
    assert agree and all(a.startswith(("0 at 5 random points", "0 (simplified)")) for a in agree), agree
    assert "-> bce_logits(a, y*)" in out and "∂J/∂a = -y* + sigmoid(a)" in out, out[:6000]
    assert re.search(r"∂J/∂a = .* ≈ -0\.377541$", out, re.M), out[:6000]  # σ(0.5) - 1
    assert re.search(r"∂a/∂theta1 = x1\b", out), out[:6000]
    assert "a = alpha·x" in out and "b = beta·z" in out, out[-6000:]
    assert re.search(r"δ_a = z ⊙ δ_z ⊙ \(1 - z\) ≈ \[0\.480864", out), out[-6000:]
    assert "checked: every δ printed by symgrad matches the NumPy pass" in out, out[-6000:]
    warned = r"GradientHealthWarning caught: gradient norms are vanishing in \['W1'"
    assert re.search(warned, out), out[-4000:]
    sig = _number(rf"sigmoid first/last layer gradient norm ratio \(W1/W9\) = {NUM}", out)
    relu = _number(rf"relu first/last layer gradient norm ratio \(W1/W9\) = {NUM}", out)
    assert sig < 1e-3 and relu > 0.1, (sig, relu)
    plots = re.findall(r"plot written to (.*\.png)$", out, re.M)
    if importlib.util.find_spec("matplotlib") is None:
        assert "the plot is skipped" in out, out[-2000:]
    else:
        assert len(plots) == 2, out[-4000:]
        for png in plots:
            assert Path(png).is_file() and Path(png).stat().st_size > 0, png
            assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert out.rstrip().endswith("OK"), out[-2000:]


def check_char_transformer(out: str) -> None:
    """The attention layer's backward formulas, the losses in bits per character against the unigram
    baseline (the printed gap is their difference), and samples that continue their prompts."""
    for rule in ("δ_S = P ⊙ (δ_P − rowsum(δ_P ⊙ P))", "δ_Q = δ_S·K/√d_h", "δ_K = δ_Sᵀ·Q/√d_h", "δ_V = Pᵀ·δ_O",
                 "masked entries get zero gradient", "∂ℓ/∂Wq4 = z3ᵀ·δ_Q4"):
        assert rule in out, (rule, out[:4000])
    bits = _number(rf"validation loss {NUM} bits/char", out)
    base = _number(rf"unigram baseline {NUM} bits/char", out)
    gap = _number(rf"; {NUM} bits/char below it", out)
    assert 4.0 < base < 5.5 and abs(base - bits - gap) < 2e-3, (bits, base, gap)
    assert gap >= 0.3, (bits, base)
    losses = [float(v) for v in re.findall(rf"epoch \d+: train {NUM} bits/char", out)]
    assert len(losses) >= 2 and losses[-1] < losses[0], losses
    samples = re.findall(r"^  '(.*)'$|^  \"(.*)\"$", out, re.M)
    assert len(samples) == 3, out[-2000:]
    assert [next(s for s in pair if s).split(" ")[0] for pair in samples] == ["Return", "The", "If"], samples
    assert out.rstrip().endswith("OK"), out[-2000:]


CHECKS = {"char_transformer.py": check_char_transformer, "distributed_fit.py": check_distributed_fit,
          "digits_cnn.py": check_digits_cnn,
          "lenet_digits.py": check_lenet_digits, "teach_backprop.py": check_teach_backprop}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path):
    missing = [m for m in NEEDS.get(path.name, ()) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{path.name} needs {', '.join(missing)}")
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, str(path), "--quick"], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    if path.name in CHECKS:
        CHECKS[path.name](proc.stdout)
