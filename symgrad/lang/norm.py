"""Layer normalisation as a SymPy matrix expression: one node per layer, never per-entry symbols.

``layernorm(x, eps)`` normalises a column vector (one sample) over its entries:
``x̂ = (x − mean(x)) / √(var(x) + ε)``, with the biased variance, as PyTorch's ``LayerNorm``. An
image is stored as one column of C·H·W entries (``symgrad.lang.conv``), so normalising it is
normalising over all of C·H·W, PyTorch's ``LayerNorm([C, H, W])``. With ``seq=(T, d)`` the column is
a sequence of T positions of d features, stored position by position (``symgrad.lang.attention``),
and each position is normalised over its own d features, PyTorch's ``LayerNorm(d)`` on a (T, d) input.

>>> import sympy as sp
>>> z = sp.MatrixSymbol("z", 4, 1)
>>> layernorm(z), layernorm(z).shape
(layernorm(z), (4, 1))
>>> layernorm(sp.Matrix([1, 3])).T.evalf(6)
Matrix([[-0.999995, 0.999995]])
>>> layernorm(sp.MatrixSymbol("s", 6, 1), seq=(3, 2))
layernorm(s, seq=(3, 2))
>>> layernorm(sp.Matrix([1, 3, 10, 20]), seq=(2, 2)).T.evalf(3)
Matrix([[-1.0, 1.0, -1.0, 1.0]])

``LayerNorm`` is the layer of ``Sequential`` around it, with γ and β.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from sympy.core.parameters import global_parameters

from ..errors import OptionError, ShapeError
from .args import flag, known_keywords
from .functions import madd
from .rowwise import broadcast
from .walk import holds

#: PyTorch's default ε.
EPS = 1e-5


def _explicit(m) -> sp.Matrix | None:
    if isinstance(m, sp.MatrixBase):
        return sp.Matrix(m)
    if isinstance(m, sp.MatrixExpr) and not holds(m, sp.MatrixSymbol):
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


def normalise(v: sp.Matrix, eps: sp.Expr, T: int = 1) -> sp.Matrix:
    """The explicit x̂ of a column of SymPy entries (of each of its T blocks, with T > 1)."""
    if T > 1:
        d = v.shape[0] // T
        return sp.Matrix.vstack(*(normalise(v[t * d:(t + 1) * d, :], eps) for t in range(T)))
    n = v.shape[0]
    m = sum(v) / n
    var = sum((a - m) ** 2 for a in v) / n
    return v.applyfunc(lambda a: (a - m) / sp.sqrt(var + eps))


def _check_seq(x, seq) -> sp.Tuple:
    """seq=(T, d) as a SymPy Tuple, once T·d is x's length and d ≥ 2."""
    ok = np.ndim(seq) == 1 and len(seq) == 2 and all(
        not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, np.integer, sp.Integer)) and int(v) >= 1 for v in seq)
    if not ok or int(seq[0]) * int(seq[1]) != int(x.shape[0]):
        raise ShapeError(f"layernorm({x}, seq={seq!r}): seq is (positions T, features d) with T·d = {x.shape[0]}, the "
                         f"input's rows (a sequence stored position by position). Fix: e.g. seq=({x.shape[0] // 2}, 2).")
    if int(seq[1]) < 2:
        raise ShapeError(f"layernorm({x}, seq={tuple(seq)!r}): a position of 1 feature normalises to 0 whatever it "
                         "holds, so what comes before it gets no gradient. Fix: positions of at least 2 features.")
    return sp.Tuple(*(sp.Integer(int(v)) for v in seq))


