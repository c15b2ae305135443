"""Losses as SymPy expressions of (prediction, target), one sample at a time.

Each returns a scalar expression; ``compile``/``fit`` average it over samples.

>>> import sympy as sp
>>> z, y = sp.MatrixSymbol("z", 3, 1), sp.MatrixSymbol("y", 3, 1)
>>> softmax_cross_entropy(z, y)
softmax_ce(z, y)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from ..errors import LossMismatchError, OptionError, ShapeError
from ..front.rewrite import stabilize
from .constants import HuberDelta
from .functions import bce_sum, elementwise, mean, msum, softmax, softmax_ce
from .ops import sigmoid
from .tokens import token_cross_entropy


def _ew(m: sp.MatrixExpr, f: Callable[[sp.Expr], sp.Expr]) -> sp.MatrixExpr:
    z = sp.Symbol("z", real=True)
    return elementwise(sp.Lambda(z, f(z)), m)


def _residual(pred: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.MatrixExpr:
    # unevaluated, so the output layer z = W a + b stays one node (and one formula line)
    return sp.MatAdd(pred, sp.MatMul(-1, target), evaluate=False)


def check_pair(pred, target, loss: str, names: tuple[str, str] = ("pred", "target"), rows: int | None = None) -> None:
    """``pred`` and ``target`` are matrix expressions (one column per sample), the target of the
    prediction's shape (or a column of ``rows`` rows: a token loss's T ids). Mismatched shapes raised
    SymPy's own error or none at all (binary cross-entropy took a 2-row target for 3 logits).

    >>> check_pair(sp.MatrixSymbol("z", 3, 1), sp.MatrixSymbol("y", 2, 1), "mse")
    Traceback (most recent call last):
        ...
    symgrad.errors.ShapeError: mse: pred is 3×1 but target is 2×1. Fix: a target of the prediction's shape, e.g. sp.MatrixSymbol("y", 3, 1).
    """
    for name, m in zip(names, (pred, target)):
        if not isinstance(m, (sp.MatrixExpr, sp.MatrixBase)):
            letter = "y" if name == "target" else "z"
            raise ShapeError(f"{loss}({name}={m!r}): the losses compare matrix expressions, one column per sample "
                             f"(a network's output, its target). Fix: e.g. {name}=sp.MatrixSymbol(\"{letter}\", 3, 1); "
                             "for a scalar formula, write the loss itself, e.g. (f - y)**2.")
    want = tuple(pred.shape) if rows is None else (rows, 1)
    if tuple(target.shape) != tuple(want):
        raise ShapeError(f"{loss}: {names[0]} is {pred.shape[0]}×{pred.shape[1]} but {names[1]} is "
                         f"{target.shape[0]}×{target.shape[1]}. Fix: a target of "
                         f"{'the prediction' if rows is None else 'one id per position'}'s shape, "
                         f"e.g. sp.MatrixSymbol(\"y\", {want[0]}, {want[1]}).")


def mse(pred: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.Expr:
    """Mean squared error over the output units."""
    check_pair(pred, target, "mse")
    return mean(_ew(_residual(pred, target), lambda r: r**2))


def mae(pred: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.Expr:
    """Mean absolute error; |r|' = sign(r), 0 at r = 0."""
    check_pair(pred, target, "mae")
    return mean(_ew(_residual(pred, target), sp.Abs))


def huber(pred: sp.MatrixExpr, target: sp.MatrixExpr, delta: float = 1.0) -> sp.Expr:
    """Huber loss: quadratic within ``delta``, linear outside (``delta`` > 0, PyTorch's
    HuberLoss). ``delta`` is kept as the simplest fraction it rounds to (0.1 -> 1/10), and
    prints as δ; compiled, it is read at run time, so each delta shares one module.

    >>> huber(sp.MatrixSymbol("z", 2, 1), sp.MatrixSymbol("y", 2, 1), delta=-1)
    Traceback (most recent call last):
        ...
    symgrad.errors.OptionError: huber(delta=-1): δ is where the loss turns from quadratic to linear, a finite number above 0 (below 0 the loss would be negative, at 0 it would be 0 everywhere). Fix: delta=1.0 (PyTorch's default).
    """
    check_pair(pred, target, "huber")
    # a number, never a string: sympify would evaluate its text
    number = isinstance(delta, (int, float, np.integer, np.floating, sp.Number)) and not isinstance(delta, bool)
    value = sp.nsimplify(delta) if number and np.isfinite(float(delta)) else None
    if value is None or not value.is_positive:
        raise OptionError(f"huber(delta={delta!r}): δ is where the loss turns from quadratic to linear, a finite "
                          "number above 0 (below 0 the loss would be negative, at 0 it would be 0 everywhere). "
                          "Fix: delta=1.0 (PyTorch's default).")
    d = HuberDelta(value)  # read at run time: a new delta compiles nothing (lang/constants.py)
    return mean(_ew(_residual(pred, target), lambda r: sp.Piecewise((r**2 / 2, sp.Abs(r) <= d),
                                                          (d * (sp.Abs(r) - d / 2), True))))


