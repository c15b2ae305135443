"""Every LaTeX string symgrad prints compiles (amsmath only) and renders in matplotlib's mathtext;
notebooks get it typeset through ``_repr_latex_``; ReLU's derivative prints as 𝟙[z > 0] (issue 17).

``latex`` compiles each string when it is installed (skipped otherwise); mathtext needs
matplotlib (the [test] extra).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
from types import SimpleNamespace

import pytest
import sympy as sp
from sympy.matrices.expressions.hadamard import HadamardPower

import symgrad as sg
from symgrad.__main__ import main
from symgrad.explain.display import KINK_LATEX
from symgrad.explain.notation import MatProd, Tr
from symgrad.explain.printing import tex, tex_name, text
from symgrad.lang import optim
from symgrad.lang.nn import MLP
from symgrad.lang.ops import KINK_CONVENTIONS, elu, leaky_relu, relu
from symgrad.lang.schedules import ConstantLR

X, Y = sp.symbols("x y", real=True)
A = sp.Symbol("a", real=True)
MS = sp.MatrixSymbol


# -- every printable object -------------------------------------------------------------------

def _derivations():
    theta, xs, ystar = sp.symbols("theta0:3", real=True), sp.symbols("x0:3", real=True), sp.Symbol("y*", real=True)
    a = sum(t * x for t, x in zip(theta, xs))
    nll = -(ystar * sp.log(1 / (1 + sp.exp(-a))) + (1 - ystar) * sp.log(1 - 1 / (1 + sp.exp(-a))))
    seed = sp.cos(sp.sin(X**2) + 3 * X**2)
    return {
        "seed": sg.explain(seed, X, names={X**2: "t", sp.sin(X**2): "u1"}),
        "logistic": sg.explain(nll, list(theta), names={a: "a"}),  # stabilised: the note is printed
        "textbook": sg.explain(nll, list(theta), textbook=True),  # as written, then the stable form
        "kinks": sg.explain(relu(X) * X + sp.Abs(Y) + leaky_relu(X, sp.Rational(1, 100)) + elu(Y, 1), [X, Y]),
        "max": sg.explain(sp.Max(X, 0) * X, X),
        "greek": sg.explain(sp.Symbol("θ1", real=True) ** 2 * sp.exp(-A), [sp.Symbol("θ1", real=True), A],
                            output="L"),
        "alike": sg.explain(_ALIKE[0] ** 2 * _ALIKE[1] + _ALIKE[2] * _ALIKE[1], list(_ALIKE[:2])),
    }


#: theta1 and theta_1 both printed θ₁ (∂J/∂θ₁ twice, with two results), lambda_ as λ with an empty subscript
_ALIKE = sp.symbols("theta1 theta_1 lambda_", real=True)


def test_names_that_print_alike_are_told_apart():
    lines = _derivations()["alike"].latex_lines()
    results = lines[-2:]
    assert results == [r"\frac{\partial J}{\partial \theta1} = 2 \theta1 \theta_{1}",
                       r"\frac{\partial J}{\partial \theta_{1}} = \lambda + \theta1^{2}"]
    assert not any("_{}" in line for line in lines)
    x2, x_2 = sp.symbols("x2 x_2", real=True)
    assert str(sg.explain(x2 * x_2, [x2]).latex_lines()[-1]) == r"\frac{\partial J}{\partial x2} = x_{2}"
    assert sg.explain(x2**2, [x2]).latex_lines()[-1] == r"\frac{\partial J}{\partial x_{2}} = 2 x_{2}"  # alone: textbook


def test_a_greek_letter_and_its_spelled_name_are_two_symbols_in_latex():
    # β and beta both printed \beta: one symbol where there are two, ∂ℓ/∂β twice with two results
    q, beta, b = sp.symbols("q beta β", real=True)
    line = sg.explain(beta * q**2 + b * q**3, q).latex_lines()[-1]
    assert line == r"\frac{\partial J}{\partial q} = q \left(2 \mathrm{beta} + 3 q \beta\right)", line
    net = MLP([3, 4, 1], "sigmoid", bias=False, names={"weights": ["β", "beta"], "pre": ["a", "b"],
                                                       "act": ["z", "y"], "target": "t"})
    lhs = [ln.split(" = ")[0] for ln in sg.formulas(net, "mse").latex_lines() if ln.startswith(r"\frac{\partial \ell}")]
    assert len(lhs) == len(set(lhs)) == 2, lhs


@pytest.mark.parametrize("name, want", [("Δw", r"\Delta w"), ("θ̂", r"\hat{\theta}"), ("Δθ", r"\Delta \theta"),
                                        ("σw_1", r"\sigma w_{1}"), ("θ1", r"\theta_{1}"), ("y^*", "y^{*}"),
                                        ("y*", "y^{*}"), ("x̄", r"\bar{x}")])
def test_names_with_greek_heads_accents_and_stars_print_as_a_textbook_writes_them(name, want):
    # Δw printed as the letters Deltaw, θ̂ as thetâ (not ASCII), y^* as y^{}^{*} (a double superscript)
    q, s = sp.Symbol("q", real=True), sp.Symbol(name, real=True)
    line = sg.explain(s * q**2, q).latex_lines()[-1]
    assert line == r"\frac{\partial J}{\partial q} = 2 q " + want or line == r"\frac{\partial J}{\partial q} = 2 " \
        + want + " q", line
    assert line.isascii()
    mathtext = pytest.importorskip("matplotlib.mathtext", reason="matplotlib is in the [test] extra")
    mathtext.MathTextParser("path").parse(f"${line}$")


def test_a_symbol_named_like_a_constant_is_told_apart_from_it():
    # a symbol pi beside π printed pi*(pi + pi*cos(pi*q)) (read with π: 15.7 for 7.69); e beside e^x likewise
    q = sp.Symbol("q", real=True)
    pi, e, E = (sp.Symbol(n, real=True) for n in ("pi", "e", "E"))
    d = sg.explain(pi * sp.sin(sp.pi * q) + q * pi**2, q, at={q: 0.3, pi: 2.0})
    assert str(d).splitlines()[-1].strip() == "∂J/∂q = pi*(pi + π*cos(π*q)) ≈ 7.69316"
    assert d.latex_lines()[-1] == (r"\frac{\partial J}{\partial q} = \mathrm{pi} \left(\mathrm{pi} + \pi "
                                   r"\cos{\left(\pi q \right)}\right) \approx 7.69316")
    line = sg.explain(e * sp.E * q**2 + sp.exp(e * q), q).latex_lines()[-1]
    assert line == r"\frac{\partial J}{\partial q} = e \left(2 \mathrm{e} q + \mathrm{e}^{e q}\right)", line
    assert str(sg.explain(E * sp.E * q**2 + sp.exp(E * q), q)).splitlines()[-1].strip() == \
        "∂J/∂q = E*(2*exp(1)*q + exp(E*q))"
    # alone, each prints as before: π is pi, e^x is e^{x}
    assert str(sg.explain(sp.sin(sp.pi * q), q)).splitlines()[-1].strip() == "∂J/∂q = pi*cos(pi*q)"
    assert sg.explain(sp.exp(2 * q), q).latex_lines()[-1] == r"\frac{\partial J}{\partial q} = 2 e^{2 q}"


def test_names_that_read_as_constants_or_functions_are_refused():
    from symgrad.errors import NamingError, OptionError, SymgradError

    J = sp.cos(sp.sin(X**2) + 3 * X**2)
    for name, reads in (("pi", "constant π"), ("I", "imaginary unit"), ("sin", "function sin"), ("cos", "function cos")):
        with pytest.raises(NamingError, match=f"reads as the {reads}.*Fix"):
            sg.explain(J, X, names={X**2: name})
    with pytest.raises(OptionError, match="output='2J' is not a name"):  # it printed ∂2J/∂x
        sg.explain(J, X, output="2J")
    L = sp.Symbol("L", real=True)
    with pytest.raises(SymgradError, match="output='J'") as info:  # the fix offered the clashing L
        sg.explain(sp.sin(X) * L, X, output="L")
    assert "output='L'" not in str(info.value).split("Fix:")[1]


def _hand(output=None, act=sg.ops.sigmoid):
    xs, W1, b1, W2, b2 = MS("x", 2, 1), MS("W1", 3, 2), MS("b1", 3, 1), MS("W2", 3, 3), MS("b2", 3, 1)
    z = W2 * (W1 * xs + b1).applyfunc(act) + b2
    return SimpleNamespace(expr=sg.softmax(z) if output == "softmax" else z, params=[W1, b1, W2, b2], x=xs)


def _half_sq(pred, target):
    return sg.msum(HadamardPower(pred - target, 2)) / 2


def _networks():
    nets = {}
    for act in ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "identity"):
        for loss in ("bce", "mse", "softmax_cross_entropy", "mae", "huber"):
            nets[f"{act}-{loss}"] = sg.formulas(MLP([2, 3, 2], activation=act), loss)
    for output in ("sigmoid", "softmax"):
        for act in ("sigmoid", "tanh", "relu"):
            nets[f"{act}-{output}-mse"] = sg.formulas(MLP([2, 3, 3], activation=act, output=output), "mse")
    nets["custom-loss"] = sg.formulas(MLP([2, 3, 2], activation="tanh"), _half_sq)
    nets["deep"] = sg.formulas(MLP([2, 4, 3, 3], activation="relu"), "softmax_cross_entropy")
    nets["unlabelled"] = sg.formulas(_hand(), "softmax_cross_entropy")
    nets["unlabelled-softmax-relu"] = sg.formulas(_hand("softmax", sg.ops.relu), "mse")
    nn = sg.nn
    nets["cnn"] = sg.formulas(nn.Sequential([nn.Conv2D(1, 2, 3, padding=1, activation="relu"), nn.MaxPool2D(2),
                                             nn.Conv2D(2, 2, 3, stride=2), nn.AvgPool2D(1), nn.Flatten(),
                                             nn.Dense(2, 3)], input_shape=(1, 6, 6)), "cross_entropy")
    nets["dropout"] = sg.formulas(nn.Sequential([nn.Dense(3, 4, "relu"), nn.Dropout(0.25), nn.Dense(4, 2)], 3), "mse")
    nets["transformer"] = sg.formulas(nn.Transformer(6, 8, 2, 1, 5), "token_cross_entropy")
    # a given ε joins the subscript of layernorm_pos (two subscripts do not compile)
    nets["norms-eps"] = sg.formulas(nn.Sequential([nn.LayerNorm(4, eps=1e-3), nn.Flatten(), nn.Dense(12, 5),
                                                   nn.BatchNorm(5, eps=1e-3), nn.LayerNorm(5, eps=1e-3)],
                                                  input_shape=(3, 4)), "mse")
    return nets


def _optimizers():
    return [optim.SGD(0.1), optim.Momentum(0.1), optim.Nesterov(0.1), optim.Adam(1e-3), optim.AdamW(1e-3),
            optim.AdaGrad(0.1), optim.RMSProp(0.1), optim.SGD(0.1, weight_decay=1e-4, clip_norm=1.0),
            optim.Adam(2.5e-4, schedule=ConstantLR())]


def _cli(argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue().strip()


def _cli_latex() -> dict[str, str]:
    seed = "cos(sin(x**2) + 3*x**2)"
    return {
        "grad": _cli(["grad", seed, "--latex"]),
        "grad-many": _cli(["grad", "relu(x)*y + sigmoid(y)", "--latex"]),
        "explain": _cli(["explain", seed, "--latex", "--name", "x**2=t"]),
        "formulas": _cli(["formulas", "mlp 2-3-1 sigmoid bce", "--latex"]),
        "optim": _cli(["optim", "adam", "--lr", "0.01", "--latex"]),
    }


@pytest.fixture(scope="module")
def printouts():
    """name -> an object with latex() and latex_lines()."""
    objs = {f"explain:{k}": v for k, v in _derivations().items()}
    objs |= {f"formulas:{k}": v for k, v in _networks().items()}
    objs |= {f"optim:{o!r}": o for o in _optimizers()}
    return objs


@pytest.fixture(scope="module")
def all_latex(printouts) -> dict[str, str]:
    """Every LaTeX string, by where it came from: blocks, their lines, and the CLI's output."""
    out = {}
    for name, obj in printouts.items():
        out[name] = obj.latex()
        out |= {f"{name} line {i}": line for i, line in enumerate(obj.latex_lines())}
    for name, s in _cli_latex().items():
        for i, line in enumerate(s.splitlines() if name.startswith("grad") else [s]):
            out[f"cli:{name} {i}"] = line
    return out


