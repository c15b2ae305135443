"""LeNet-5 on 28x28 digits made in code: scikit-learn's 8x8 digits upsampled to 20x20 and placed
at a random shift inside a 28x28 canvas (nothing is downloaded). Two 5x5 convolutions with max
pooling, three dense layers, softmax cross-entropy, Adam with a cosine schedule, batch 64, trained
by the fused Numba kernel. The split is the MLP demo's fixed 80/20 one (examples/digits_mlp.py);
the training set is augmented with shifted copies, each test digit appears once, at its own shift.

    python examples/lenet_digits.py           # 6 shifted copies, 12 epochs: must reach >= 97% test accuracy
    python examples/lenet_digits.py --quick   # 2 copies, 4 epochs, for CI
"""

import argparse
import sys
import time

import numpy as np
from digits_mlp import split  # the MLP demo's fixed 80/20 split (examples/ is the script's folder)
from scipy import ndimage

import symgrad as sg

SIDE, DIGIT = 28, 20  # canvas and upsampled digit, in pixels


def canvases(X8: np.ndarray, copies: int, rng: np.random.Generator) -> np.ndarray:
    """(copies·n, 1, 28, 28) images in 0..1: each 8x8 digit (pixels 0..16) upsampled to 20x20
    (bilinear) and placed at a random (row, column) shift; copy k of digit i is row k·n + i."""
    up = np.clip(ndimage.zoom(X8.reshape(-1, 8, 8) / 16.0, (1, DIGIT / 8, DIGIT / 8), order=1), 0.0, 1.0)
    out = np.zeros((copies, len(X8), 1, SIDE, SIDE))
    for k in range(copies):
        for i, (r, c) in enumerate(rng.integers(0, SIDE - DIGIT + 1, size=(len(X8), 2))):
            out[k, i, 0, r:r + DIGIT, c:c + DIGIT] = up[i]
    return out.reshape(-1, 1, SIDE, SIDE)


def lenet():
    nn = sg.nn
    return nn.Sequential([
        nn.Conv2D(1, 6, 5, padding=2, activation="relu"),   # 6 x 28 x 28
        nn.MaxPool2D(2),                                   # 6 x 14 x 14
        nn.Conv2D(6, 16, 5, activation="relu"),             # 16 x 10 x 10
        nn.MaxPool2D(2),                                   # 16 x 5 x 5
        nn.Flatten(),                                      # 400
        nn.Dense(400, 120, activation="relu"),
        nn.Dense(120, 84, activation="relu"),
        nn.Dense(84, 10),                                  # logits
    ], input_shape=(1, SIDE, SIDE))


def ascii_image(img: np.ndarray) -> str:
    return "\n".join("".join(" .:-=+*#"[min(7, int(v * 8))] * 2 for v in row) for row in img)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 shifted copies and 4 epochs, for CI (the full run: 6 and 12)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="the model's dtype (default float32)")
    args = ap.parse_args()
    Xtr, ytr, Xte, yte = split()
    copies, epochs, lr = (2, 4, 3e-3) if args.quick else (6, 12, 2e-3)
    Itr = canvases(Xtr, copies, np.random.default_rng(1)).astype(args.dtype)   # NCHW
    Ytr = np.tile(ytr, copies)
    Ite = canvases(Xte, 1, np.random.default_rng(2)).astype(args.dtype)
    print(f"training images {Itr.shape} ({copies} shifted copies of {len(Xtr)} digits), test images {Ite.shape}")
    print(f"the first training image, a {ytr[0]}:\n{ascii_image(Itr[0, 0])}\n")
    net = lenet()
    print(net, "\n")
    print(sg.formulas(net, "softmax_cross_entropy"), "\n")
    opt = sg.optim.Adam(lr, schedule=sg.optim.CosineLR(t_max=epochs))
    print(opt, "\n")
    t0 = time.perf_counter()
    model = sg.fit(net, "softmax_cross_entropy", Itr, Ytr, optimizer=opt, epochs=epochs, batch_size=64,
                   dtype=args.dtype, seed=0)
    wall = time.perf_counter() - t0
    acc = model.evaluate(Ite, yte)["accuracy"]
    per_epoch = np.median(model.history["time"][1:]) * 1e3 if epochs > 1 else float("nan")
    print(f"{epochs} epochs in {wall:.1f} s (including build), median {per_epoch:.1f} ms/epoch")
    print(f"train loss {model.history['loss'][0]:.3f} -> {model.history['loss'][-1]:.4f}; test accuracy {acc:.4f}")
    target = 0.85 if args.quick else 0.97
    if acc < target:
        print(f"FAILED: accuracy {acc:.4f} < {target}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
