"""Digits as 1x8x8 images: a small CNN (conv 3x3 -> max pool -> conv 3x3 -> max pool -> dense),
softmax cross-entropy, Adam with a cosine schedule, batch 64, trained by the fused Numba kernel. Prints the convolution's
backward formulas, trains with 3 seeds, reports test accuracy, and compares it with the MLP demo
(examples/digits_mlp.py) on the same fixed 80/20 split.

    python examples/digits_cnn.py           # 3 seeds x 30 epochs: mean test accuracy must reach >= 98.5%
    python examples/digits_cnn.py --quick   # 1 seed, few epochs, for CI
"""

import argparse
import sys
import time

import numpy as np
from digits_mlp import data as mlp_data
from digits_mlp import split  # the MLP demo's fixed 80/20 split (examples/ is the script's folder)

import symgrad as sg


def cnn():
    nn = sg.nn
    return nn.Sequential([
        nn.Conv2D(1, 16, 3, padding="same", activation="relu"),   # 16 x 8 x 8
        nn.MaxPool2D(2),                                         # 16 x 4 x 4
        nn.Conv2D(16, 32, 3, padding="same", activation="relu"),  # 32 x 4 x 4
        nn.MaxPool2D(2),                                         # 32 x 2 x 2
        nn.Flatten(),                                            # 128
        nn.Dense(128, 10),                                       # logits
    ], input_shape=(1, 8, 8))


def mlp_accuracy(epochs: int, dtype: str, seeds) -> float:
    """The MLP demo on the same split, with its settings (standardised pixels, 64-128-64-10 ReLU,
    Adam(1e-3), batch 64): the mean test accuracy over ``seeds``."""
    Xtr, ytr, Xte, yte = mlp_data()
    Xtr, Xte = Xtr.astype(dtype), Xte.astype(dtype)
    net = sg.nn.MLP([64, 128, 64, 10], activation="relu")
    accs = [sg.fit(net, "softmax_cross_entropy", Xtr, ytr, optimizer=sg.optim.Adam(1e-3), epochs=epochs,
                   batch_size=64, dtype=dtype, seed=seed).evaluate(Xte, yte)["accuracy"] for seed in seeds]
    return float(np.mean(accs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one seed and 8 epochs, for CI (the full run: 3 seeds x 30 epochs)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="the model's dtype (default float32)")
    args = ap.parse_args()
    Xtr, ytr, Xte, yte = split()
    # pixels are 0..16: scaled to 0..1 (measured a little better than standardising for the CNN)
    Itr, Ite = ((X / 16.0).astype(args.dtype).reshape(-1, 1, 8, 8) for X in (Xtr, Xte))  # NCHW
    net = cnn()
    print(net, "\n")
    print(sg.formulas(net, "softmax_cross_entropy"), "\n")
    epochs, seeds = (8, [0]) if args.quick else (30, [0, 1, 2])
    opt = sg.optim.Adam(5e-3, schedule=sg.optim.CosineLR(t_max=epochs))
    print(opt, "\n")
    accs = []
    for seed in seeds:
        t0 = time.perf_counter()
        model = sg.fit(net, "softmax_cross_entropy", Itr, ytr, optimizer=opt, epochs=epochs,
                       batch_size=64, dtype=args.dtype, seed=seed)
        wall = time.perf_counter() - t0
        acc = model.evaluate(Ite, yte)["accuracy"]
        accs.append(acc)
        per_epoch = np.median(model.history["time"][1:]) * 1e3 if epochs > 1 else float("nan")
        print(f"seed {seed}: {epochs} epochs in {wall:.1f} s (including build), median {per_epoch:.1f} ms/epoch; "
              f"train loss {model.history['loss'][0]:.3f} -> {model.history['loss'][-1]:.4f}; "
              f"test accuracy {acc:.4f}")
    mean = float(np.mean(accs))
    print(f"CNN mean test accuracy over {len(seeds)} seed{'s' * (len(seeds) > 1)}: {mean:.4f}")
    mlp = mlp_accuracy(epochs=8 if args.quick else 30, dtype=args.dtype, seeds=seeds)
    verdict = "above" if mean > mlp else "NOT above"
    print(f"MLP demo (digits_mlp.py settings, same seeds) mean test accuracy on the same split: {mlp:.4f}; "
          f"the CNN ({mean:.4f}) is {verdict} it by {100 * (mean - mlp):+.2f} points")
    target = 0.95 if args.quick else 0.985
    if mean < target:
        print(f"FAILED: mean accuracy {mean:.4f} < {target}", file=sys.stderr)
        return 1
    if not args.quick and mean <= mlp:
        print(f"FAILED: the CNN ({mean:.4f}) is not above the MLP ({mlp:.4f})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
