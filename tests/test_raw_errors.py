"""Reported raw TypeError/AttributeError/ValueError escapes, each now a SymgradError naming the fix."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import DataError, OptionError, ParseError, TargetError
from symgrad.lang.optim import OptimizerConfigError

a, x, y = sp.symbols("a x y", real=True)
X, Y = np.ones((20, 2)), np.ones(20)


@pytest.fixture(scope="module")
def net():
    return sg.nn.MLP([2, 4, 1])


def _fit(net, **kw):
    return sg.fit(net, "mse", X, Y, backend="python", **{"epochs": 1, **kw})


def test_mlp_of_a_number_names_sizes():
    with pytest.raises(OptionError, match=r"sizes=\[n_in, hidden\.\.\., n_out\]\. Fix:"):
        sg.nn.MLP(3)


@pytest.mark.parametrize("call", [
    lambda: sg.fit("mlp", "mse", X, Y, backend="python"),
    lambda: sg.fit(a * x, "mse", X, Y, backend="python"),
    lambda: sg.formulas("mlp", "mse"),
], ids=["fit-name", "fit-formula", "formulas-name"])
def test_model_that_is_not_a_network(call):
    with pytest.raises(OptionError, match=r"must be a network such as sg\.nn\.MLP.*Fix:"):
        call()


@pytest.mark.parametrize("kw, text", [
    (dict(threshold="low"), "threshold='low'"),
    (dict(threshold=float("nan")), "threshold=nan"),
    (dict(seed="a"), "seed='a'"),
    (dict(seed=-1), "seed=-1"),
    (dict(callbacks=[1]), "callbacks: 1 is not a function"),
    (dict(chunk_epochs=-1), "chunk_epochs=-1"),
    (dict(blas_threads="one"), "blas_threads='one'"),
    (dict(threads="2"), "threads='2'"),
    (dict(threads=1.5), "threads=1.5"),
])
def test_bad_fit_options(net, kw, text):
    with pytest.raises(OptionError, match="Fix:") as info:
        _fit(net, **kw)
    assert text in str(info.value)


def test_a_single_callback_is_a_list_of_one(net):
    seen = []
    _fit(net, callbacks=lambda epoch, m: seen.append(epoch), epochs=2)
    assert seen == [1, 2]


def test_custom_loss_with_the_wrong_arguments(net):
    with pytest.raises(OptionError, match=r"f\(pred, target\).*SymPy scalar.*Fix:"):
        sg.fit(net, lambda p: p, X, Y, backend="python")
    with pytest.raises(OptionError, match=r"f\(pred, target\)"):
        sg.formulas(net, lambda p: p)


@pytest.mark.parametrize("kw, text", [
    (dict(lr="0.1"), "lr='0.1' is not a number"),
    (dict(beta1="x"), "beta1='x' is not a number"),
    (dict(clip_norm="1"), "clip_norm='1' is not a number"),
])
def test_optimizer_settings_that_are_not_numbers(kw, text):
    with pytest.raises(OptimizerConfigError, match="Fix:") as info:
        sg.optim.Adam(**kw)
    assert text in str(info.value)


def test_extra_functions_as_a_list_by_name():
    def twice(z):
        return 2 * z

    assert sg.parse_expr("twice(x) + sin(x)", extra_functions=[twice, sp.sin]) == 2 * x + sp.sin(x)
    assert sg.parse_expr("twice(x)", extra_functions=twice) == 2 * x
    with pytest.raises(ParseError, match="unknown function 'f'"):
        sg.parse_expr("f(x)", extra_functions=[sp.sin])
    with pytest.raises(ParseError, match="not a named function. Fix:"):
        sg.parse_expr("x", extra_functions=[1])


def test_parallel_must_be_a_bool():
    with pytest.raises(OptionError, match="parallel='yes' is not a bool. Fix:"):
        sg.compile(a * x, [a], [x], parallel="yes", backend="python")


def test_nan_in_start_params_gets_the_parameters_advice(net):
    params = [p.copy() for p in net.init_params(0)]
    params[0][0, 0] = np.nan
    with pytest.raises(DataError, match=r"params\['W1'\] holds a non-finite.*Fix: start from finite") as info:
        _fit(net, params=params)
    assert "impute" not in str(info.value)


def test_none_data_is_named_not_nan():
    b = sp.Symbol("b", real=True)
    f = sg.compile((a * x + b - y) ** 2, [a, b], [x, y], backend="python")
    with pytest.raises(DataError, match="data 'x' is None, not numbers. Fix:"):
        f.grad([1.0, 0.0], None, np.ones(3))
    with pytest.raises(DataError, match="data 'x' holds None.*Fix:"):
        f.grad([1.0, 0.0], [1.0, None, 2.0], np.ones(3))
    with pytest.raises(DataError, match="theta holds None"):
        f.grad([1.0, None], np.ones(3), np.ones(3))


def test_class_labels_out_of_range_are_a_target_error():
    with pytest.raises(TargetError, match=r"class labels must be integers in \[0, 3\).*Fix:"):
        sg.fit(sg.nn.MLP([2, 4, 3]), "softmax_cross_entropy", X, np.full(20, 5), epochs=1, backend="python")


def test_an_undefined_function_named_like_a_symgrad_op_is_not_taken_for_it():
    # sp.Function("sigmoid") has no derivative: grad left Derivative(...) unevaluated, compile
    # raised SymPy's PrintMethodNotImplementedError, explain a ValueError
    from symgrad.errors import UnsupportedFunctionError

    x = sp.Symbol("x", real=True)
    fake = sp.Function("sigmoid")
    for call in (lambda: sg.compile(fake(x), wrt=[x], backend="python"), lambda: sg.grad(fake(x), x),
                 lambda: sg.explain(2 * fake(x), x, at={x: 0.5}), lambda: sg.grad(sp.Function("elu")(x, x), x)):
        with pytest.raises(UnsupportedFunctionError, match=r"undefined SymPy function named \w+, not symgrad's.*"
                                                            r"Fix: use sg.ops.\w+\(...\)"):
            call()
    assert sg.grad(sg.ops.sigmoid(x), x) == sg.ops.sigmoid(x) * (1 - sg.ops.sigmoid(x))


def test_custom_losses_and_activations_that_cannot_work_say_the_fix():
    # each raised SymPy's, NumPy's or Python's own error, or named no fix
    from symgrad.errors import UnsupportedModelError

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    y = X[:, 0]
    one, two = sg.nn.MLP([3, 4, 1], activation="tanh"), sg.nn.MLP([3, 4, 2], activation="tanh")
    cases = [(one, lambda p, t: (p - t) ** 2, y, r"a matrix appears outside msum.*Fix: .*sg.elementwise"),
             (two, lambda p, t: (p - t) ** 2, np.c_[y, y], r"failed on the model's output, a 2×1 SymPy matrix "
                                                           r"\(NonSquareMatrixError.*Fix:"),
             (one, lambda p, t: 1.0, y, r"returned 1.0, which does not depend on the model's output.*Fix:"),
             (one, lambda p, t: sg.msum((p - t).applyfunc(sp.Abs)), y, r"Abs\(M\) as sqrt\(M·Mᴴ\).*sg.elementwise")]
    for net, loss, target, match in cases:
        with pytest.raises(UnsupportedModelError, match=match):
            sg.fit(net, loss, X, target, epochs=1, backend="python")
    with pytest.raises(OptionError, match=r"activation='tanh' failed on a SymPy symbol.*Fix: .*not NumPy's"):
        sg.nn.MLP([3, 4, 1], activation=np.tanh)
    fine = sg.fit(one, lambda p, t: sg.msum(sg.elementwise(sp.Abs, p - t)), X, y, epochs=1, backend="python")
    assert np.isfinite(fine.history["loss"][0])


def test_sequential_takes_its_input_shape_from_a_first_dense_or_asks_for_it():
    # without input_shape= it raised Python's TypeError (a missing argument)
    net = sg.nn.Sequential([sg.nn.Dense(4, 8, activation="relu"), sg.nn.Dense(8, 2)])
    assert net.input_shape == (4,) and net.expr.shape == (2, 1)
    with pytest.raises(OptionError, match=r"not known from the first layer Conv2D.*Fix: give input_shape="):
        sg.nn.Sequential([sg.nn.Conv2D(1, 4, 3), sg.nn.Flatten(), sg.nn.Dense(144, 2)])


def test_every_syntax_error_names_a_fix():
    # x***2 and a dangling x** said only "invalid syntax"
    for text in ("x***2", "x**", "(x+1", "x +\n* 2", "2x"):
        with pytest.raises(ParseError, match="Fix: "):
            sg.parse_expr(text)


def test_formulas_at_with_a_params_dict_names_what_is_missing():
    # it said "got 4 arrays" whatever the dict held
    net = sg.nn.MLP([2, 3, 1])
    with pytest.raises(OptionError, match=r"lacks W2, b1, b2 and has Wx unknown names"):
        sg.formulas(net, "mse", at=({"W1": np.ones((3, 2)), "Wx": np.ones(1)}, [1.0, 2.0], 1.0))
    params = dict(zip(["W1", "b1", "W2", "b2"], net.init_params(seed=0)))
    assert "ℓ = " in str(sg.formulas(net, "mse", at=(params, [1.0, 2.0], 1.0)))


def test_unevaluated_and_complex_forms_are_refused_not_differentiated_wrongly():
    # d/da Subs(a**2*t, t, 2) came back as 2*a*t (SymPy's diff does not see through Subs); the
    # others raised SymPy's own errors, or NameError at the first call
    from symgrad.errors import DtypeError, UnsupportedFunctionError, UnsupportedModelError

    a, t = sp.symbols("a t", real=True)
    refused = {
        sp.Subs(a**2 * t, t, 2): "Subs in .* Fix: call .doit",
        sp.Limit(a * t, t, 2): "Limit in .* Fix: call .doit",
        sp.UnevaluatedExpr(a**2) * a: "UnevaluatedExpr",
        sp.Lambda(a, a**2): "Lambda",
        a + sp.O(t): r"Order in .* Fix: drop it with .removeO\(\)",
        sp.CRootOf(t**5 + t + 1, 0) * a: r"ComplexRootOf .* Fix: replace it by its value \(.evalf\(\)\)",
        sp.Piecewise((a, sp.Contains(a, sp.Interval(0, 1))), (0, True)): r"the condition Contains.* \(0 <= a\) & \(a <= 1\)",
        sp.Integer(10**400) * a: "beyond float64's range",
        sp.exp(1000) * a: r"the constant exp\(1000\) \(≈ 1.97E\+434\) in .* beyond float64's range",
        a ** (2**53 + 1): r"beyond 2\*\*53",
    }
    for expr, match in refused.items():
        with pytest.raises(UnsupportedFunctionError, match=match):
            sg.grad(expr, a)
        with pytest.raises(UnsupportedFunctionError, match=match):
            sg.compile(expr, wrt=[a], data=[t] if t in expr.free_symbols else [], backend="python")
    # (-2)**a is real at integer a, but its derivative is complex: the Python path returned its real part
    for expr in ((-2) ** a, sp.sqrt(-(a**2) - 1)):
        with pytest.raises(UnsupportedModelError, match=r"complex \(it holds I\).*Fix: write a real formula"):
            sg.compile(expr, wrt=[a], backend="python")
    assert sg.grad(sp.Subs(a**2 * t, t, 2).doit(), a) == 4 * a
    # a constant function that is exactly 0 is no underflow (hypothesis found relu(-2) refused)
    assert sg.grad(a + sg.ops.relu(-2), a) == 1
    with pytest.raises(UnsupportedFunctionError, match=r"exp\(-1000\) .* beyond float64's range"):
        sg.grad(a + sp.exp(-1000), a)
    with pytest.raises(DtypeError, match="theta holds complex numbers.*Fix"):
        sg.compile(a**2, wrt=[a], backend="python").value_and_grad(np.array([1 + 5j]))


def test_lists_are_checked_as_arrays_are():
    # a complex ndarray is refused, but the same numbers as a list lost their imaginary parts with
    # only NumPy's ComplexWarning; a list of strings (or theta ["2"]) was parsed as numbers
    a, t, y = sp.symbols("a t y", real=True)
    f = sg.compile((a * t - y) ** 2, wrt=[a], data=[t, y], backend="python")
    ys = np.array([2.0, 4.0, 6.0])
    with pytest.raises(sg.errors.DtypeError, match="data 't' holds complex numbers.*Fix"):
        f.value([2.0], [1 + 5j, 2 + 5j, 3 + 5j], ys)
    with pytest.raises(sg.errors.DtypeError, match="data 't' holds text.*Fix"):
        f.value([2.0], ["1", "2", "3"], ys)
    for theta in (["2"], np.array(["2"])):
        with pytest.raises(sg.errors.DtypeError, match="theta holds text.*Fix"):
            f.value(theta, ys / 2, ys)
    assert f.value([2], [1, 2, 3], [2, 4, 6]) == 0.0  # lists of numbers are still numbers


def test_one_symbol_per_name():
    # Symbol('a') and Symbol('a', real=True) were merged into one variable when both were made
    # real (grad 8.87 where SymPy's d/da_real is 2.87); a real a in the expression with a plain a
    # in wrt= was "neither a parameter nor data"
    x, y = sp.symbols("x y", real=True)
    a_real, a_plain = sp.Symbol("a", real=True), sp.Symbol("a")
    xs = np.linspace(0.1, 2, 20)
    with pytest.raises(sg.errors.NamingError, match=r"two different symbols named 'a': Symbol\('a'\) and "
                                                    r"Symbol\('a', real=True\).*Fix"):
        sg.compile((a_real * x - y) ** 2 + a_plain**2, wrt=[a_real], data=[x, y], backend="python")
    with pytest.raises(sg.errors.NamingError, match="Dummy"):
        sg.grad(x**2 + sp.Dummy("x"), x)
    for expr, wrt in (((a_plain * x - y) ** 2, a_real), ((a_real * x - y) ** 2, a_plain)):
        f = sg.compile(expr, wrt=[wrt], data=[x, y], backend="python")
        assert f.grad([3.0], xs, 2 * xs)[0] == pytest.approx(np.mean(2 * xs * (3 * xs - 2 * xs)), rel=1e-14)


def test_constants_that_compile_wrong_are_refused():
    # 0**a compiled into code naming an undefined nan (NameError / Numba TypingError); asin(2)
    # and (-1)**(1/3) are complex, and compiled to NaN everywhere; float32 rounded exp(-120) in
    # 1e30*exp(-120)*x to 0 on its own; the parser read 1e-400 as 0 and dropped the term
    a, t, x = sp.symbols("a t x", real=True)
    with pytest.raises(sg.errors.UnsupportedFunctionError, match=r"0\*\*a .* derivative is undefined.*Fix"):
        sg.compile(sp.Integer(0) ** a * t, wrt=[a], data=[t], backend="python")
    for e in (sp.asin(2) * x, (-1) ** sp.Rational(1, 3) * x, sp.root(x, 3, 1)):
        with pytest.raises(sg.errors.UnsupportedFunctionError, match=r"is not real .*Fix"):
            sg.compile(e, wrt=[x], backend="python")
    e = sp.Float(1e30) * sp.exp(-120) * x
    with pytest.raises(sg.errors.UnsupportedFunctionError, match=r"exp\(-120\).*beyond float32's range.*dtype='float64'"):
        sg.compile(e, wrt=[x], dtype="float32", backend="python")
    assert sg.compile(e, wrt=[x], backend="python").grad([1.0])[0] == pytest.approx(float(1e30 * sp.exp(-120)), rel=1e-15)
    for e, dt in ((sp.Rational(1, 10**44) * x, "float32"), (sp.Rational(3, 10**45) * x, "float32"),
                  (sp.Rational(1, 10**320) * x, "float64")):  # subnormal: 1e-44 compiled as 9.8e-45
        with pytest.raises(sg.errors.UnsupportedFunctionError, match=f"beyond {dt}'s range of full precision"):
            sg.compile(e, wrt=[x], dtype=dt, backend="python")
    with pytest.raises(sg.errors.ParseError, match=r"'1e-400' is below the smallest float.*Fix"):
        sg.parse_expr("1e-400*x + x**2")
    from symgrad.codegen.printer import NumbaPrinter

    for c in (sp.nan, sp.zoo):  # a derivative SymPy leaves undefined is never printed as a name
        with pytest.raises(sg.errors.UnsupportedModelError, match="undefined.*Fix"):
            NumbaPrinter().doprint(c * x)


def test_fuzzed_forms_compile_and_agree_with_the_oracle():
    # raw errors a random search found: the BCE pairing met an int 0 (AttributeError), the tails
    # rewrite made sigmoid_e inside exp, whose |.| SymPy wrote with re() (no printer), and rewrote
    # the constant 1 - σ(1) inside Min (not comparable); the non-finite diagnosis met sign's
    # DiracDelta (NameError in place of the warning). Oracle: sympy.diff in mpmath, 30 digits.
    a, b, x = sp.symbols("a b x", real=True)
    sig = sg.ops.sigmoid
    for e, at in ((sp.log(1 + sp.exp(b)) + sp.log(1 + sp.exp(-b)) ** 2, {b: 0.7}),
                  (sig(sp.exp(sig(a) - 1)), {a: 0.3}), (sp.Min(a, 1 - sig(1)), {a: 0.9})):
        (v,) = sorted(e.free_symbols, key=str)
        f = sg.compile(e, wrt=[v], reduction="sum", backend="python")
        assert f.value([at[v]]) == pytest.approx(float(e.subs(at).evalf(30)), rel=1e-14)
        assert f.grad([at[v]])[0] == pytest.approx(float(sp.diff(e, v).subs(at).evalf(30)), rel=1e-13, abs=1e-300)
    g = sg.compile(sp.sign(a) * sp.sqrt(a * x), wrt=[a], data=[x], backend="python")
    with pytest.warns(sg.NonFiniteWarning, match=r"derivative with respect to a.*first at 1/(a|Abs\(a\)) = "):
        g.grad([0.0], np.array([1.0, 2.0]))


def test_messages_name_the_actual_problem():
    # 'lambda*x' said "invalid syntax (at the end of the input)"; a DataFrame with pandas.NA was told
    # to convert with np.asarray(X, dtype=float), which fails on NA; next-token targets with the
    # softmax cross-entropy were told to use "a model with 5 outputs"
    with pytest.raises(sg.errors.ParseError, match="'lambda' is a Python keyword.*Fix: rename it"):
        sg.parse_expr("x + lambda*w**2")
    assert str(sg.parse_expr("lambda_*x")) == "lambda_*x"
    net = sg.nn.Transformer(vocab=7, d=6, heads=3, layers=1, context=5)
    ids = np.random.default_rng(0).integers(0, 7, (20, 5))
    with pytest.raises(sg.errors.ShapeError, match="loss='token_cross_entropy'"):
        sg.fit(net, "softmax_cross_entropy", ids, ids, epochs=1, backend="python")
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [0.1, 0.2, 0.3, 0.4], "b": pd.array([1, None, 3, 4], dtype="Int64")})
    with pytest.raises(sg.errors.DataError, match=r"missing values.*dropna"):
        sg.fit(sg.nn.MLP([2, 3, 1]), "mse", df, np.zeros(4), epochs=1, backend="python")


def test_formulas_refuse_a_softmax_over_one_output():
    # `symgrad formulas "mlp 2-3-1 ce"` printed the softmax cross-entropy of one output, 0 whatever
    # the weights; sg.fit refused it only when it met the data
    with pytest.raises(sg.errors.ShapeError, match=r"needs at least 2 outputs.*Fix: 'bce'"):
        sg.formulas(sg.nn.MLP([2, 3, 1]), "softmax_cross_entropy")
    assert "δ_z2" in str(sg.formulas(sg.nn.MLP([2, 3, 2]), "softmax_cross_entropy"))


def test_naming_messages_and_the_latex_of_a_starred_target():
    # names={"foo": ...} was called "a variable" although no foo is in the expression; a key the
    # stable form removed named no way to keep it; (y - y*)² printed ((y - y^{*}))² in LaTeX
    x = sp.Symbol("x", real=True)
    with pytest.raises(sg.errors.NamingError, match=r"'foo' is not in the expression \(its variables: x\)"):
        sg.explain(sp.sin(x**2), x, names={"foo": "q"})
    a, t = sp.symbols("a t", real=True)
    y = 1 / (1 + sp.exp(-a))
    with pytest.raises(sg.errors.NamingError, match="textbook=True"):
        sg.explain(-(t * sp.log(y) + (1 - t) * sp.log(1 - y)), a, names={y: "y"})
    net = sg.nn.MLP([3, 4, 1], "sigmoid", output="sigmoid", bias=False, names={"target": "y*", "act": ["z", "y"]})
    line = next(ln for ln in sg.formulas(net, "mse").latex().splitlines() if ln.startswith(r"\ell"))
    assert r"\left(y - y^{*}\right)^{2}" in line and r"\left(\left(" not in line


def test_sparse_torch_and_flat_list_inputs_of_compiled_functions():
    """A sparse matrix got the fix np.asarray(values), which fails the same way; a torch tensor
    that requires grad raised torch's RuntimeError; a matrix model's flat parameter vector given
    as a list was refused as 'got 26 arrays' (a formula takes it)."""
    from symgrad.errors import DtypeError

    net, y = sg.nn.MLP([3, 4, 2], activation="tanh"), sp.MatrixSymbol("y", 2, 1)
    f = sg.compile(sg.losses.mse(net.expr, y), net.params, [net.x, y], backend="python")
    ps = net.init_params(0)
    flat = np.concatenate([p.ravel() for p in ps])
    X, Y = np.linspace(-1, 1, 15).reshape(5, 3), np.zeros((5, 2))
    want = f.value(ps, X, Y)
    for theta in (flat, flat.tolist(), tuple(flat), flat[None, :]):
        assert f.value(theta, X, Y) == want
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(DtypeError, match=r"data 'x' is a sparse matrix.*Fix: pass its .toarray\(\)"):
        f.value(ps, sparse.csr_matrix(X), Y)
    torch = pytest.importorskip("torch")
    a, t = sp.symbols("a t", real=True)
    g = sg.compile((a * t - 1) ** 2, wrt=[a], data=[t], backend="python")
    T = torch.linspace(0, 1, 5, dtype=torch.float64)
    with pytest.raises(DtypeError, match=r"theta is a torch tensor that requires grad.*Fix: pass tensor.detach"):
        g.value(torch.tensor([1.0], dtype=torch.float64, requires_grad=True), T)
    with pytest.raises(DtypeError, match=r"data 't' is a bfloat16 torch tensor.*Fix"):
        g.value([1.0], T.to(torch.bfloat16))
    with pytest.raises(DtypeError, match=r"^X is a torch tensor that requires grad"):
        sg.fit(sg.nn.MLP([1, 2, 1]), "mse", T[:, None].clone().requires_grad_(), T, epochs=1, backend="python")
    assert g.value([1.0], T) == g.value([1.0], T.numpy())


def test_masked_parameters_are_refused_not_unmasked():
    a, t = sp.symbols("a t", real=True)
    g = sg.compile((a * t - 1) ** 2, wrt=[a], data=[t], backend="python")
    with pytest.raises(DataError, match="^theta is a masked array with masked entries"):
        g.value(np.ma.masked_array([1.0], mask=[True]), np.ones(3))
    assert g.value(np.ma.masked_array([1.0]), np.ones(3)) == 0.0
    net = sg.nn.MLP([2, 3, 1])
    ps = net.init_params(0)
    ps[0] = np.ma.masked_array(ps[0], mask=ps[0] > 0)
    with pytest.raises(DataError, match=r"^params\['W1'\] is a masked array with masked entries"):
        sg.fit(net, "mse", np.ones((4, 2)), np.ones(4), params=ps, epochs=1, backend="python")


def test_missing_labels_column_labels_and_exact_decimal_points():
    from decimal import Decimal

    import mpmath

    net = sg.nn.MLP([2, 3, 2], activation="tanh")
    X = np.ones((3, 2))
    pd = pytest.importorskip("pandas")
    with pytest.raises(TargetError, match="^Y has missing labels"):
        sg.fit(net, "softmax_cross_entropy", X, pd.Series([0, 1, None], dtype="Int64"), epochs=1, backend="python")
    with pytest.raises(TargetError, match="^Y has missing values"):
        sg.fit(sg.nn.MLP([2, 3, 1]), "bce", X, pd.Series([True, None, False], dtype="boolean"), epochs=1,
               backend="python")
    # a column of class labels: the language-model hint (labels at each of k positions) is for k > 1
    with pytest.raises(Exception, match=r"one-hot rows of 2\.$"):
        sg.fit(net, "softmax_cross_entropy", X, np.array([[0], [1], [1]]), epochs=1, backend="python")
    x = sp.Symbol("x", real=True)
    J = sp.cos(sp.sin(x**2) + 3 * x**2)
    want = str(sg.explain(J, x, at={x: 0.5}))
    assert str(sg.explain(J, x, at={x: Decimal("0.5")})) == want == str(sg.explain(J, x, at={x: mpmath.mpf("0.5")}))
