"""Size limits (issue 19): a formula nested deeper than the derivation handles in reasonable time
is refused up front, and one deeper than SymPy's recursion gets a SymgradError, not a raw
RecursionError; both state the limit."""

from __future__ import annotations

import inspect
import sys
import time

import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import UnsupportedModelError
from symgrad.front.validate import FORMULA_MAX_DEPTH, depth

x = sp.Symbol("x", real=True)


def nested(n: int) -> sp.Expr:
    e = x
    for _ in range(n):
        e = sp.sin(e)
    return e


def test_depth_counts_each_level_once():
    assert depth(x) == 1 and depth(nested(5)) == 6
    shared = sp.sin(x) + sp.cos(sp.sin(x))
    assert depth(shared) == 4


def test_compile_refuses_a_formula_deeper_than_its_limit_at_once():
    t = time.perf_counter()
    with pytest.raises(UnsupportedModelError, match=f"nested {FORMULA_MAX_DEPTH + 7} levels deep; .*up to "
                                                    f"{FORMULA_MAX_DEPTH} levels.*Fix:"):
        sg.compile(nested(FORMULA_MAX_DEPTH + 6), [x], backend="python")
    assert time.perf_counter() - t < 5  # refused before any derivation
    assert sg.compile(nested(8), [x], backend="python").value([0.5]) == pytest.approx(float(nested(8).subs(x, 0.5)))


@pytest.mark.parametrize("call", ["grad", "explain", "compile"])
def test_beyond_the_recursion_limit_is_a_symgrad_error(call):
    e = nested(250)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 400)  # the same margin wherever the test runs
    try:
        with pytest.raises(UnsupportedModelError, match="nested 251 levels deep.*Fix:"):
            if call == "compile":
                sg.compile(e, [x], backend="python")
            else:
                getattr(sg, call)(e, x)
    finally:
        sys.setrecursionlimit(limit)


def test_compile_refuses_a_formula_too_large_or_a_max_too_wide_at_once():
    from symgrad.front.validate import FORMULA_MAX_ARGS, FORMULA_MAX_OPS

    a, b = sp.symbols("a b", real=True)
    big = sum(sp.sin(a * x + k) * sp.exp(-b * k) for k in range(2000))  # a 10,000-term-class formula
    assert sp.count_ops(big) > FORMULA_MAX_OPS
    wide = sp.Max(*[sp.sin(a * x + k) for k in range(FORMULA_MAX_ARGS + 1)])
    t = time.perf_counter()
    with pytest.raises(UnsupportedModelError, match=f"operations; .*up to {FORMULA_MAX_OPS}.*Fix:"):
        sg.compile(big, [a, b], [x], backend="python")
    with pytest.raises(UnsupportedModelError, match=f"Max or Min of {FORMULA_MAX_ARGS + 1} arguments.*Fix:"):
        sg.compile_residuals(wide, [a], [x], backend="python")
    assert time.perf_counter() - t < 10  # refused before any derivation
    ok = sp.Max(*[sp.sin(a * x + k) for k in range(3)])
    f = sg.compile(ok, [a], [x], backend="python")
    assert f.value([0.3], [0.5]) == pytest.approx(max(float(sp.sin(0.15 + k)) for k in range(3)))


def test_grad_and_the_cli_refuse_a_max_of_hundreds_at_once(capsys):
    from symgrad.__main__ import main
    from symgrad.front.validate import GRAD_MAX_ARGS

    xs = sp.symbols(f"x0:{GRAD_MAX_ARGS + 1}", real=True)
    with pytest.raises(UnsupportedModelError, match=f"Max or Min of {GRAD_MAX_ARGS + 1} arguments.*Fix:"):
        sg.grad(sp.Max(*xs), xs[0])
    assert sg.grad(sp.Max(*xs[:3]), xs[0]) == sp.Piecewise((1, (xs[0] > xs[1]) & (xs[0] > xs[2])), (0, True))
    t = time.perf_counter()
    text = "Max(" + ", ".join(f"x{i}" for i in range(1000)) + ")"  # SymPy alone would build it for minutes
    assert main(["grad", text, "--wrt", "x0"]) == 2
    assert "Max() of 1000 arguments" in capsys.readouterr().err and time.perf_counter() - t < 10