class layernorm(sp.MatrixExpr):  # noqa: N801 (named like SymPy's functions and sg.softmax)
    """``(x − mean(x)) / √(var(x) + ε)`` of a column vector x (n × 1, n ≥ 2), per sample; with
    ``seq=(T, d)``, of each of the T positions' d features (per sample and position).

    On an explicit matrix it evaluates (``layernorm(Matrix([...]))`` is a Matrix), so a tiny model
    written with explicit entries can be differentiated by ``sympy.diff``.
    """

    def __new__(cls, x, eps=EPS, seq=None):
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
        if isinstance(seq, sp.Tuple) and not global_parameters.evaluate:  # read back (srepr_io): as stored
            return sp.Basic.__new__(cls, x, sp.Float(e), seq)
        seq = None if seq is None else _check_seq(x, seq)
        explicit = _explicit(x)
        if explicit is not None:
            return normalise(explicit, e, 1 if seq is None else int(seq[0]))
        return sp.Basic.__new__(cls, x, sp.Float(e), *([] if seq is None else [seq]))

    @property
    def seq(self) -> tuple[int, int] | None:
        """(T, d) of a per-position layer norm, None for one over all the entries."""
        return tuple(int(v) for v in self.args[2]) if len(self.args) > 2 else None

    @property
    def eps(self) -> float:
        return float(self.args[1])

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        x = self.args[0].as_explicit()
        return normalise(x, self.args[1], self.seq[0] if self.seq else 1)[i, j]

    def _sympystr(self, printer):  # as the formulas print it (explain.norms.Normalised)
        x = printer._print(self.args[0])
        more = ("" if self.eps == EPS else f", ε={self.eps:g}") + (f", seq={self.seq}" if self.seq else "")
        return f"layernorm({x}{more})"

    def _latex(self, printer):
        parts = ([r"\text{pos}"] if self.seq else []) + ([] if self.eps == EPS else [r"\varepsilon = %s" % f"{self.eps:g}"])
        sub = "_{%s}" % ", ".join(parts) if parts else ""
        return r"\operatorname{layernorm}%s\left(%s\right)" % (sub, printer._print(self.args[0]))


@known_keywords
class LayerNorm:
    """``n = layernorm(x)``, ``z = γ ⊙ n + β``: each sample normalised over all its entries (an
    image's C·H·W, as PyTorch's ``LayerNorm([C, H, W])``), then scaled and shifted entry by entry
    by ``γ`` (ones at first) and ``β`` (zeros); ``affine=False`` leaves them out. ``shape`` is the
    input's number of features, or an image's (C, H, W) (or C·H·W). On a sequence (T, d),
    ``LayerNorm(d)`` normalises each position over its d features (PyTorch's ``LayerNorm(d)`` on a
    (T, d) input), γ and β of d entries shared by the positions; ``LayerNorm(T·d)`` normalises
    the whole sequence.
    """

    def __init__(self, shape: int | tuple[int, ...], eps: float = EPS, affine: bool = True):
        dims = (shape,) if np.ndim(shape) == 0 else tuple(shape)
        if not dims or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in dims):
            raise OptionError(f"LayerNorm({shape!r}): give the number of features it normalises, or an image's "
                              "(C, H, W). Fix: e.g. LayerNorm(64) after Dense(..., 64).")
        if math.prod(int(v) for v in dims) < 2:
            raise OptionError(f"LayerNorm({shape!r}): a single entry normalises to 0 whatever it holds (its "
                              "variance is 0), so the layers before it get no gradient. Fix: normalise a layer of at "
                              "least 2 features, or leave the LayerNorm out.")
        check_eps(eps, "LayerNorm")
        self.shape, self.eps, self.affine = shape, float(eps), flag(affine, "LayerNorm affine")
        self.size, self.dims = math.prod(int(v) for v in dims), tuple(int(v) for v in dims)
        self.gamma = self.beta = None

    def build(self, x: sp.MatrixExpr, shape, index: int):
        per_position = len(shape) == 2 and self.dims == (shape[1],)
        fits = per_position or self.size == math.prod(shape) and (len(self.dims) == 1 or self.dims == tuple(shape))
        if not fits:
            fix = shape[0] if len(shape) == 1 else tuple(shape)
            more = f" per position, or LayerNorm({math.prod(shape)}) over the whole sequence" if len(shape) == 2 else ""
            raise ShapeError(f"layer {index}, {self!r}, normalises {self.dims} entries but its input has shape "
                             f"{tuple(shape)}. Fix: LayerNorm({shape[1] if len(shape) == 2 else fix!r}){more}.")
        n = layernorm(x, self.eps, seq=tuple(shape) if per_position else None)
        if not self.affine:
            return n, shape, {n: f"n{index}"}
        self.gamma = sp.MatrixSymbol(f"gamma{index}", self.size, 1)
        self.beta = sp.MatrixSymbol(f"beta{index}", self.size, 1)
        g, b = (broadcast(v, shape[0]) for v in (self.gamma, self.beta)) if per_position else (self.gamma, self.beta)
        z = madd(sp.HadamardProduct(g, n), b)
        return z, shape, {n: f"n{index}", z: f"z{index}"}

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return [self.gamma, self.beta] if self.gamma is not None else []

    def init_params(self, rng: np.random.Generator, dtype) -> list[np.ndarray]:
        """γ ones and β zeros, as PyTorch's (``rng`` unused: the other layers draw as without it)."""
        return [np.ones((self.size, 1), dtype=dtype), np.zeros((self.size, 1), dtype=dtype)]

    def __repr__(self) -> str:
        return f"LayerNorm({self.shape!r}, eps={self.eps:g}, affine={self.affine})"
