"""The stabilisation rules: each rule's example, checked symbolically and at high precision.

Every rule in ``symgrad.rewrite.RULES`` is picked up automatically. The references are
plain SymPy primitives (``expand_ops``) evaluated with evalf at a working precision high
enough for the extreme points (e**-1000 ~ 1e-435), then compared to 50 digits.
"""

from __future__ import annotations

import pytest
import sympy as sp

import symgrad
from symgrad.front.rewrite import RULES, stabilize
from symgrad.lang.ops import bce_logits, expand_ops, sigmoid, softplus

Z = sp.Symbol("z", real=True)
Y = sp.Symbol("y", real=True)

DIGITS = 50
WORK_DIGITS = 1000  # > 869 + 50: 1 - tanh(-1000)**2 is 1e-868; exp(-1000) must survive 1 + exp(-1000)
POINTS = [sp.Integer(v) for v in (-1000, -30, -20, -5, -1, 0, 1, 5, 20, 30, 1000)] + [
    sp.Rational(-37, 2),
    sp.Rational(1, 3),
    sp.Rational(-7, 10),
]
LABELS = [sp.Integer(0), sp.Rational(3, 10), sp.Integer(1)]  # values for y in the BCE rule


def ref(expr: sp.Expr, at: dict) -> sp.Float:
    """High-precision value of ``expr`` (ops expanded to primitives) at exact ``at``."""
    v = expand_ops(sp.sympify(expr)).xreplace(at).evalf(WORK_DIGITS)
    assert v.is_real and v.is_finite, (expr, at, v)
    return sp.Float(v, DIGITS)


def rel_err(a: sp.Float, b: sp.Float) -> sp.Float:
    if a == b:
        return sp.S.Zero
    return abs(a - b) / max(abs(a), abs(b))


def assignments(rule_expr: sp.Expr) -> list[dict]:
    ys = LABELS if Y in rule_expr.free_symbols else [sp.Integer(0)]
    return [{Z: z, Y: y} for z in POINTS for y in ys]


@pytest.fixture(params=RULES, ids=[r.name for r in RULES])
def rule(request):
    return request.param


def test_rules_table_is_not_empty():
    assert len(RULES) >= 4
    assert len({r.name for r in RULES}) == len(RULES)


def test_rule_apply_gives_its_stable_form(rule):
    lhs, rhs = rule.example
    assert rule.apply(lhs) == rhs
    stable, fired = stabilize(lhs)
    assert rule.name in fired
    assert stable == rhs or sp.simplify(expand_ops(stable - rhs)) == 0


def test_rule_does_not_fire_on_its_own_output(rule):
    _, rhs = rule.example
    assert stabilize(rhs) == (rhs, [])


def test_rule_example_holds_at_high_precision(rule):
    lhs, rhs = rule.example
    for at in assignments(lhs):
        a, b = ref(lhs, at), ref(rhs, at)
        assert rel_err(a, b) < 1e-45, f"{rule.name} at {at}: {a} != {b}"


def test_stable_gradient_is_finite_and_exact_at_extremes(rule):
    """grad of the stable form, evaluated through the ops' own evalf, matches d(lhs)/dz."""
    lhs, rhs = rule.example
    g = symgrad.grad(rhs, Z)
    want_expr = sp.diff(expand_ops(lhs), Z)
    for at in assignments(lhs):
        want = ref(want_expr, at)
        # The ops evaluate through their definitions; sigmoid's canonical sign turns
        # sigmoid(-1000) into 1 - sigmoid(1000), so evalf needs room (maxn) to resolve it.
        got = g.xreplace(at).evalf(DIGITS, maxn=WORK_DIGITS)
        assert got.is_real and got.is_finite, f"{rule.name}: grad {g} at {at} = {got}"
        assert rel_err(sp.Float(got, DIGITS), want) < 1e-30, f"{rule.name}: grad {g} at {at}: {got} != {want}"
        # and the same gradient with every op expanded to primitives
        assert rel_err(ref(g, at), want) < 1e-40


def test_stable_gradients_have_no_exponentials(rule):
    _, rhs = rule.example
    assert not symgrad.grad(rhs, Z).has(sp.exp)


# -- the whole logistic-regression loss ------------------------------------------------

T0, T1, X0, X1 = sp.symbols("t0 t1 x0 x1", real=True)
A = T0 * X0 + T1 * X1
NLL = -(Y * sp.log(1 / (1 + sp.exp(-A))) + (1 - Y) * sp.log(1 - 1 / (1 + sp.exp(-A))))


