"""Exact sample and class weights, carried in the targets.

symgrad's kernel averages one loss per sample over each minibatch; it has no weight input.
The weight therefore rides in the target, and the loss multiplies by it:

- classes: the target row is ``w·onehot``, and ``Σt·logsumexp(z) − Σ t⊙z`` equals
  ``w·CE(z, onehot)`` exactly (the fused 'softmax_cross_entropy' is ``logsumexp(z) − tᵀz``,
  which is not linear in ``t``, so it cannot be reused);
- regression: the network gets one extra output whose target entry is ``w``; the loss
  multiplies the squared error of the real outputs by it and never reads the extra output,
  whose parameters therefore get zero gradient and never move.

Weights are rescaled to mean 1 over the data of each call, so the full-data objective is the
weighted average ``Σ w_i ℓ_i / Σ w_i`` (as scikit-learn's MLP), each minibatch's gradient an
unbiased estimate of its gradient, and the learning rate means what it means unweighted.

>>> import sympy as sp
>>> z, t = sp.MatrixSymbol("z", 3, 1), sp.MatrixSymbol("y", 3, 1)
>>> weighted_softmax_ce(z, t)
logsumexp(z)*msum(y) - msum(HadamardProduct(y, z))
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.matrices.expressions.hadamard import HadamardProduct
from sympy.matrices.expressions.matexpr import MatrixElement

from ..errors import DataError, OptionError
from ..lang.functions import logsumexp, msum
from ..lang.losses import check_logits
from ..runtime.inputs import plain


def weighted_softmax_ce(pred: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.Expr:
    """Softmax cross-entropy on logits, times the weight ``Σ target`` (target = w·onehot).
    Its gradient is ``Σt·softmax(z) − t``; logsumexp keeps it finite for any logits."""
    check_logits(pred, "softmax_cross_entropy")
    return msum(target) * logsumexp(pred) - msum(HadamardProduct(target, pred))


def weighted_mse(pred: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.Expr:
    """Mean squared error of all outputs but the last, times the target's last entry (the weight).
    Entries are taken unevaluated: ``pred[k, 0]`` would expand the layer into its scalar sum."""
    n = int(pred.shape[0]) - 1
    err = sp.Add(*[(MatrixElement(pred, k, 0) - MatrixElement(target, k, 0)) ** 2 for k in range(n)])
    return MatrixElement(target, n, 0) * err / n


def sample_weights(sample_weight, n: int) -> np.ndarray:
    """``sample_weight`` as n finite non-negative float64 weights, not all zero (None: ones).
    The caller's array is never modified."""
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(plain(sample_weight, "sample_weight"))
    if w.dtype.kind == "c":  # NumPy would keep the real part, with only a ComplexWarning
        raise DataError(f"Complex data not supported: sample_weight has dtype {w.dtype}. Fix: pass real weights.")
    w = w.astype(np.float64)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise DataError(f"sample_weight has shape {w.shape}; expected ({n},), one weight per sample.")
    if not np.isfinite(w).all() or (w < 0).any():
        raise DataError("sample_weight holds negative, NaN or infinite values. Fix: pass finite "
                         "weights >= 0.")
    return _in_range(w)


def _in_range(w: np.ndarray) -> np.ndarray:
    """``w`` divided by its largest entry where its sum, or n over its sum, would leave float64's
    range (weights of 1e307 summed to inf, and 1e-310 to a sum whose reciprocal is inf): weights
    are scale-free, and the unscaled ones trained on zero or infinite targets."""
    top = w.max() if len(w) else 0.0
    with np.errstate(over="ignore", divide="ignore"):
        ok = np.isfinite(w.sum()) and np.isfinite(len(w) / w.sum())
    return w / top if top > 0 and not ok else w


def class_weights(class_weight, classes: np.ndarray, y_idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    """One weight per class: None gives ones; 'balanced' gives Σw / (n_classes · Σw of the class),
    with sample weights counted; a dict maps labels to weights (others keep 1)."""
    k = len(classes)
    if class_weight is None:
        return np.ones(k)
    if isinstance(class_weight, str) and class_weight == "balanced":
        counts = np.bincount(y_idx, weights=w, minlength=k)
        return np.where(counts > 0, counts.sum() / (k * np.maximum(counts, 1e-300)), 1.0)
    if not isinstance(class_weight, dict):
        raise OptionError(f"class_weight={class_weight!r}: use None, 'balanced' or a dict "
                         "{label: weight}.")
    out = np.ones(k)
    for label, cw in class_weight.items():
        hit = np.flatnonzero(classes == label)
        if not len(hit):
            raise OptionError(f"class_weight names the label {label!r}, which is not among the "
                             f"classes {classes.tolist()}.")
        if isinstance(cw, bool) or not isinstance(cw, (int, float, np.integer, np.floating)) \
                or not (np.isfinite(cw) and cw >= 0):  # None or text: NumPy's isfinite raised a TypeError
            raise OptionError(f"class_weight[{label!r}] = {cw!r}; weights must be finite and >= 0.")
        out[hit[0]] = cw
    return out


def normalized(w: np.ndarray) -> np.ndarray:
    """Weights rescaled to mean 1 (see the module docstring); all zero is refused."""
    w = _in_range(w)
    total = w.sum()
    if not total > 0:
        raise DataError("sample_weight (times class_weight) is zero for every sample; at least one "
                         "weight must be positive.")
    return w * (len(w) / total)
