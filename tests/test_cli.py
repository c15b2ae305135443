"""The safe expression parser and the ``python -m symgrad`` command line (no Numba needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sympy as sp

from symgrad.__main__ import main
from symgrad.errors import ParseError, SymgradError
from symgrad.lang.ops import bce_logits, elu, gelu, leaky_relu, relu, sigmoid, silu, softplus
from symgrad.lang.parse import MAX_DEPTH, MAX_LENGTH, parse_expr

x, y, z = sp.symbols("x y z", real=True)

SEED = "cos(sin(x**2)+3*x**2)"
SEED_NAMES = ["--name", "x**2=t", "--name", "sin(x**2)=u1", "--name", "3*x**2=u2", "--name", "sin(x**2)+3*x**2=u"]


# -- parser: accepted grammar -------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("x", x),
        ("x + y - z", x + y - z),
        ("x - y - z", x - y - z),
        ("x*y/z", x * y / z),
        ("x/y/z", x / y / z),
        ("2*x**2 + 3*x - 1", 2 * x**2 + 3 * x - 1),
        ("x**y**z", x ** (y**z)),
        ("-x**2", -(x**2)),
        ("+x", x),
        ("--x", x),
        ("(x + y)*(x - y)", (x + y) * (x - y)),
        ("1/2", sp.Rational(1, 2)),
        ("0.5*x", sp.Float(0.5) * x),
        ("1e-3 + x", sp.Float(1e-3) + x),
        ("pi*E*x", sp.pi * sp.E * x),
        (SEED, sp.cos(sp.sin(x**2) + 3 * x**2)),
        ("sin(x) + cos(x) + tan(x)", sp.sin(x) + sp.cos(x) + sp.tan(x)),
        ("asin(x) + acos(x) + atan(x)", sp.asin(x) + sp.acos(x) + sp.atan(x)),
        ("sinh(x) + cosh(x) + tanh(x)", sp.sinh(x) + sp.cosh(x) + sp.tanh(x)),
        ("asinh(x) + acosh(x) + atanh(x)", sp.asinh(x) + sp.acosh(x) + sp.atanh(x)),
        ("exp(x) + log(y) + log(x, 2)", sp.exp(x) + sp.log(y) + sp.log(x, 2)),
        ("erf(x) + erfc(y)", sp.erf(x) + sp.erfc(y)),
        ("atan2(y, x)", sp.atan2(y, x)),
        ("sqrt(x**2 + y**2)", sp.sqrt(x**2 + y**2)),
        ("Abs(x) + abs(y) + sign(z)", sp.Abs(x) + sp.Abs(y) + sp.sign(z)),
        ("Max(x, y) + min(y, z) + max(x, y, z) + Min(x, 0)",
         sp.Max(x, y) + sp.Min(y, z) + sp.Max(x, y, z) + sp.Min(x, 0)),
        ("sigmoid(x) + softplus(y) + relu(z)", sigmoid(x) + softplus(y) + relu(z)),
        ("leaky_relu(x, 0.01) + elu(y, 1)", leaky_relu(x, sp.Float(0.01)) + elu(y, 1)),
        ("bce_logits(x, y)", bce_logits(x, y)),
        ("gelu(x) + silu(y) + swish(z)", gelu(x) + silu(y) + silu(z)),
        ("  x +\ty  ", x + y),
        ("theta_1 * w2", sp.Symbol("theta_1", real=True) * sp.Symbol("w2", real=True)),
    ],
)
def test_parser_builds_the_sympy_expression(text, expected):
    got = parse_expr(text)
    assert got == expected
    assert all(s.is_real for s in got.free_symbols)


def test_long_sums_and_products_are_not_nesting():
    n = 2 * MAX_DEPTH
    assert parse_expr("+".join(["x"] * n)) == n * x
    assert parse_expr("*".join(["x"] * n)) == x**n


def test_extra_functions():
    f = sp.Function("f")
    assert parse_expr("f(x) + 1", extra_functions={"f": f}) == f(x) + 1
    with pytest.raises(ParseError, match="not a valid name"):
        parse_expr("x", extra_functions={"__import__": f})
    with pytest.raises(ParseError, match="not callable"):
        parse_expr("x", extra_functions={"g": 3})


# -- parser: rejected input ---------------------------------------------------

@pytest.mark.parametrize(
    "text, fragment",
    [
        ("__import__('os')", "may not start with '_'"),
        ("__import__('os').system('echo hi')", "cannot be called"),
        ("x.__class__", "attribute access"),
        ("().__class__.__bases__[0]", "subscript"),
        ("lambda: 1", "lambda"),
        ("[1]", "list"),
        ("[x for x in y]", "comprehension"),
        ("(x, y)", "tuple"),
        ("{1: 2}", "dict"),
        ("'s'", "string literal"),
        ("b'0'", "string literal"),
        ("f'{x}'", "f-string"),
        ("x[0]", "subscript"),
        ("foo(x)", "unknown function 'foo'; supported: Abs"),
        ("open('f')", "unknown function 'open'"),
        ("eval('1')", "unknown function 'eval'"),
        ("sympify('x')", "unknown function 'sympify'"),
        ("x^2", "write x**2"),
        ("x // 2", "floor division"),
        ("x % 2", "modulo"),
        ("x @ y", "matrix"),
        ("~x", "unary '~'"),
        ("not x", "unary 'not'"),
        ("x < y", "comparison"),
        ("x and y", "'and'/'or'"),
        ("x if y else z", "conditional"),
        ("(y := 1)", "':='"),
        ("_x + 1", "may not start with '_'"),
        ("sin", "is a function"),
        ("sin(x, y)", "takes 1 argument"),
        ("atan2(x)", "takes 2 argument"),
        ("max(x)", "at least 2"),
        ("sin(x=1)", "positional arguments only"),
        ("sin(*x)", "unpacking"),
        ("f(x)(y)", "cannot be called"),
        ("True", "not a number"),
        ("None", "not a number"),
        ("1j", "complex"),
        ("1e999", "not a finite number"),
        ("1/0", "division by zero"),
        ("2**100000", "too large"),
        ("9**9**9", "too large"),
        ("10**300 * 10**300", "number too large"),
        ("x +", "invalid syntax"),
        ("sin(x", "never closed"),
        ("", "empty expression"),
        ("x\0", "null bytes"),
        ("-" * (MAX_DEPTH + 5) + "x", "nested deeper"),
        ("(" * 500 + "x" + ")" * 500, "nested"),
        ("x+" * (MAX_LENGTH // 2) + "x", "limit is"),
    ],
)
def test_parser_rejects(text, fragment):
    with pytest.raises(ParseError) as info:
        parse_expr(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, SymgradError) and isinstance(info.value, ValueError)


def test_parser_reports_the_position():
    with pytest.raises(ParseError, match=r"column 7"):
        parse_expr("x + y y")
    with pytest.raises(ParseError, match=r"column 5"):
        parse_expr("1 + x.y")
    with pytest.raises(ParseError, match=r"column 3"):
        parse_expr("  x.y")


def test_parser_rejects_non_strings():
    with pytest.raises(ParseError, match="str"):
        parse_expr(x)  # type: ignore[arg-type]


# -- CLI ----------------------------------------------------------------------

def test_explain_seed_steps(capsys):
    assert main(["explain", SEED, "--wrt", "x", *SEED_NAMES]) == 0
    lines = capsys.readouterr().out.splitlines()
    for expected in (
        "∂J/∂u += -sin(u)",
        "∂J/∂t += ∂J/∂u1 * ∂u1/∂t,   ∂u1/∂t = cos(t)",
        "∂J/∂x += ∂J/∂t * ∂t/∂x,   ∂t/∂x = 2*x",
    ):
        assert expected in (s.strip() for s in lines)
    assert "  ∂J/∂x = -2*x*(cos(x**2) + 3)*sin(3*x**2 + sin(x**2))" in lines


def test_explain_latex(capsys):
    assert main(["explain", SEED, "--wrt", "x", "--latex", "--name", "x**2=t"]) == 0
    out = capsys.readouterr().out
    assert r"\frac{\partial J}{\partial x}" in out  # ∂, as grad --latex writes it
    assert out.startswith(r"\begin{aligned}")


def test_grad_default_wrt_is_every_symbol_sorted(capsys):
    assert main(["grad", "y*x + sin(x)"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "d(x*y + sin(x))/dx = y + cos(x)",
        "d(x*y + sin(x))/dy = x",
    ]


def test_grad_wrt_and_latex(capsys):
    assert main(["grad", SEED, "--wrt", "x", "--latex"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(r"\frac{\partial}{\partial x}")
    assert out.endswith(sp.latex(-2 * x * (sp.cos(x**2) + 3) * sp.sin(3 * x**2 + sp.sin(x**2))))


@pytest.mark.parametrize(
    "argv",
    [
        ["grad", "__import__('os').system('echo pwned')"],
        ["explain", "x.__class__"],
        ["grad", "x^2"],
        ["grad", "foo(x)"],
        ["grad", "3"],
        ["grad", "x", "--wrt", "x+1"],
        ["explain", "x**2", "--name", "x**2"],
        ["explain", "x**2", "--name", "x**2=not a name"],
        ["explain", "x**2", "--name", "open('f')=t"],
    ],
)
def test_cli_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")


def test_cli_usage_error_exit_2(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_python_dash_m_symgrad():
    ok = subprocess.run(
        [sys.executable, "-m", "symgrad", "explain", SEED, "--wrt", "x", *SEED_NAMES],
        capture_output=True, text=True, timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "  ∂J/∂u += -sin(u)" in ok.stdout.splitlines()
    bad = subprocess.run(
        [sys.executable, "-m", "symgrad", "grad", "__import__('os').system('echo pwned')"],
        capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ")
    assert "pwned" not in bad.stdout


def test_an_expression_that_starts_with_minus_is_an_expression(capsys):
    """argparse took "-x**2" for an unknown option ("arguments are required: expr")."""
    assert main(["grad", "-x**2"]) == 0
    assert capsys.readouterr().out.strip() == "d(-x**2)/dx = -2*x"
    assert main(["grad", "-x*y", "--wrt", "y"]) == 0
    assert capsys.readouterr().out.strip() == "d(-x*y)/dy = -x"
