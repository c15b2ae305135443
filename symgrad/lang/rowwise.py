"""Position-wise operations on sequences, as SymPy matrix expressions (one node each).

A sequence of T positions × d features is one (T·d) × 1 column, position by position
(``symgrad.lang.attention``): the rows of its T × d matrix X one after the other. Two nodes act
on each position alike:

- ``rowmatmul(X, W, seq=(T, d_in))``: ``X·W``, each position's d_in features times the
  d_in × d_out matrix W (rows are positions, as in ``attention``: W is PyTorch's
  ``Linear.weight`` transposed); a (T·d_out) × 1 sequence.
- ``broadcast(v, T)``: the d × 1 vector v repeated at each of T positions, a (T·d) × 1 column;
  what a bias or LayerNorm's γ and β of d entries becomes, added to a sequence entry by entry.

>>> import sympy as sp
>>> X, W, b = sp.MatrixSymbol("X", 6, 1), sp.MatrixSymbol("W", 2, 4), sp.MatrixSymbol("b", 4, 1)
>>> Z = rowmatmul(X, W, seq=(3, 2)) + broadcast(b, 3)
>>> Z, Z.shape
(broadcast(b, 3) + rowmatmul(X, W), (12, 1))
>>> rowmatmul(X, W, seq=(3, 2)).seq
(3, 4)
"""

from __future__ import annotations

import sympy as sp
from sympy.core.parameters import global_parameters
from sympy.printing.precedence import PRECEDENCE

from ..errors import ShapeError
from .args import count
from .walk import holds


class rowmatmul(sp.MatrixExpr):  # noqa: N801 (named like SymPy's functions and sg.attention)
    """``X·W`` position by position: X a sequence (T·d_in) × 1 (``seq=(T, d_in)``), W d_in × d_out."""

    def __new__(cls, X, W, seq=None):
        if isinstance(seq, sp.Tuple) and not global_parameters.evaluate:  # read back (srepr_io): as stored
            return sp.Basic.__new__(cls, X, W, seq)
        if not isinstance(X, sp.MatrixExpr) or not isinstance(W, sp.MatrixExpr):
            raise ShapeError(f"rowmatmul({X}, {W}): both operands are matrix expressions, X a (T·d_in) × 1 "
                             "sequence and W d_in × d_out. Fix: e.g. rowmatmul(X, MatrixSymbol('W', d_in, d_out), seq=(T, d_in)).")
        d_in = int(W.shape[0])
        if seq is None:
            raise ShapeError(f"rowmatmul({X}, {W}): pass seq=(T, d_in), positions × features, with "
                             f"T·d_in = {X.shape[0]} (its rows).")
        T = count(seq[0], "rowmatmul seq T")
        if int(seq[1]) != d_in or tuple(int(v) for v in X.shape) != (T * d_in, 1):
            raise ShapeError(f"rowmatmul({X}, {W}): X is {X.shape[0]}×{X.shape[1]} (seq={tuple(seq)!r}) and W has "
                             f"{d_in} rows; X must be a sequence of T positions of d_in = {d_in} features, a column "
                             f"of T·{d_in}. Fix: W = MatrixSymbol('W', {int(seq[1])}, d_out) for seq={tuple(seq)!r}.")
        return sp.Basic.__new__(cls, X, W, sp.Tuple(sp.Integer(T), sp.Integer(d_in)))

    @property
    def seq(self) -> tuple[int, int]:
        """(T, d_out): the output's positions and features."""
        return int(self.args[2][0]), int(self.args[1].shape[1])

    @property
    def shape(self):
        T, d = self.seq
        return (sp.Integer(T * d), sp.Integer(1))

    def _sympystr(self, printer):
        return f"rowmatmul({printer._print(self.args[0])}, {printer._print(self.args[1])})"

    def _latex(self, printer):
        return r"%s \cdot %s" % tuple(printer.parenthesize(a, 50) for a in self.args[:2])


