"""Workload 8, second part: a logistic regression on Dask, symgrad against dask-ml.

symgrad: ``compile(binary_cross_entropy(W x + b, y))`` and SciPy's L-BFGS-B over Dask arrays
(``f.value_and_grad`` computes each chunk on its worker). dask-ml: ``LogisticRegression(
solver="lbfgs")``, whose dask-glm solver also runs SciPy's L-BFGS-B, on gradients it builds as Dask
array expressions. Same persisted arrays, same stopping rule, same iteration limit.
"""

from __future__ import annotations

import warnings

import numpy as np

from bench.common import Mode, check_agreement, fmt_time, interleaved, table
from bench.w8_distributed import on_dask


def logistic_formula(d: int):
    import sympy as sp

    import symgrad as sg

    W, b = sp.MatrixSymbol("W", 1, d), sp.MatrixSymbol("b", 1, 1)
    x, y = sp.MatrixSymbol("x", d, 1), sp.MatrixSymbol("y", 1, 1)
    return sg.compile(sg.losses.binary_cross_entropy(W * x + b, y), wrt=[W, b], data=[x, y])


def dask_ml_compare(client, mode: Mode) -> tuple[list[str], dict]:
    """symgrad (SciPy L-BFGS-B over Dask) against dask-ml's lbfgs on the same arrays."""
    try:
        import dask_glm.algorithms as dga
        import dask_ml
        from dask_ml.linear_model import LogisticRegression
    except ImportError as exc:
        return [f"dask-ml comparison: skipped, dask-ml is not installed ({exc}); `pip install dask-ml`."], {}
    from scipy.optimize import minimize

    n, d = mode.pick(1_000_000, 200_000, 20_000), 10
    f_log = logistic_formula(d)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d) * 0.6
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(X @ w + 0.3)))).astype(np.float64)
    XD, YD = on_dask(client, (X, y[:, None]), 2)
    YD1 = YD[:, 0].persist()  # dask-ml takes y as a vector; same row chunks
    tol = 1e-4  # dask-ml's default: the largest |component| of the gradient of the *summed* loss
    # symgrad's loss is the mean, so the same stopping rule is gtol = tol / n (ftol: both SciPy's default)
    opts = {"gtol": tol / n, "maxiter": 100}
    info: dict = {}
    original = dga.fmin_l_bfgs_b

    def counted(*a, **kw):  # dask-glm calls scipy's fmin_l_bfgs_b; its info has the iteration count
        out = original(*a, **kw)
        info.update(out[2])
        return out

    def sg_fit():
        return minimize(f_log.value_and_grad, np.zeros(d + 1), args=(XD, YD), jac=True, method="L-BFGS-B",
                        options=opts)

    def dml_fit():
        m = LogisticRegression(solver="lbfgs", tol=tol, max_iter=100, solver_kwargs={"regularizer": None})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # dask-glm sets a renamed Dask option
            dga.fmin_l_bfgs_b = counted
            try:
                m.fit(XD, YD1)
            finally:
                dga.fmin_l_bfgs_b = original
        return np.r_[m.coef_, m.intercept_]

    try:
        res = interleaved({"symgrad": sg_fit, "dask-ml": dml_fit}, mode.repeats, warmup=0, settle=mode.settle)
    except Exception as exc:  # noqa: BLE001 - a peer's failure is reported, not hidden or faked
        return [f"dask-ml comparison: dask-ml {dask_ml.__version__} failed: {type(exc).__name__}: {exc}"], {}
    r = res["symgrad"].result
    loss = {"symgrad": f_log.value(r.x, X, y[:, None]), "dask-ml": f_log.value(res["dask-ml"].result, X, y[:, None])}
    check_agreement("W8 final loss, symgrad vs dask-ml L-BFGS", "symgrad", loss, rtol=1e-6)
    rows = [["symgrad `compile` + SciPy L-BFGS-B over Dask", fmt_time(res["symgrad"].median),
             fmt_time(res["symgrad"].first), r.nit, r.nfev, f"{loss['symgrad']:.10f}"],
            [f"dask-ml {dask_ml.__version__} `LogisticRegression(solver='lbfgs')`", fmt_time(res["dask-ml"].median),
             fmt_time(res["dask-ml"].first), info.get("nit", "?"), info.get("funcalls", "?"),
             f"{loss['dask-ml']:.10f}"]]
    ratio = res["dask-ml"].median / res["symgrad"].median
    md = [f"Logistic regression, n = {n:,}, d = {d} (+ intercept), float64, no penalty, from zero, both on the 2-worker "
          "cluster over the same persisted Dask arrays (2 row chunks). symgrad: "
          "`compile(binary_cross_entropy(W x + b, y))` and `scipy.optimize.minimize(f.value_and_grad, jac=True, "
          "method='L-BFGS-B')`; dask-ml: `LogisticRegression(solver='lbfgs', tol=1e-4, "
          "max_iter=100, solver_kwargs={'regularizer': None})`, which runs SciPy's L-BFGS-B on the summed loss "
          "with pgtol = tol; "
          f"symgrad's loss is the mean, so gtol = tol / n is the same stopping rule. Median of "
          f"{len(res['symgrad'].times)} fits each (the first fit apart: symgrad's ships the kernel to the workers); "
          "final loss = mean "
          f"log-loss of each solution, computed the same way. dask-ml takes {ratio:.1f}x symgrad's time.", "",
          table(["implementation", "median fit", "first fit", "iterations", "loss+grad evaluations",
                 "final mean log-loss"], rows, "lrrrrr")]
    return md, {"n": n, "symgrad_s": res["symgrad"].median, "dask_ml_s": res["dask-ml"].median, "loss": loss}
