"""Numeric worked traces (issue 17, "A numeric worked trace"): ``explain(J, x, at={x: 1.0})``
prints the value of every forward intermediate and adjoint, and ``formulas(net, loss,
at=(params, x, y))`` every layer's value, δ and gradient norm for one sample.

The oracles are independent of the printout: SymPy's own ``diff`` evaluated to 50 digits for the
derivations, a forward and backward pass written out by hand in NumPy and ``sg.compile``'s
gradient for the networks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import OptionError, ShapeError, SymgradError, TargetError
from symgrad.lang.losses import LOSSES

X, Y = sp.symbols("x y", real=True)
SEED = sp.cos(sp.sin(X**2) + 3 * X**2)  # the notes' worked example
SEED_NAMES = {X**2: "t", sp.sin(X**2): "u1", 3 * X**2: "u2", sp.sin(X**2) + 3 * X**2: "u"}


def six(v) -> str:
    """The 6 significant digits a rounded value prints with (trailing zeros kept)."""
    return f"{float(v):#.6g}"


def values(text: str) -> dict[str, str]:
    """lhs -> the value printed at the end of each equation of the Forward, Collected adjoints
    and Result sections (the adjoint steps hold two values each; they are checked one by one)."""
    out, section = {}, ""
    for line in text.splitlines():
        if not line.startswith("  "):
            section = line
            continue
        if section.startswith(("Backward", "Stabilised")):
            continue
        lhs, rhs = line.strip().split(" = ", 1)
        out[lhs] = re.split(r" [=≈] ", rhs)[-1]
    return out


# -- explain(..., at=) ---------------------------------------------------------------------------

def test_seed_example_reads_as_the_worked_exercise():
    text = str(sg.explain(SEED, X, names=SEED_NAMES, at={X: 1.0}))
    lines = [ln.strip() for ln in text.splitlines()]
    assert lines[0] == "At x = 1 (values to 6 significant digits)"
    for line in ["t = x**2 = 1", "u2 = 3*t = 3", "u1 = sin(t) ≈ 0.841471", "u = u1 + u2 ≈ 3.84147",
                 "J = cos(u) ≈ -0.764921", "∂J/∂u += -sin(u) ≈ 0.644125",
                 "∂J/∂t += ∂J/∂u1 * ∂u1/∂t ≈ 0.348022,   ∂u1/∂t = cos(t) ≈ 0.540302",
                 "∂J/∂t += ∂J/∂u2 * ∂u2/∂t ≈ 1.93237,   ∂u2/∂t = 3",
                 "∂J/∂x += ∂J/∂t * ∂t/∂x ≈ 4.56079,   ∂t/∂x = 2*x = 2",
                 "∂J/∂t = -(cos(t) + 3)*sin(u) ≈ 2.28040",
                 "∂J/∂x = -2*x*(cos(x**2) + 3)*sin(3*x**2 + sin(x**2)) ≈ 4.56079"]:
        assert line in lines, f"{line!r} not in\n{text}"


def test_seed_values_equal_sympy_at_50_digits():
    """Each printed value is the 50-digit truth rounded: forward values of the subexpressions and
    adjoints as SymPy's own derivatives of J with respect to each intermediate."""
    t, u1, u2, u = sp.symbols("t u1 u2 u", real=True)
    at = {X: 1}
    truth = {
        "t": X**2, "u1": sp.sin(X**2), "u2": 3 * X**2, "u": sp.sin(X**2) + 3 * X**2, "J": SEED,
        "∂J/∂u": sp.diff(sp.cos(u), u).subs(u, sp.sin(1) + 3),
        "∂J/∂u1": sp.diff(sp.cos(u1 + u2), u1).subs({u1: sp.sin(1), u2: 3}),
        "∂J/∂u2": sp.diff(sp.cos(u1 + u2), u2).subs({u1: sp.sin(1), u2: 3}),
        "∂J/∂t": sp.diff(sp.cos(sp.sin(t) + 3 * t), t).subs(t, 1),
        "∂J/∂x": sp.diff(SEED, X),
    }
    got = values(str(sg.explain(SEED, X, names=SEED_NAMES, at={X: 1.0})))
    assert set(got) == set(truth)
    for name, e in truth.items():
        exact = e.subs(at)
        want = str(exact) if exact.is_Rational else six(sp.N(exact, 50))
        assert got[name] == want, (name, got[name], exact)
    assert got["∂J/∂x"] == "4.56079"


