"""A step's temporaries reuse the previous step's pages (symgrad/runtime/memory.py): without it,
glibc maps and the kernel zero-fills every large temporary afresh on each call."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import resource, numpy as np, symgrad as sg
    import sympy as sp
    net = sg.nn.MLP([256, 512, 512, 10], activation="tanh")
    t = sp.MatrixSymbol("y", 10, 1)
    f = sg.compile(sg.losses.softmax_cross_entropy(net.expr, t), net.params, [net.x, t], dtype="float32")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2048, 256)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 2048)]
    ps = net.init_params(0, np.float32)
    for _ in range(3):
        f.value_and_grad(ps, X, Y)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        f.value_and_grad(ps, X, Y)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
""")


def _faults(keep: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | {"SYMGRAD_KEEP_MEMORY": keep}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.split()[-1])


@pytest.mark.numba
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_repeated_steps_take_no_new_pages():
    off, on = _faults("0"), _faults("1")
    # 2048 × 512 float32 activations are 4 MiB each: every call maps and touches them afresh
    assert off > 1000, off
    assert on < 0.05 * off, (on, off)
