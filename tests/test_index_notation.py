"""Index notation as in the notes (issue 17): ``a = Σ_j θ_j x_j`` written with ``sp.Sum`` and
``sp.IndexedBase`` derives ``∂J/∂θ_j = ∂J/∂a · x_j``.

Oracles: ``sympy.diff`` of the Sum form (``.doit()``, the index in range), and symgrad's ordinary
path on the expanded form (``.doit()`` with D = 3, elements as Symbols), both evaluated at
random points.
"""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import OptionError, SymgradError, UnsupportedFunctionError

THETA, X = sp.IndexedBase("theta"), sp.IndexedBase("x")
ALPHA, BETA = sp.IndexedBase("alpha"), sp.IndexedBase("beta")
D, M = sp.symbols("D M", integer=True)
YS = sp.Symbol("y*", real=True)
K, P, Q = sp.symbols("k p q", integer=True)  # the oracle's indices


def _nll(logit):
    y = 1 / (1 + sp.exp(-logit))
    return y, -(YS * sp.log(y) + (1 - YS) * sp.log(1 - y))


def _case1(j):
    a = sp.Sum(THETA[j] * X[j], (j, 0, D))
    y, J = _nll(a)
    return a, y, J


def _case2(j, i):
    aj = sp.Sum(ALPHA[j, i] * X[i], (i, 0, M))
    zj = 1 / (1 + sp.exp(-aj))
    b = sp.Sum(BETA[j] * zj, (j, 0, D))
    return aj, zj, b, _nll(b)[1]


def _line(d, start: str) -> str:
    return next(ln.strip() for ln in str(d).splitlines() if ln.strip().startswith(start))


def _in_range(e: sp.Expr) -> sp.Expr:
    """SymPy's derivative with respect to an element, with the index assumed in range."""
    for _ in range(3):
        e = e.replace(lambda n: isinstance(n, sp.Piecewise), lambda n: n.args[0].expr).doit()
    return e


def _value(e: sp.Expr, free: dict, sizes: dict, seed: int = 0) -> float:
    """``e`` at random element values, the free indices at ``free``, the limits at ``sizes``."""
    e = e.subs(free).subs(sizes).doit()
    rng = random.Random(seed)
    vals = {}
    for el in sorted(e.atoms(sp.Indexed), key=str):
        key = (el.base.label.name, tuple(int(i) for i in el.indices))
        vals.setdefault(key, sp.Rational(rng.randint(-90, 90), 50))
    e = e.xreplace({el: vals[(el.base.label.name, tuple(int(i) for i in el.indices))]
                    for el in e.atoms(sp.Indexed)})
    return float(sp.N(e.xreplace({YS: sp.Rational(3, 10)}), 30))


@pytest.mark.parametrize("j", [sp.Idx("j"), sp.Symbol("j")], ids=["Idx", "Symbol"])
def test_case_1_reads_as_the_notes(j):
    a, y, J = _case1(j)
    d = sg.explain(J, THETA[j], textbook=True, names={a: "a", y: "y"})
    assert _line(d, "a = ") == "a = Sum(theta[j]*x[j], (j, 0, D))"
    assert _line(d, "∂J/∂theta[j] +=") == "∂J/∂theta[j] += ∂J/∂a * ∂a/∂theta[j],   ∂a/∂theta[j] = x[j]"
    assert _line(d, "∂J/∂y =") == "∂J/∂y = -y*/y + v9/v11"  # the notes' dJ/dy, as written
    assert "∂J/∂theta[j] = (-y* + sigmoid(Sum(theta[j]*x[j], (j, 0, D))))*x[j]" in str(d)  # the stable form
    assert "0 at 5 random points" in str(d) or "0 (simplified)" in str(d)
    assert "sg.compile needs the sum expanded: .doit()" in str(d)
    stable = sg.explain(J, THETA[j], names={a: "a"})
    assert _line(stable, "∂J/∂a =") == "∂J/∂a = -y* + sigmoid(a)"


def test_case_1_against_sympy_and_the_expanded_form():
    j = sp.Idx("j")
    a, y, J = _case1(j)
    d = sg.explain(J, THETA[j], textbook=True)
    ours = [d.gradients[0], d.stable_gradients[0], sg.grad(J, THETA[j])]
    oracle = _in_range(sp.diff(J, THETA[K])).subs(K, j)
    # symbolically: each Sum as a symbol of its own, sigmoid as written
    s = sp.Symbol("s", real=True)
    for g in ours:
        assert sp.simplify((g.rewrite(sp.exp) - oracle).xreplace({a: s})) == 0
    # the expanded form (D = 3) through symgrad's ordinary path, elements as Symbols
    theta, x = sp.symbols("theta0:4", real=True), sp.symbols("x0:4", real=True)
    flat = J.subs(D, 3).doit().xreplace({THETA[n]: theta[n] for n in range(4)} | {X[n]: x[n] for n in range(4)})
    for n in range(4):
        expanded = sg.grad(flat, theta[n]).xreplace({theta[m]: THETA[m] for m in range(4)}
                                                     | {x[m]: X[m] for m in range(4)})
        want = _value(expanded, {}, {}, seed=n)
        for g in [*ours, oracle]:
            assert _value(g, {j: n}, {D: 3}, seed=n) == pytest.approx(want, rel=1e-12)