def test_two_variables_with_symbol_and_string_keys():
    expr = X * Y + sp.sin(X) * sp.exp(Y)
    d = sg.explain(expr, [X, Y], at={X: 1.0, "y": 2})
    text = str(d)
    assert text.startswith("At x = 1, y = 2 (values to 6 significant digits)\n")
    got = values(text)
    for w in (X, Y):
        assert got[f"∂J/∂{w}"] == six(sp.N(sp.diff(expr, w).subs({X: 1, Y: 2}), 50)), w
    assert got["J"] == six(sp.N(expr.subs({X: 1, Y: 2}), 50))
    # keys are matched by name: a Symbol without assumptions, or with others, is the same variable
    same = sg.explain(expr, [X, Y], at={sp.Symbol("x"): 1, sp.Symbol("y", positive=True): Fraction(2)})
    assert str(same) == text


def test_a_data_variable_needs_a_value_too_and_wrt_only_gets_a_result():
    d = sg.explain(X * Y**2, X, at={"x": 3, "y": 0.5})
    got = values(str(d))
    assert got["∂J/∂x"] == "0.25" and "∂J/∂y" not in got


def test_floats_are_the_decimals_they_print_as_and_exact_values_print_with_equals():
    text = str(sg.explain(X**2 + sp.sin(Y), X, at={X: 0.1, Y: sp.pi / 2}))
    lines = [ln.strip() for ln in text.splitlines()]
    assert "At x = 0.1, y ≈ 1.57080 (values to 6 significant digits)" in lines
    assert "v1 = x**2 = 0.01" in lines and "v2 = sin(y) = 1" in lines and "∂J/∂x = 2*x = 0.2" in lines


def test_stabilised_expression_traces_the_stable_form_with_the_original_value():
    """The logistic loss is fused into its stable form first; its values are those of the
    expression as written (SymPy's derivative of the original, 50 digits)."""
    theta, xs, ys = sp.symbols("theta x y*", real=True)
    a = theta * xs
    nll = -(ys * sp.log(1 / (1 + sp.exp(-a))) + (1 - ys) * sp.log(1 - 1 / (1 + sp.exp(-a))))
    at = {theta: 0.5, xs: 2.0, ys: 1}
    got = values(str(sg.explain(nll, theta, at=at)))
    exact = {k: sp.Rational(str(v)) for k, v in at.items()}
    assert got["J"] == six(sp.N(nll.subs(exact), 50))
    assert got["∂J/∂theta"] == six(sp.N(sp.diff(nll, theta).subs(exact), 50))


def test_extreme_values_are_printed_beyond_float64():
    got = values(str(sg.explain(sp.log(1 + sp.exp(X)), X, at={X: -1000})))
    with mpmath.workdps(50):
        truth = mpmath.log1p(mpmath.exp(-1000))  # 5.0759588...e-435; float64 would print 0
        assert got["J"] == mpmath.nstr(truth, 6) == "5.07596e-435"


BAD_AT = {
    "missing": ({X: 1.0}, "no value for y"),
    "unknown": ({X: 1, Y: 2, "z": 3}, "'z', which is not a variable"),
    "string value": ({X: "1.0", Y: 2}, "not a finite real number"),
    "symbol value": ({X: sp.Symbol("a"), Y: 2}, "not a finite real number"),
    "complex": ({X: 1j, Y: 2}, "not a finite real number"),
    "nan": ({X: float("nan"), Y: 2}, "not a finite real number"),
    "infinite": ({X: sp.oo, Y: 2}, "not a finite real number"),
    "bool": ({X: True, Y: 2}, "not a finite real number"),
    "array": ({X: [1.0], Y: 2}, "not a finite real number"),
    "not a dict": ([1.0, 2.0], "takes a dict"),
    "key type": ({1: 1.0, Y: 2}, "keys are the expression's variables"),
    "twice": ({X: 1.0, "x": 2.0, Y: 2}, "twice"),
}


