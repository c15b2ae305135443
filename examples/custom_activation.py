"""A custom activation is any SymPy expression of one symbol: here Mish, z*tanh(softplus(z)).
Its derivative is derived, simplified, printed and compiled with no hand-written rule.

    python examples/custom_activation.py [--quick]
"""

import argparse
import sys

import numpy as np
import sympy as sp

import symgrad as sg


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="30 epochs instead of 200, for CI")
    args = ap.parse_args()
    mish = sg.activation(lambda z: z * sp.tanh(sp.log(1 + sp.exp(z))))
    z = sp.Symbol("z", real=True)
    print("mish(z)  =", mish(z))
    print("mish'(z) =", sg.grad(mish(z), z), "\n")
    net = sg.nn.MLP([1, 16, 1], activation=mish)
    print(sg.formulas(net, "mse"), "\n")
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, size=(1000, 1))
    Y = np.sin(X[:, 0])
    model = sg.fit(net, "mse", X, Y, optimizer=sg.optim.Adam(0.01), epochs=30 if args.quick else 200,
                   batch_size=32, seed=0)
    print(f"mse {model.history['loss'][0]:.4f} -> {model.history['loss'][-1]:.4f}")
    return 0 if model.history["loss"][-1] < 0.5 * model.history["loss"][0] else 1


if __name__ == "__main__":
    sys.exit(main())
