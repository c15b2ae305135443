"""Regression tests for the wrong answers of issue 17: name clashes in ``explain``, a
dimensionally wrong ``formulas`` line, and a silent double sigmoid/softmax."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp
from sympy.matrices.expressions.hadamard import HadamardPower

import symgrad as sg
from symgrad.__main__ import main
from symgrad.errors import LossMismatchError, NameClashError, NamingError, SymgradError
from symgrad.lang.functions import elementwise
from symgrad.lang.losses import LOSSES
from symgrad.lang.nn import MLP
from symgrad.lang.ops import expand_ops, sigmoid

x, y, a, v1, J = sp.symbols("x y a v1 J", real=True)
SEED = sp.cos(sp.sin(x**2) + 3 * x**2)
SIG = 1 / (1 + sp.exp(-a))  # sigmoid as a user writes it; explain stabilises it


def forward(d) -> list[str]:
    text = str(d)
    return [ln.strip() for ln in text.split("Forward\n", 1)[1].split("Backward")[0].splitlines()]


# -- explain: a name that clashes is refused, never printed as a wrong result -----------------


@pytest.mark.parametrize("expr, names, output, clash", [
    (SEED, {x**2: "u", sp.sin(x**2): "u"}, "J", "'u'"),  # two keys, one name
    (x * y + sp.sin(x), {sp.sin(x): "y"}, "J", "variable y"),  # another free symbol
    (SEED, {x**2: "J"}, "J", "output"),
    (SEED, {x**2: "L"}, "L", "output"),
    (SEED, {x**2: "x"}, "J", "variable x"),
    (J * sp.sin(x), None, "J", "output"),  # a variable called like the output
    (x * y + sp.sin(x), None, "y", "output"),
    (SEED, {x**2: "t", "x**2": "u"}, "J", "two names"),  # one subexpression, two names
])
def test_clashing_name_is_refused(expr, names, output, clash):
    with pytest.raises(NameClashError, match="Fix:") as info:
        sg.explain(expr, x, names=names, output=output)
    assert clash in str(info.value)


def test_clash_error_is_a_value_error():
    assert issubclass(NameClashError, NamingError) and issubclass(NamingError, SymgradError)
    assert issubclass(NamingError, ValueError)


@pytest.mark.parametrize("names", [
    ["--name", "x**2=u", "--name", "sin(x**2)=u"],
    ["--name", "x**2=J"],
    ["--name", "x**2=t", "--name", "x**2=u"],
])
def test_cli_refuses_clashing_names(names, capsys):
    assert main(["explain", "cos(sin(x**2) + 3*x**2)", "--wrt", "x", *names]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Fix:" in err


def test_cli_refuses_name_of_another_variable(capsys):
    assert main(["explain", "x*y + sin(x)", "--wrt", "x", "--name", "sin(x)=y"]) == 2
    assert "variable y" in capsys.readouterr().err


@pytest.mark.parametrize("key, match", [
    (x**3, "matches no subexpression"),
    ("x**3", "matches no subexpression"),
    (x, "is a variable"),
    (sp.Integer(3), "is a constant"),
    (SEED, "whole expression"),
    (3, "SymPy expressions or strings"),
])
def test_key_that_names_nothing_is_refused(key, match):
    with pytest.raises(NamingError, match=match):
        sg.explain(SEED, x, names={key: "t"})


def test_unmatched_key_lists_the_subexpressions_that_can_be_named():
    with pytest.raises(NamingError, match=r"can be named: x\*\*2, 3\*x\*\*2, sin\(x\*\*2\)"):
        sg.explain(SEED, x, names={x**3: "t"})


def test_string_keys_are_read_with_the_expressions_symbols():
    d = sg.explain(SEED, x, names={"x**2": "t", "sin(x**2)": "u1"})
    assert {"t = x**2", "u1 = sin(t)"} <= set(forward(d))
    for sym in (sp.Symbol("x"), sp.Symbol("x", positive=True)):  # not the parser's real x
        d = sg.explain(sp.sin(sym**2), sym, names={"x**2": "t"})
        assert forward(d) == ["t = x**2", "J = sin(t)"]


def test_keys_match_the_users_own_form():
    d = sg.explain(sp.sin(SIG) * a, a, names={SIG: "s"})  # stabilised to sigmoid(a) inside
    assert "s = sigmoid(a)" in forward(d)
    d = sg.explain(sp.sin(SIG) * a, a, names={sigmoid(a): "s"})  # the stable form still works
    assert "s = sigmoid(a)" in forward(d)
    d = sg.explain(sp.Max(x, 0) * x, x, names={sp.Max(x, 0): "m"})  # Max stays Max in the trace
    assert forward(d)[0] == "m = Max(0, x)"


def test_key_rewritten_away_is_refused_with_the_stable_form():
    nll = -(y * sp.log(SIG) + (1 - y) * sp.log(1 - SIG))  # fused into bce_logits(a, y)
    with pytest.raises(NamingError, match=r"stabilised first: bce_logits\(a, y\)"):
        sg.explain(nll, a, names={SIG: "s"})


# -- explain's result is the true derivative, whatever the names --------------------------------

CASES = [
    (SEED, x, {x**2: "t", sp.sin(x**2): "u1", 3 * x**2: "u2", sp.sin(x**2) + 3 * x**2: "u"}),
    (SEED, x, {"x**2": "t", "sin(x**2)": "v5"}),  # v5: no automatic node gets it
    (SEED, x, {x**2: "v3", sp.sin(x**2): "v1"}),  # automatic names skip v1 and v3
    (sp.sin(v1 * x) + v1 * sp.exp(x), x, None),  # a variable called like an automatic name
    (x * y + sp.sin(x), [x, y], {sp.sin(x): "s", x * y: "p"}),
    (sp.sin(SIG) * a + SIG**2, a, {SIG: "s"}),
    (-(a * sp.log(1 / (1 + sp.exp(-x * y))) + (1 - a) * sp.log(1 - 1 / (1 + sp.exp(-x * y)))), [x, y],
     {x * y: "z"}),  # logistic loss, fused into bce_logits(z, a)
    (sp.Max(x, 0) * sp.exp(-x * y), [x, y], {sp.Max(x, 0): "m", sp.exp(-x * y): "e"}),
    (sp.log(1 + sp.exp(x * y)) / (1 + x**2), [x, y], {1 + x**2: "den"}),
]
POINTS = [{x: sp.Float(0.7), y: sp.Float(-1.3), a: sp.Float(0.4), v1: sp.Float(0.9)},
          {x: sp.Float(1.9), y: sp.Float(0.25), a: sp.Float(-2.2), v1: sp.Float(-1.4)},
          {x: sp.Float(0.3), y: sp.Float(2.0), a: sp.Float(3.1), v1: sp.Float(2.5)}]


@pytest.mark.parametrize("expr, wrt, names", CASES)
def test_explained_result_equals_sympy_diff(expr, wrt, names):
    wrt_list = wrt if isinstance(wrt, list) else [wrt]
    d = sg.explain(expr, wrt, names=names)
    trace = [ln.split("=")[0].strip() for ln in forward(d) if "=" in ln]
    assert len(trace) == len(set(trace)), trace  # no name given twice in the printout
    for v, got in zip(wrt_list, d.gradients, strict=True):
        truth = sp.diff(expr, v)  # of the user's original expression, shares no code with the sweep
        for at in POINTS:
            g = complex(expand_ops(got).xreplace(at).evalf(30))
            t = complex(truth.xreplace(at).evalf(30))
            assert abs(g - t) <= 1e-12 * max(1.0, abs(t)), (v, at, got)


# -- formulas: the printed equations, evaluated as printed, give the compiled gradient -------

def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _piecewise(*pairs):
    out = None
    for value, cond in reversed(pairs):
        out = np.asarray(value, dtype=float) if out is None else np.where(cond, value, out)
    return out


#: The functions a printed formula may call, in NumPy (an oracle independent of our printer).
FUNCTIONS = {
    "sigmoid": _sigmoid, "softmax": _softmax, "tanh": np.tanh, "exp": np.exp, "log": np.log,
    "softplus": lambda z: np.logaddexp(0, z), "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z, s: np.where(z > 0, z, s * z), "elu": lambda z, s: np.where(z > 0, z, s * np.expm1(z)),
    "Piecewise": _piecewise, "sign": np.sign, "Abs": np.abs,
    "indicator": lambda c: np.asarray(c, dtype=float),  # 𝟙[c], printed for ReLU's derivative
    "where": np.where,  # {a if c, b otherwise}, printed for leaky ReLU's and ELU's derivatives
}


def evaluate_printout(text: str, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Read the printed equations as a student would and compute them with NumPy.

    ``·`` is the matrix product, ``⊙`` the elementwise one, ``ᵀ`` the transpose. Forward lines
    define layer values, ``δ_`` lines deltas, and ``∂ℓ/∂W`` lines the gradients returned. The
    text is our own printout, evaluated with only NumPy functions in scope: this is the oracle
    that sees printing bugs (a product of the wrong shape fails here; the compiled code is right).
    """
    env, grads = dict(values), {}
    for line in text.splitlines():
        if not line.startswith("  ") or line.strip().startswith("ℓ ="):
            continue
        lhs, rhs = line.strip().split(" = ", 1)
        py = rhs.replace("⊙", "*").replace("·", "@").replace("ᵀ", ".T").replace("^", "**")
        py = re.sub(r"(?<![\w.])(\d+(?:\.\d+)?|κ) ?(?=\(|(?!if\b|otherwise\b)[a-zA-Z])", r"\1*", py)  # 2(z2 - y)
        py = py.replace("𝟙[", "indicator(").replace("]", ")")
        py = re.sub(r"\{(.*?) if (.*?), (.*?) otherwise\}", r"where(\2, \1, \3)", py)  # {a if c, b otherwise}
        value = eval(py, dict(FUNCTIONS), env)  # noqa: S307 - our printout, NumPy names only
        if lhs.startswith("∂ℓ/∂"):
            grads[lhs.removeprefix("∂ℓ/∂")] = value
        else:
            env[lhs] = value
    return grads