@pytest.mark.parametrize("case", list(BAD_AT))
def test_bad_points_are_refused_with_the_fix(case):
    at, match = BAD_AT[case]
    with pytest.raises(OptionError, match=re.escape(match)) as err:
        sg.explain(X * Y, X, at=at)
    assert isinstance(err.value, SymgradError) and "Fix:" in str(err.value)


# -- formulas(..., at=) --------------------------------------------------------------------------

def _params(model, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=p.shape) for p in model.params], rng


def _compiled_gradient(model, loss, params, x, y_row):
    target = sp.MatrixSymbol("y", int(model.expr.shape[0]), 1)
    f = sg.compile(LOSSES[loss](model.expr, target), model.params, [model.x, target], backend="python")
    value, grads = f.value_and_grad(params, np.asarray(x, float)[None], np.asarray(y_row, float)[None])
    return float(value), grads


def _by_hand(params, x, label):
    """One sample through a tanh MLP with softmax cross-entropy, forward and backward, written out."""
    W1, b1, W2, b2 = params
    x = np.asarray(x, float).reshape(-1, 1)
    z1 = W1 @ x + b1
    a1 = np.tanh(z1)
    z2 = W2 @ a1 + b2
    p = np.exp(z2 - z2.max()) / np.exp(z2 - z2.max()).sum()
    onehot = np.eye(len(z2))[[label]].T
    d_z2 = p - onehot
    d_a1 = W2.T @ d_z2
    d_z1 = d_a1 * (1 - a1**2)
    return {"z1": z1, "a1": a1, "z2": z2, "ℓ": -np.log(p[label, 0]), "δ_z2": d_z2, "δ_a1": d_a1,
            "δ_z1": d_z1, "∂ℓ/∂W1": d_z1 @ x.T, "∂ℓ/∂b1": d_z1, "∂ℓ/∂W2": d_z2 @ a1.T, "∂ℓ/∂b2": d_z2}


def test_mlp_deltas_equal_a_hand_written_backward_pass_and_the_compiled_gradient():
    net = sg.nn.MLP([3, 4, 3], activation="tanh")
    params, rng = _params(net)
    x, label = rng.normal(size=3), 2
    f = sg.formulas(net, "softmax_cross_entropy", at=(params, x, label))
    hand = _by_hand(params, x, label)
    for k, v in hand.items():
        np.testing.assert_allclose(np.reshape(f.values[k], np.shape(v)), v, rtol=1e-12, atol=1e-15, err_msg=k)
    value, grads = _compiled_gradient(net, "softmax_cross_entropy", params, x, np.eye(3)[label])
    assert float(np.ravel(f.values["ℓ"])[0]) == pytest.approx(value, rel=1e-12)
    for p, g in zip(net.params, grads, strict=True):
        np.testing.assert_allclose(f.values[f"∂ℓ/∂{p}"], g, rtol=1e-12, atol=1e-15, err_msg=str(p))
    # and the printout shows them: each δ's entries, each gradient's norm
    lines = {ln.strip().split(" = ", 1)[0]: ln.strip() for ln in str(f).splitlines() if " = " in ln}
    assert lines["δ_z1"].endswith("≈ [" + ", ".join(six(v) for v in hand["δ_z1"].ravel()) + "]")
    assert lines["∂ℓ/∂W1"].endswith(f"‖∂ℓ/∂W1‖ ≈ {six(np.linalg.norm(hand['∂ℓ/∂W1']))}")
    assert str(f).startswith("At one sample: x ≈ [")


