"""Compiled formula models: value, gradient, Hessian-vector product, Hessian; residuals and their Jacobian."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import NonFiniteError, OptionError, ShapeError, UnsupportedModelError
from .assumptions import assumption_checks, check_assumptions
from .base import Compiled
from .checks import check_data, check_vector, is_dask, per_point
from .nonfinite import check_mode, diagnose, emit, report


def _by_name(data: Sequence[object], kw: dict[str, object], names: list[str]) -> list[object]:
    """Data given by keyword (symbol name), in symbol order; mixed with positional data, refused."""
    unknown = sorted(set(kw) - set(names))
    if unknown or data:
        what = f"unknown data arguments {unknown}" if unknown else "data given both by position and by name"
        raise ShapeError(f"{what}; this function takes {names}. Fix: pass the data arrays in that order, "
                         f"or all of them by name, e.g. f.value(theta, {names[0] if names else 'x'}=arr).")
    return [kw[n] for n in names if n in kw]


class _Formula(Compiled):
    """What every compiled formula module shares: its symbols' argument checks."""

    def __init__(self, path: Path, params, data, dtype: str, reduction: str, has_hessian: bool, backend: str,
                 *, expr=None, on_nonfinite: str = "warn"):
        super().__init__(path, params, data, dtype, reduction, backend)
        self.has_hessian = has_hessian
        # what a NaN or Inf result does (runtime/nonfinite.py); expr, as written, is searched for its origin
        self.expr, self.on_nonfinite = expr, check_mode(on_nonfinite)
        # declared signs and integrality, checked at every call: SymPy simplified with them
        self._data_checks, self._theta_checks = assumption_checks(self.data), assumption_checks(self.params)

    # -- argument handling ---------------------------------------------------
    def _data(self, data: Sequence[object], kw: dict[str, object]) -> list[np.ndarray]:
        names = [str(d) for d in self.data]
        if kw:
            data = _by_name(data, kw, names)
        arrays = check_data(list(data), names, self.dtype)
        if self._data_checks:
            check_assumptions(self._data_checks, arrays, "data", self.data)
        return arrays

    def _distributed(self, data: Sequence[object], kw: dict[str, object]):
        """symgrad.distributed.evaluate when the data are Dask arrays (then in symbol order)."""
        if not any(is_dask(d) for d in (*data, *kw.values())):
            return None, None
        from ..distributed import evaluate  # Dask is an optional extra, imported only for its arrays

        if kw:
            data = _by_name(data, kw, [str(d) for d in self.data])
        return evaluate, list(data)

    def _call(self, name: str, th, arrays, *out):
        """The module's function ``name``; on the Python backend, libm's ValueError or
        OverflowError (where compiled code gives NaN or Inf) becomes NaN results, reported as
        compiled ones are (runtime/nonfinite.py)."""
        try:
            if self.backend != "python":  # a value in the dtype, as NumPy's: Numba hands back a float
                return self._scalar(getattr(self._mod, name)(th, *arrays, *out))
            with np.errstate(all="ignore"):  # reported below, as the compiled code's are
                return self._scalar(getattr(self._mod, name)(th, *arrays, *out))
        except (ValueError, OverflowError, ZeroDivisionError):
            if self.backend != "python":
                raise
            for o in out:
                o[...] = np.nan
            return np.nan

    def _scalar(self, v):
        return v if v is None else self.dtype.type(v)

    def _theta(self, theta) -> np.ndarray:
        theta = check_vector(theta, len(self.params), self.dtype, "theta")
        if self._theta_checks:
            check_assumptions(self._theta_checks, theta, "parameter", self.params)
        return theta

    def _rows(self, data: list[np.ndarray]) -> int:
        return len(data[0]) if data else 1  # a function of parameters only is one "sample"


