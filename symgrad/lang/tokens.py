"""Next-token cross-entropy: a softmax cross-entropy at every position of a sequence.

A language model's output is a sequence of T positions × V logits (one (T·V) × 1 column, position
by position: ``symgrad.lang.attention``) and its target is the T × 1 column of the token ids that
should come next. ``token_ce(Z, y)`` is the mean over positions of the softmax cross-entropy
against the one-hot of each id::

    ℓ = (1/T) Σ_t [logsumexp(z_t) − z_t[y_t]],   ∂ℓ/∂z_t = (softmax(z_t) − onehot(y_t)) / T

which is PyTorch's ``F.cross_entropy(Z.view(-1, V), y.view(-1))`` once ``fit`` averages it over
samples. The targets stay ids (T numbers per sample, not T·V one-hot entries).

>>> import sympy as sp
>>> Z, y = sp.MatrixSymbol("z", 12, 1), sp.MatrixSymbol("y", 3, 1)
>>> token_ce(Z, y), token_ce(Z, y).vocab
(token_ce(z, y), 4)
"""

from __future__ import annotations

import sympy as sp

from ..errors import ShapeError
from .attention import sequence_shape


class token_ce(sp.Function):  # noqa: N801 (named like softmax_ce)
    """The mean over T positions of softmax cross-entropy of logits ``Z`` ((T·V) × 1) against the
    ids ``y`` (T × 1): one scalar per sample (module docstring)."""

    nargs = 2
    is_real = True

    @classmethod
    def eval(cls, Z, y):
        if not isinstance(Z, sp.MatrixExpr) or not isinstance(y, sp.MatrixExpr) or y.shape[1] != 1:
            raise ShapeError(f"token_ce({Z}, {y}): the logits are a (T·V) × 1 sequence and the target a T × 1 "
                             "column of token ids. Fix: token_ce(Z, MatrixSymbol('y', T, 1)).")
        rows, T = int(Z.shape[0]), int(y.shape[0])
        if int(Z.shape[1]) != 1 or rows % T:
            raise ShapeError(f"token_ce({Z}, {y}): {rows} logits do not split into {T} positions of equal width. "
                             f"Fix: the target has one id per position of the output (T × 1).")
        return None

    @property
    def positions(self) -> int:
        return int(self.args[1].shape[0])

    @property
    def vocab(self) -> int:
        return int(self.args[0].shape[0]) // self.positions

    def _sympystr(self, printer):
        return "token_ce(%s, %s)" % tuple(printer._print(a) for a in self.args)

    def _latex(self, printer):
        z, y = (printer._print(a) for a in self.args)
        return r"\frac{1}{T} \sum_t \operatorname{CE}\left(\operatorname{softmax}({%s}_t), {%s}_t\right)" % (z, y)


def token_rows(pred: sp.MatrixExpr) -> int:
    """T, the ids per sample that ``token_cross_entropy`` takes for a sequence of logits ``pred``."""
    seq = sequence_shape(pred)
    if seq is None:
        raise ShapeError(f"the 'token_cross_entropy' loss takes a sequence of logits (T positions × vocab), but the "
                         f"model's output is a plain vector of {pred.shape[0]} logits. Fix: end the model with "
                         "PositionwiseDense(d, vocab) (as sg.nn.Transformer does), or use 'cross_entropy' for one "
                         "class per sample.")
    return seq[0]


def token_cross_entropy(logits: sp.MatrixExpr, target: sp.MatrixExpr) -> sp.Expr:
    """Next-token cross-entropy: mean over positions of softmax CE against each position's id."""
    from .losses import check_logits, check_pair

    rows = token_rows(logits) if isinstance(logits, sp.MatrixExpr) else None  # a wrong type is named first
    check_pair(logits, target, "token_cross_entropy", ("logits", "target"), rows)
    check_logits(logits, "token_cross_entropy")
    return token_ce(logits, target)


token_cross_entropy.target_rows = token_rows  # the target is T ids, not one entry per logit