def test_logistic_nll_stabilises_to_bce_logits():
    stable, fired = stabilize(NLL)
    assert stable == bce_logits(A, Y)
    assert {"sigmoid", "log-sigmoid", "bce-logits"} <= set(fired)


def test_logistic_nll_gradient_is_textbook():
    for theta, x in ((T0, X0), (T1, X1)):
        g = symgrad.grad(NLL, theta)
        expected = x * (sigmoid(A) - Y)
        assert g == expected
        assert sp.simplify(g - expected) == 0
        assert not g.has(sp.exp)  # no raw quotient of exponentials
        assert not g.has(sp.log)


def test_logistic_nll_gradient_matches_naive_derivative_at_extreme_logits():
    g = symgrad.grad(NLL, T0)
    naive = sp.diff(NLL, T0)
    for a0 in (-1000, -40, -1, 0, 2, 40, 1000):
        for y in LABELS:
            at = {T0: sp.Integer(a0), T1: sp.Integer(1), X0: sp.Integer(1), X1: sp.Integer(0), Y: y}
            want = ref(naive, at)
            got = sp.Float(g.xreplace(at).evalf(DIGITS, maxn=WORK_DIGITS), DIGITS)
            assert got.is_finite
            assert rel_err(got, want) < 1e-30, (a0, y, got, want)


def test_softplus_and_log_sigmoid_compose():
    # log(1 - sigmoid(z)) -> -softplus(z); log of an explicit logistic -> -softplus(-z)
    assert stabilize(sp.log(1 - sigmoid(Z)))[0] == -softplus(Z)
    assert stabilize(sp.log(1 / (1 + sp.exp(-Z))))[0] == -softplus(-Z)


@pytest.mark.parametrize("w", [Z, -Z, 2 * Z + 1], ids=["z", "-z", "2z+1"])
def test_sigmoid_quotient_form_stabilises(w):
    e = sp.exp(w) / (1 + sp.exp(w))
    assert RULES[0].apply(e) == sigmoid(w)  # the rule itself is right
    stable, _ = stabilize(e)
    assert stable == sigmoid(w)
    assert not stable.has(sp.exp)
    assert stabilize(sp.log(e))[0] == -softplus(-w)


# -- the ops' own numeric semantics away from evalf's adaptive path ----------------------


def test_ops_evaluate_accurately_on_floats():
    true = {
        softplus(sp.Integer(-40)): sp.log(1 + sp.exp(-40)),
        sigmoid(sp.Integer(-40)): 1 / (1 + sp.exp(40)),
    }
    for op, exact in true.items():
        assert rel_err(sp.Float(op.evalf(15), 15), sp.Float(exact.evalf(30), 15)) < 1e-12
    assert rel_err(sigmoid(sp.Float(-40)), sp.Float((1 / (1 + sp.exp(40))).evalf(30), 15)) < 1e-12
    assert softplus(sp.Integer(-1000)).evalf(50) != 0


@pytest.mark.parametrize("extra", [lambda s: s**2, lambda s: sp.sqrt(s), lambda s: 1 / s])
def test_bce_pair_keeps_the_other_terms(extra):
    # the pairing kept only softplus(a)'s and softplus(-a)'s coefficients and the constant term:
    # w*softplus(a)**2 beside a BCE was dropped (value 0.89 for 2.23, ∂w = 0). Oracle: sympy.diff
    # of the expression as written, in mpmath at 30 digits.
    a, y, w = sp.symbols("a y w", real=True)
    sp_ = lambda z: sp.log(1 + sp.exp(z))  # noqa: E731
    loss = y * sp_(-a) + (1 - y) * sp_(a) + w * extra(sp_(a))
    at = {a: sp.Rational(7, 10), y: sp.Rational(3, 10), w: sp.Rational(11, 10)}
    f = symgrad.compile(loss, wrt=[a, y, w], reduction="sum", backend="python")
    theta = [float(at[v]) for v in (a, y, w)]
    assert f.value(theta) == pytest.approx(float(loss.subs(at).evalf(30)), rel=1e-14)
    for got, v in zip(f.grad(theta), (a, y, w)):
        assert got == pytest.approx(float(sp.diff(loss, v).subs(at).evalf(30)), rel=1e-13, abs=1e-15)
    assert symgrad.grad(loss, w).has(softplus)  # not 0