class CompiledFormula(_Formula):
    """A formula model compiled to Numba (or its Python reference twin).

    Call signatures follow ``scipy.optimize``: ``value_and_grad(theta, *data)`` returns
    ``(loss, grad)``, so it plugs in as ``minimize(f.value_and_grad, x0, args=data, jac=True)``.
    Data may also be given by keyword, by symbol name. A formula without data symbols
    (Rosenbrock, say) takes ``theta`` alone.
    """

    # -- reduced (loss) functions --------------------------------------------
    def value(self, theta, /, *data, **kw) -> float:
        """Mean (or sum) of the formula over samples (Dask arrays: over all chunks, on the workers)."""
        self._pointwise_forbidden()
        dist, arrays = self._distributed(data, kw)
        if dist is not None:
            return dist.value(self, theta, *arrays)
        th, arrays = self._theta(theta), self._data(data, kw)
        v = self._call("value", th, arrays)
        if not np.isfinite(v):
            report(self, "value", th, arrays)
        return v

    def value_and_grad(self, theta, /, *data, **kw) -> tuple[float, np.ndarray]:
        """(loss, gradient) in one pass over the data (Dask arrays: see symgrad.distributed)."""
        self._pointwise_forbidden()
        dist, arrays = self._distributed(data, kw)
        if dist is not None:
            return dist.value_and_grad(self, theta, *arrays)
        th, arrays = self._theta(theta), self._data(data, kw)
        g = np.empty(len(self.params), dtype=self.dtype)
        v = self._call("value_and_grad", th, arrays, g)
        if not (np.isfinite(v) and np.isfinite(g).all()):
            report(self, "value" if not np.isfinite(v) else "gradient", th, arrays)
        return v, g

    def grad(self, theta, /, *data, **kw) -> np.ndarray:
        """The gradient only."""
        return self.value_and_grad(theta, *data, **kw)[1]

    def hvp(self, theta, v, /, *data, **kw) -> np.ndarray:
        """Exact Hessian-vector product (for scipy's ``hessp=``), for any number of parameters."""
        self._pointwise_forbidden()
        dist, arrays = self._distributed(data, kw)
        if dist is not None:
            return dist.hvp(self, theta, v, *arrays)
        out = np.empty(len(self.params), dtype=self.dtype)
        vv = check_vector(v, len(self.params), self.dtype, "v")
        th, arrays = self._theta(theta), self._data(data, kw)
        self._call("hvp", th, [vv, *arrays], out)
        if not np.isfinite(out).all():
            report(self, "Hessian-vector product", th, arrays)
        return out

    def hessian(self, theta, /, *data, **kw) -> np.ndarray:
        """Dense Hessian (only for small parameter counts)."""
        self._need_hessian()
        dist, arrays = self._distributed(data, kw)
        if dist is not None:
            return dist.hessian(self, theta, *arrays)
        k = len(self.params)
        out = np.empty((k, k), dtype=self.dtype)
        th, arrays = self._theta(theta), self._data(data, kw)
        self._call("hessian", th, arrays, out)
        if not np.isfinite(out).all():
            report(self, "Hessian", th, arrays)
        return out

    # -- pointwise functions -------------------------------------------------
    def pointwise(self, *arrays) -> tuple[np.ndarray, np.ndarray]:
        """reduction='none': (values, gradients) at every point; gradients (n,) or (n, k). Each parameter
        is one number (the same at every point) or one per point, then the data."""
        if self.reduction != "none":
            raise UnsupportedModelError("pointwise() needs compile(..., reduction='none'). Fix: compile with "
                                        "reduction='none', or call f.value / f.value_and_grad for the mean.")
        names, k = [str(p) for p in self.params + self.data], len(self.params)
        arrays = per_point(arrays, self.params, self.data)
        arrs = check_data(arrays, names, self.dtype, min_rows=0, what="the parameters' and data's arrays",
                          kinds=["parameter"] * k + ["data"] * len(self.data))
        n = len(arrs[0])
        for checks, given, what, symbols in ((self._theta_checks, arrs[:k], "parameter", self.params),
                                             (self._data_checks, arrs[k:], "data", self.data)):
            if checks:  # SymPy simplified with the declarations here too
                check_assumptions(checks, given, what, symbols)
        vals = np.empty(n, dtype=self.dtype)
        grads = np.empty((n, k), dtype=self.dtype)
        self._call("value_and_grad", arrs[0], arrs[1:], vals, grads)
        if not (np.isfinite(vals).all() and np.isfinite(grads).all()) and self.on_nonfinite != "ignore" and self.expr is not None:
            what = "value" if not np.isfinite(vals).all() else "gradient"
            emit(self.on_nonfinite, diagnose(self.expr, self.params, self.data, arrs[:k], arrs[k:], what), stacklevel=3)
        return vals, (grads[:, 0] if k == 1 else grads)

    def _pointwise_forbidden(self) -> None:
        if self.reduction == "none":
            raise UnsupportedModelError(
                "this function was compiled with reduction='none'. Fix: call f.pointwise(*arrays) instead, or "
                "compile with reduction='mean' or 'sum' for a loss and its gradient."
            )

    def _need_hessian(self) -> None:
        self._pointwise_forbidden()
        if not self.has_hessian:
            from ..build import MAX_HESSIAN_PARAMS  # the recipe's limit; the runtime only reports it

            raise UnsupportedModelError(
                f"dense Hessians are derived only for <= {MAX_HESSIAN_PARAMS} parameters "
                f"(this model has {len(self.params)}). Fix: use f.hvp (exact Hessian-vector products at "
                "any size, e.g. scipy's Newton-CG with hessp=) or a quasi-Newton method such as L-BFGS."
            )


