"""The lecture notes' worked examples of backpropagation, reproduced with symgrad.

1. The seed formula J = cos(sin(x^2) + 3 x^2), with the notes' intermediate names
   (t, u1, u2, u) and a numeric worked trace at x = 1: every forward value and adjoint.
2. Case 1, logistic regression: a = sum_j theta_j x_j, y = sigma(a),
   J = -[y* log y + (1 - y*) log(1 - y)]. Derived in textbook mode (as written, step by step:
   dJ/dy, then dJ/da), side by side with the stable form symgrad compiles (bce_logits) and
   their agreement; then da/dtheta_j = x_j, and the chain dJ/dtheta_j = dJ/da * x_j.
3. Case 2, the one-hidden-layer sigmoid network a_j = sum_i alpha_ji x_i, z_j = sigma(a_j),
   b = sum_j beta_j z_j, y = sigma(b), in the notes' letters: the delta rule per layer, with
   the values of one sample (checked here against a NumPy forward/backward pass).
4. Vanishing gradients: an 8-hidden-layer sigmoid MLP trained on the digits warns
   (GradientHealthWarning), its first layer's gradient norm is orders of magnitude below its
   last's; the same depth with ReLU and He initialisation does not. The per-layer gradient
   norms are plotted to PNG files (matplotlib, the [plot] / [examples] extra).

Run:  python examples/teach_backprop.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import sympy as sp

import symgrad as sg
from symgrad.errors import LossMismatchError

try:  # exported at the top level in newer versions
    GradientHealthWarning = sg.GradientHealthWarning
except AttributeError:
    from symgrad.runtime.epochs import GradientHealthWarning


def heading(title: str) -> None:
    print()
    print("=" * 78)
    print(title)
    print("=" * 78)


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


# -- 1. the seed formula --------------------------------------------------------------------
def seed_formula() -> bool:
    heading("1. The seed formula  J = cos(sin(x²) + 3x²)\n"
            "   (notes' names: t = x², u1 = sin t, u2 = 3t, u = u1 + u2)")
    x = sp.Symbol("x", real=True)
    J = sp.cos(sp.sin(x**2) + 3 * x**2)
    names = {x**2: "t", sp.sin(x**2): "u1", 3 * x**2: "u2", sp.sin(x**2) + 3 * x**2: "u"}
    d = sg.explain(J, x, names=names, at={x: 1.0})
    print(d)
    ref = -np.sin(np.sin(1.0) + 3.0) * (2.0 * np.cos(1.0) + 6.0)  # the closed form at x = 1
    got = float(d.gradients[0].subs(x, 1).evalf())
    print(f"\nclosed form -sin(sin(x²) + 3x²)·(2x cos(x²) + 6x) at x = 1: {ref:.10f}"
          f"  (symgrad: {got:.10f})")
    return abs(got - ref) < 1e-12


# -- 2. Case 1: logistic regression ----------------------------------------------------------
def logistic() -> bool:
    heading("2. Case 1: logistic regression\n"
            "   a = Σ_j θ_j x_j,  y = σ(a),  J = -[y* log y + (1 - y*) log(1 - y)]")
    D = 3
    theta = sp.symbols(f"theta0:{D}", real=True)
    xs = sp.symbols(f"x0:{D}", real=True)
    target = sp.Symbol("y*", real=True)
    th_v, x_v, t_v = (0.5, -0.25, 1.0), (1.0, 2.0, 0.5), 1.0
    a_v = float(np.dot(th_v, x_v))

    # Step dJ/da, as the notes take it: a as one variable. (Naming the sum a inside the full
    # expression is not possible: SymPy distributes exp(-a) over the sum, so no node is a.)
    a = sp.Symbol("a", real=True)
    y = 1 / (1 + sp.exp(-a))
    J = -(target * sp.log(y) + (1 - target) * sp.log(1 - y))
    print(f"\n2a. dJ/da with a one variable, textbook mode (as written, then the stable form), "
          f"at a = {a_v}, y* = {t_v:g}:\n")
    d = sg.explain(J, a, names={y: "y"}, textbook=True, at={a: a_v, target: t_v})
    print(d)
    dJda = float(sigmoid(a_v) - t_v)
    print(f"\nNumPy: σ(a) - y* = {dJda:.6f}")

    # Step da/dθ_j = x_j (and da/dx_j = θ_j, as in the notes)
    print(f"\n2b. da/dθ_1 and da/dx_1 for a = Σ_j θ_j x_j (D = {D}), at θ = {th_v}, x = {x_v}:\n")
    a_sum = sum(t * xj for t, xj in zip(theta, xs, strict=True))
    point = dict(zip(theta, th_v, strict=True)) | dict(zip(xs, x_v, strict=True))
    print(sg.explain(a_sum, [theta[1], xs[1]], output="a", at=point))

    # The chain, on the whole expression: dJ/dθ_j = dJ/da · x_j
    print("\n2c. The whole loss w.r.t. every θ_j, textbook mode (forward and backward steps as in 2a, "
          "with a expanded; from the result on):\n")
    y_full = 1 / (1 + sp.exp(-a_sum))
    J_full = -(target * sp.log(y_full) + (1 - target) * sp.log(1 - y_full))
    d = sg.explain(J_full, list(theta), names={y_full: "y"}, textbook=True, at=point | {target: t_v})
    text = str(d)
    print(text[text.index("Result"):])
    got = [float(g.subs(point | {target: t_v}).evalf()) for g in d.gradients]
    want = [dJda * xj for xj in x_v]
    print(f"\nNumPy: (σ(a) - y*)·x_j = {np.round(want, 6).tolist()}")
    return np.allclose(got, want, rtol=1e-12, atol=1e-14)


# -- 3. Case 2: the one-hidden-layer sigmoid network -----------------------------------------
def network() -> bool:
    heading("3. Case 2: a_j = Σ_i α_ji x_i,  z_j = σ(a_j),  b = Σ_j β_j z_j,  y = σ(b),  "
            "J = cross-entropy")
    names = {"weights": ["alpha", "beta"], "pre": ["a", "b"], "act": ["z", "out"], "target": "y*"}
    M, H = 3, 4
    try:
        sg.formulas(sg.nn.MLP([M, H, 1], "sigmoid", output="sigmoid", bias=False, names=names), "bce")
        print("(symgrad accepted output='sigmoid' with 'bce')")
    except LossMismatchError as exc:
        print("MLP(..., output='sigmoid') with 'bce' is refused:")
        print("  " + str(exc).split(". Fix:")[0] + ".")
    print("So symgrad writes the notes' net with output='identity': its output is the logit b, and the\n"
          "'bce' loss applies σ itself, fused into the stable bce_logits(b, y). The notes' y = σ(b) is\n"
          "inside the loss, and the target is the notes' y* (names={..., 'target': 'y*'}).\n"
          "δ_b = σ(b) - y* is the notes' dJ/db = dJ/dy·dy/db.\n")
    net = sg.nn.MLP([M, H, 1], "sigmoid", output="identity", bias=False, names=names)
    rng = np.random.default_rng(0)
    alpha, beta = rng.normal(size=(H, M)), rng.normal(size=(1, H))
    x, t = np.array([1.0, 0.5, -1.0]), 1
    f = sg.formulas(net, "bce", at=({"alpha": alpha, "beta": beta}, x, t))
    print(f)

    # The same sample by hand, as the notes' backward pass
    a = alpha @ x
    z = sigmoid(a)
    b = beta @ z
    delta_b = sigmoid(b) - t           # dJ/db
    delta_z = beta.T @ delta_b         # dJ/dz_j = dJ/db · β_j
    delta_a = z * (1 - z) * delta_z    # dJ/da_j = dJ/dz_j · σ'(a_j)
    print("\nNumPy, the notes' backward pass for this sample:")
    print(f"  dJ/db = {np.round(delta_b, 6).tolist()}")
    print(f"  dJ/da = {np.round(delta_a, 6).tolist()}")
    g_beta, g_alpha = np.outer(delta_b, z), np.outer(delta_a, x)
    print(f"  ‖dJ/dβ‖ = {np.linalg.norm(g_beta):.6f},  ‖dJ/dα‖ = {np.linalg.norm(g_alpha):.6f}")
    v = f.values
    ok = (np.allclose(v["δ_b"].ravel(), delta_b) and np.allclose(v["δ_a"].ravel(), delta_a)
          and np.allclose(v["∂ℓ/∂beta"], g_beta) and np.allclose(v["∂ℓ/∂alpha"], g_alpha))
    if ok:
        print("checked: every δ printed by symgrad matches the NumPy pass")
    return ok


# -- 4. vanishing gradients ------------------------------------------------------------------
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.data - d.data.mean(0)) / (d.data.std(0) + 1e-8)
    return X, d.target


def train(activation: str, init: str, depth: int, width: int, epochs: int, backend: str, X, y):
    net = sg.nn.MLP([X.shape[1]] + [width] * depth + [10], activation, init=init)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = sg.fit(net, "softmax_cross_entropy", X, y, optimizer=sg.optim.SGD(0.1), epochs=epochs,
                       batch_size=64, seed=0, backend=backend)
    health = [w for w in caught if issubclass(w.category, GradientHealthWarning)]
    for w in caught:
        if not issubclass(w.category, GradientHealthWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return net, model, health


def vanishing(quick: bool, out: Path) -> bool:
    depth, width = 8, 32
    epochs = 3 if quick else 10
    # Quick mode runs the same generated kernel as plain Python/NumPy: it skips Numba's compile
    # (about 15 s per net of this depth), which a few epochs on the digits would not pay back.
    backend = "python" if quick else "numba"
    heading(f"4. Vanishing gradients: {depth} hidden layers of {width}, digits, SGD, {epochs} epochs")
    note = "  (quick mode: the generated kernel without Numba's compile)" if quick else ""
    print(f"backend={backend!r}{note}")
    print(sg.optim.SGD(0.1))
    X, y = digits()
    have_plot = importlib.util.find_spec("matplotlib") is not None
    if have_plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    ratios = {}
    for activation, init, label in (("sigmoid", "xavier", "sigmoid + Xavier init"),
                                    ("relu", "he", "relu + He init")):
        t0 = time.perf_counter()
        net, model, health = train(activation, init, depth, width, epochs, backend, X, y)
        print(f"\n{label}: {net!r}, trained in {time.perf_counter() - t0:.1f} s, "
              f"loss {model.history['loss'][0]:.3f} -> {model.history['loss'][-1]:.3f}")
        for w in health:
            print(f"  GradientHealthWarning caught: {w.message}")
        if not health:
            print("  no GradientHealthWarning")
        norms = model.grad_norms()
        weights = [k for k in norms if k.startswith("W")]
        print("  per-layer gradient norm ‖∂ℓ/∂W_k‖ (last epoch):")
        print("    " + "  ".join(f"{k} {norms[k][-1]:.2e}" for k in weights))
        first, last = weights[0], weights[-1]
        ratio = float(norms[first][-1] / norms[last][-1])
        ratios[activation] = ratio
        verdict = "vanishing" if ratio < 1e-3 else "no vanishing"
        print(f"  {verdict}: {activation} first/last layer gradient norm ratio ({first}/{last})"
              f" = {ratio:.2e}")
        if have_plot:
            path = out / f"grad_norms_{activation}.png"
            ax = model.plot_gradients(path=str(path))
            plt.close(ax.figure)
            print(f"  plot written to {path}")
        else:
            print("  matplotlib is not installed: the plot is skipped (pip install 'symgrad[plot]')")
    return ratios["sigmoid"] < 1e-3 < ratios["relu"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer training epochs, for CI")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the PNG plots (default: a new temporary folder)")
    args = p.parse_args(argv)
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="symgrad_teach_"))
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    results = {"seed formula": seed_formula(), "Case 1": logistic(), "Case 2": network(),
               "vanishing gradients": vanishing(args.quick, out)}
    print()
    failed = [k for k, ok in results.items() if not ok]
    print(f"done in {time.perf_counter() - t0:.1f} s")
    print("OK" if not failed else f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