def test_rewrites_keep_values_in_the_tails_and_other_terms_as_written():
    # 1/(1 + e^a) became sigmoid(-a), which SymPy's canonical sign made 1 - sigmoid(a): 0 at a = 40
    # (4.2e-18), a Piecewise condition on it took the wrong branch, and 1e-17 beside it merged into
    # 1.0; the BCE pairing expanded the whole sum, (w - 1)**6 into w**6 - 6*w**5 + ... (its gradient
    # 7e-15 where it is 6e-20). Oracle: the expression as written, in mpmath at 40 digits.
    a, w, y = sp.symbols("a w y", real=True)
    cases = [(1 / (1 + sp.exp(a)), {a: 40}), (sp.log(1 / (1 + sp.exp(a)) + sp.Float(1e-17)), {a: 36}),
             (sp.Piecewise((a**2, 1 / (1 + sp.exp(a)) > sp.Rational(1, 10**20)), (-a, True)), {a: 40}),
             ((w - 1) ** 6 + sp.Rational(3, 10) * sp.log(1 + sp.exp(-a)) + sp.Rational(7, 10) * sp.log(1 + sp.exp(a)),
              {a: 0.5, w: 1.0001})]
    for e, at in cases:
        wrt = sorted(e.free_symbols, key=str)
        f = symgrad.compile(e, wrt=wrt, reduction="sum", backend="python")
        theta = [float(at[v]) for v in wrt]
        exact = {v: sp.Float(at[v], 40) for v in wrt}
        assert f.value(theta) == pytest.approx(float(e.subs(exact).evalf(40)), rel=1e-13)
        for got, v in zip(f.grad(theta), wrt):
            assert got == pytest.approx(float(sp.diff(e, v).subs(exact).evalf(40)), rel=1e-9), (e, v)


def test_explain_judges_float_coefficients_by_their_precision():
    # 0.3 + 0.7 rounds to 1.0, 3e-17 away: the textbook check called that a stabilisation bug
    a = sp.Symbol("a", real=True)
    e = 0.3 * sp.log(1 + sp.exp(-a)) + 0.7 * sp.log(1 + sp.exp(a))
    assert "∂J/∂a" in str(symgrad.explain(e, a, textbook=True))


def test_whole_number_floats_are_rewritten_like_integers():
    # SymPy 1.13+ does not count Float(1.0) equal to 1: the BCE written with 1.0 escaped the rules
    # and gave inf at a = 40 (40 is the value), 1/(1.0 + e^-a)'s derivative NaN at a = -800 and
    # log(e^a + 1.0) inf at a = 800. Oracle: the expression written with 1, in mpmath at 40 digits
    # (log σ(a) = -log(1 + e^-a), exact in mpmath for any a).
    import mpmath

    a, y = sp.symbols("a y", real=True)
    cases = [(-(y * sp.log(1 / (1 + sp.exp(-a))) + (1.0 - y) * sp.log(1.0 - 1 / (1.0 + sp.exp(-a)))),
              lambda av, yv: yv * mpmath.log1p(mpmath.exp(-av)) + (1 - yv) * mpmath.log1p(mpmath.exp(av)),
              [(40.0, 0.0), (800.0, 0.0), (-40.0, 1.0), (3.0, 0.25)]),
             (1 / (1.0 + sp.exp(-a)), lambda av, yv: 1 / (1 + mpmath.exp(-av)), [(-800.0, 0.0), (30.0, 0.0)]),
             (sp.log(sp.exp(a) + 1.0), lambda av, yv: mpmath.log1p(mpmath.exp(av)), [(800.0, 0.0), (-50.0, 0.0)])]
    mpmath.mp.dps = 40
    for e, ref, points in cases:
        f = symgrad.compile(e, wrt=[a], data=[y], reduction="sum", backend="python", on_nonfinite="raise")
        for av, yv in points:
            want = ref(mpmath.mpf(av), mpmath.mpf(yv))
            slope = mpmath.diff(lambda t, r=ref, yv=yv: r(t, mpmath.mpf(yv)), mpmath.mpf(av))
            value, (g,) = f.value_and_grad([av], [yv])
            assert value == pytest.approx(float(want), rel=1e-14), (e, av)
            assert g == pytest.approx(float(slope), rel=1e-12, abs=1e-300), (e, av)
    assert stabilize(sp.log(1.0 - sigmoid(a)))[0] == -softplus(a)
