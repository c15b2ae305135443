"""Fuzzing the public entry points (issue 19): arbitrary arrays (dtypes, shapes, NaN/Inf, masked,
read-only, non-contiguous, lists, None) and arbitrary small expressions. The only outcomes allowed are
a correct result, checked against an independent oracle (NumPy, sympy.diff evaluated numerically, central
finite differences), or a SymgradError.

Quick by default (a few seconds). The long run: ``SYMGRAD_FUZZ=long`` in the environment, or a long
corpus (``--corpus N`` above its default 300, the option tests/test_corpus.py reads), e.g.
``SYMGRAD_FUZZ=long python -m pytest tests/test_fuzz_public.py``.
Everything runs on backend="python" (no Numba compile).
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from decimal import Decimal

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symgrad as sg
from symgrad.errors import SymgradError

a, b, x = sp.symbols("a b x", real=True)


@pytest.fixture
def examples(request):
    """(quick, long) -> the number of examples of this run."""
    long = os.environ.get("SYMGRAD_FUZZ") == "long" or request.config.getoption("--corpus") > 300
    return lambda quick, many: many if long else quick


def _settings(n):
    return settings(max_examples=n, deadline=None, derandomize=os.environ.get("SYMGRAD_FUZZ") != "long",
                    suppress_health_check=list(HealthCheck))


def close(got, want, rtol=1e-7, atol=1e-9):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=rtol, atol=atol)


# -- arbitrary arrays ------------------------------------------------------------------------------

DTYPES = [np.float64, np.float32, np.int64, np.int32, np.bool_, np.complex128, np.float16, object, "U3"]


@st.composite
def arrays(draw, widths=(None, 1, 2)):
    """An array as users hand them over: any dtype, 1-D or 2-D, NaN/Inf, masked, read-only, strided, a list."""
    n, w = draw(st.integers(0, 6)), draw(st.sampled_from(widths))
    shape = (n,) if w is None else (n, w)
    dtype = draw(st.sampled_from(DTYPES))
    values = draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3) | st.sampled_from([np.nan, np.inf, -np.inf])))
    if dtype == "U3":
        arr = values.astype("U3")
    elif dtype is object:
        arr = values.astype(object)
    else:
        with np.errstate(invalid="ignore"):
            arr = values.astype(dtype)
    form = draw(st.sampled_from(["plain", "readonly", "strided", "fortran", "masked", "list", "none"]))
    if form == "readonly":
        arr.setflags(write=False)
    elif form == "strided":
        big = np.repeat(arr, 2, axis=0)
        arr = big[::2]
    elif form == "fortran":
        arr = np.asfortranarray(arr)
    elif form == "masked":
        arr = np.ma.array(arr, mask=draw(hnp.arrays(np.bool_, shape)))
    elif form == "list":
        arr = arr.tolist()
    elif form == "none":
        arr = None
    return arr


def _as_numbers(arr) -> np.ndarray | None:
    """What a correct answer is computed from: the float64 values, or None where no answer is right."""
    if arr is None:
        return None
    if isinstance(arr, np.ma.MaskedArray):
        if np.ma.getmaskarray(arr).any():
            return None
        arr = np.ma.getdata(arr)
    try:
        out = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out).all() else None


def _outcome(call):
    """The result of ``call``, or None for a SymgradError (the other allowed outcome)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return call()
    except SymgradError as err:
        assert "Fix" in str(err) or str(err), err  # a message, at least
        return None


@functools.cache
def F():
    return sg.compile((a * x + b) ** 2, [a, b], [x], backend="python")


