"""Digits: MLP 64-128-64-10 (ReLU), softmax cross-entropy, Adam, batch 64, trained by the
fused Numba kernel. Prints the backprop formulas, then trains and reports test accuracy.

    python examples/digits_mlp.py           # 30 epochs, must reach >= 97% test accuracy
    python examples/digits_mlp.py --quick   # fewer epochs, for CI
"""

import argparse
import sys
import time

import numpy as np
from sklearn.datasets import load_digits

import symgrad as sg


def split(seed: int = 0):
    """scikit-learn's digits in a fixed 80/20 split, pixels as they come (0..16):
    (X_train, y_train, X_test, y_test). The CNN examples import it, so all train on one split."""
    d = load_digits()
    idx = np.random.default_rng(seed).permutation(len(d.data))
    X, y = d.data[idx], d.target[idx]
    n = int(0.8 * len(X))
    return X[:n], y[:n], X[n:], y[n:]


def data(seed: int = 0):
    """The split, standardised with the training statistics only."""
    Xtr, ytr, Xte, yte = split(seed)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-8
    return (Xtr - mu) / sd, ytr, (Xte - mu) / sd, yte


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="8 epochs instead of 30, for CI")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="the model's dtype (default float32)")
    args = ap.parse_args()
    Xtr, ytr, Xte, yte = (a.astype(args.dtype) if a.dtype.kind == "f" else a for a in data())
    net = sg.nn.MLP([64, 128, 64, 10], activation="relu")
    print(sg.formulas(net, "softmax_cross_entropy"), "\n")
    print(sg.optim.Adam(1e-3), "\n")
    epochs = 8 if args.quick else 30
    t0 = time.perf_counter()
    model = sg.fit(net, "softmax_cross_entropy", Xtr, ytr, optimizer=sg.optim.Adam(1e-3), epochs=epochs,
                   batch_size=64, dtype=args.dtype, validation=(Xte, yte), seed=0)
    wall = time.perf_counter() - t0
    acc = model.evaluate(Xte, yte)["accuracy"]
    per_epoch = np.median(model.history["time"][1:]) * 1e3 if epochs > 1 else float("nan")
    print(f"{epochs} epochs in {wall:.1f} s (including build), median {per_epoch:.1f} ms/epoch")
    print(f"train loss {model.history['loss'][0]:.3f} -> {model.history['loss'][-1]:.4f}; test accuracy {acc:.4f}")
    target = 0.90 if args.quick else 0.97
    if acc < target:
        print(f"FAILED: accuracy {acc:.4f} < {target}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
