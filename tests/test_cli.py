"""The safe expression parser and the ``python -m symgrad`` command line (no Numba needed)."""

from __future__ import annotations

import functools
import shutil
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


# -- hints for common mistakes --------------------------------------------------

@pytest.mark.parametrize(
    "text, fix",
    [
        ("2x", "Fix: write 2*x (there is no implicit multiplication)"),
        ("x + 2y", "Fix: write 2*y"),
        ("2.5x", "Fix: write 2.5*x"),
        ("2sin(x)", "Fix: write 2*sin(x)"),
        ("x y", "Fix: write x*y"),
        ("sin(x) cos(x)", "Fix: write sin(x)*cos(x)"),
        ("2(x+1)", "Fix: write 2*(x+1)"),
        ("(x+1)(x-1)", "Fix: write (x+1)*(x-1)"),
        ("x(y+1)", "write x*(y+1)"),
        ("ln(x)", "Fix: write log(x); log is the natural logarithm"),
        ("log10(x + 1)", "Fix: write log(x + 1, 10)"),
        ("arctan(x)", "Fix: write atan(x)"),
        ("pow(x + 1, 3)", "Fix: write (x + 1)**3"),
        ("Sin(x)", "Fix: did you mean sin? Write sin(x)"),
        ("ReLU(x)", "did you mean relu?"),
        ("sigmod(x)", "did you mean sigmoid?"),
        ("tahn(x)", "did you mean tanh?"),
        ("e**x", "Fix: write exp(x)"),
        ("e**(-x**2)", "Fix: write exp(-x**2)"),
        ("e^x", "Fix: write exp(x)"),
        ("x^2", "Fix: write x**2"),
        ("x²", "Fix: write x**2"),
        ("3·x − 1", "Fix: write 3*x - 1"),
        ("|x - 1|", "Fix: write Abs(x - 1)"),
    ],
)
def test_parser_hints_name_the_fix(text, fix):
    with pytest.raises(ParseError) as info:
        parse_expr(text)
    assert fix in str(info.value)


def test_hints_leave_valid_input_alone():
    e = sp.Symbol("e", real=True)
    assert parse_expr("e**2 + e") == e**2 + e  # a variable named e, squared: no hint
    assert parse_expr("E**x") == sp.exp(x)
    assert parse_expr("ln(x)", extra_functions={"ln": sp.log}) == sp.log(x)
    with pytest.raises(ParseError) as info:  # no product hint next to a keyword: the keyword is named
        parse_expr("x for y")
    assert "x*for" not in str(info.value) and "'for' is a Python keyword" in str(info.value)


# -- CLI: formulas, optim, --wrt --------------------------------------------------

def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "symgrad", *argv], capture_output=True, text=True, timeout=120)


def test_formulas_subcommand():
    import symgrad as sg

    ok = _cli("formulas", "mlp 2-3-1 sigmoid bce")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == str(sg.formulas(sg.nn.MLP([2, 3, 1], activation="sigmoid"), "bce")) + "\n"
    assert "  δ_z2 = sigmoid(z2) - y" in ok.stdout.splitlines()
    tex = _cli("formulas", "mlp", "2-3-1", "sigmoid", "bce", "--latex")  # unquoted words work too
    assert tex.returncode == 0, tex.stderr
    assert tex.stdout.startswith(r"\begin{aligned}") and r"\delta_{z_{2}}" in tex.stdout


@pytest.mark.parametrize(
    "spec, sizes, activation, loss, output",
    [
        ("mlp 2-3-1", [2, 3, 1], "relu", "mse", "identity"),
        ("MLP 4-8-8-3 Tanh ce", [4, 8, 8, 3], "tanh", "softmax_cross_entropy", "identity"),
        ("mlp 2-3-1 bce sigmoid", [2, 3, 1], "sigmoid", "bce", "identity"),
        ("2-1 output=sigmoid mse", [2, 1], "relu", "mse", "sigmoid"),
        ("mlp 3-5-2 loss=huber activation=gelu output=tanh", [3, 5, 2], "gelu", "huber", "tanh"),
    ],
)
def test_mlp_specs(spec, sizes, activation, loss, output):
    from symgrad.cli_specs import mlp_spec

    net, got = mlp_spec(spec)
    assert (net.sizes, got) == (sizes, loss)
    assert [layer.act_name for layer in net.layers] == [activation] * (len(sizes) - 2) + [output]


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("", "empty spec"),
        ("mlp", "the layer widths are missing"),
        ("mlp 2", "give at least the input and output widths"),
        ("mlp 2,3,1", "join the layer widths with '-', e.g. 2-3-1"),
        ("mlp 2-0-1", "at least 1"),
        ("mlp 2-3-1 sigmod", "unknown word 'sigmod' (did you mean 'sigmoid'?)"),
        ("mlp 2-3-1 relu tanh", "two activations"),
        ("mlp 2-3-1 mse bce", "two losss"),
        ("mlp 2-3-1 outptu=tanh", "did you mean 'output'?"),
        ("mlp 2-3-1 output=sigmod", "unknown output activation 'sigmod'"),
        ("mlp 2-3-1 loss=msq", "unknown loss 'msq'"),
        ("mlp 2-3-1 sigmoid bce output=sigmoid", "applies sigmoid twice"),
        ("mlp 2-3-3 ce output=softmax", "applies softmax twice"),
        ("cnn 1-4-10", "only mlp specs are supported"),
    ],
)
def test_bad_specs_exit_2_with_the_fix(spec, fragment, capsys):
    assert main(["formulas", spec]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: spec {spec!r}: ")
    assert fragment in captured.err
    assert 'e.g. "mlp 2-3-1 sigmoid bce"' in captured.err  # the form and an example, every time
    assert "Traceback" not in captured.err


def test_optim_subcommand():
    ok = _cli("optim", "adam", "--lr", "0.01")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        "Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-08)",
        "m ← β1·m + (1 − β1)·g",
        "v ← β2·v + (1 − β2)·g²",
        "m̂ ← m/(1 − β1^t)",
        "v̂ ← v/(1 − β2^t)",
        "p ← p − lr·m̂/(√v̂ + ε)",
    ]


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw", "adagrad", "rmsprop", "RMSProp"])
def test_optim_prints_each_optimizer(name, capsys):
    from symgrad.cli_specs import OPTIMIZERS

    assert main(["optim", name]) == 0
    assert capsys.readouterr().out == str(OPTIMIZERS[name.lower()]()) + "\n"
    assert main(["optim", name, "--latex"]) == 0
    assert capsys.readouterr().out == OPTIMIZERS[name.lower()]().latex() + "\n"