def test_case_1_input_gradient_and_another_index_letter():
    j, k = sp.Idx("j"), sp.Symbol("k")
    a, y, J = _case1(j)
    d = sg.explain(J, [THETA[j], X[j]], names={a: "a"})
    assert _line(d, "∂J/∂x[j] +=") == "∂J/∂x[j] += ∂J/∂a * ∂a/∂x[j],   ∂a/∂x[j] = theta[j]"
    assert _line(d, "∂J/∂x[j] =") == "∂J/∂x[j] = (-y* + sigmoid(Sum(theta[j]*x[j], (j, 0, D))))*theta[j]"
    oracle = _in_range(sp.diff(J, X[K]))
    for n in range(3):
        assert _value(d.gradients[1], {j: n}, {D: 3}, n) == pytest.approx(_value(oracle, {K: n}, {D: 3}, n), rel=1e-12)
    # wrt theta[k] with the Sum over j: summed over k, the variable's letter
    dk = sg.explain(J, THETA[k], names={a: "a"})
    assert _line(dk, "a = ") == "a = Sum(theta[k]*x[k], (k, 0, D))"
    assert _line(dk, "∂J/∂theta[k] +=").endswith("∂a/∂theta[k] = x[k]")
    oracle = _in_range(sp.diff(J, THETA[K]))
    assert _value(sg.grad(J, THETA[k]), {k: 2}, {D: 3}) == pytest.approx(_value(oracle, {K: 2}, {D: 3}), rel=1e-12)


def test_integer_limit_and_a_scalar_in_every_term():
    j = sp.Symbol("j")
    w, b = sp.symbols("w b", real=True)
    assert sg.grad(sp.sin(sp.Sum(THETA[j] * X[j], (j, 0, 3))), THETA[j]) == \
        X[j] * sp.cos(sp.Sum(THETA[j] * X[j], (j, 0, 3)))
    L = sp.Sum((w * X[j] + b - THETA[j]) ** 2, (j, 0, D))  # least squares: w, b in every term
    d = sg.explain(L, [w, b])
    assert _line(d, "∂J/∂w +=") == "∂J/∂w += Sum(2*(b + w*x[j] - theta[j])*x[j], (j, 0, D))"
    for g, v in zip(d.gradients, (w, b)):
        want = sp.diff(L.subs(D, 3).doit(), v)
        assert _value(g.subs({w: 0.7, b: -0.2}), {}, {D: 3}) == pytest.approx(
            _value(want.subs({w: 0.7, b: -0.2}), {}, {}), rel=1e-12)


def test_case_2_two_levels_of_sums():
    j, i = sp.Idx("j"), sp.Idx("i")
    aj, zj, b, J = _case2(j, i)
    d = sg.explain(J, [BETA[j], ALPHA[j, i]], names={b: "b", zj: "z_j", aj: "a_j"})
    assert _line(d, "a_j = ") == "a_j = Sum(alpha[j, i]*x[i], (i, 0, M))"
    assert _line(d, "b = ") == "b = Sum(beta[j]*z_j, (j, 0, D))"
    assert _line(d, "∂J/∂beta[j] +=").endswith("∂b/∂beta[j] = z_j")
    assert _line(d, "∂J/∂z_j +=").endswith("∂b/∂z_j = beta[j]")
    assert _line(d, "∂J/∂alpha[j, i] +=") == \
        "∂J/∂alpha[j, i] += ∂J/∂a_j * ∂a_j/∂alpha[j, i],   ∂a_j/∂alpha[j, i] = x[i]"
    sizes = {D: 2, M: 2}
    for g, oracle in zip(d.gradients, (_in_range(sp.diff(J, BETA[P])), _in_range(sp.diff(J, ALPHA[P, Q])))):
        for n, m in [(0, 1), (2, 0), (1, 2)]:
            assert _value(g, {j: n, i: m}, sizes, n) == pytest.approx(_value(oracle, {P: n, Q: m}, sizes, n), rel=1e-12)
    assert sg.grad(J, ALPHA[j, i]) == d.gradients[1]