def test_formula_on_arbitrary_data(examples):
    @_settings(examples(60, 1500))
    @given(arrays(), st.lists(st.floats(-2, 2), min_size=2, max_size=2))
    def run(data, theta):
        before = None if data is None or isinstance(data, list) else repr(np.ma.getdata(data).tolist())
        got = _outcome(lambda: F().value_and_grad(theta, data))
        if before is not None:  # the caller's array is never written to
            assert repr(np.ma.getdata(data).tolist()) == before
        if got is None:
            return
        xs = _as_numbers(data)
        assert xs is not None and xs.size > 0, f"accepted {data!r}"
        kind = np.asarray(data).dtype.kind
        # float64, or whole numbers that float64 holds exactly (converted as NumPy and scikit-learn do)
        assert isinstance(data, list) or np.asarray(data).dtype == np.float64 or kind in "iub", f"accepted dtype {kind}"
        assert kind not in "iu" or max(abs(int(v)) for v in np.ravel(data)) <= 2**53, f"accepted integers float64 rounds: {data!r}"
        xs = xs.reshape(len(xs), -1)
        assert xs.shape[1] == 1, f"accepted shape {xs.shape}"
        xs = xs[:, 0]
        r = theta[0] * xs + theta[1]
        close(got[0], np.mean(r**2))
        close(got[1], [np.mean(2 * r * xs), np.mean(2 * r)])

    run()


@functools.cache
def trained():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 2))
    return sg.fit(sg.nn.MLP([2, 3, 1], activation="tanh"), "mse", X, X[:, 0] * X[:, 1], epochs=2, backend="python")


def _forward(m, X):
    W1, b1, W2, b2 = m.params
    return (W2 @ np.tanh(W1 @ X.T + b1) + b2).T


def test_predict_and_evaluate_on_arbitrary_arrays(examples):
    @_settings(examples(60, 1500))
    @given(arrays(widths=(None, 1, 2, 3)), st.floats(-2, 2))
    def run(X, shift):
        m = trained()
        got = _outcome(lambda: m.predict(X))
        if got is not None:
            xs = _as_numbers(X)
            assert xs is not None and xs.ndim == 2 and xs.shape[1] == 2, f"predict accepted {X!r}"
            close(np.reshape(got, (len(xs), 1)), _forward(m, xs))
        y = np.full(0 if X is None else len(X), shift)
        ev = _outcome(lambda: m.evaluate(X, y))
        if ev is not None:
            xs = _as_numbers(X)
            assert xs is not None and len(xs) > 0 and xs.shape[1:] == (2,), f"evaluate accepted {X!r}"
            close(ev["loss"], np.mean((_forward(m, xs)[:, 0] - shift) ** 2))

    run()


# -- arbitrary small expressions -------------------------------------------------------------------

UNARY = [sp.sin, sp.cos, sp.tanh, sp.exp, sp.atan, lambda u: sp.log(1 + u**2), lambda u: sp.sqrt(1 + u**2),
         sg.ops.sigmoid, sg.ops.softplus, lambda u: u**2, lambda u: u**3, lambda u: 1 / (1 + u**2)]