MS = sp.MatrixSymbol


def _chain():
    """The issue's model W2·W1·x: ∂ℓ/∂W2 must be δ·(W1·x)ᵀ, not δ·W1·xᵀ."""
    xs, W1, W2 = MS("x", 2, 1), MS("W1", 3, 2), MS("W2", 1, 3)
    return SimpleNamespace(expr=W2 * W1 * xs, params=[W1, W2], x=xs)


def _tied():
    """A transposed parameter, Wᵀ·(W·x): the gradient has a term in each operand's place."""
    xs, W = MS("x", 3, 1), MS("W", 2, 3)
    return SimpleNamespace(expr=W.T * (W * xs), params=[W], x=xs)


def _hand():
    """A network without MLP's labels: its internal names (v8) must be defined in the printout."""
    xs, W1, b1, W2, b2 = MS("x", 2, 1), MS("W1", 3, 2), MS("b1", 3, 1), MS("W2", 1, 3), MS("b2", 1, 1)
    return SimpleNamespace(expr=W2 * (W1 * xs + b1).applyfunc(sigmoid) + b2, params=[W1, b1, W2, b2], x=xs)


def _half_sq(pred, target):
    return sg.msum(HadamardPower(pred - target, 2)) / 2


MISH = sg.activation(lambda z: z * sp.tanh(sp.log(1 + sp.exp(z))))

