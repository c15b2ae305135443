"""The seed worked examples: a readable derivation, then compiled code checked against it.

1. J(x) = cos(sin(x^2) + 3 x^2): the derivation printed step by step (text and LaTeX),
   then compiled pointwise and evaluated on a grid, checked against the closed form
   dJ/dx = -sin(sin(x^2) + 3 x^2) * (2 x cos(x^2) + 6 x).
2. Logistic regression (seed Case 1): the binary cross-entropy written naively with
   sigma = 1 / (1 + exp(-a)), a = sum_j theta_j x_j. symgrad rewrites it into the stable
   ``bce_logits`` form before differentiating and the gradient comes out as
   (sigma(a) - y) * x_j.

Run:  python examples/seed_formula.py [--quick]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import sympy as sp

import symgrad
from symgrad.lang.ops import expand_ops


def seed_formula(n: int) -> float:
    x = sp.Symbol("x", real=True)
    J = sp.cos(sp.sin(x**2) + 3 * x**2)
    names = {x**2: "t", sp.sin(x**2): "u1", 3 * x**2: "u2", sp.sin(x**2) + 3 * x**2: "u"}

    print("=" * 72)
    print("Seed formula  J(x) = cos(sin(x^2) + 3 x^2)")
    print("=" * 72)
    d = symgrad.explain(J, x, names=names)
    print(d)
    print()
    print("LaTeX:")
    print(d.latex())
    print()

    # The derived gradient must equal the hand-derived closed form, symbolically.
    closed = -sp.sin(sp.sin(x**2) + 3 * x**2) * (2 * x * sp.cos(x**2) + 6 * x)
    derived = symgrad.grad(J, x)
    assert sp.simplify(derived - closed) == 0, (derived, closed)
    print(f"symgrad.grad(J, x) = {derived}   (== closed form, checked symbolically)")

    # ...and the compiled code must agree with the closed form numerically.
    f = symgrad.compile(J, wrt=[x], reduction="none")
    xs = np.linspace(-3.0, 3.0, n)
    val, dval = f.pointwise(xs)
    u = np.sin(xs**2) + 3 * xs**2
    ref_val = np.cos(u)
    ref_d = -np.sin(u) * (2 * xs * np.cos(xs**2) + 6 * xs)
    err_v = float(np.max(np.abs(val - ref_val)))
    err_d = float(np.max(np.abs(dval - ref_d)))
    print(f"compiled pointwise on {n} grid points in [-3, 3]:")
    print(f"  max |J - closed form|     = {err_v:.3e}")
    print(f"  max |dJ/dx - closed form| = {err_d:.3e}   (|dJ/dx| up to {np.max(np.abs(ref_d)):.1f})")
    for xi in (0.0, 0.5, 1.0, 2.0):
        v1, g1 = f.pointwise(np.array([xi]))
        print(f"  x = {xi:3.1f}:  J = {v1[0]: .12f}   dJ/dx = {g1[0]: .12f}")
    return max(err_v, err_d / max(1.0, float(np.max(np.abs(ref_d)))))


def logistic(n: int) -> float:
    D = 3
    theta = sp.symbols(f"theta0:{D}", real=True)
    xs = sp.symbols(f"x0:{D}", real=True)
    y = sp.Symbol("y", real=True)
    a = sum(t * xj for t, xj in zip(theta, xs, strict=True))
    sigma = 1 / (1 + sp.exp(-a))
    J = -(y * sp.log(sigma) + (1 - y) * sp.log(1 - sigma))

    print()
    print("=" * 72)
    print(f"Logistic regression (seed Case 1), D = {D}")
    print("  J = -(y log(sigma) + (1 - y) log(1 - sigma)),  sigma = 1/(1 + exp(-a)),  a = sum_j theta_j x_j")
    print("=" * 72)
    d = symgrad.explain(J, list(theta), names={a: "a"})
    print(d)
    print()

    # Every partial is (sigma(a) - y) * x_j.
    for t, xj, g in zip(theta, xs, d.gradients, strict=True):
        want = (1 / (1 + sp.exp(-a)) - y) * xj
        assert sp.simplify(expand_ops(g) - want) == 0, (t, g)
    print("checked: dJ/dtheta_j == (sigma(a) - y) * x_j for every j")

    # Numerically: the compiled mean loss and gradient vs a NumPy reference, including
    # logits large enough that the naive formula overflows / gives log(0).
    f = symgrad.compile(J, wrt=list(theta), data=[*xs, y])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, D))
    yy = (rng.random(n) < 0.5).astype(np.float64)
    th = np.array([40.0, -25.0, 10.0])  # |a| reaches ~ 200: naive log(1 - sigma) = log(0)
    loss, g = f.value_and_grad(th, *X.T, yy)
    z = X @ th
    ref_loss = float(np.mean(np.logaddexp(0.0, z) - yy * z))
    ref_g = X.T @ (1 / (1 + np.exp(-z)) - yy) / n
    err = max(abs(loss - ref_loss) / abs(ref_loss), float(np.max(np.abs(g - ref_g))))
    print(f"compiled mean loss {loss:.10f} (NumPy logaddexp reference {ref_loss:.10f})")
    print(f"max |grad - (sigma(a) - y) x / n| = {float(np.max(np.abs(g - ref_g))):.3e}")
    return err


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller grids (the example is fast anyway)")
    args = p.parse_args(argv)
    n = 1_001 if args.quick else 100_001

    err1 = seed_formula(n)
    err2 = logistic(n)
    ok = err1 < 1e-9 and err2 < 1e-9
    print()
    print("OK" if ok else f"FAILED: errors {err1:.3e}, {err2:.3e}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
