"""The seed's one-hidden-layer sigmoid network (seed 003, Case 2): its textbook backprop
equations printed from the model, then trained with SGD on a small synthetic task.

    python examples/seed_network.py [--quick]
"""

import argparse
import sys

import numpy as np

import symgrad as sg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20 epochs instead of 60, for CI")
    args = ap.parse_args()
    # the notes' x -> z = sigma(alpha x) -> y = sigma(beta z), with biases and 8 hidden units; BCE on the
    # output's logit is the cross-entropy of y = sigma(beta z), fused and stable
    net = sg.nn.MLP([2, 8, 1], activation="sigmoid")
    f = sg.formulas(net, "bce")
    print(f, "\n")
    print(f.latex(), "\n")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2))
    Y = (X[:, 0] * X[:, 1] > 0).astype(float)  # XOR-like: needs the hidden layer
    model = sg.fit(net, "bce", X, Y, optimizer=sg.optim.SGD(0.5), epochs=20 if args.quick else 60,
                   batch_size=32, seed=0)
    acc = model.evaluate(X, Y)["accuracy"]
    print(f"loss {model.history['loss'][0]:.3f} -> {model.history['loss'][-1]:.3f}, accuracy {acc:.3f}")
    return 0 if model.history["loss"][-1] < model.history["loss"][0] else 1


if __name__ == "__main__":
    sys.exit(main())