MODELS = {
    "dense": (lambda: MLP([3, 2]), "mse"),
    "sigmoid_bce": (lambda: MLP([2, 3, 1], activation="sigmoid"), "bce"),
    "tanh_bce": (lambda: MLP([2, 3, 1], activation="tanh"), "bce"),
    "relu_bce": (lambda: MLP([2, 3, 1], activation="relu"), "bce"),
    "leaky_relu_bce": (lambda: MLP([2, 3, 1], activation="leaky_relu"), "bce"),
    "elu_bce": (lambda: MLP([2, 3, 1], activation="elu"), "bce"),
    "softplus_bce": (lambda: MLP([2, 3, 1], activation="softplus"), "bce"),
    "identity_bce": (lambda: MLP([2, 3, 1], activation="identity"), "bce"),
    "deep_softmax_ce": (lambda: MLP([2, 4, 3, 3], activation="sigmoid"), "softmax_cross_entropy"),
    "sigmoid_mse": (lambda: MLP([2, 3, 2], activation="sigmoid"), "mse"),
    "mae": (lambda: MLP([2, 3, 2], activation="tanh"), "mae"),
    "softmax_output_mse": (lambda: MLP([2, 3, 3], activation="tanh", output="softmax"), "mse"),
    "mish_softmax_ce": (lambda: MLP([2, 3, 2], activation=MISH), "softmax_cross_entropy"),
    "custom_loss": (lambda: MLP([2, 3, 2], activation="tanh"), _half_sq),
    "logits_only_loss": (lambda: MLP([2, 3, 2], activation="tanh"), lambda p, t: sg.msum(HadamardPower(p, 2)) / 2),
    "chain_W2_W1_x": (_chain, "mse"),
    "transposed_param": (_tied, "mse"),
    "hand_network": (_hand, "bce"),
}


