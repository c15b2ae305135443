"""Public gradient checking, in the spirit of ``jax.test_util.check_grads``.

Checks of a compiled function's derivatives, each against numbers it did not produce itself:

1. central finite differences along one random direction ``t``:
   (f(θ + εt) − f(θ − εt)) / 2ε  ≈  ⟨∇f(θ), t⟩;
2. the inner-product identity ⟨t, Jᵀc⟩ = ⟨Jt, c⟩ for a random cotangent ``c``, with Jt from (1)
   and Jᵀc from the analytic gradient. For a scalar loss it tests the same numbers from the
   other side; for pointwise functions (one output per point) it tests the whole Jacobian;
3. the value ``value_and_grad`` returns beside the gradient against ``value()``;
4. second order, where the function has it: ``hvp(θ, t)`` against central differences of the
   gradient, (∇f(θ + εt) − ∇f(θ − εt)) / 2ε, and the dense Hessian against ``hvp``: H·t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SymgradError, UnsupportedModelError
from .runtime.checks import real_array

#: The dense Hessian is checked against hvp for at most this many parameters.
MAX_CHECKED_HESSIAN = 64


class GradientCheckError(SymgradError, AssertionError):
    """The analytic gradient disagrees with finite differences."""


@dataclass
class GradCheck:
    """Result of :func:`check_grads`; ``ok`` is whether both errors are within ``rtol``."""

    directional_fd: float
    directional_analytic: float
    fd_error: float
    identity_error: float
    rtol: float
    value_error: float = 0.0  # value_and_grad's value against value()
    hvp_error: float | None = None  # hvp against differences of the gradient (None: no hvp)
    hessian_error: float | None = None  # dense Hessian times t against hvp (None: no dense Hessian)
    fd_uncertainty: float = 0.0  # what the differences cannot resolve; fd_error counts what is beyond it

    @property
    def ok(self) -> bool:
        second = [e for e in (self.hvp_error, self.hessian_error) if e is not None]
        return all(e <= self.rtol for e in (self.fd_error, self.identity_error, self.value_error, *second))

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        gap = abs(self.directional_fd - self.directional_analytic)
        return (f"check_grads {verdict}: finite differences {self.directional_fd:.12g} "
                f"(± {self.fd_uncertainty:.2g}) vs analytic {self.directional_analytic:.12g}: apart by {gap:.2g}, "
                f"relative error beyond the uncertainty {self.fd_error:.2e}; inner-product "
                f"identity error {self.identity_error:.2e}; value beside the gradient vs value() "
                f"{self.value_error:.2e}" + _second(self) + f"; tolerance {self.rtol:.0e}")


def _second(res: GradCheck) -> str:
    out = "" if res.hvp_error is None else f"; hvp vs differences of the gradient {res.hvp_error:.2e}"
    return out + ("" if res.hessian_error is None else f"; Hessian·t vs hvp {res.hessian_error:.2e}")


def _rel(a: float, b: float, slack: float = 0.0) -> float:
    """|a - b| relative to the larger, less ``slack``: what finite differences cannot resolve."""
    return max(abs(a - b) - slack, 0.0) / max(abs(a), abs(b), 1e-300) if (a or b) else 0.0


def _directional(value, flat: np.ndarray, t: np.ndarray, eps: float, dt: np.dtype) -> tuple[float, float]:
    """The central difference along ``t`` and its own uncertainty: the rounding of the values
    (4 unit roundoffs of their size, over 2ε) plus 3 times the gap to the difference at 2ε, which
    holds the truncation error (3/4 of it at 2ε: Richardson) and the rounding noise of values that
    cancel (at a perfect fit's minimum r = W·x + b - y rounds at the size of y while f is ~0; one
    gap measures that noise only roughly, hence the 3). Where the gradient is 0 differences are
    all error (1.2e-12 against an exact 0 at Rosenbrock's); with slack a check there compares them
    with their uncertainty, not with 0, and a gradient 1e-7 off there still fails."""
    fp, fm = value(flat + eps * t), value(flat - eps * t)
    fp2, fm2 = value(flat + 2 * eps * t), value(flat - 2 * eps * t)
    jt, jt2 = (fp - fm) / (2 * eps), (fp2 - fm2) / (4 * eps)
    rounding = 4 * float(np.finfo(dt).eps) * max(abs(fp), abs(fm), abs(fp2), abs(fm2)) / (2 * eps)
    return jt, rounding + 3 * abs(jt2 - jt)


def check_grads(f, point, *data, eps: float | None = None, rtol: float | None = None, seed: int = 0,
                raise_on_failure: bool = True) -> GradCheck:
    """Check ``f``'s gradient at ``point`` (a compiled formula or tensor model), or the Jacobian
    of residuals from ``sg.compile_residuals``.

    ``point`` is the parameter vector (or list of arrays for tensor models); for
    ``reduction='none'`` formulas it is the list of per-point input arrays.

    >>> import sympy as sp, symgrad as sg
    >>> a, t, y = sp.symbols("a t y", real=True)
    >>> f = sg.compile((sp.exp(-a * t) - y) ** 2, wrt=[a], data=[t, y], backend="python")
    >>> check_grads(f, [0.3], [0.0, 0.5, 1.0], [1.0, 0.8, 0.5]).ok
    True
    """
    rng = np.random.default_rng(seed)
    dt = np.dtype(f.dtype)
    eps = eps or (1e-3 if dt == np.float32 else 1e-6)
    rtol = rtol or (2e-2 if dt == np.float32 else 1e-6)
    if getattr(f, "reduction", "mean") == "none":
        return _check_pointwise(f, point, eps, rtol, rng, raise_on_failure)
    if callable(getattr(f, "jacobian", None)) and not callable(getattr(f, "value", None)):  # compile_residuals
        return _check_residuals(f, point, data, eps, rtol, rng, raise_on_failure)
    flat, unflat = _flatten(f, point)
    t = rng.standard_normal(flat.shape)
    jt, slack = _directional(lambda th: float(f.value(unflat(th), *data)), flat, t, eps, dt)
    value, g = f.value_and_grad(unflat(flat), *data)
    g = _flat_grad(g)
    analytic = float(g.astype(np.float64) @ t)
    c = float(rng.standard_normal())
    res = GradCheck(jt, analytic, _rel(jt, analytic, slack), _rel(float(t @ (c * g)), jt * c, abs(c) * slack), rtol,
                    _rel(float(value), float(f.value(unflat(flat), *data))), fd_uncertainty=slack)
    if callable(getattr(f, "hvp", None)):
        _check_second_order(f, flat, unflat, t, eps, data, res)
    return _finish(res, raise_on_failure)


def _flat_grad(g) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in g]) if isinstance(g, list) else np.ravel(g)


def _check_second_order(f, flat, unflat, t, eps, data, res: GradCheck) -> None:
    """hvp against central differences of the gradient; the dense Hessian (if any) against hvp."""
    gp = _flat_grad(f.grad(unflat(flat + eps * t), *data)).astype(np.float64)
    gm = _flat_grad(f.grad(unflat(flat - eps * t), *data)).astype(np.float64)
    fd = (gp - gm) / (2 * eps)
    try:
        hv = _flat_grad(f.hvp(unflat(flat), t, *data)).astype(np.float64)
    except UnsupportedModelError:  # a model without second order: its gradient is still checked
        return
    res.hvp_error = _vec_rel(hv, fd)
    # a tensor model's dense Hessian is one hvp per column: checked where that stays cheap
    if getattr(f, "has_hessian", False) and flat.size <= MAX_CHECKED_HESSIAN:
        res.hessian_error = _vec_rel(np.asarray(f.hessian(unflat(flat), *data), dtype=np.float64) @ t, hv)


def _vec_rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


def _check_pointwise(f, arrays, eps, rtol, rng, raise_on_failure) -> GradCheck:
    k = len(f.params)
    xs = [np.asarray(a, dtype=f.dtype) for a in arrays]
    ts = [rng.standard_normal(len(xs[0])) for _ in range(k)]
    shift = [(x + eps * t).astype(f.dtype) for x, t in zip(xs[:k], ts)] + xs[k:]
    back = [(x - eps * t).astype(f.dtype) for x, t in zip(xs[:k], ts)] + xs[k:]
    jt = (f.pointwise(*shift)[0].astype(float) - f.pointwise(*back)[0].astype(float)) / (2 * eps)
    _, g = f.pointwise(*xs)
    g = g.reshape(len(xs[0]), k).astype(float)
    analytic = (g * np.stack(ts, axis=1)).sum(axis=1)
    c = rng.standard_normal(len(jt))
    lhs = sum(float(t @ (c * g[:, j])) for j, t in enumerate(ts))
    res = GradCheck(float(jt @ c), lhs, float(np.max(np.abs(jt - analytic)) / max(np.max(np.abs(jt)), 1e-300)),
                    _rel(lhs, float(jt @ c)), rtol)
    return _finish(res, raise_on_failure)


def _check_residuals(f, point, data, eps, rtol, rng, raise_on_failure) -> GradCheck:
    """A residual model's Jacobian J: J·t against central differences of the residuals, and
    ⟨Jt, c⟩ against ⟨t, Jᵀc⟩ for a random cotangent c (the whole Jacobian, from both sides)."""
    theta = np.asarray(point, dtype=np.float64).ravel()
    t = rng.standard_normal(theta.shape)
    rp = np.asarray(f.residuals((theta + eps * t).astype(f.dtype), *data), dtype=np.float64)
    rm = np.asarray(f.residuals((theta - eps * t).astype(f.dtype), *data), dtype=np.float64)
    jt = (rp - rm) / (2 * eps)
    J = np.asarray(f.jacobian(theta.astype(f.dtype), *data), dtype=np.float64)
    c = rng.standard_normal(len(jt))
    res = GradCheck(float(jt @ c), float(t @ (J.T @ c)), _vec_rel(J @ t, jt), _rel(float(t @ (J.T @ c)), float(jt @ c)),
                    rtol)
    return _finish(res, raise_on_failure)


def _flatten(f, point):
    if isinstance(point, (list, tuple)) and point and np.ndim(point[0]) >= 1 and hasattr(f, "shapes"):
        shapes = [np.shape(p) for p in point]
        flat = np.concatenate([np.ravel(real_array(p, np.float64, "point", FIX)) for p in point])

        def unflat(v):
            out, k = [], 0
            for s in shapes:
                n = int(np.prod(s))
                out.append(np.asarray(v[k:k + n], dtype=f.dtype).reshape(s))
                k += n
            return out
        return flat, unflat
    flat = real_array(point, np.float64, "point", FIX).ravel()
    return flat, lambda v: np.asarray(v, dtype=f.dtype)


FIX = "pass the parameters' real numbers: a flat vector, or a tensor model's list of arrays"


def _finish(res: GradCheck, raise_on_failure: bool) -> GradCheck:
    if raise_on_failure and not res.ok:
        raise GradientCheckError(str(res) + ". If the model has kinks (relu, abs), move the point away from them.")
    return res