class CompiledResiduals(_Formula):
    """Per-sample residuals r_i(θ) and their Jacobian, for least squares.

    Signatures follow ``scipy.optimize.least_squares``: ``residuals(theta, *data)`` is ``fun``
    and ``jacobian(theta, *data)`` is ``jac``, both with ``args=data``.
    """

    def residuals(self, theta, /, *data, **kw) -> np.ndarray:
        """r_i(θ) for every sample: an (n,) array (Dask arrays: computed on the workers, gathered)."""
        dist, arrays = self._distributed(data, kw)
        if dist is not None:
            return dist.rows(self, "residuals", theta, *arrays)
        arrays, th = self._data(data, kw), self._theta(theta)
        out = np.empty(self._rows(arrays), dtype=self.dtype)
        self._call("residuals", th, arrays, out)
        if not np.isfinite(out).all():
            report(self, "residual", th, arrays)
        return out

    __call__ = residuals

    def jacobian(self, theta, /, *data, **kw) -> np.ndarray:
        """J[i, k] = ∂r_i/∂θ_k: an (n_samples, n_params) array (Dask arrays: as ``residuals``)."""
        dist, arrays = self._distributed(data, kw)
        if dist is not None:
            return dist.rows(self, "jacobian", theta, *arrays)
        arrays, th = self._data(data, kw), self._theta(theta)
        out = np.empty((self._rows(arrays), len(self.params)), dtype=self.dtype)
        self._call("jacobian", th, arrays, out)
        if not np.isfinite(out).all():
            report(self, "Jacobian", th, arrays)
        return out

    def covariance(self, theta, /, *data, absolute_sigma: bool = False, **kw) -> np.ndarray:
        """The parameters' covariance s²(JᵀJ)⁻¹ at a least-squares solution θ, with
        s² = Σr²/(n − k): the standard errors NIST certifies are the square roots of its diagonal.
        ``absolute_sigma=True`` (scipy's curve_fit convention, for residuals divided by known
        standard deviations, (model − y)/σ) gives (JᵀJ)⁻¹ unscaled. On Dask arrays J stays on the
        workers (``distributed.evaluate.covariance``)."""
        dist, arrays = self._distributed(data, kw)
        if dist is not None:
            cov = dist.covariance(self, theta, *arrays, absolute_sigma=absolute_sigma)
        else:
            r = self.residuals(theta, *data, **kw).astype(np.float64)
            jac = self.jacobian(theta, *data, **kw).astype(np.float64)
            cov = covariance_of(len(jac), float(r @ r), jac, self.dtype, absolute_sigma)
        _finer_than_spacing(cov, np.asarray(theta, dtype=np.float64).ravel(), self.dtype, self.params)
        return cov


