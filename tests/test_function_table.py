"""The parser, the validator and the code printer support the same functions (issue 14).

All three read the one table in symgrad/lang/math_functions.py; these tests fail if one of them
drifts from it: a name the parser accepts that the validator refuses or the printer cannot emit,
or a function the validator lets through that the parser cannot read.
"""

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.codegen.printer import NumbaPrinter
from symgrad.front import validate
from symgrad.lang import math_functions as mf
from symgrad.lang.parse import FUNCTIONS, parse_expr

A, X = 0.3, 0.7  # the point: parameter a, one sample of data x
a, x = sp.symbols("a x", real=True)

#: First arguments inside each function's domain at the point; tanh(a)/2 lies in (-1/2, 1/2).
FIRST_ARG = {"log": "1 + a**2", "sqrt": "1 + a**2", "acosh": "1 + a**2"}
MORE_ARGS = ["x", "2*x"]  # further arguments: log's base, atan2's x, Max's others, the ops' y/alpha


def _calls(name: str) -> list[str]:
    """``name`` called with its fewest and its most arguments (one more than the fewest if unbounded)."""
    lo, hi = FUNCTIONS[name][1]
    out = []
    for n in sorted({lo, lo + 1 if hi is None else hi}):
        args = [FIRST_ARG.get(name, "tanh(a)/2"), *MORE_ARGS][:n]
        out.append(f"{name}({', '.join(args)})")
    return out


PARSER_CALLS = [c for name in sorted(FUNCTIONS) for c in _calls(name)]


def test_the_table_is_what_the_three_read():
    assert FUNCTIONS == {n: (e.make, e.arity) for e in mf.TABLE for n in e.names}
    assert validate.MATH_FUNCS == {e.node: e.numba for e in mf.TABLE if e.kind == mf.MATH}
    assert type(validate.MATH_FUNCS) is dict and all(isinstance(s, str) for s in validate.MATH_FUNCS.values())
    names = [n for e in mf.TABLE for n in e.names]
    assert len(names) == len(set(names)), "a name is in the table twice"
    assert {e.kind for e in mf.TABLE} == {mf.MATH, mf.STRUCTURAL, mf.OP, mf.COMPOSITE}


@pytest.mark.parametrize("call", PARSER_CALLS)
def test_every_parser_name_validates_prints_and_computes(call):
    expr = parse_expr(call) + x  # x: every data symbol is used
    validate.check_functions(expr)
    f = sg.compile(expr, wrt=[a], data=[x], backend="python")
    got = f.value([A], np.array([X]))
    with mpmath.workdps(30):
        want = float(sp.lambdify([a, x], expr, "mpmath")(mpmath.mpf(A), mpmath.mpf(X)))
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12), call


@pytest.mark.parametrize("name", validate.SUPPORTED_NAMES)
def test_every_validated_name_parses(name):
    for call in _calls(name):
        expr = parse_expr(call)
        validate.check_functions(expr)


@pytest.mark.parametrize("f", list(validate.MATH_FUNCS), ids=lambda f: f.__name__)
def test_every_math_function_parses_to_itself_and_has_a_printer(f):
    lo = FUNCTIONS[f.__name__][1][0]
    expr = parse_expr(f"{f.__name__}({', '.join(['a', 'x'][:lo])})")
    assert type(expr) is f
    method = getattr(NumbaPrinter, f"_print_{f.__name__}")
    assert method is NumbaPrinter._print_math or f"_print_{f.__name__}" in vars(NumbaPrinter)


def test_every_structural_function_has_a_printer_method_of_its_own():
    for e in mf.TABLE:
        if e.kind == mf.STRUCTURAL:
            assert e.node in validate._STRUCTURAL, e.name
            assert f"_print_{e.node.__name__}" in vars(NumbaPrinter), e.name


def test_elu_and_leaky_relu_take_pytorchs_default_alpha():
    # elu(x) raised SymPy's "elu takes exactly 2 arguments", naming no alpha
    x = sp.Symbol("x", real=True)
    assert sg.ops.elu(x) == sg.ops.elu(x, 1) and sg.parse_expr("elu(x)") == sg.ops.elu(x, 1)
    assert sg.ops.leaky_relu(x) == sg.ops.leaky_relu(x, sp.Rational(1, 100)) == sg.parse_expr("leaky_relu(x)")
    assert sg.grad(sg.ops.leaky_relu(x), x) == sg.grad(sg.ops.leaky_relu(x, sp.Rational(1, 100)), x)
