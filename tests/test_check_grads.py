"""sg.check_grads: passes on correct gradients, and fails loudly on wrong ones."""

import numpy as np
import pytest
import sympy as sp

import symgrad as sg

a, b, t, y, x = sp.symbols("a b t y x", real=True)


@pytest.fixture(scope="module")
def formula():
    return sg.compile((a * sp.exp(-b * t) - y) ** 2, wrt=[a, b], data=[t, y], backend="python")


def test_passes_on_formula(formula):
    T = np.linspace(0, 2, 50)
    res = sg.check_grads(formula, [1.0, 0.5], T, 2 * np.exp(-0.3 * T))
    assert res.ok and res.fd_error < 1e-7


class _Wrong:
    """Wraps a compiled function and corrupts its gradient."""

    def __init__(self, f, scale):
        self.f, self.scale = f, scale
        self.dtype, self.reduction, self.params = f.dtype, f.reduction, f.params

    def value(self, *args):
        return self.f.value(*args)

    def value_and_grad(self, *args):
        v, g = self.f.value_and_grad(*args)
        return v, g * self.scale


def test_detects_wrong_gradient(formula):
    T = np.linspace(0, 2, 50)
    with pytest.raises(sg.GradientCheckError, match="finite differences"):
        sg.check_grads(_Wrong(formula, 1.01), [1.0, 0.5], T, 2 * np.exp(-0.3 * T))
    res = sg.check_grads(_Wrong(formula, 1.01), [1.0, 0.5], T, 2 * np.exp(-0.3 * T), raise_on_failure=False)
    assert not res.ok and "FAILED" in str(res)


def test_pointwise_jacobian():
    f = sg.compile(sp.cos(sp.sin(x**2) + 3 * x**2), wrt=[x], reduction="none", backend="python")
    res = sg.check_grads(f, [np.linspace(-2, 2, 101)])
    assert res.ok


def test_tensor_model():
    W = sp.MatrixSymbol("W", 3, 2)
    xv = sp.MatrixSymbol("xv", 2, 1)
    f = sg.compile(sg.msum((W * xv).applyfunc(sp.tanh)), [W], [xv], backend="python")
    rng = np.random.default_rng(0)
    assert sg.check_grads(f, [rng.normal(size=(3, 2))], rng.normal(size=(10, 2))).ok


class _Corrupt:
    """Wraps a compiled formula and corrupts one of its outputs (the rest pass through)."""

    def __init__(self, f, what):
        self.f, self.what = f, what
        self.dtype, self.reduction, self.params, self.has_hessian = f.dtype, f.reduction, f.params, True

    def value(self, *args):
        return self.f.value(*args)

    def value_and_grad(self, *args):
        v, g = self.f.value_and_grad(*args)
        return (v * 1.001 if self.what == "value" else v), g

    def grad(self, *args):
        return self.value_and_grad(*args)[1]

    def hvp(self, theta, v, *data):
        return self.f.hvp(theta, v, *data) * (1.01 if self.what == "hvp" else 1.0)

    def hessian(self, *args):
        h = self.f.hessian(*args)
        return h + (np.diag([0.0, 1e-2 * abs(h[1, 1])]) if self.what == "hessian" else 0.0)


@pytest.mark.parametrize("what,field", [("value", "value_error"), ("hvp", "hvp_error"),
                                        ("hessian", "hessian_error")])
def test_detects_wrong_value_hvp_and_hessian(formula, what, field):
    """A right gradient next to a wrong value, a wrong hvp or a wrong Hessian fails the check."""
    T = np.linspace(0, 2, 50)
    data = (T, 2 * np.exp(-0.3 * T))
    good = sg.check_grads(formula, [1.0, 0.5], *data)
    assert good.ok and good.hvp_error < 1e-6 and good.hessian_error < 1e-12 and good.value_error < 1e-15
    with pytest.raises(sg.GradientCheckError):
        sg.check_grads(_Corrupt(formula, what), [1.0, 0.5], *data)
    bad = sg.check_grads(_Corrupt(formula, what), [1.0, 0.5], *data, raise_on_failure=False)
    errors = {f: getattr(bad, f) for f in ("value_error", "hvp_error", "hessian_error", "fd_error")}
    assert errors.pop(field) > bad.rtol and errors["fd_error"] <= bad.rtol, errors  # the gradient is right


def test_check_grads_checks_a_residual_models_jacobian():
    # a compile_residuals model raised AttributeError ('CompiledResiduals' has no 'value')
    import sympy as sp

    import symgrad as sg

    a, b, x, y = sp.symbols("a b x y", real=True)
    xs = np.linspace(0.0, 3.0, 20)
    r = sg.compile_residuals(a * sp.exp(-b * x) - y, wrt=[a, b], data=[x, y], backend="python")
    assert sg.check_grads(r, [2.0, 0.5], xs, np.sin(xs)).ok
    wrong = sg.compile_residuals(a * sp.exp(-b * x) - y, wrt=[a, b], data=[x, y], backend="python")
    wrong.jacobian = lambda th, *d: 1.01 * r.jacobian(th, *d)  # a Jacobian 1% off fails
    with pytest.raises(AssertionError):
        sg.check_grads(wrong, [2.0, 0.5], xs, np.sin(xs))


def test_a_zero_gradient_is_checked_against_the_differences_own_uncertainty():
    # at a minimum the central difference is all truncation and rounding error (1.2e-12 at
    # Rosenbrock's, against an exact 0): a pure relative error called it a 100% disagreement
    u, v = sp.symbols("u v", real=True)
    rosen = sg.compile((1 - u) ** 2 + 100 * (v - u**2) ** 2, wrt=[u, v], backend="python")
    assert sg.check_grads(rosen, [1.0, 1.0]).ok

    class Shifted:  # the same function with a gradient off by 1e-7 plus 1e-8 of itself: still caught
        dtype, reduction = rosen.dtype, "mean"
        value = staticmethod(rosen.value)

        @staticmethod
        def value_and_grad(th):
            val, g = rosen.value_and_grad(th)
            return val, g * (1 + 1e-8) + 1e-7

    with pytest.raises(sg.GradientCheckError, match="FAILED"):
        sg.check_grads(Shifted(), [1.0, 1.0])
    with pytest.raises(sg.GradientCheckError, match="FAILED"):
        sg.check_grads(Shifted(), [-1.2, 1.0], rtol=1e-9)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_perfect_fits_minimum_passes(dtype):
    # there f is ~0 but r = a·exp(-b·t) - y rounds at the size of y: the noise of the differences
    # is not the size of f (a float32 check failed at 49% "relative error" between two noises)
    a, b, t, y = sp.symbols("a b t y", real=True)
    f = sg.compile((a * sp.exp(-b * t) - y) ** 2, wrt=[a, b], data=[t, y], dtype=dtype, backend="python")
    ts = np.linspace(0, 3, 100).astype(dtype)
    ys = (1.5 * np.exp(-0.8 * ts)).astype(dtype)
    for seed in range(5):
        assert sg.check_grads(f, [1.5, 0.8], ts, ys, seed=seed).ok
