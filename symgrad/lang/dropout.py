"""Dropout as a SymPy matrix expression, and the ``Dropout`` layer.

``dropout(x, p)`` is one node: in training each entry of x is zeroed with probability p and the
rest are scaled by 1/(1 − p) (inverted dropout, as PyTorch's ``nn.Dropout``), a new mask for
every sample of every step; in inference (``predict``, ``evaluate``, a compiled function's
``grad``) it is the identity, as PyTorch's ``model.eval()``. As a formula it is ``m ⊙ x/(1 − p)``
with m the step's mask, so its delta is ``m ⊙ δ/(1 − p)`` (``symgrad.explain.norms``). The mask
comes from a counter-based hash of (the step's key, the row, the column) (symgrad/native/noise.py):
training is reproducible from ``fit``'s seed, on any number of threads, and across a resume.

>>> import sympy as sp
>>> h = sp.MatrixSymbol("h", 4, 1)
>>> dropout(h, 0.25), dropout(h, 0.25).p, dropout(h, 0.25).shape
(dropout(h, p=0.25), 0.25, (4, 1))
>>> dropout(sp.Matrix([1, 2]), 0.5)  # an explicit matrix: its inference value
Matrix([
[1],
[2]])
"""

from __future__ import annotations

import sympy as sp

from ..errors import OptionError, ShapeError
from .args import known_keywords
from .walk import holds


def check_p(p, what: str = "dropout") -> float:
    """p as a float, once it is a probability in [0, 1)."""
    ok = not isinstance(p, bool) and isinstance(p, (int, float, sp.Number)) and 0 <= float(p) < 1
    if not ok:
        raise OptionError(f"{what}(p={p!r}): p is the probability of zeroing an entry, a number in [0, 1) "
                          "(p = 1 would zero everything and divide by 0). Fix: e.g. p=0.1 or p=0.5.")
    return float(p)


class dropout(sp.MatrixExpr):  # noqa: N801 (named like SymPy's functions and sg.layernorm)
    """``m ⊙ x / (1 − p)`` in training (m: a fresh 0/1 mask, P(m = 0) = p), x in inference, of a
    per-sample column vector x."""

    def __new__(cls, x, p=0.5):
        x = sp.sympify(x)
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) != 2 or shape[1] != 1:
            raise ShapeError(f"dropout({x}): the input must be a column vector (n × 1, one sample), got shape "
                             f"{shape}. Fix: drop out a layer's output, e.g. dropout(W*x + b, 0.5).")
        pf = check_p(p)
        if isinstance(x, sp.MatrixBase) or (isinstance(x, sp.MatrixExpr) and not holds(x, sp.MatrixSymbol)):
            return sp.Matrix(x) if isinstance(x, sp.MatrixBase) else x.as_explicit()
        return sp.Basic.__new__(cls, x, sp.Float(pf))

    @property
    def p(self) -> float:
        return float(self.args[1])

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):  # inference: the identity
        return self.args[0][i, j]

    def _sympystr(self, printer):
        return f"dropout({printer._print(self.args[0])}, p={self.p:g})"

    def _latex(self, printer):
        return r"\operatorname{dropout}_{p = %s}\left(%s\right)" % (f"{self.p:g}", printer._print(self.args[0]))


@known_keywords
class Dropout:
    """``d = dropout(x, p)``: in training, each entry zeroed with probability p and the others scaled
    by 1/(1 − p); the identity in ``predict`` and ``evaluate`` (PyTorch's ``nn.Dropout``). Its mask is
    drawn from ``fit``'s ``seed`` (the same seed, the same masks). Works on vectors, images and
    sequences alike (every entry independently); it has no parameters.

    >>> import symgrad as sg
    >>> net = sg.nn.Sequential([sg.nn.Dense(4, 8, "relu"), sg.nn.Dropout(0.2), sg.nn.Dense(8, 3)], 4)
    >>> net.expr
    W3*dropout(Lambda(z, relu(z)).(W1*x + b1), p=0.2) + b3
    """

    def __init__(self, p: float = 0.5):
        self.p = check_p(p, "Dropout")

    def build(self, x: sp.MatrixExpr, shape, index: int):
        d = dropout(x, self.p)
        return d, shape, {d: f"d{index}"}

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return []

    def __repr__(self) -> str:
        return f"Dropout(p={self.p:g})"
