"""Fit a damped oscillation y = a e^{-b t} cos(w t + phi) to noisy data.

A scientist's use of symgrad: write the per-sample squared error as a SymPy formula,
read the derived gradient, compile it, and hand the compiled functions to SciPy:

* L-BFGS-B with ``jac=True`` (``value_and_grad`` returns loss and gradient in one pass);
* Newton-CG with the exact Hessian-vector product (``hessp=f.hvp``).

Run:  python examples/fit_damped_oscillation.py [--quick]
Exits non-zero if either fit fails to recover the true parameters.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import sympy as sp
from scipy.optimize import minimize

import symgrad

TRUE = np.array([2.0, 0.3, 2.5, 0.7])  # a, b, w, phi
X0 = np.array([1.5, 0.2, 2.4, 0.5])  # an eyeball guess: ~10% off in frequency is enough to converge
NOISE = 0.05


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 10.0, n)
    a, b, w, phi = TRUE
    y = a * np.exp(-b * t) * np.cos(w * t + phi) + NOISE * rng.normal(size=n)
    return t, y


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer data points (n=400 instead of 2000)")
    args = p.parse_args(argv)
    n = 400 if args.quick else 2000

    a, b, w, phi, t, y = sp.symbols("a b w phi t y", real=True)
    model = a * sp.exp(-b * t) * sp.cos(w * t + phi)
    loss = (model - y) ** 2

    print(f"per-sample loss: {loss}")
    print("derived gradient (symgrad.grad):")
    for s, g in zip((a, b, w, phi), symgrad.grad(loss, [a, b, w, phi]), strict=True):
        print(f"  d/d{s} = {g}")
    print()

    t0 = time.perf_counter()
    f = symgrad.compile(loss, wrt=[a, b, w, phi], data=[t, y])
    t_, y_ = make_data(n)
    f.value_and_grad(X0, t_, y_)
    f.hvp(X0, np.ones(4), t_, y_)
    print(f"compiled (derive + codegen + Numba, or cache hit) in {time.perf_counter() - t0:.2f} s: {f!r}")
    print(f"data: n = {n}, t in [0, 10], noise sd = {NOISE}")
    print()

    fits = {}
    t0 = time.perf_counter()
    fits["L-BFGS-B"] = minimize(f.value_and_grad, X0, args=(t_, y_), jac=True, method="L-BFGS-B",
                                options={"maxiter": 1000, "gtol": 1e-10})
    t1 = time.perf_counter()
    fits["Newton-CG"] = minimize(f.value_and_grad, X0, args=(t_, y_), jac=True, method="Newton-CG",
                                 hessp=lambda th, v, t, y: f.hvp(th, v, t, y), options={"maxiter": 200})
    t2 = time.perf_counter()
    times = {"L-BFGS-B": t1 - t0, "Newton-CG": t2 - t1}

    # Tolerance: a few standard errors. With n points and noise sd s the amplitude/phase
    # errors scale like s / sqrt(n); 0.05 absolute is generous for n >= 400 yet far below
    # the distance from the start point.
    tol = np.array([0.05, 0.02, 0.02, 0.05])
    names = ["a", "b", "w", "phi"]
    print(f"{'':10s}" + "".join(f"{nm:>10s}" for nm in names) + f"{'loss':>14s}{'nit':>6s}{'nfev':>6s}{'time':>9s}")
    print(f"{'true':10s}" + "".join(f"{v:10.4f}" for v in TRUE))
    print(f"{'start':10s}" + "".join(f"{v:10.4f}" for v in X0) + f"{f.value(X0, t_, y_):14.6e}")
    ok = True
    for name, r in fits.items():
        good = bool(r.success) and bool(np.all(np.abs(r.x - TRUE) <= tol))
        ok &= good
        extra = f"{r.fun:14.6e}{r.nit:6d}{r.nfev:6d}{times[name] * 1e3:7.1f}ms"
        print(f"{name:10s}" + "".join(f"{v:10.4f}" for v in r.x) + extra + ("" if good else "   <-- FAILED"))
        if not r.success:
            print(f"    {name}: {r.message}")
    diff = float(np.max(np.abs(fits["L-BFGS-B"].x - fits["Newton-CG"].x)))
    print(f"\nmax |L-BFGS-B - Newton-CG| = {diff:.2e};  expected loss at the truth ~ noise^2 = {NOISE**2:.2e}")
    print(f"tolerance per parameter: {dict(zip(names, tol.tolist(), strict=True))}")
    print("OK" if ok else "FAILED: a fit did not recover the true parameters")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