@pytest.mark.parametrize("sizes,act,loss,y", [
    ([4, 6, 5, 2], "relu", "mse", [0.3, -1.2]),
    ([2, 3, 1], "sigmoid", "bce", 1),
    ([3, 5, 4], "elu", "softmax_cross_entropy", [0, 0, 0, 1]),
])
def test_every_printed_gradient_equals_the_compiled_one(sizes, act, loss, y):
    net = sg.nn.MLP(sizes, activation=act)
    params, rng = _params(net, seed=len(sizes))
    x = rng.normal(size=sizes[0])
    f = sg.formulas(net, loss, at=(params, x, y))
    value, grads = _compiled_gradient(net, loss, params, x, np.ravel(y))
    assert float(np.ravel(f.values["ℓ"])[0]) == pytest.approx(value, rel=1e-12)
    for p, g in zip(net.params, grads, strict=True):
        np.testing.assert_allclose(f.values[f"∂ℓ/∂{p}"], g, rtol=1e-11, atol=1e-14, err_msg=str(p))


def test_a_label_and_its_one_hot_row_and_a_trained_model_give_the_same_printout():
    net = sg.nn.MLP([10, 8, 3], activation="relu")
    params, rng = _params(net)
    x = rng.normal(size=10)
    text = str(sg.formulas(net, "softmax_cross_entropy", at=(params, x, 1)))
    assert text == str(sg.formulas(net, "softmax_cross_entropy", at=(params, x[None], [0, 1, 0])))
    by_name = {str(p): v for p, v in zip(net.params, params)}
    assert text == str(sg.formulas(net, "softmax_cross_entropy", at=(by_name, x, np.int64(1))))
    # a long vector shows its first and last three entries
    first = text.splitlines()[0]
    assert re.fullmatch(r"At one sample: x ≈ \[(\S+, ){3}…(, \S+){3}\], y = \[0, 1, 0\] \(values to 6 significant "
                        r"digits\)", first), first


def test_a_trained_model_is_a_point():
    net = sg.nn.MLP([2, 3, 2], activation="tanh")
    rng = np.random.default_rng(1)
    Xs, Ys = rng.normal(size=(16, 2)), rng.integers(0, 2, 16)
    trained = sg.fit(net, "softmax_cross_entropy", Xs, Ys, epochs=1, backend="python")
    f = sg.formulas(net, "softmax_cross_entropy", at=(trained, Xs[0], Ys[0]))
    _, grads = _compiled_gradient(net, "softmax_cross_entropy", trained.params, Xs[0], np.eye(2)[Ys[0]])
    for p, g in zip(net.params, grads, strict=True):
        np.testing.assert_allclose(f.values[f"∂ℓ/∂{p}"], g, rtol=1e-12, atol=1e-15)


def _bad_network_points():
    net = sg.nn.MLP([3, 4, 2])
    ps = [np.zeros(p.shape) for p in net.params]
    return net, {
        "not a triple": ((ps, [1, 2, 3]), OptionError),
        "too few params": ((ps[:2], [1, 2, 3], 1), OptionError),
        "transposed param": (([p.T for p in ps], [1, 2, 3], 1), ShapeError),
        "two samples": ((ps, np.zeros((2, 3)), [0, 1]), ShapeError),
        "wrong width": ((ps, [1, 2], 1), ShapeError),
        "label out of range": ((ps, [1, 2, 3], 5), TargetError),
    }


@pytest.mark.parametrize("case", list(_bad_network_points()[1]))
def test_bad_network_points_are_refused_with_the_fix(case):
    net, cases = _bad_network_points()
    at, error = cases[case]
    with pytest.raises(error) as err:
        sg.formulas(net, "softmax_cross_entropy", at=at)
    assert isinstance(err.value, SymgradError) and "Fix" in str(err.value)


# -- LaTeX -----------------------------------------------------------------------------------------

