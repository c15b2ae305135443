"""Layer normalisation as a SymPy matrix expression: one node per layer, never per-entry symbols.

``layernorm(x, eps)`` normalises a column vector (one sample) over its entries:
``x̂ = (x − mean(x)) / √(var(x) + ε)``, with the biased variance, as PyTorch's ``LayerNorm``. An
image is stored as one column of C·H·W entries (``symgrad.lang.conv``), so normalising it is
normalising over all of C·H·W, PyTorch's ``LayerNorm([C, H, W])``.

>>> import sympy as sp
>>> z = sp.MatrixSymbol("z", 4, 1)
>>> layernorm(z), layernorm(z).shape
(layernorm(z), (4, 1))
>>> layernorm(sp.Matrix([1, 3])).T.evalf(6)
Matrix([[-0.999995, 0.999995]])
"""

from __future__ import annotations

import sympy as sp

from ..errors import OptionError, ShapeError

#: PyTorch's default ε.
EPS = 1e-5


def _explicit(m) -> sp.Matrix | None:
    if isinstance(m, sp.MatrixBase):
        return sp.Matrix(m)
    if isinstance(m, sp.MatrixExpr) and not m.atoms(sp.MatrixSymbol):
        return m.as_explicit()
    return None


def check_eps(eps, what: str = "layernorm") -> sp.Expr:
    """ε as a SymPy number, once it is a finite positive real number."""
    try:
        e = sp.sympify(eps)
    except (sp.SympifyError, TypeError):
        e = None
    if isinstance(eps, bool) or e is None or not e.is_number or not e.is_extended_real \
            or not e.is_finite or not e.is_positive:
        raise OptionError(f"{what}(eps={eps!r}): ε keeps √(var + ε) away from 0 and must be a positive number. "
                          "Fix: eps=1e-5 (PyTorch's default).")
    return e


def normalise(v: sp.Matrix, eps: sp.Expr) -> sp.Matrix:
    """The explicit x̂ of a column of SymPy entries."""
    n = v.shape[0]
    m = sum(v) / n
    var = sum((a - m) ** 2 for a in v) / n
    return v.applyfunc(lambda a: (a - m) / sp.sqrt(var + eps))


class layernorm(sp.MatrixExpr):  # noqa: N801 (named like SymPy's functions and sg.softmax)
    """``(x − mean(x)) / √(var(x) + ε)`` of a column vector x (n × 1, n ≥ 2), per sample.

    On an explicit matrix it evaluates (``layernorm(Matrix([...]))`` is a Matrix), so a tiny model
    written with explicit entries can be differentiated by ``sympy.diff``.
    """

    def __new__(cls, x, eps=EPS):
        x = sp.sympify(x)
        e = check_eps(eps)
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) != 2 or shape[1] != 1:
            raise ShapeError(f"layernorm({x}): the input must be a column vector (n × 1, one sample), got shape "
                             f"{shape}. Fix: normalise a layer's output, e.g. layernorm(W*x + b).")
        if shape[0] < 2:
            raise ShapeError(f"layernorm({x}): a vector of {shape[0]} entry normalises to 0 whatever it holds "
                             "(its variance is 0), so what comes before it gets no gradient. Fix: normalise a vector of "
                             "at least 2 entries.")
        explicit = _explicit(x)
        if explicit is not None:
            return normalise(explicit, e)
        return sp.Basic.__new__(cls, x, sp.Float(e))

    @property
    def eps(self) -> float:
        return float(self.args[1])

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        x = self.args[0].as_explicit()
        return normalise(x, self.args[1])[i, j]

    def _sympystr(self, printer):  # as the formulas print it (explain.norms.Normalised)
        x = printer._print(self.args[0])
        return f"layernorm({x})" if self.eps == EPS else f"layernorm({x}, ε={self.eps:g})"

    def _latex(self, printer):
        sub = "" if self.eps == EPS else r"_{\varepsilon = %s}" % f"{self.eps:g}"
        return r"\operatorname{layernorm}%s\left(%s\right)" % (sub, printer._print(self.args[0]))
