"""Tensor-level SymPy functions: reductions and fused losses over matrix expressions.

They are ordinary ``sympy.Function`` objects whose arguments are matrix expressions,
so a whole network's loss stays one SymPy expression. On explicit matrices they
evaluate, which lets tests compare against ``sympy.diff`` of tiny scalarised models.

>>> import sympy as sp
>>> z = sp.MatrixSymbol("z", 3, 1)
>>> msum(z)
msum(z)
>>> msum(sp.Matrix([1, 2, 3]))
6
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from ..errors import OptionError
from .walk import holds


def _explicit(m) -> sp.Matrix | None:
    if isinstance(m, sp.MatrixBase):
        return m
    if isinstance(m, sp.MatrixExpr) and not holds(m, sp.MatrixSymbol):
        return m.as_explicit()
    return None


class msum(sp.Function):
    """Sum of all entries of a matrix expression."""

    nargs = 1
    is_real = True

    @classmethod
    def eval(cls, m):
        e = _explicit(m)
        return None if e is None else sum(e)

    def _latex(self, printer, exp=None):
        if hasattr(printer, "_print_msum"):  # symgrad's printouts: explain/loss_notation.py
            out = printer._print_msum(self)
        else:
            out = r"\sum %s" % printer.parenthesize(self.args[0], 60)
        # a power's base (LaTeX's printer hands the exponent down): (Σ r²)^{3/2}
        return out if exp is None else r"\left(%s\right)^{%s}" % (out, exp)


class logsumexp(sp.Function):
    """log Σ exp(z_k), computed with the max subtracted."""

    nargs = 1
    is_real = True

    @classmethod
    def eval(cls, m):
        e = _explicit(m)
        return None if e is None else sp.log(sum(sp.exp(v) for v in e))

    def _latex(self, printer):
        return r"\operatorname{logsumexp}\left(%s\right)" % printer._print(self.args[0])


class softmax_ce(sp.Function):
    """Softmax cross-entropy on logits z against target distribution y (one-hot):
    logsumexp(z) − yᵀz. Fused: its gradient is softmax(z) − y, finite for any z."""

    nargs = 2
    is_real = True

    @classmethod
    def eval(cls, z, y):
        ez, ey = _explicit(z), _explicit(y)
        if ez is None or ey is None:
            return None
        return sp.log(sum(sp.exp(v) for v in ez)) - sum(a * b for a, b in zip(ey, ez))

    def _latex(self, printer):
        z, y = (printer._print(a) for a in self.args)
        return r"\operatorname{CE}\left(\operatorname{softmax}(%s), %s\right)" % (z, y)


class bce_sum(sp.Function):
    """Σ_k bce_logits(z_k, y_k): binary cross-entropy on logits, summed over units.

    One fused elementwise node: its gradient is σ(z) − y, computed without exp overflow.
    """

    nargs = 2
    is_real = True

    @classmethod
    def eval(cls, z, y):
        from .ops import bce_logits

        ez, ey = _explicit(z), _explicit(y)
        if ez is None or ey is None:
            return None
        return sum(bce_logits(a, b) for a, b in zip(ez, ey))

    def _latex(self, printer):
        if hasattr(printer, "_print_bce_sum"):  # symgrad's printouts: explain/loss_notation.py
            return printer._print_bce_sum(self)
        z, y = (printer._print(a) for a in self.args)
        return r"\sum \operatorname{BCE}_{\text{logits}}\left(%s, %s\right)" % (z, y)


class softmax(sp.MatrixExpr):
    """softmax of a column vector, as a matrix expression: exp(z_k) / Σ_j exp(z_j).

    A vector op, not elementwise: its backward is δ_z = p ⊙ (δ_p − pᵀδ_p). For classification
    prefer ``softmax_ce`` on logits (fused and stable); this one is for outputs that need
    probabilities inside a custom loss.
    """

    def __new__(cls, z):
        return sp.Basic.__new__(cls, sp.sympify(z))

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        z = self.args[0]
        rows = z.shape[0]
        return sp.exp(z[i, j]) / sum(sp.exp(z[k, j]) for k in range(rows))

    def _sympystr(self, printer):
        return f"softmax({printer._print(self.args[0])})"

    def _latex(self, printer):
        return r"\operatorname{softmax}\left(%s\right)" % printer._print(self.args[0])


def madd(*terms: sp.MatrixExpr) -> sp.MatrixExpr:
    """``a + b`` as SymPy writes it, without SymPy's walk of the whole tree below: its ``+``
    calls ``doit()`` on every subexpression, once per path to it, and a network's residual blocks
    reach their input twice, so building a transformer took time exponential in its depth (5
    layers 7.8 s; now milliseconds). The layers' terms are already in SymPy's canonical form.

    >>> W, x, b = sp.MatrixSymbol("W", 2, 3), sp.MatrixSymbol("x", 3, 1), sp.MatrixSymbol("b", 2, 1)
    >>> madd(mmul(W, x), b) == W * x + b
    True
    """
    return sp.MatAdd(*terms).doit(deep=False)


def mmul(*factors: sp.MatrixExpr) -> sp.MatrixExpr:
    """``a * b`` without SymPy's walk of the tree below (see :func:`madd`)."""
    return sp.MatMul(*factors).doit(deep=False)


def mean(m: sp.MatrixExpr) -> sp.Expr:
    """Mean of all entries of a matrix expression."""
    rows, cols = m.shape
    return msum(m) / (rows * cols)


TENSOR_FUNCS = (msum, logsumexp, softmax_ce, bce_sum)


class Elementwise(ElementwiseApplyFunction):
    """f.(M) that stays one node when rebuilt: SymPy's own constructor, which ``xreplace`` and
    ``subs`` call, applies f to a 1x1 M as a whole (Abs(M) became sqrt(M·Mᴴ) in a printed loss)."""

    def __new__(cls, function, expr):
        return sp.Basic.__new__(cls, function, expr)


def elementwise(f, m: sp.MatrixExpr) -> sp.MatrixExpr:
    """Apply the scalar function ``f`` to every entry of ``m``, as one unevaluated node.

    Unlike ``m.applyfunc(f)``, this never lets SymPy apply ``f`` to a 1x1 matrix as a whole
    (which turns z**2 into a matrix power and fails for erf-based GELU).

    >>> elementwise(lambda q: q**2, sp.MatrixSymbol("z", 1, 1))
    Lambda(q, q**2).(z)
    """
    if not isinstance(f, sp.Lambda):
        q = sp.Symbol("q", real=True)
        f = sp.Lambda(q, f(q))
    if isinstance(f.expr, (sp.MatrixBase, sp.MatrixExpr)):
        raise OptionError(f"elementwise applies a scalar function to each entry, and {f} gives a matrix. Fix: "
                          "return a scalar expression of the argument, e.g. lambda q: q * sp.tanh(q).")
    return Elementwise(f, m)