def _finer_than_spacing(cov: np.ndarray, theta: np.ndarray, dtype, names) -> None:
    """Warn where a standard error is below its parameter's spacing in ``dtype``: the residuals
    change in steps there, and a float32 peak centre at x0 ≈ 1e5 (spacing 0.0078) was "known" to
    ±2.1e-4 while it sat 5 standard errors from the float64 fit's."""
    se, step = np.sqrt(np.abs(np.diag(cov))), np.abs(np.spacing(theta.astype(dtype))).astype(np.float64)
    coarse = [k for k in range(len(se)) if se[k] < step[k]]
    if coarse:
        from .epochs import user_level

        k = coarse[0]
        warnings.warn(f"the standard error of {names[k]} ({se[k]:.2g}) is below {np.dtype(dtype).name}'s spacing at "
                      f"{names[k]} = {theta[k]:.9g} ({step[k]:.2g}), so the fit resolves it no better than that "
                      f"spacing and the covariance understates its uncertainty"
                      f"{f' ({len(coarse) - 1} more such parameters)' if len(coarse) > 1 else ''}. Fix: compile with "
                      f"dtype='float64', or write {names[k]} as an offset from a reference value.",
                      UserWarning, stacklevel=user_level())


def covariance_of(n: int, rss: float, m: np.ndarray, dtype, absolute_sigma: bool = False) -> np.ndarray:
    """s²(JᵀJ)⁻¹ from n, Σr² and J, or any matrix with J's singular values and right vectors
    (the stacked R of its chunks' QR), J computed in ``dtype``; (JᵀJ)⁻¹ with ``absolute_sigma``.
    Through the SVD, not the normal equations: JᵀJ squares J's condition number."""
    k = m.shape[1]
    if not isinstance(absolute_sigma, (bool, np.bool_)):
        raise OptionError(f"absolute_sigma={absolute_sigma!r} is not True or False. Fix: use True (residuals divided "
                          "by known standard deviations) or False (scaled by s² = Σr²/(n − k), the default).")
    if n <= k and not (absolute_sigma and n == k):
        raise ShapeError(f"a covariance needs more samples than parameters (n={n}, k={k}). Fix: add data.")
    if not (np.isfinite(rss) and np.isfinite(m).all()):
        raise NonFiniteError("the residuals or the Jacobian are not finite at theta (on_nonfinite='warn' or 'raise' "
                             "names the first such sample), so the covariance is undefined. Fix: a theta and data "
                             "inside the formula's domain, e.g. the result of a fit that converged.")
    # columns scaled to norm 1 first: a parameter in other units (A = 1e-11 beside Ea = 1.2e4) made a
    # well-determined fit look rank-deficient (condition 3e15 raw, 21 scaled); J's rounding is
    # relative to each column too, so the rank test below holds for the scaled columns
    scale = np.linalg.norm(m, axis=0)
    scale[scale == 0] = 1.0  # a column of zeros stays one: rank-deficient below
    _, sv, vt = np.linalg.svd(m / scale, full_matrices=False)
    # NumPy's matrix_rank tolerance, or the rounding of J's own entries (a few ulp of each, so
    # ||error|| <= 16 eps sqrt(k) σ_max) where J is float32: proportional columns differ by that
    eps = np.finfo(dtype).eps
    if not sv[0] or sv[-1] <= sv[0] * max(np.finfo(np.float64).eps * max(n, k), 16 * eps * np.sqrt(k)):
        tight = "" if eps < 1e-10 else (" (or too ill-conditioned for float32: smallest/largest singular value "
                                        f"{sv[-1] / sv[0]:.2g}; compile with dtype='float64')")
        raise UnsupportedModelError(f"the Jacobian is rank-deficient at theta{tight}, so the covariance is "
                                    "undefined. Fix: fix or remove parameters the data cannot identify.")
    s2 = 1.0 if absolute_sigma else rss / (n - k)
    return s2 * ((vt.T / sv**2) @ vt) / np.outer(scale, scale)
