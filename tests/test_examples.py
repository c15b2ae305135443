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


CHECKS = {"distributed_fit.py": check_distributed_fit}


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