def _printouts():
    net = sg.nn.MLP([10, 8, 3], activation="relu")
    params, rng = _params(net)
    return {
        "seed": sg.explain(SEED, X, names=SEED_NAMES, at={X: 1.0}),
        "two variables": sg.explain(X * Y + sp.sin(X), [X, Y], at={X: 1.0, Y: 2.0}),
        "tiny and undefined": sg.explain(sp.log(1 + sp.exp(X)) + sp.log(Y), [X, Y], at={X: -1000, Y: 0}),
        "network": sg.formulas(net, "softmax_cross_entropy", at=(params, rng.normal(size=10), 2)),
        "removable": sg.explain((Y**X - 1) / X, [X, Y], at={X: 0, Y: 2}),
    }


def test_latex_holds_the_values_as_the_text_does():
    for name, obj in _printouts().items():
        lines = obj.latex_lines()
        assert obj.latex().isascii(), name
        assert len(lines) == len([r for r in str(obj).splitlines() if r.strip()]), name
        assert not any("aligned" in s or "&" in s for s in lines), name
    seed = _printouts()["seed"].latex()
    assert r"\text{At }x = 1" in seed and r"\approx 4.56079" in seed
    tiny = _printouts()["tiny and undefined"].latex()
    assert r"\approx 5.07596 \times 10^{-435}" in tiny and r"\frac{1}{y} = \text{undefined } (\pm\infty)" in tiny
    # SymPy's zoo and nan, which a student cannot be expected to read, in words
    assert "∂J/∂y = 1/y = undefined (±∞)" in str(_printouts()["tiny and undefined"])
    at_origin = str(sg.explain(sp.atan2(Y, X), [X, Y], at={X: 0, Y: 0}))
    assert "J = atan2(y, x) = undefined (NaN)" in at_origin and "Collected adjoints" not in at_origin


def test_mathtext_renders_every_line():
    mathtext = pytest.importorskip("matplotlib.mathtext", reason="matplotlib is in the [test] extra")
    parser = mathtext.MathTextParser("path")
    for name, obj in _printouts().items():
        for line in obj.latex_lines():
            parser.parse(f"${line}$")  # raises on a line mathtext cannot render
        assert name


LATEX = shutil.which("latex") or shutil.which("pdflatex")