@st.composite
def expressions(draw, depth=3):
    """A small expression in the parameters a, b and the data x, defined on the whole real line."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([a, b, x, a * x, sp.Rational(draw(st.integers(-3, 3)), 2) + b]))
    kind = draw(st.sampled_from(["unary", "add", "mul", "sub"]))
    if kind == "unary":
        return draw(st.sampled_from(UNARY))(draw(expressions(depth - 1)))
    u, v = draw(expressions(depth - 1)), draw(expressions(depth - 1))
    return {"add": u + v, "mul": u * v, "sub": u - v}[kind]


def _oracle(expr, theta, xs):
    """Mean value and gradient from sympy.diff, evaluated by NumPy (never symgrad's code)."""
    args, expr = (a, b, x), sg.ops.expand_ops(expr)  # symgrad's ops as exp/log (lambdify knows those)
    f = sp.lambdify(args, expr, "numpy")
    gs = [sp.lambdify(args, sp.diff(expr, s), "numpy") for s in (a, b)]
    with np.errstate(all="ignore"):
        v = np.broadcast_to(f(*theta, xs), xs.shape).mean()
        g = [np.broadcast_to(gi(*theta, xs), xs.shape).mean() for gi in gs]
    return float(v), np.array(g, dtype=float)


def test_expressions_match_sympy_diff(examples):
    @_settings(examples(25, 400))
    @given(expressions(), st.lists(st.floats(-1.5, 1.5), min_size=2, max_size=2),
           hnp.arrays(np.float64, st.integers(1, 5), elements=st.floats(-2, 2)))
    def run(expr, theta, xs):
        params = [s for s in (a, b) if s in expr.free_symbols]
        data = [x] if x in expr.free_symbols else []
        try:
            f = sg.compile(expr, [a, b], data, backend="python", on_nonfinite="raise")
        except SymgradError:
            return
        want_v, want_g = _oracle(expr, theta, xs)
        got = _outcome(lambda: f.value_and_grad(theta, *([xs] if data else [])))
        finite = math.isfinite(want_v) and np.isfinite(want_g).all() and abs(want_v) < 1e12
        if got is None:
            assert not finite or not params or not data, f"refused a finite case: {expr} at {theta}, {xs}"
            return
        if finite:
            close(got[0], want_v, rtol=1e-7, atol=1e-9)
            close(got[1], want_g, rtol=1e-6, atol=1e-8)

    run()


@functools.cache
def tensor():
    net, y = sg.nn.MLP([2, 3, 1], activation="tanh"), sp.MatrixSymbol("y", 1, 1)
    return sg.compile(sg.losses.mse(net.expr, y), net.params, [net.x, y], backend="python")


def test_tensor_gradient_matches_finite_differences(examples):
    @_settings(examples(15, 300))
    @given(hnp.arrays(np.float64, 13, elements=st.floats(-1, 1)),
           hnp.arrays(np.float64, (4, 3), elements=st.floats(-2, 2)),
           st.sampled_from(["flat", "list", "readonly", "strided"]))
    def run(theta, data, form):
        f = tensor()
        X, Y = data[:, :2], data[:, 2]
        if form == "readonly":
            theta = theta.copy()
            theta.setflags(write=False)
        elif form == "strided":
            X = np.repeat(X, 2, axis=0)[::2]
        th = f.unpack(theta)[0] if form == "list" else theta
        v, g = f.value_and_grad(th, X, Y)
        g = np.concatenate([q.ravel() for q in g]) if form == "list" else g
        flat = np.asarray(theta, dtype=float)
        h = 1e-6
        fd = [(f.value(flat + h * e, X, Y) - f.value(flat - h * e, X, Y)) / (2 * h) for e in np.eye(13)]
        close(g, fd, rtol=1e-5, atol=1e-7)
        close(v, f.value(flat, X, Y))

    run()


# -- optimizers and schedules with arbitrary settings -----------------------------------------------

ANY = (st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5) | st.booleans() | st.none()
       | st.text(max_size=3) | st.just([0.1]))


def test_optimizers_and_schedules_take_any_setting(examples):
    opts = [sg.optim.SGD, sg.optim.Momentum, sg.optim.Nesterov, sg.optim.Adam, sg.optim.AdamW,
            sg.optim.AdaGrad, sg.optim.RMSProp]
    scheds = {sg.optim.StepLR: ("step_size", "gamma"), sg.optim.ExponentialLR: ("gamma",),
              sg.optim.CosineLR: ("t_max", "lr_min"),
              sg.optim.ReduceLROnPlateau: ("factor", "patience", "threshold", "cooldown", "min_lr")}

    @_settings(examples(100, 3000))
    @given(st.sampled_from(opts), st.sampled_from(list(scheds)), ANY, ANY, st.integers(0, 20))
    def run(opt, sched, v, w, epoch):
        o = _outcome(lambda: opt(lr=v))
        if o is not None:
            assert isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            assert o.lr == float(v) and o.lr_at(epoch) == float(v)
        names = scheds[sched]
        s = _outcome(lambda: sched(**{names[0]: v, names[-1]: w} if len(names) > 1 else {names[0]: v}))
        if s is not None:
            for value in (v, w)[: len(names)]:
                assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            lr = sg.optim.SGD(lr=0.5, schedule=s).lr_at(epoch, {"loss": [1.0] * epoch, "val_loss": [1.0] * epoch})
            # gamma > 1 grows, for StepLR as for ExponentialLR (past float64's range: inf)
            assert lr >= 0 and (math.isfinite(lr) or sched in (sg.optim.ExponentialLR, sg.optim.StepLR))
            if sched in (sg.optim.StepLR, sg.optim.ExponentialLR):
                gamma, n = (w, int(epoch // v)) if sched is sg.optim.StepLR else (v, epoch)
                exact = Decimal(0.5) * Decimal(gamma) ** n  # the closed form, exactly
                assert lr == (pytest.approx(float(exact)) if exact < Decimal("1e300") else lr)

    run()