def test_optim_options(capsys):
    assert main(["optim", "momentum", "--lr", "0.1", "--beta", "0.5", "--weight-decay", "0.01"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Momentum(lr=0.1, beta=0.5, weight_decay=0.01)"
    assert "g ← g + λ·p" in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["optim", "adma"], "unknown optimizer 'adma' (did you mean 'adam'?)"),
        (["optim", "sgd", "--beta1", "0.9"], "sgd has no --beta1. Fix: use its options: --lr --weight-decay"),
        (["optim", "sgd", "--lr", "-1"], "lr=-1.0"),
        (["optim", "adam", "--beta1", "1.5"], "beta1=1.5"),
        (["optim", "adam", "--lr", "abc"], "invalid float value"),
    ],
)
def test_optim_errors_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and fragment in captured.err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["grad", "x**2", "--wrt", "z"], "--wrt z: z does not appear in x**2 (its derivative would be 0). "
                                         "Fix: use one of its variables: x"),
        (["explain", "x*y", "--wrt", "x", "--wrt", "z"], "z does not appear in x*y"),
        (["grad", "x**2 + y", "--wrt", "X"], "did you mean --wrt x?"),
        (["grad", "3", "--wrt", "x"], "it has no variables"),
    ],
)
def test_wrt_a_variable_not_in_the_expression_exits_2(argv, fragment, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and fragment in captured.err


@pytest.mark.parametrize(
    "argv, fix",
    [
        (["grad", "2x"], "write 2*x"),
        (["explain", "ln(x)"], "write log(x)"),
        (["grad", "e**x"], "write exp(x)"),
        (["grad", "x^2"], "write x**2"),
        (["grad", "sigmod(x)"], "did you mean sigmoid?"),
    ],
)
def test_cli_shows_the_hints(argv, fix):
    bad = _cli(*argv)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: ") and fix in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.skipif(shutil.which("symgrad") is None, reason="the console script is installed by pip install")
def test_console_script():
    run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=120)
    helped = run(["symgrad", "--help"])
    assert helped.returncode == 0 and helped.stdout.startswith("usage: symgrad ")
    for command in ("explain", "grad", "formulas", "optim"):
        assert command in helped.stdout
    ok = run(["symgrad", "optim", "sgd"])
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == "p ← p − lr·g"
    bad = run(["symgrad", "formulas", "mlp 2-3-1 sigmod"])
    assert bad.returncode == 2 and "did you mean 'sigmoid'?" in bad.stderr


def test_wrt_lists_deep_nesting_and_parentheses_name_their_fix(capsys):
    # --wrt x,y and --wrt "x y" were read as a tuple and as "x y" with no operator
    for spec in ("x,y", "x y", "x, y"):
        assert main(["grad", "x*y", "--wrt", spec]) == 0
        assert capsys.readouterr().out.splitlines() == ["d(x*y)/dx = y", "d(x*y)/dy = x"]
    assert main(["grad", "x*y", "--wrt", ""]) == 2
    assert "names no variable. Fix: e.g. --wrt x" in capsys.readouterr().err
    # grad's result of 199 nested sin() recursed in SymPy's printer: a traceback
    assert main(["grad", "sin(" * 199 + "x" + ")" * 199, "--wrt", "x"]) == 2
    assert "nested too deeply" in capsys.readouterr().err
    assert main(["explain", "(" * 300 + "x" + ")" * 300, "--wrt", "x"]) == 2
    assert "Fix: remove redundant parentheses; Python's parser takes at most 200" in capsys.readouterr().err