@pytest.mark.parametrize("case", list(MODELS))
def test_printed_formulas_evaluate_to_the_compiled_gradient(case):
    build, loss = MODELS[case]
    model = build()
    n_out = int(model.expr.shape[0])
    target = MS("y", n_out, 1)
    loss_fn = LOSSES[loss] if isinstance(loss, str) else loss
    f = sg.compile(loss_fn(model.expr, target), model.params, [model.x, target], backend="python")
    rng = np.random.default_rng(sum(map(ord, case)))
    params = [rng.normal(size=p.shape) for p in model.params]
    X, Y = rng.normal(size=(1, model.x.shape[0])), rng.random(size=(1, n_out))  # a batch of one
    if loss == "softmax_cross_entropy":  # its targets are distributions (refused otherwise, as fit does)
        Y = Y / Y.sum(axis=1, keepdims=True)
    _, want = f.value_and_grad(params, X, Y)
    values = {str(p): v for p, v in zip(model.params, params, strict=True)} | {"x": X.T, "y": Y.T}
    got = evaluate_printout(str(sg.formulas(model, loss)), values)
    assert set(got) == {str(p) for p in model.params}
    for p, w in zip(model.params, want, strict=True):
        np.testing.assert_allclose(np.broadcast_to(got[str(p)], w.shape), w, rtol=1e-10, atol=1e-12, err_msg=str(p))


def test_chain_prints_the_transposed_product_in_parentheses():
    text = str(sg.formulas(_chain(), "mse"))
    assert "·(W1·x)ᵀ" in text and "·W1·xᵀ" not in text


def test_internal_names_are_defined_in_the_forward_section():
    text = str(sg.formulas(_hand(), "bce"))
    assert "  v8 = sigmoid(W1·x + b1)" in text.split("Backward")[0]


# -- a sigmoid/softmax output fed to a loss on logits is refused ---------------------------------

DOUBLE = [
    ("sigmoid", "bce"), ("sigmoid", "binary_cross_entropy"),
    ("softmax", "softmax_cross_entropy"), ("softmax", "cross_entropy"),
    ("sigmoid", "softmax_cross_entropy"), ("softmax", "bce"),
]


@pytest.mark.parametrize("output, loss", DOUBLE)
def test_squashed_output_with_logit_loss_is_refused(output, loss):
    net = MLP([2, 3, 2], activation="tanh", output=output)
    X, Y = np.zeros((4, 2)), np.eye(2)[[0, 1, 0, 1]]
    with pytest.raises(LossMismatchError, match="output='identity'") as info:
        sg.fit(net, loss, X, Y, epochs=1, backend="python")
    assert f"applies {output}" in str(info.value) and "Fix:" in str(info.value)
    with pytest.raises(LossMismatchError):
        sg.formulas(net, loss)
    with pytest.raises(LossMismatchError):
        LOSSES[loss](net.expr, MS("y", 2, 1))


def test_hand_written_sigmoid_output_is_refused_too():
    hand = _hand()
    written = sp.Lambda(sp.Symbol("z"), 1 / (1 + sp.exp(-sp.Symbol("z"))))  # not yet stabilised
    for pred in (hand.expr.applyfunc(sigmoid), elementwise(written, hand.expr)):
        with pytest.raises(LossMismatchError):
            LOSSES["bce"](pred, MS("y", 1, 1))


def test_logit_outputs_and_probability_losses_still_work():
    assert MLP([2, 3, 1], output=None).expr == MLP([2, 3, 1]).expr  # None means identity (logits)
    net = MLP([2, 3, 2], activation="tanh", output=None)
    X, Y = np.random.default_rng(0).normal(size=(4, 2)), np.eye(2)[[0, 1, 0, 1]]
    sg.fit(net, "bce", X, Y, epochs=1, backend="python")
    sg.fit(MLP([2, 3, 2], activation="tanh", output="sigmoid"), "mse", X, Y, epochs=1, backend="python")
    assert "δ_a2" in str(sg.formulas(MLP([2, 3, 2], output="softmax"), "mse"))


# -- the same clash in grad/compile: automatic names and the output skip the variables' names ---


@pytest.mark.parametrize("expr", [sp.sin(v1 * x) + v1, J * sp.sin(x) + J**2])
def test_grad_with_a_variable_named_like_a_seam(expr):
    at = {x: 0.3, v1: 2.0, J: 2.0}
    got = sg.grad(expr, x).xreplace(at)
    assert abs(float(got) - float(sp.diff(expr, x).xreplace(at))) < 1e-12
    f = sg.compile(expr, wrt=[x], data=[v1, J], backend="python")
    _, g = f.value_and_grad([0.3], np.array([2.0]), np.array([2.0]))
    assert abs(g[0] - float(sp.diff(expr, x).xreplace(at))) < 1e-12
