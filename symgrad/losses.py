"""Losses as SymPy expressions of (prediction, target), one sample at a time.

Each returns a scalar expression; ``compile``/``fit`` average it over samples.

>>> import sympy as sp
>>> z, y = sp.MatrixSymbol("z", 3, 1), sp.MatrixSymbol("y", 3, 1)
>>> softmax_cross_entropy(z, y)
softmax_ce(z, y)
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from .tensor.functions import bce_sum, elementwise, mean, msum, softmax_ce


def _ew(m: sp.MatrixExpr, f: Callable[[sp.Expr], sp.Expr]) -> sp.MatrixExpr:
    z = sp.Symbol("z", real=True)
    return elementwise(sp.Lambda(z, f(z)), m)


def _residual(pred: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.MatrixExpr:
    # unevaluated, so the output layer z = W a + b stays one node (and one formula line)
    return sp.MatAdd(pred, sp.MatMul(-1, target), evaluate=False)


def mse(pred: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.Expr:
    """Mean squared error over the output units."""
    return mean(_ew(_residual(pred, target), lambda r: r**2))


def mae(pred: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.Expr:
    """Mean absolute error; |r|' = sign(r), 0 at r = 0."""
    return mean(_ew(_residual(pred, target), sp.Abs))


def huber(pred: sp.MatrixExpr, target: sp.MatrixExpr, delta: float = 1.0) -> sp.Expr:
    """Huber loss: quadratic within ``delta``, linear outside."""
    d = sp.nsimplify(delta)
    return mean(_ew(_residual(pred, target), lambda r: sp.Piecewise((r**2 / 2, sp.Abs(r) <= d),
                                                          (d * (sp.Abs(r) - d / 2), True))))


def binary_cross_entropy(logits: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.Expr:
    """BCE on logits, fused and stable (softplus(z) − y·z); gradient σ(z) − y."""
    rows, cols = logits.shape
    return bce_sum(logits, target) / (rows * cols)


def softmax_cross_entropy(logits: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.Expr:
    """Softmax cross-entropy against a one-hot target, fused: gradient softmax(z) − y."""
    return softmax_ce(logits, target)


LOSSES: dict[str, Callable[..., sp.Expr]] = {
    "mse": mse,
    "mae": mae,
    "huber": huber,
    "bce": binary_cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
    "cross_entropy": softmax_cross_entropy,
}

__all__ = ["LOSSES", "binary_cross_entropy", "huber", "mae", "mse", "msum", "softmax_cross_entropy"]