def _latex_ok(body: str, tmp_path) -> None:
    tex = shutil.which("pdflatex") or shutil.which("latex")
    if tex is None:
        pytest.skip("no latex installed")
    doc = "\\documentclass{article}\\usepackage{amsmath}\\begin{document}\n\\[" + body + "\\]\n\\end{document}\n"
    (tmp_path / "d.tex").write_text(doc)
    r = subprocess.run([tex, "-interaction=nonstopmode", "-halt-on-error", "d.tex"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]


def test_latex_is_ascii_reads_as_the_notes_and_compiles(tmp_path):
    j, i = sp.Idx("j"), sp.Idx("i")
    a, y, J = _case1(j)
    d = sg.explain(J, THETA[j], textbook=True, names={a: "a", y: "y"})
    latex = d.latex()
    assert latex.isascii()
    assert r"a &= \sum_{j=0}^{D} {\theta}_{j} {x}_{j}" in latex
    assert r"\frac{\partial a}{\partial {\theta}_{j}} = {x}_{j}" in latex
    aj, zj, b, J2 = _case2(j, i)
    d2 = sg.explain(J2, [BETA[j], ALPHA[j, i]], names={b: "b", zj: "z_j", aj: "a_j"})
    assert d2.latex().isascii()
    _latex_ok(latex + "\n\\]\n\\[" + d2.latex(), tmp_path)


def test_bad_input_names_the_fix():
    j, i = sp.Idx("j"), sp.Idx("i")
    a, y, J = _case1(j)
    with pytest.raises(SymgradError, match=r"base w does not appear.*Fix: .*theta\[j\]"):
        sg.grad(J, sp.IndexedBase("w")[j])
    with pytest.raises(SymgradError, match=r"does not depend on its index i \(it uses j, free\).*Fix: sum over"):
        sg.explain(sp.Sum(THETA[j] * X[j], (i, 0, D)), THETA[j])
    with pytest.raises(UnsupportedFunctionError, match=r"theta\[0\] and as the variable theta\[j\].*Fix"):
        sg.grad(a + THETA[0], THETA[j])
    with pytest.raises(SymgradError, match=r"index 1, which is not a letter.*Fix"):
        sg.grad(J, THETA[1])
    with pytest.raises(OptionError, match=r"Fix: for a worked example with numbers, write the terms with Symbols"):
        sg.explain(J, THETA[j], at={D: 3})
    aj, zj, b, J2 = _case2(j, i)  # dJ/dx_i sums over j: every term holds x[i]
    with pytest.raises(UnsupportedFunctionError, match=r"x\[i\] is in every term of the Sum over j.*Fix: .*\.doit\(\)"):
        sg.grad(J2, X[i])
    w = sp.Symbol("w", real=True)
    with pytest.raises(UnsupportedFunctionError, match=r"Sum .* not supported\. Fix: call \.doit\(\)"):
        sg.compile(sp.Sum(w * X[j], (j, 0, 3)) ** 2, [w], backend="python")  # compile keeps refusing Sum


def test_a_name_for_a_sum_that_sympy_distributed():
    """exp(-a) with a = Σ_j θ_j x_j + b holds -b - Σ..., where a is no subexpression: the name
    still applies (a becomes a step, then -a), and the result is the notes' dJ/dθ_j."""
    j, n = sp.symbols("j n", integer=True)
    th, x = sp.IndexedBase("theta"), sp.IndexedBase("x")
    b = sp.Symbol("b", real=True)
    a = sp.Sum(th[j] * x[j], (j, 1, n)) + b
    d = sg.explain(sp.log(1 + sp.exp(-a)), th[j], names={a: "a"})
    text = str(d)
    assert "  a = b + v1" in text and "  v3 = -a" in text and "∂v3/∂a = -1" in text, text
    assert d.gradients[0] == (sg.ops.sigmoid(a) - 1) * x[j]  # dJ/da · x_j, dJ/da = σ(a) − 1
    w, xs = sp.symbols("w x", real=True)
    e = sp.log(1 + sp.exp(-(w * xs + b)))
    traced = str(sg.explain(e, w, names={w * xs + b: "a"}, at={w: 0.5, xs: 2.0, b: -1.0}))
    assert "a = b + v1 = 0" in traced and "∂J/∂w = x*(sigmoid(b + w*x) - 1) = -1" in traced, traced


def test_the_expanded_sum_compiles_with_its_elements_as_parameters_and_data():
    # the documented route (.doit(), then sg.compile) refused theta[0] in wrt= as "not a symbol"
    import numpy as np

    theta, xs, j = sp.IndexedBase("theta"), sp.IndexedBase("x"), sp.Idx("j")
    y = sp.Symbol("y", real=True)
    e = (sp.Sum(theta[j] * xs[j], (j, 0, 2)).doit() - y) ** 2
    f = sg.compile(e, wrt=[theta[k] for k in range(3)], data=[xs[k] for k in range(3)] + [y], backend="python")
    X = np.random.default_rng(0).normal(size=(10, 3))
    Y = X @ [1.0, 2.0, 3.0]
    assert [str(p) for p in f.params] == ["theta[0]", "theta[1]", "theta[2]"]
    np.testing.assert_allclose(f.grad([0.0, 0.0, 0.0], *X.T, Y), -2 * X.T @ Y / len(Y), rtol=1e-12)
    np.testing.assert_allclose(f.grad([1.0, 2.0, 3.0], *X.T, Y), 0.0, atol=1e-12)


def test_double_sums_are_refused_or_right():
    # a Sum over two indices read its first limit only (θᵀAθ: 2·A[k, k]·θ[k]), and renaming a
    # Sum's letter captured an inner Sum's (Σ_k θ_k Σ_j A[j, k] θ_j by θ[i]: A[i, i]·...). Oracle:
    # sympy.diff of the expansion at D = 2, by theta[1].
    th, A, X = sp.IndexedBase("theta"), sp.IndexedBase("A"), sp.IndexedBase("X")
    i, j, k = sp.Idx("i"), sp.Idx("j"), sp.Idx("k")
    D = sp.Symbol("D", integer=True, positive=True)
    with pytest.raises(UnsupportedFunctionError, match=r"sums over j, k at once.*Fix: expand the sum"):
        sg.grad(sp.Sum(th[j] * A[j, k] * th[k], (j, 0, D), (k, 0, D)), th[k])
    nested = [sp.Sum(th[k] * sp.Sum(A[j, k] * th[j], (j, 0, D)), (k, 0, D)),
              sp.Sum(th[j] * sp.Sum(X[j, k], (k, 0, D)), (j, 0, D)),
              sp.Sum(sp.sin(th[j]) * sp.Sum(th[k], (k, 0, D)), (j, 0, D))]
    right = 0
    for e in nested:
        for w in (th[i], th[j], th[k]):
            try:
                g = sg.grad(e, w)
            except SymgradError as exc:
                assert "Fix:" in str(exc)
                continue
            want = sp.diff(e.subs(D, 2).doit(), th[1])
            assert sp.expand(g.subs(D, 2).subs(w.indices[0], 1).doit() - want) == 0, (e, w, g)
            right += 1
    assert right >= 5  # the forms the derivation shows are still derived


@pytest.mark.parametrize("case", ["ridge without the bias", "two ranges", "one range not from 0"])
def test_sums_of_other_ranges_give_each_element_its_own_terms(case):
    """A penalty over j = 1..3 beside a loss over j = 0..3 (θ_0 unpenalised): θ_0's derivative has no
    penalty term. The oracle: sympy.diff of the expanded form with respect to each element, at
    random points; symgrad's result with j substituted (as the refusal of theta[0] tells users)."""
    j, lam, ys = sp.Symbol("j", integer=True), sp.Symbol("lambda", positive=True), sp.IndexedBase("y")
    J = {"ridge without the bias": sp.Sum((THETA[j] * X[j] - ys[j]) ** 2, (j, 0, 3))
         + lam * sp.Sum(THETA[j] ** 2, (j, 1, 3)),
         "two ranges": sp.Sum(THETA[j] * X[j], (j, 0, 1)) + sp.Sum(THETA[j] ** 3, (j, 2, D)),
         "one range not from 0": sp.Sum(sp.exp(THETA[j]) * X[j], (j, 2, 3)) + sp.Sum(THETA[j] ** 2, (j, 0, 3)),
         }[case]
    g = sg.grad(J, THETA[j])
    with pytest.raises(SymgradError, match="outside every Sum's range the derivative is 0"):
        sg.grad(J, THETA[0])
    flat = J.subs(D, 3).doit()
    for n in range(4):
        want = _value(sp.diff(flat, THETA[n]).subs(lam, 2), {}, {}, seed=n)
        assert _value(g.subs(lam, 2), {j: n}, {D: 3}, seed=n) == pytest.approx(want, rel=1e-12, abs=1e-30)
    assert "𝟙[" in str(sg.explain(J, THETA[j]))  # the step says where each Sum's term holds


def test_limits_in_decreasing_order_are_refused():
    j = sp.Symbol("j", integer=True)
    with pytest.raises(UnsupportedFunctionError, match=r"increasing order, \(j, 0, 3\)"):
        sg.grad(sp.Sum(THETA[j] * X[j], (j, 3, 0)), THETA[j])