def _squash(pred: sp.MatrixExpr) -> str | None:
    """'sigmoid' or 'softmax' when the prediction already ends in that function, else None."""
    if isinstance(pred, softmax):
        return "softmax"
    if isinstance(pred, ElementwiseApplyFunction):
        z = sp.Dummy("z", real=True)
        if stabilize(sp.sympify(pred.function(z)))[0] == sigmoid(z):  # 1/(1+exp(-z)) counts too
            return "sigmoid"
    return None


def check_logits(pred: sp.MatrixExpr, loss: str) -> None:
    """Refuse a prediction that already ends in sigmoid/softmax for a loss that takes logits.

    Why: the loss applies σ (or softmax) itself, so the model would apply it twice; nothing
    fails, the net only trains worse (measured: 49% accuracy where the same net reaches 77%).
    """
    squash = _squash(pred)
    if squash is None:
        return
    raise LossMismatchError(
        f"the model's output already applies {squash} (e.g. MLP(..., output={squash!r})), but the "
        f"{loss!r} loss takes logits and applies {'sigmoid' if loss == 'bce' else 'softmax'} itself, "
        "so the output would be squashed twice (nothing fails; the net just trains worse). "
        "Fix: build the model with output='identity' (the default; output=None means the same) "
        f"and keep {loss!r}, which is fused and stable; predict() then returns logits. Or keep "
        f"output={squash!r} with a loss on probabilities, e.g. 'mse' or your own f(pred, target)."
    )


def binary_cross_entropy(logits: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.Expr:
    """BCE on logits, fused and stable (softplus(z) − y·z); gradient σ(z) − y."""
    check_pair(logits, target, "binary_cross_entropy", ("logits", "target"))
    check_logits(logits, "bce")
    rows, cols = logits.shape
    return bce_sum(logits, target) / (rows * cols)


def softmax_cross_entropy(logits: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.Expr:
    """Softmax cross-entropy against a one-hot target, fused: gradient softmax(z) − y."""
    check_pair(logits, target, "softmax_cross_entropy", ("logits", "target"))
    check_logits(logits, "softmax_cross_entropy")
    if logits.shape[0] == 1:  # the softmax of one logit is 1 whatever it is: the loss is 0, nothing trains
        raise ShapeError("the softmax cross-entropy needs at least 2 outputs (classes); the model has 1, "
                         "where it is 0 whatever the weights. Fix: 'bce' for one output (a binary label), "
                         "or a model with one output per class.")
    return softmax_ce(logits, target)


LOSSES: dict[str, Callable[..., sp.Expr]] = {
    "mse": mse,
    "mae": mae,
    "huber": huber,
    "bce": binary_cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
    "cross_entropy": softmax_cross_entropy,
    "token_cross_entropy": token_cross_entropy,
}


def target_symbol(fn: Callable[..., sp.Expr], pred: sp.MatrixExpr, name: str = "y") -> sp.MatrixSymbol:
    """The target ``y`` that loss ``fn`` compares ``pred`` with: a column like ``pred``, except for a
    loss that says its own rows (``token_cross_entropy`` takes one id per position).

    >>> z = sp.MatrixSymbol("z", 3, 1)
    >>> target_symbol(mse, z).shape
    (3, 1)
    """
    rows = getattr(fn, "target_rows", None)
    return sp.MatrixSymbol(name, int(rows(pred)) if rows else int(pred.shape[0]), 1)



def loss_fn(loss: str | Callable[..., sp.Expr]) -> tuple[Callable[..., sp.Expr], str]:
    """(the loss function, its name) for a name in ``LOSSES`` or a function f(pred, target).

    >>> loss_fn("bce")[1], loss_fn("MSE")[1]
    ('bce', 'mse')
    """
    if isinstance(loss, str):
        name = loss.lower()  # 'MSE' as 'mse', as optimizer names are taken in any case
        if name not in LOSSES:
            raise OptionError(f"unknown loss {loss!r}. Known: {sorted(LOSSES)}. Fix: use one of them, or pass f(pred, target)")
        return LOSSES[name], name
    if not callable(loss):
        raise OptionError(f"loss must be a name or a function f(pred, target), got {type(loss).__name__}. "
                          f"Fix: pass one of {sorted(LOSSES)}, or a function of (pred, target).")
    name = getattr(loss, "__name__", "custom")
    try:
        inspect.signature(loss).bind(None, None)
    except ValueError:  # no signature to read (some builtins): the call itself will tell
        pass
    except TypeError:
        raise OptionError(f"the custom loss {name}{inspect.signature(loss)} cannot be called as f(pred, "
                          "target): a loss takes the model's output and the target (SymPy column "
                          "matrices) and returns a SymPy scalar. Fix: e.g. def my_loss(pred, target): "
                          "return sg.losses.mse(pred, target).") from None
    return loss, name


__all__ = ["LOSSES", "loss_fn", "binary_cross_entropy", "huber", "mae", "mse", "msum", "softmax_cross_entropy",
           "target_symbol", "token_cross_entropy"]
