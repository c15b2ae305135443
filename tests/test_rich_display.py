"""Rich display in Jupyter (issue 17): derivations, network formulas and optimizers are typeset
(``_repr_latex_``); compiled and trained models show a summary (``_repr_html_``, and
``_repr_latex_`` for LaTeX export), never raw arrays. Every LaTeX string compiles with amsmath
alone and each of its lines renders in matplotlib's mathtext. A notebook run with nbclient
shows the MIME types.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess

import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions.hadamard import HadamardPower

import symgrad as sg
from symgrad.runtime.base import latex_block

X = sp.Symbol("x", real=True)
A, B, Y = sp.symbols("a b y", real=True)
MS = sp.MatrixSymbol


@pytest.fixture(scope="module")
def printouts():
    return {"derivation": sg.explain(sp.cos(sp.sin(X**2) + 3 * X**2), X, names={X**2: "t"}),
            "formulas": sg.formulas(sg.nn.MLP([2, 3, 2], activation="relu"), "softmax_cross_entropy"),
            "adam": sg.optim.Adam(1e-3)}


@pytest.fixture(scope="module")
def compiled():
    W, b, x, y = MS("W1", 2, 3), MS("b1", 2, 1), MS("x", 3, 1), MS("y", 2, 1)
    theta = sp.Symbol("θ1", real=True)
    return {
        "formula": sg.compile((A * X + B - Y) ** 2, wrt=[A, B], data=[X, Y], backend="python"),
        "greek": sg.compile(theta**2 + theta * X, wrt=[theta], data=[X], backend="python"),
        "residuals": sg.compile_residuals(A * sp.exp(-B * X) - Y, [A, B], [X, Y], backend="python"),
        "tensor": sg.compile(sg.msum(HadamardPower(W * x + b - y, 2)), wrt=[W, b], data=[x, y], backend="python"),
    }


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    X_, y_ = rng.normal(size=(60, 4)), rng.integers(0, 2, size=60)
    return sg.fit(sg.nn.MLP([4, 5, 2]), "softmax_cross_entropy", X_[:40], y_[:40], epochs=3,
                  validation=(X_[40:], y_[40:]), backend="python")


def _latex_strings(compiled, trained) -> dict[str, str]:
    """name -> each new LaTeX string: the block and its lines one by one."""
    shown = {**compiled, "trained": trained, "by hand": sg.Trained([np.zeros((2, 3)), np.zeros(2)])}
    out = {}
    for name, obj in shown.items():
        out[name] = obj._repr_latex_().strip("$")
        out |= {f"{name} line {i}": line for i, line in enumerate(obj._latex_lines())}
    return out


# -- what each object shows -----------------------------------------------------------------------

def test_printouts_are_typeset_and_have_no_html(printouts):
    for name, obj in printouts.items():
        shown = obj._repr_latex_()
        assert shown == "$$" + obj.latex() + "$$", name
        assert not hasattr(obj, "_repr_html_"), name  # HTML would win over the typeset form
    assert r"\frac{\partial J}{\partial x}" in printouts["derivation"]._repr_latex_()
    assert r"\delta_{z_{1}}" in printouts["formulas"]._repr_latex_()


def test_optimizer_shows_its_update_rule(printouts):
    shown = printouts["adam"]._repr_latex_()
    assert r"\text{Adam}" in shown and r"\eta = 0.001" in shown and r"\varepsilon = 10^{-8}" in shown
    assert r"m &\leftarrow \beta_{1} m + \left(1 - \beta_{1}\right) g" in shown
    assert r"p &\leftarrow p - \frac{\eta \hat{m}}{\sqrt{\hat{v}} + \varepsilon}" in shown


@pytest.mark.parametrize("name, kind, params, data", [
    ("formula", "CompiledFormula", "a, b", "x, y"),
    ("residuals", "CompiledResiduals", "a, b", "x, y"),
    ("tensor", "CompiledTensor", "W1 (2, 3), b1 (2, 1)", "x (3, 1), y (2, 1)"),
])
def test_compiled_model_html_summary(compiled, name, kind, params, data):
    f = compiled[name]
    shown = f._repr_html_()
    assert shown.startswith(f"<div><strong>{kind}</strong><table>")
    cells = re.findall(r"<td[^>]*>(.*?)</td>", shown)
    rows = dict(zip(cells[::2], cells[1::2]))
    assert rows == {"parameters": params, "data": data, "dtype": "float64", "reduction": f.reduction,
                    "backend": "python", "generated source": html.escape(str(f.path))}
    assert f.path.exists()


def test_compiled_model_latex_names_symbols_as_a_textbook(compiled):
    tensor = compiled["tensor"]._repr_latex_()
    assert tensor.startswith("$$\\begin{aligned}") and tensor.endswith("\\end{aligned}$$")
    assert r"\text{CompiledTensor: float64, reduction mean, backend python}" in tensor
    assert r"W_{1}\ (2 \times 3),\ b_{1}\ (2 \times 1)" in tensor
    assert compiled["tensor"].path.name.replace("_", r"\_") in tensor
    assert r"\theta_{1}" in compiled["greek"]._repr_latex_()
    many = sg.compile(sum(t**2 for t in sp.symbols("t0:20")), wrt=list(sp.symbols("t0:20")), data=[],
                      backend="python")
    assert r"t_{9},\ \ldots,\ t_{19}\text{ (20 in all)}" in many._repr_latex_()
    assert r"\text{data: }\text{none}" in many._repr_latex_()


def test_trained_model_html_is_its_summary_not_arrays(trained):
    shown = trained._repr_html_()
    assert shown.startswith("<div><strong>Trained MLP([4, 5, 2], activation=&#x27;relu&#x27;, init=&#x27;he&#x27;): 3 epochs, float64, "
                            "backend python</strong>")
    heads = re.findall(r"<th[^>]*>(.*?)</th>", shown)
    assert heads == ["parameter", "shape", "count", "gradient norm (last epoch)"]
    rows = re.findall(r"<tr>(.*?)</tr>", shown)[1:]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows]
    last = trained.history["grad_norms"][-1]
    assert cells[:4] == [["W1", "(5, 4)", "20", f"{last[0]:.3g}"], ["b1", "(5, 1)", "5", f"{last[1]:.3g}"],
                         ["W2", "(2, 5)", "10", f"{last[2]:.3g}"], ["b2", "(2, 1)", "2", f"{last[3]:.3g}"]]
    assert cells[4] == ["total", "", "37", ""]
    assert "loss softmax_cross_entropy, optimizer Adam(lr=0.001" in shown
    assert f"val_accuracy {trained.history['val_accuracy'][-1]:.4g}" in shown
    assert "array(" not in shown and "[[" not in shown


def test_trained_model_latex(trained):
    lines = trained._latex_lines()
    assert trained._repr_latex_() == "$$" + latex_block(lines) + "$$"
    assert lines[0] == r"\text{Trained MLP([4, 5, 2], activation='relu', init='he'): 3 epochs, float64, backend python}"
    assert lines[1].startswith(r"\text{loss softmax\_cross\_entropy, optimizer Adam(")
    assert lines[2].startswith(r"\text{last epoch: loss ") and r"val\_accuracy" in lines[2]
    assert lines[3:] == [r"W_{1}:\ 5 \times 4\ (20)", r"b_{1}:\ 5 \times 1\ (5)", r"W_{2}:\ 2 \times 5\ (10)",
                         r"b_{2}:\ 2 \times 1\ (2)", r"\text{total: 37 parameters}"]


def test_a_trained_model_made_by_hand_displays(trained):
    m = sg.Trained([np.zeros((2, 3)), np.zeros(2)], loss_name="mse")
    assert "<td style='text-align:left'>p0</td>" in m._repr_html_()
    assert r"p_{1}:\ 2\ (2)" in m._repr_latex_()
    assert "\\text{Trained: 0 epochs" in m._repr_latex_()


# -- every LaTeX string compiles and renders ------------------------------------------------------

def test_latex_is_ascii_and_each_line_renders_in_mathtext(compiled, trained):
    mathtext = pytest.importorskip("matplotlib.mathtext", reason="matplotlib is in the [test] extra")
    parser = mathtext.MathTextParser("path")
    strings = _latex_strings(compiled, trained)
    assert all(s.isascii() for s in strings.values())
    failed = {}
    for name, s in strings.items():
        if "aligned" in s:  # a block for LaTeX; its lines are checked one by one
            continue
        assert "&" not in s and "\\\\" not in s, name
        try:
            parser.parse(f"${s}$")
        except Exception as exc:  # noqa: BLE001 - report every line that fails
            failed[name] = f"{s}\n  {str(exc).splitlines()[-1]}"
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())


LATEX = shutil.which("pdflatex") or shutil.which("latex")


@pytest.mark.skipif(LATEX is None, reason="no latex installed")
def test_latex_compiles_with_amsmath_only(compiled, trained, tmp_path):
    strings = _latex_strings(compiled, trained)
    body = "\n".join(f"\\[\n{s}\n\\]" for s in strings.values())
    doc = "\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n" + body + "\n\\end{document}\n"
    (tmp_path / "t.tex").write_text(doc)
    proc = subprocess.run([LATEX, "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]


# -- in a notebook --------------------------------------------------------------------------------

NOTEBOOK = """\
import numpy as np, sympy as sp, symgrad as sg
x = sp.Symbol('x', real=True)
display(sg.explain(sp.sin(x**2), x))
display(sg.formulas(sg.nn.MLP([2, 3, 2]), 'softmax_cross_entropy'))
display(sg.optim.Adam(1e-3))
a = sp.Symbol('a', real=True)
display(sg.compile((a * x - 1)**2, wrt=[a], data=[x], backend='python'))
rng = np.random.default_rng(0)
display(sg.fit(sg.nn.MLP([2, 3, 2]), 'softmax_cross_entropy', rng.normal(size=(20, 2)),
               rng.integers(0, 2, 20), epochs=2, backend='python'))
"""


def test_notebook_shows_latex_and_html(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK)])
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()
    outputs = [o for o in nb.cells[0].outputs if o["output_type"] == "display_data"]
    assert len(outputs) == 5, nb.cells[0].outputs
    mimes = [set(o["data"]) for o in outputs]
    assert mimes[:3] == [{"text/latex", "text/plain"}] * 3  # typeset: no HTML to hide it
    assert mimes[3:] == [{"text/html", "text/latex", "text/plain"}] * 2
    assert outputs[3]["data"]["text/html"].startswith("<div><strong>CompiledFormula</strong>")
    assert outputs[4]["data"]["text/html"].startswith("<div><strong>Trained MLP([2, 3, 2]")
    assert r"\leftarrow" in outputs[2]["data"]["text/latex"]
