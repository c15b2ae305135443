"""Golden tests: the generated source of tiny models is a product, reviewed like code.

A change to codegen shows up here as a readable diff. To accept an intended change:
    SYMGRAD_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

import os
from pathlib import Path

import pytest
import sympy as sp

import symgrad as sg
from symgrad.build import build_spec, generate, training_module
from symgrad.codegen.scalar import scalar_module

GOLDEN = Path(__file__).parent / "golden"


def _seed_formula() -> str:
    x = sp.Symbol("x", real=True)
    J = sp.cos(sp.sin(x**2) + 3 * x**2)
    return scalar_module(build_spec(J, [x], [], "none", "float64", False, "seed formula J(x)"))


def _damped_float32() -> str:
    a, b, t, y = sp.symbols("a b t y", real=True)
    loss = (a * sp.exp(-b * t) - y) ** 2
    return scalar_module(build_spec(loss, [a, b], [t, y], "mean", "float32", False, "exponential decay"))


def _seed_network() -> str:
    net = sg.nn.MLP([2, 3, 1], activation="sigmoid")
    y = sp.MatrixSymbol("y", 1, 1)
    src, dims = generate(sg.losses.binary_cross_entropy(net.expr, y), net.params, [net.x, y], "mean", "float64",
                         net.labels)
    return src + _sizes(dims)


def _sizes(dims) -> str:
    """The model's sizes, which the shape-generic module reads at run time (codegen/dims.py)."""
    return f"\n# dims = {dims.tolist()}\n"


def _seed_network_training() -> str:
    path, _, _, dims = training_module(sg.nn.MLP([2, 3, 1], activation="sigmoid"), "bce", sg.optim.SGD(0.1),
                                       "float64")
    return sg.jit.read_source(path) + _sizes(dims)


def _dropout_training() -> str:
    nn = sg.nn
    net = nn.Sequential([nn.Dense(2, 3, "relu"), nn.Dropout(0.5), nn.Dense(3, 1)], 2)
    path, _, _, dims = training_module(net, "mse", sg.optim.SGD(0.1), "float64")
    return sg.jit.read_source(path) + _sizes(dims)


CASES = {"seed_formula": _seed_formula, "damped_float32": _damped_float32, "seed_network": _seed_network,
         "seed_network_training": _seed_network_training, "dropout_training": _dropout_training}


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_source_matches_golden(name):
    src = CASES[name]()
    path = GOLDEN / f"{name}.py.txt"
    if os.environ.get("SYMGRAD_UPDATE_GOLDEN"):
        path.write_text(src)
    assert path.exists(), f"no golden file {path}; run with SYMGRAD_UPDATE_GOLDEN=1 once and review it"
    assert src == path.read_text(), f"generated source of {name} changed; review the diff and update the golden"


def test_float32_module_has_no_bare_float_literals():
    """Every constant in float32 code is F(...): a bare 2.0 would promote to float64 (numba#2006)."""
    import re

    body = _damped_float32().split("F = np.float32", 1)[1]
    code = "\n".join(line.split("#")[0] for line in body.splitlines())
    bare = [m for m in re.findall(r"(?<![\w.(])\d+\.\d+", code)]
    assert bare == [], bare
