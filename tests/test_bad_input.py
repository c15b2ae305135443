"""Bad input to compile gets a SymgradError that names the fix; a lone symbol is a list of one."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import OptionError, UnboundSymbolError

a, b, x = sp.symbols("a b x", real=True)


def test_a_lone_symbol_is_a_list_of_one():
    f = sg.compile(a * x + b, wrt=[a, b], data=x, backend="python")
    g = sg.compile(a * x, wrt=a, data=[x], backend="python")
    assert f.value_and_grad([2.0, 1.0], np.array([1.0, 3.0]))[1].tolist() == [2.0, 1.0]
    assert g.grad([2.0], np.array([1.0, 3.0])).tolist() == [2.0]


@pytest.mark.parametrize("kw, text", [
    (dict(wrt=[a, a], data=[x]), "listed more than once in wrt"),  # was accepted, with a wrong gradient
    (dict(wrt=[a], data=[x, x]), "listed more than once in data"),
    (dict(wrt=[2 * a], data=[x]), "not a symbol"),
    (dict(wrt="a", data=[x]), "takes symbols"),
    (dict(wrt=[a], data=3), "takes symbols"),
])
def test_bad_symbol_lists_name_the_fix(kw, text):
    for call in (sg.compile, sg.compile_residuals):
        with pytest.raises(UnboundSymbolError, match="Fix:") as info:
            call(a * x, backend="python", **kw)
        assert text in str(info.value)


def test_silent_nan_inputs_are_refused():
    """NaN theta, masked entries and no rows all came back as NaN or used masked values, silently."""
    from symgrad.errors import DataError

    f = sg.compile(a * x, [a], [x], backend="python")
    with pytest.raises(DataError, match="theta holds a non-finite.*Fix:"):
        f.value_and_grad([np.nan], np.array([1.0]))
    with pytest.raises(DataError, match="masked entries.*Fix:"):
        f.value_and_grad([1.0], np.ma.array([1.0, 2.0], mask=[False, True]))
    assert f.value_and_grad([1.0], np.ma.array([1.0, 2.0]))[1].tolist() == [1.5]  # no mask: fine
    with pytest.raises(DataError, match="no rows.*Fix:"):
        f.value_and_grad([1.0], np.array([]))
    with pytest.raises(DataError, match="non-finite.*Fix:"):
        f.hvp([1.0], [np.inf], np.array([1.0]))
    pw = sg.compile(a * x, [a], [x], reduction="none", backend="python")
    assert pw.pointwise(np.array([]), np.array([]))[0].shape == (0,)  # pointwise of nothing is empty
    # a parameter given as one number holds at every point (it was "data arrays have different lengths")
    xs = np.array([1.0, 2.0, -1.0])
    for th in (2.0, 2, np.float64(2.0)):
        vals, grads = pw.pointwise(th, xs)
        assert vals.tolist() == [2.0, 4.0, -2.0] and grads.tolist() == xs.tolist()
    with pytest.raises(DataError, match=r"the parameters' and data's arrays have different lengths \{'a': 2, 'x': 3\}"):
        pw.pointwise([2.0, 3.0], xs)
    # a parameter is named as one, not as data
    with pytest.raises(DataError, match=r"parameter 'a' is None.*Fix:"):
        pw.pointwise(None, xs)
    with pytest.raises(DataError, match=r"parameter 'a' holds a non-finite value \(nan\) at index 1"):
        pw.pointwise([1.0, np.nan, 2.0], xs)
    with pytest.raises(DataError, match=r"data 'x' holds a non-finite"):
        pw.pointwise(2.0, [1.0, np.inf, 2.0])
    net, y = sg.nn.MLP([2, 2, 1]), sp.MatrixSymbol("y", 1, 1)
    t = sg.compile(sg.losses.mse(net.expr, y), net.params, [net.x, y], backend="python")
    theta = np.concatenate([p.ravel() for p in net.init_params(0)])
    theta[3] = np.nan
    with pytest.raises(DataError, match="theta holds a non-finite"):
        t.value_and_grad(theta, np.ones((2, 2)), np.ones((2, 1)))


def test_more_raw_errors_are_now_symgrad_errors():
    """MLP([2, 0, 3]) was accepted (ZeroDivisionError later), MLP([2, 2.5, 3]) a raw ValueError,
    grad(expr, 2) a raw TypeError, expand_ops of an op of numbers an AttributeError."""
    from symgrad.errors import SymgradError

    for sizes in ([2, 0, 3], [2, 2.5, 3], [2, -1], [2, True, 1]):
        with pytest.raises(SymgradError, match="positive integers.*Fix:"):
            sg.nn.MLP(sizes)
    with pytest.raises(SymgradError, match="wrt must be a Symbol.*Fix:"):
        sg.grad(x**2, 2)
    y = sp.Symbol("y", real=True)
    e = sg.ops.expand_ops(sp.cosh(sg.ops.bce_logits(2.5, sp.Rational(3, 4))) ** y)
    want = float(sp.cosh(sg.ops.bce_logits(2.5, sp.Rational(3, 4))))
    assert abs(float(e.subs(y, 1)) - want) < 1e-14


def test_constants_that_are_not_finite_reals_and_open_piecewise_are_refused():
    """Found by the errors catalogue: I*a*x compiled and the Python backend returned (2j, [0.]),
    a wrong gradient; oo and nan failed inside the generated code (NameError, Numba TypingError);
    a Piecewise without a final True branch raised a raw ValueError from the printer."""
    a, x = sp.symbols("a x", real=True)
    for e in (sp.I * a * x, sp.exp(sp.I * a) * x, a * x + sp.oo, a * x * sp.nan, a * x + sp.zoo):
        with pytest.raises(sg.errors.UnsupportedFunctionError, match="not a finite real number"):
            sg.compile(e, wrt=[a], data=[x], backend="python")
    with pytest.raises(sg.errors.UnsupportedFunctionError, match=r"no final \(value, True\) branch"):
        sg.compile(sp.Piecewise((a * x, x > 0)), wrt=[a], data=[x], backend="python")
    # finite real constants still compile
    f = sg.compile(sp.Piecewise((a * x, x > 0), (0, True)) + sp.pi * a + sp.E, wrt=[a], data=[x], backend="python")
    assert f.value([1.0], np.array([1.0, -1.0])) == pytest.approx(0.5 + np.pi + np.e)


def test_data_in_the_other_byte_order_is_the_same_numbers():
    # big-endian files (FITS, some HDF5): refused with the advice to compile with dtype='>f8',
    # which compiled a function that refused them the same way
    x, t = sp.symbols("x t", real=True)
    f = sg.compile(x * t, wrt=[x], data=[t], backend="python")
    assert f.value([1.0], np.array([1.0, 2.0], dtype=">f8")) == 1.5
    with pytest.raises(sg.errors.DtypeError, match=r"dtype >f4.*compile with dtype='float32'"):
        f.value([1.0], np.array([1.0, 2.0], dtype=">f4"))


def test_parameters_that_are_not_real_numbers_are_refused_by_name():
    # complex starting parameters lost their imaginary parts (NumPy's ComplexWarning only); text and
    # ragged ones, a ragged theta and a text point to check_grads raised NumPy's ValueError; a None in
    # an object theta was blamed on a diverged optimizer; class labels of 1e20 were named -9.2e18
    from symgrad.errors import DataError, DtypeError, ShapeError, TargetError

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 3)), rng.normal(size=40)
    net = sg.nn.MLP([3, 4, 1], activation="tanh")
    p0 = net.init_params(0)
    cases = [([p + 5j for p in p0], DtypeError, r"params\['W1'\] holds complex"),
             ([np.full(p.shape, "a") for p in p0], DtypeError, r"params\['W1'\] holds text"),
             ([[[1.0, 2.0], [3.0]]] + p0[1:], ShapeError, r"params\['W1'\] is not an array of numbers")]
    for params, error, text in cases:
        with pytest.raises(error, match=text):
            sg.fit(net, "mse", X, Y, epochs=1, params=params, backend="python")
    f = sg.compile((a * x - 1) ** 2, wrt=[a], data=[x], backend="python")
    with pytest.raises(ShapeError, match="theta is not an array of numbers"):
        f.value([[1.0], [2.0, 3.0]], np.ones(3))
    with pytest.raises(DataError, match="theta holds None.*parameters' numbers"):
        f.value(np.array([None], dtype=object), np.ones(3))
    with pytest.raises(DtypeError, match="point holds text"):
        sg.check_grads(f, "ab", np.ones(3))
    with pytest.raises(TargetError, match=r"got float64 in \[0.0, 1e\+20\]"):
        sg.fit(sg.nn.MLP([3, 4, 2]), "softmax_cross_entropy", X, np.where(X[:, 0] > 0, 1e20, 0.0), epochs=1,
               backend="python")


def test_a_batch_larger_than_the_data_is_the_data():
    # the kernel's buffers were sized by batch_size: 10**9 on 40 rows asked for gigabytes (MemoryError)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 3)), rng.normal(size=40)
    net = sg.nn.MLP([3, 4, 1], activation="tanh")
    runs = [sg.fit(net, "mse", X, Y, epochs=2, batch_size=bs, backend="python") for bs in (40, 1000, 10**9, 2**62)]
    for m in runs[1:]:
        np.testing.assert_array_equal(m.history["loss"], runs[0].history["loss"])


def test_a_failing_callback_or_metric_keeps_the_epochs_trained():
    # a metric that failed after 5 epochs lost them (its OptionError had no .result); a callback of one
    # argument raised Python's TypeError after the first epoch instead of before it
    from symgrad.errors import OptionError

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 3)), (rng.normal(size=60) > 0).astype(int)
    net = sg.nn.MLP([3, 4, 2], activation="tanh")
    calls = []

    def flaky(t, p):
        calls.append(1)
        if len(calls) == 6:  # call 1 is fit's check before training
            raise ZeroDivisionError("no positive predictions")
        return float((t == p).mean())

    with pytest.raises(OptionError, match="flaky") as info:
        sg.fit(net, "softmax_cross_entropy", X, y, epochs=20, validation=(X, y), metrics=[flaky], backend="python")
    assert len(info.value.result.history["loss"]) == 5 and info.value.result.state.epoch == 5

    def stop_at_3(epoch, model):
        if epoch == 3:
            raise RuntimeError("disk full")

    with pytest.raises(OptionError, match="'stop_at_3' failed after epoch 3.*disk full") as info:
        sg.fit(net, "softmax_cross_entropy", X, y, epochs=20, callbacks=[stop_at_3], backend="python")
    more = info.value.result.fit_more(X, y, epochs=2)  # resumable
    assert len(more.history["loss"]) == 5
    with pytest.raises(OptionError, match="does not take two arguments"):
        sg.fit(net, "softmax_cross_entropy", X, y, epochs=2, callbacks=[lambda model: None], backend="python")


def test_an_unknown_keyword_names_the_nearest_option():
    # fit(epoch=5) and fit(lr=0.1) raised Python's TypeError, which names no fix
    from symgrad.errors import OptionError

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(20, 3)), rng.normal(size=20)
    net = sg.nn.MLP([3, 4, 1])
    with pytest.raises(OptionError, match=r"fit\(\) has no option 'epoch'. Fix: epochs="):
        sg.fit(net, "mse", X, Y, epoch=2, backend="python")
    with pytest.raises(OptionError, match=r"no option 'lr'. Fix: the optimizer takes it"):
        sg.fit(net, "mse", X, Y, lr=0.1, backend="python")
    with pytest.raises(OptionError) as info:  # the fix told SGD(momentum=0.9), which SGD does not take
        sg.fit(net, "mse", X, Y, momentum=0.9, backend="python")
    fixes = re.findall(r"sg\.optim\.\w+\([^()]*\)", str(info.value))
    assert len(fixes) == 2
    for fix in fixes:
        assert isinstance(eval(fix, {"sg": sg}), sg.optim.Optimizer)
    m = sg.fit(net, "mse", X, Y, epochs=1, backend="python")
    with pytest.raises(OptionError, match="no option 'batchsize'. Fix: batch_size="):
        m.fit_more(X, Y, batchsize=4)


def test_an_activation_that_gives_a_matrix_is_refused_with_the_fix():
    # it was accepted, and compiling the network raised Numba's NameError on ImmutableDenseMatrix
    with pytest.raises(OptionError, match="one number per entry.*Fix: return a scalar expression"):
        sg.activation(lambda z: sp.Matrix([z, z]))
    with pytest.raises(OptionError, match="gives a matrix. Fix: return a scalar expression"):
        sg.elementwise(lambda q: sp.Matrix([q, q]), sp.MatrixSymbol("z", 2, 1))


def test_custom_models_get_the_fix_for_scalar_params_symbolic_sizes_and_no_init_params():
    # each raised a raw AttributeError or TypeError from inside fit, formulas or compile
    from symgrad.errors import ShapeError

    W1, x, s = sp.MatrixSymbol("W1", 2, 3), sp.MatrixSymbol("x", 3, 1), sp.Symbol("s", real=True)

    class Model:
        def __init__(self, expr, params):
            self.expr, self.params, self.x = expr, params, x

    X, Y = np.ones((4, 3)), np.ones((4, 2))
    with pytest.raises(OptionError, match=r"parameters are matrices.*Fix: sp.MatrixSymbol\('s', 1, 1\)"):
        sg.fit(Model(s * (W1 * x), [W1, s]), "mse", X, Y, params=[np.ones((2, 3)), 1.0], epochs=1)
    with pytest.raises(OptionError, match=r"no init_params.*Fix: pass params="):
        sg.fit(Model(W1 * x, [W1]), "mse", X, Y, epochs=1)
    xr, Wt = sp.MatrixSymbol("xr", 1, 3), sp.MatrixSymbol("Wt", 3, 2)  # fit's target is a column
    row = Model(xr * Wt, [Wt])
    row.x = xr
    with pytest.raises(OptionError, match=r"input is a column.*Fix: write the model on columns"):
        sg.fit(row, "mse", X, Y, params=[np.ones((3, 2))], epochs=1)
    n = sp.Symbol("n", integer=True, positive=True)
    W, v = sp.MatrixSymbol("W", 2, n), sp.MatrixSymbol("v", n, 1)
    with pytest.raises(ShapeError, match=r"shape \(2, n\).*Fix: give its sizes"):
        sg.compile(sg.msum(W * v), [W], [v])


def test_matrix_forms_the_tensor_route_does_not_take_name_their_own_fix():
    # the fix named an unrelated loss (Identity, OneMatrix) or blamed a matrix power (Trace); a reduction
    # inside an elementwise function was an "unsupported function"; a matrix wrt of a formula without one
    # was told to pass Symbols
    from symgrad.errors import SymgradError, UnsupportedFunctionError, UnsupportedModelError

    A, x = sp.MatrixSymbol("A", 3, 3), sp.MatrixSymbol("x", 3, 1)
    cases = [(sg.msum((A + sp.Identity(3)) * x), UnsupportedModelError, "Fix: I·x is x"),
             (sg.msum(sp.OneMatrix(3, 3) * A * x), UnsupportedModelError, r"Fix: sg.msum\(v\) sums"),
             (sg.msum(A * x) * sp.Trace(A), UnsupportedModelError, r"Trace of a matrix.*A\[0, 0\] \+ A\[1, 1\]"),
             (sg.msum(sg.elementwise(lambda q: q - sg.msum(A * x) / 3, A * x)), UnsupportedFunctionError,
              r"elementwise function sees one entry.*Fix: reduce outside it"),
             (sp.Integer(3), SymgradError, "A is a matrix, and the formula 3 holds no matrix. Fix:")]
    for expr, error, text in cases:
        with pytest.raises(error, match=text):
            sg.compile(expr, [A], [x])


def test_a_scalar_formula_in_a_1x1_matrix_is_a_formula():
    """sp.Matrix([[a**2]]) went down the matrix route, whose messages contradicted themselves
    ('expected 1 parameter arrays, got 1')."""
    a = sp.Symbol("a", real=True)
    f = sg.compile(sp.Matrix([[a**2]]), wrt=[a], backend="python")
    assert f.grad(3.0).tolist() == f.grad([3.0]).tolist() == [6.0]


def test_an_element_and_a_symbol_of_one_name_are_told_apart():
    from symgrad.errors import NameClashError

    th, t0 = sp.IndexedBase("theta"), sp.Symbol("theta[0]", real=True)
    with pytest.raises(NameClashError, match=r"the element theta\[0\] of IndexedBase theta and a Symbol named "
                                             r"'theta\[0\]'.*Fix: rename the Symbol"):
        sg.compile(t0**2 + th[0] ** 3, wrt=[t0, th[0]], backend="python")


def test_a_condition_and_heaviside_are_told_their_piecewise():
    # a Relational or And as the formula was told to "build it from SymPy symbols", which it is
    from symgrad.errors import NonScalarLossError, UnsupportedFunctionError

    y = sp.Symbol("y", real=True)
    for cond in (x > 1, sp.Eq(x, y), sp.And(x > 0, y > 0)):
        with pytest.raises(NonScalarLossError, match=re.escape(f"is a condition ({cond}), not a number. Fix: an "
                                                               f"indicator, Piecewise((1, {cond}), (0, True))")):
            sg.compile(cond, wrt=[x], backend="python")
    with pytest.raises(UnsupportedFunctionError, match=re.escape("write Heaviside(x) as Piecewise((0, x < 0), "
                                                                 "(1/2, Eq(x, 0)), (1, True))")):
        sg.grad(x * sp.Heaviside(x), x)
    fixed = sg.grad(x * sp.Piecewise((0, x < 0), (sp.S.Half, sp.Eq(x, 0)), (1, True)), x)  # and the fix works
    assert [fixed.subs(x, v) for v in (-2, 3)] == [0, 1]
    with pytest.raises(UnsupportedFunctionError, match="and Piecewise of them. Fix: rewrite it with these"):
        sg.grad(sp.floor(x) * y, y)


def test_a_flat_vector_of_the_wrong_length_is_said_to_be_one():
    # it was "expected 4 parameter arrays, got 35": the numbers of a vector counted as arrays
    from symgrad.errors import ShapeError

    net, y = sg.nn.MLP([3, 4, 3], activation="tanh"), sp.MatrixSymbol("y", 3, 1)
    f = sg.compile(sg.losses.mse(net.expr, y), net.params, [net.x, y], backend="python")
    X = np.zeros((2, 3))
    with pytest.raises(ShapeError, match=r"or one flat vector of 31 numbers, got an array of shape \(35,\)"):
        f.value(np.zeros(35), X, X)
    with pytest.raises(ShapeError, match=r"got an array of shape \(31, 1\)"):
        f.hvp(np.zeros(31), np.zeros((31, 1)), X, X)
    with pytest.raises(ShapeError, match=r"got 3 arrays"):
        f.value([np.zeros((4, 3)), np.zeros((4, 1)), np.zeros((3, 4))], X, X)


def test_an_indexed_base_as_wrt_is_told_its_elements():
    c, x = sp.IndexedBase("c"), sp.Symbol("x")
    for wrt in ([c], c):
        with pytest.raises(sg.errors.UnboundSymbolError, match=r"its elements, wrt=\[c\[i\] for i in range\(n\)\]"):
            sg.compile(c[0] + c[1] * x, wrt=wrt, data=[x])


@pytest.mark.parametrize("make, says", [
    (lambda: sg.nn.Conv2D(1, 2, 3, dilation=2), r"Conv2D\(\) has no option 'dilation'. Fix: .*kernel_size"),
    (lambda: sg.nn.Embedding(7, 4, context=5, padding_idx=0), r"Embedding\(\) has no option 'padding_idx'. Fix"),
    (lambda: sg.nn.Dense(3, 4, activaton="relu"), r"Dense\(\) has no option 'activaton'. Fix: activation="),
    (lambda: sg.nn.MaxPool2D(2, strides=2), r"MaxPool2D\(\) has no option 'strides'. Fix: stride="),
    (lambda: sg.nn.MultiHeadAttention(8, 2, casual=True), r"MultiHeadAttention\(\) has no option 'casual'. Fix: causal="),
    (lambda: sg.compile(x**2 * a, [a], [x], reducton="sum"), r"compile\(\) has no option 'reducton'. Fix: reduction="),
    (lambda: sg.explain(x**2, x, textbok=True), r"explain\(\) has no option 'textbok'. Fix: textbook="),
    (lambda: sg.formulas(sg.nn.MLP([2, 1]), "mse", att=None), r"formulas\(\) has no option 'att'. Fix: at="),
])
def test_a_keyword_a_layer_does_not_take_is_named_with_the_fix(make, says):
    # PyTorch's dilation=, padding_idx= and a typo were Python's TypeError, naming no fix
    with pytest.raises(sg.errors.OptionError, match=says):
        make()