# -- the checks --------------------------------------------------------------------------------

def test_latex_is_plain_ascii(all_latex):
    """A raw ⊙, ᵀ, δ or 𝟙 is what fails in LaTeX: every character is spelled as a command."""
    bad = {k: sorted({c for c in s if ord(c) > 127}) for k, s in all_latex.items() if not s.isascii()}
    assert not bad, bad


def test_lines_are_single_formulas(printouts):
    for name, obj in printouts.items():
        lines = obj.latex_lines()
        assert lines and not any("aligned" in s or "\\\\" in s or "&" in s for s in lines), name
        assert len(lines) == len([r for r in str(obj).splitlines() if r.strip()]), name


def test_mathtext_renders_every_line(all_latex):
    mathtext = pytest.importorskip("matplotlib.mathtext", reason="matplotlib is in the [test] extra")
    parser = mathtext.MathTextParser("path")
    failed = {}
    for name, s in all_latex.items():
        if "aligned" in s:  # a block for LaTeX; its lines are checked one by one
            continue
        try:
            parser.parse(f"${s}$")
        except Exception as exc:  # noqa: BLE001 - report every line that fails, not only the first
            failed[name] = f"{s}\n  {str(exc).splitlines()[-1]}"
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())


def _compile(body: str, tmp_path) -> subprocess.CompletedProcess:
    doc = "\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n" + body + "\n\\end{document}\n"
    (tmp_path / "t.tex").write_text(doc)
    return subprocess.run([LATEX, "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


LATEX = shutil.which("latex") or shutil.which("pdflatex")


@pytest.mark.skipif(LATEX is None, reason="no latex installed")
def test_latex_compiles_with_amsmath_only(all_latex, tmp_path):
    """One document holds every string; when it fails, each is compiled alone to name the culprit."""
    blocks = [f"\\[\n{s}\n\\]" for s in all_latex.values()]
    if _compile("\n".join(blocks), tmp_path).returncode == 0:
        return
    failed = [k for k, b in zip(all_latex, blocks) if _compile(b, tmp_path).returncode != 0]
    assert not failed, f"does not compile: {failed[:5]}\n{all_latex[failed[0]]}"


# -- rich display ----------------------------------------------------------------------------------

def test_repr_latex_of_derivation_formulas_and_optimizer(printouts):
    for name, obj in printouts.items():
        shown = obj._repr_latex_()
        assert shown == "$$" + obj.latex() + "$$", name
        assert shown.count("\\begin{aligned}") == 1, name


def test_notebook_shows_latex(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    code = ("import sympy as sp, symgrad as sg\nx = sp.Symbol('x', real=True)\n"
            "display(sg.explain(sp.sin(x**2), x))\n"
            "display(sg.formulas(sg.nn.MLP([2, 3, 2], output='softmax'), 'mse'))\n"
            "display(sg.optim.Adam(1e-3))")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert len(outputs) == 3 and all("text/latex" in o["data"] for o in outputs)


# -- notation -------------------------------------------------------------------------------------

def test_textbook_names():
    f = sg.formulas(MLP([2, 3, 3], activation="tanh", output="softmax"), "mse").latex()
    for piece in ("z_{1}", "W_{1}", r"\operatorname{softmax}", r"\frac{\partial \ell}{\partial W_{1}}",
                  r"a_{2} \odot \left(\delta_{a_{2}} - a_{2}^{\top}\,\delta_{a_{2}}\right)"):
        assert piece in f
    adam = optim.Adam(1e-3).latex()
    assert r"\beta_{1}" in adam and r"\varepsilon = 10^{-8}" in adam and r"\eta" in adam
    assert r"\alpha" in optim.RMSProp(0.1).latex()
    W1, x = sp.Symbol("W1"), sp.Symbol("x")  # a composite is a node, printed from the tree
    assert tex(Tr(MatProd(W1, x))) == r"\left(W_{1}\,x\right)^{\top}"
    assert tex(MatProd(Tr(W1), x) * x, hadamard=True) == r"\left(W_{1}^{\top}\,x\right) \odot x"
    assert tex_name("y*") == "y^{*}" and tex_name("θ1") == r"\theta_{1}"


def test_relu_derivative_is_an_indicator_with_its_convention_once():
    f = sg.formulas(MLP([2, 3, 1], activation="relu"), "bce")
    lines = str(f).splitlines()
    assert "  δ_z1 = δ_a1 ⊙ 𝟙[z1 > 0]" in lines and "Piecewise" not in str(f)
    notes = [s for s in lines if "relu'(0) = 0" in s]
    assert notes == ["Conventions at kinks: relu'(0) = 0, so relu'(z) = 𝟙[z > 0]"]
    assert r"\delta_{a_{1}} \odot \mathbf{1}[z_{1} > 0]" in f.latex()
    assert r"\operatorname{ReLU}'(0) = 0" in f.latex()
    d = sg.explain(relu(X) * X, X)
    assert "∂v1/∂x = 𝟙[x > 0]" in str(d) and str(d).count("relu'(0) = 0") == 1


def test_stabilisation_note_and_kinks_in_latex_as_in_text():
    d = sg.explain(sp.log(1 + sp.exp(A)) + sp.Abs(A), A)
    assert str(d).startswith("Stabilised before differentiating") and "Conventions at kinks" in str(d)
    tex_lines = d.latex_lines()
    assert tex_lines[0].startswith(r"\text{Stabilised before differentiating")
    assert tex_lines[-1].startswith(r"\text{Conventions at kinks: }") and r"\operatorname{sign}" in tex_lines[-1]


def test_every_kink_convention_has_latex():
    assert set(KINK_LATEX) == set(KINK_CONVENTIONS)


def test_explain_writes_partials_as_grad_latex_does():
    d = sg.explain(X * Y, [X, Y])
    assert {"  ∂J/∂x = y", "  ∂J/∂y = x"} <= set(str(d).splitlines())
    assert r"\frac{\partial J}{\partial x}" in d.latex()
    assert _cli(["grad", "x*y", "--wrt", "x", "--latex"]).startswith(r"\frac{\partial}{\partial x}")


def test_printers_do_not_rewrite_names():
    """The text printer prints structure, not str.replace over strings: a name with * stays."""
    ystar, z = sp.Symbol("y*", real=True), sp.Symbol("z", real=True)
    assert text(ystar * z**2, mul=" ⊙ ", power="^") == "y* ⊙ z^2"
    assert tex(ystar * z) == "y^{*} z"


def test_special_characters_in_a_name_are_escaped():
    # lr% printed as lr%^{2}: LaTeX read the rest of the line as a comment
    import sympy as sp

    import symgrad as sg

    q = sp.Symbol("lr%", real=True)
    tex = sg.explain(q**2, q).latex()
    assert r"lr\%^{2}" in tex and "lr%" not in tex.replace(r"\%", "")
