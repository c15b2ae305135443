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


CHECKS = {"distributed_fit.py": check_distributed_fit, "digits_cnn.py": check_digits_cnn,
          "lenet_digits.py": check_lenet_digits}


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