@pytest.mark.skipif(LATEX is None, reason="no latex installed")
def test_latex_of_a_numeric_trace_compiles(tmp_path):
    body = "\n".join(f"\\[\n{obj.latex()}\n\\]" for obj in _printouts().values())
    doc = "\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n" + body + "\n\\end{document}\n"
    (tmp_path / "t.tex").write_text(doc)
    proc = subprocess.run([LATEX, "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_values_of_relu_and_elu_that_are_exact_print_with_equals():
    # relu(1/2) stayed an unevaluated function, evaluated to 50 digits and printed "≈ 0.500000"
    x, y = sp.symbols("x y", real=True)
    text = str(sg.explain(sg.ops.relu(x) * y, [x, y], at={x: 0.5, y: 2}))
    assert "v1 = relu(x) = 0.5" in text and "J = v1*y = 1" in text and "≈" not in text
    assert "sigmoid(x) ≈ 0.668188" in str(sg.explain(sg.ops.sigmoid(x) * y, [x, y], at={x: 0.7, y: 2}))


@pytest.mark.parametrize("expr, x0, want", [
    (lambda x: sp.tanh(x), 200, mpmath.sech(200) ** 2),
    (lambda x: sg.ops.sigmoid(x), 400, mpmath.exp(-400) / (1 + mpmath.exp(-400)) ** 2),
    (lambda x: 1 / (1 + sp.exp(-x)), 1000, mpmath.exp(-1000) / (1 + mpmath.exp(-1000)) ** 2),
])
def test_values_after_deep_cancellation_are_the_true_ones(expr, x0, want):
    # evalf gave up after 100 working digits and printed the leftover of 1 - tanh(200)**2, 2.8e-160,
    # for 7.7e-174: the vanishing gradient the notes ask a learner to look at. Oracle: mpmath.
    mpmath.mp.dps = 30
    x = sp.Symbol("x", real=True)
    last = str(sg.explain(expr(x), x, at={x: x0})).splitlines()[-1]
    printed = float(last.rsplit("≈", 1)[1])
    assert printed == pytest.approx(float(want), rel=1e-5), last


def test_logs_near_one_and_erf_near_minus_one_are_evaluated_not_rounded():
    # SymPy's evalf rounds log's argument first: log(1 + 1e-60) printed "= 0", J = log(1 + x²)/x²
    # "= 0" for 1 and ∂J/∂x 2e30 for −1e-30; 1/log(1 + x²) raised ZeroDivisionError; log σ(200) in the
    # notes' textbook loss "= 0". GELU's 1 + erf(−7071) took minutes of digits. Oracle: mpmath.
    mpmath.mp.dps = 50
    x, a, t = sp.Symbol("x", real=True), sp.Symbol("a", real=True), sp.Symbol("t", real=True)
    tiny = mpmath.mpf("1e-30")
    v = values(str(sg.explain(sp.log(1 + x**2) / x**2, x, at={x: 1e-30})))
    assert float(v["J"]) == pytest.approx(1.0, rel=1e-5)
    want = mpmath.diff(lambda z: mpmath.log1p(z**2) / z**2, tiny)
    assert float(v["∂J/∂x"]) == pytest.approx(float(want), rel=1e-5)
    assert float(values(str(sg.explain(1 / sp.log(1 + x**2), x, at={x: 1e-30})))["J"]) == pytest.approx(1e60, rel=1e-5)
    y = 1 / (1 + sp.exp(-a))
    text = str(sg.explain(-(t * sp.log(y) + (1 - t) * sp.log(1 - y)), a, names={y: "y"}, textbook=True,
                          at={a: 200, t: 0.2}))
    logs = [float(line.rsplit("≈", 1)[1]) for line in text.splitlines() if "= log(y) ≈" in line]
    assert logs and logs[0] == pytest.approx(float(-mpmath.log1p(mpmath.exp(-200))), rel=1e-5)
    from symgrad.explain.numeric import shown  # a rounded value beyond float64 keeps its 6 digits too

    assert shown(sp.Float("1e400", 50), latex=False) == "≈ 1.00000e+400"  # was "≈ 1.0e+400"
    # 1 − tanh(2e5)² needs 173,718 digits: past 100,000 the leftover 5.2e-158257 was printed as its value
    assert float(mpmath.mpf(values(str(sg.explain(sp.tanh(x), x, at={x: 2e5})))["∂J/∂x"]) / mpmath.sech(2e5) ** 2) \
        == pytest.approx(1.0, rel=1e-5)
    got = values(str(sg.explain(sg.ops.gelu(x), x, at={x: -1e4})))["∂J/∂x"]
    u = mpmath.mpf(-1e4)
    assert mpmath.mpf(got) / (mpmath.ncdf(u) + u * mpmath.npdf(u)) == pytest.approx(1.0, rel=1e-5)


def test_gradient_norms_do_not_overflow_where_the_gradient_does_not():
    # ‖∂ℓ/∂b1‖ printed inf beside its finite entries (1.2e201): the squares overflowed
    net = sg.nn.MLP([2, 3, 1], activation="relu")
    params = [np.full(p.shape, 1e200 if str(p) == "W1" else 1.0) for p in net.params]
    text = str(sg.formulas(net, "mse", at=(params, np.array([1.0, 1.0]), np.array([1.0]))))
    line = next(s for s in text.splitlines() if "‖∂ℓ/∂b1‖" in s)
    # z2 = 3·2e200, δ_z2 = 2(z2 - 1) = 1.2e201, and δ_z1 = W2ᵀ·δ_z2 holds it three times
    assert float(re.split("[=≈]", line)[-1]) == pytest.approx(np.sqrt(3) * 1.2e201, rel=1e-5), line


def test_a_rounded_value_with_six_digits_before_the_point_has_no_trailing_point():
    x, y = sp.symbols("x y", real=True)
    head = str(sg.explain(x**2 + y, [x, y], at={x: 123456.5, y: 0.1})).splitlines()[0]
    assert head.startswith("At x ≈ 123456, y = 0.1") and "123456." not in head


def test_an_ops_value_at_a_huge_argument_keeps_its_digits():
    # the op's mpmath evaluation rounded its argument to ~70 digits, so e^(−z) lost them all:
    # σ(−1e300) printed 1.04159e-… for 1.83816e-…
    x = sp.Symbol("x", real=True)
    for at in (-1.2345e75, -1e300):
        line = next(r for r in str(sg.explain(sp.log(1 + sp.exp(x)), x, at={x: at})).splitlines()
                    if r.strip().startswith("∂J/∂x ="))
        with mpmath.workdps(400):
            want = mpmath.nstr(1 / (1 + mpmath.exp(-mpmath.mpf(sp.Rational(repr(at))))), 6)
        assert line.split("≈")[-1].strip() == want


KA, KE, T = sp.symbols("k_a k_e t", real=True)
REMOVABLE = [((sp.exp(X) - 1) / X, [X], {X: 0}),
             ((Y**X - 1) / X, [X, Y], {X: 0, Y: 2}),  # Box-Cox at λ = 0
             (KA / (KA - KE) * (sp.exp(-KE * T) - sp.exp(-KA * T)), [KA, KE], {KA: 0.3, KE: 0.3, T: 2})]


def _limit_lines(text: str) -> dict[str, float]:
    after = text.split("symgrad's compiled functions return its limit there:\n", 1)
    assert len(after) == 2, text
    return {ln.strip().split(" ", 1)[0]: float(re.split(r" [=≈] ", ln)[-1]) for ln in after[1].splitlines()
            if ln.startswith("  ")}


@pytest.mark.parametrize("expr, wrt, at", REMOVABLE, ids=["growth", "box-cox", "kinetics"])
def test_a_removable_point_prints_the_limit_the_compiled_code_returns(expr, wrt, at):
    text = str(sg.explain(expr, wrt, at=at))
    assert "undefined (NaN)" in text  # the trace as written is 0/0 there, and says so
    got = _limit_lines(text)
    # oracle: SymPy's derivative of the formula as written, 1e-30 off the point, at 60 digits
    exact = {s: sp.Rational(str(v)) for s, v in at.items()}
    near = {s: v + sp.Rational(1, 10**30) * (k + 1) for k, (s, v) in enumerate(exact.items()) if s in wrt}
    for name, e in [("J", expr), *((f"∂J/∂{w}", sp.diff(expr, w)) for w in wrt)]:
        want = e.xreplace(exact | near).evalf(60)
        assert got[name] == pytest.approx(float(want), rel=5e-6, abs=1e-12), (name, text)
    data = sorted(set(at) - set(wrt), key=str)
    f = sg.compile(expr, wrt=wrt, data=data)
    value, grad = f.value_and_grad([at[w] for w in wrt], *(np.array([at[s]]) for s in data))
    assert [value, *grad] == pytest.approx([got["J"], *(got[f"∂J/∂{w}"] for w in wrt)], rel=5e-6, abs=1e-12)


def test_no_limit_is_claimed_at_a_pole_or_where_the_formula_is_defined():
    assert "limit" not in str(sg.explain(1 / X + X, X, at={X: 0}))
    assert "limit" not in str(sg.explain((sp.exp(X) - 1) / X, X, at={X: 1}))
    # Box-Cox at λ = 0 and t < 0: the limit log(t) is not real, and the compiled code gives NaN
    assert "limit" not in str(sg.explain((Y**X - 1) / X, [X, Y], at={X: 0, Y: -2}))


def test_a_float_constant_prints_as_written_in_every_step():
    # standalone, as a local derivative, 0.1 printed 0.100000000000000 and 1e-300 1.00000000000000e-300
    text = str(sg.explain(sp.Float(1e-300) * sp.sin(X) + sp.Float(0.1) * X**2, X))
    assert "∂v2/∂v1 = 0.1" in text and "1.0e-300" in text and "00000000" not in text, text