class broadcast(sp.MatrixExpr):  # noqa: N801
    """The d × 1 vector v at each of T positions: a (T·d) × 1 column, position by position."""

    def __new__(cls, v, T):
        T = count(T, "broadcast T")
        if not isinstance(v, sp.MatrixExpr) or int(v.shape[1]) != 1:
            raise ShapeError(f"broadcast({v}, {T}): v must be a column vector (d × 1), got shape "
                             f"{getattr(v, 'shape', None)}. Fix: e.g. MatrixSymbol('b', d, 1).")
        return sp.Basic.__new__(cls, v, sp.Integer(T))

    @property
    def positions(self) -> int:
        return int(self.args[1])

    @property
    def seq(self) -> tuple[int, int]:
        return self.positions, int(self.args[0].shape[0])

    @property
    def shape(self):
        return (self.args[0].shape[0] * self.args[1], sp.Integer(1))

    def _sympystr(self, printer):
        return f"broadcast({printer._print(self.args[0])}, {self.positions})"

    def _latex(self, printer):
        return printer._print(self.args[0])  # as the formulas print it: broadcasting is implicit


class residual(sp.MatrixExpr):  # noqa: N801
    """``h + f``, a residual connection (``sg.nn.Residual``): a sum that SymPy keeps as it is.

    A plain ``MatAdd`` would be flattened into the sums inside f (``W*(h + f)`` re-evaluates its
    operand), and the layers there would lose their names; this node keeps both operands whole
    and lowers to the same elementwise sum (``kinds/rowwise.py``).
    """

    def __new__(cls, h, f):
        if not global_parameters.evaluate:  # read back (srepr_io): as stored
            return sp.Basic.__new__(cls, h, f)
        if not isinstance(h, sp.MatrixExpr) or not isinstance(f, sp.MatrixExpr) or \
                tuple(map(int, h.shape)) != tuple(map(int, f.shape)):
            raise ShapeError(f"residual({h}, {f}): both operands are matrix expressions of one shape, got "
                             f"{getattr(h, 'shape', None)} and {getattr(f, 'shape', None)}.")
        if not holds(h, sp.MatrixSymbol) and not holds(f, sp.MatrixSymbol):
            return h.as_explicit() + f.as_explicit()
        return sp.Basic.__new__(cls, h, f)

    precedence = PRECEDENCE["Add"]  # printed in parentheses inside a product: W*(h + f)

    @property
    def seq(self) -> tuple[int, int] | None:
        from .attention import sequence_shape  # attention imports nothing from here; keep it that way

        return sequence_shape(self.args[0]) or sequence_shape(self.args[1])

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        return self.args[0]._entry(i, j, **kwargs) + self.args[1]._entry(i, j, **kwargs)

    def _sympystr(self, printer):
        return " + ".join(printer.parenthesize(a, self.precedence, strict=True) for a in self.args)

    def _latex(self, printer):
        return " + ".join(printer.parenthesize(a, self.precedence, strict=True) for a in self.args)


class per_channel(sp.MatrixExpr):  # noqa: N801
    """The C × 1 vector v with each entry at the S positions of its channel: a (C·S) × 1 column,
    channel by channel, as an image is stored (``symgrad.lang.conv``); what a batch norm's γ and β
    of one entry per channel become, multiplied into and added to an image entry by entry."""

    def __new__(cls, v, S):
        S = count(S, "per_channel S")
        if not isinstance(v, sp.MatrixExpr) or int(v.shape[1]) != 1:
            raise ShapeError(f"per_channel({v}, {S}): v must be a column vector (C × 1), got shape "
                             f"{getattr(v, 'shape', None)}. Fix: e.g. MatrixSymbol('gamma', C, 1).")
        return sp.Basic.__new__(cls, v, sp.Integer(S))

    @property
    def positions(self) -> int:
        return int(self.args[1])

    @property
    def shape(self):
        return (self.args[0].shape[0] * self.args[1], sp.Integer(1))

    def _sympystr(self, printer):
        return f"per_channel({printer._print(self.args[0])}, {self.positions})"

    def _latex(self, printer):
        return printer._print(self.args[0])  # as the formulas print it: broadcasting is implicit
