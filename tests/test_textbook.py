"""explain(..., textbook=True): the expression as written, step by step as the notes derive it,
then the stable form symgrad compiles and a check that the two derivatives agree."""

import pytest
import sympy as sp

import symgrad as sg

A, T, X = sp.symbols("a t x", real=True)
Y = 1 / (1 + sp.exp(-A))
NLL = -(T * sp.log(Y) + (1 - T) * sp.log(1 - Y))


def _line(d, start: str) -> str:
    return next(ln.strip() for ln in str(d).splitlines() if ln.strip().startswith(start))


def test_the_notes_case_1_steps_are_shown_as_written():
    d = sg.explain(NLL, A, textbook=True, names={Y: "y", sp.log(Y): "u1", sp.log(1 - Y): "u2"})
    assert _line(d, "y = ") == "y = 1/v3"  # the sigmoid as written, not fused into bce_logits
    # the notes' dJ/dy = -y*/y + (1 - y*)/(1 - y): here v8 = 1 - t and v10 = 1 - y
    assert _line(d, "∂J/∂y =") == "∂J/∂y = -t/y + v8/v10"
    assert _line(d, "v8 = ") == "v8 = v7 + 1" and _line(d, "v7 = ") == "v7 = -t"
    text = str(d)
    assert "What symgrad compiles: the stable form" in text and "-> bce_logits(a, t)" in text
    assert "∂J/∂a = -t + sigmoid(a)" in text
    assert "0 at 5 random points" in text or "0 (simplified)" in text


def test_the_written_and_stable_derivatives_are_the_same_function():
    d = sg.explain(NLL, A, textbook=True)
    written, stable = d.gradients[0], d.stable_gradients[0]
    assert "exp(-a)" in str(written) and "bce" not in str(written)  # really the form as written
    for a, t in [(-3.0, 0.2), (0.0, 1.0), (2.5, 0.0), (0.7, 0.5)]:
        sub = {A: a, T: t}
        assert sp.N(written.subs(sub), 30) == pytest.approx(float(sp.N(stable.subs(sub), 30)), rel=1e-12)
    # the independent oracle: sympy.diff of the expression as written
    assert sp.simplify(written - sp.diff(NLL, A)) == 0


def test_without_rewrites_textbook_is_the_plain_derivation():
    seed = sp.cos(sp.sin(X**2) + 3 * X**2)
    plain, book = sg.explain(seed, X), sg.explain(seed, X, textbook=True)
    assert str(plain) == str(book)
    assert "What symgrad compiles" not in str(book)


def test_textbook_with_a_point_and_latex():
    d = sg.explain(sp.log(1 + sp.exp(X)), X, textbook=True, at={X: 0.5})
    text = str(d)
    assert "∂J/∂x = exp(x)/(exp(x) + 1) ≈ 0.622459" in text and "-> softplus(x)" in text
    assert d.latex().isascii() and r"\to" in d.latex()


def test_a_disagreement_would_be_raised():
    from symgrad.errors import SymgradError
    from symgrad.explain.trace import agreement

    assert agreement(sp.sin(X) ** 2 + sp.cos(X) ** 2, sp.S.One, {X}).startswith("0")
    with pytest.raises(SymgradError, match="disagree"):
        agreement(sp.exp(X), sp.exp(X) * (1 + sp.Rational(1, 10**20)) + sp.Function("f")(X) * 0 + 1e-20, {X})


def test_the_derivative_of_a_negated_sigmoid_reads_as_a_product():
    # σ(−a)'s derivative came back expanded, (1 - σ(a))**2 + σ(a) - 1; the notes' form is a product.
    # Oracle for the value: d/da of 1/(1 + e^a), by sympy.diff, at three points.
    s = sg.ops.sigmoid
    for e in (s(-A), 1 / (1 + sp.exp(A))):
        g = sg.grad(e, A)
        assert g == (s(A) - 1) * s(A), g
        for at in (-3, 0.5, 7):
            assert float(g.subs(A, at)) == pytest.approx(float(sp.diff(1 / (1 + sp.exp(A)), A).subs(A, at)), rel=1e-14)
    assert sg.grad(X * s(-A * X), A) == X**2 * (s(A * X) - 1) * s(A * X)  # already a product: unchanged
