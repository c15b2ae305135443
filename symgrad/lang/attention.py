"""Multi-head scaled dot-product self-attention as one SymPy matrix expression, never per-entry symbols.

A sequence of T positions with d features each is stored as one column of T·d entries, position
by position (the row-major flattening of its T × d matrix X, as images are stored channel by
channel in ``symgrad.lang.conv``), so a sequence-valued expression is an ordinary ``(T·d) × 1``
matrix expression that elementwise functions, sums and ``Flatten`` then ``Dense`` take as they are.

Rows are positions, so the projections multiply from the right, ``Q = X·Wq`` (row vectors times
a d × d weight): ``Wq`` is PyTorch's ``Linear.weight`` transposed (``nn.MultiheadAttention``'s
``in_proj_weight[:d].T``, and ``out_proj.weight.T`` for ``Wo``). Per head h, with Wq_h the d_h =
d/heads columns of head h::

    Q_h = X·Wq_h,  K_h = X·Wk_h,  V_h = X·Wv_h,  S_h = Q_h·K_hᵀ/√d_h,  P_h = softmax(S_h) (each row),
    O_h = P_h·V_h,  O = [O_1 … O_heads] (side by side),  out = O·Wo

With ``causal=True``, S_ij = −∞ for j > i: a position attends to itself and the ones before.

>>> import sympy as sp
>>> X = sp.MatrixSymbol("X", 12, 1)
>>> Wq, Wk, Wv, Wo = (sp.MatrixSymbol(n, 4, 4) for n in ("Wq", "Wk", "Wv", "Wo"))
>>> A = attention(X, Wq, Wk, Wv, Wo, heads=2, causal=True, seq=(3, 4))
>>> A, A.shape, A.seq
(attention(X; Wq, Wk, Wv, Wo, heads=2, causal), (12, 1), (3, 4))
>>> attention(A, Wq, Wk, Wv, Wo).seq  # a sequence-valued input says its shape
(3, 4)
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardPower, HadamardProduct

from ..errors import OptionError, ShapeError
from .args import count, known_keywords


def sequence_shape(e: sp.Basic) -> tuple[int, int] | None:
    """(T, d) of a sequence-valued expression (a node with a ``seq``, or elementwise functions, sums
    and scalar multiples of one), or None when ``e`` does not say (a plain matrix symbol)."""
    seq = getattr(e, "seq", None)  # attention, rowmatmul, broadcast, residual, embedding, a layernorm per position
    if isinstance(seq, tuple):
        return seq
    found = None
    if isinstance(e, ElementwiseApplyFunction):
        found = sequence_shape(e.expr)
    elif isinstance(e, (HadamardProduct, sp.MatAdd, HadamardPower, sp.MatMul)):
        shapes = (sequence_shape(a) for a in e.args if isinstance(a, sp.MatrixExpr))
        found = next((s for s in shapes if s is not None), None)
    return found if found is not None and tuple(e.shape) == (found[0] * found[1], 1) else None


def check_heads(d: int, heads, what: str) -> int:
    """``heads`` once it divides ``d`` (each head takes d/heads of the features)."""
    heads = count(heads, f"{what} heads", f"e.g. heads=1, or heads among the divisors of d = {d}.")
    if d % heads:
        fits = [h for h in range(1, d + 1) if d % h == 0]
        raise ShapeError(f"{what}: d = {d} features do not split into heads = {heads} heads of equal width "
                         f"(d/heads columns each). Fix: heads among {fits}, or a d that {heads} divides.")
    return heads


def _seq(X, seq, what: str) -> tuple[int, int]:
    shape = sequence_shape(X) if seq is None else seq
    if shape is None:
        raise ShapeError(f"{what}: the input {X} does not say its sequence shape. Fix: pass seq=(T, d), "
                         f"positions × features, with T·d = {X.shape[0]} (its rows).")
    if np.ndim(shape) != 1 or len(shape) != 2:
        raise ShapeError(f"{what}: seq={shape!r} is not (positions T, features d). Fix: e.g. seq=(8, 16).")
    T, d = (count(v, "seq entry", "e.g. seq=(8, 16), 8 positions of 16 features.") for v in shape)
    if tuple(X.shape) != (T * d, 1):
        raise ShapeError(f"{what}: the input {X} is {X.shape[0]}×{X.shape[1]}; a sequence of shape ({T}, {d}) is "
                         f"a column of {T * d} entries (T·d, position by position). Fix: seq must match the input.")
    return T, d


class attention(sp.MatrixExpr):  # noqa: N801 (named like SymPy's functions and sg.conv2d)
    """``O·Wo``: multi-head scaled dot-product self-attention of the sequence X (module docstring).

    ``X`` is (T·d) × 1 (``seq=(T, d)``, read from X when it is an attention); ``Wq``, ``Wk``,
    ``Wv``, ``Wo`` are d × d; ``heads`` divides d; ``causal`` masks the later positions.
    """

    def __new__(cls, X, Wq, Wk, Wv, Wo, config=None, *, heads=1, causal=False, seq=None):
        if isinstance(config, sp.Tuple):  # SymPy rebuilding the node from its args
            return sp.Basic.__new__(cls, X, Wq, Wk, Wv, Wo, config)
        if not isinstance(X, sp.MatrixExpr):
            raise ShapeError(f"attention: the input {X!r} must be a matrix expression, a (T·d) × 1 column. "
                             "Fix: e.g. X = MatrixSymbol('x', T * d, 1).")
        T, d = _seq(X, seq, "attention")
        for name, W in zip(("Wq", "Wk", "Wv", "Wo"), (Wq, Wk, Wv, Wo)):
            if not isinstance(W, sp.MatrixExpr) or tuple(W.shape) != (d, d):
                raise ShapeError(f"attention: {name} = {W} must be {d} × {d} (features × features, used as X·{name}), "
                                 f"got {getattr(W, 'shape', None)}. Fix: {name} = MatrixSymbol('{name}', {d}, {d}).")
        heads = check_heads(d, heads, "attention")
        if not isinstance(causal, (bool, np.bool_)):
            raise OptionError(f"attention(causal={causal!r}): True (each position sees itself and the ones "
                              "before) or False. Fix: causal=True or causal=False.")
        config = sp.Tuple(*(sp.Integer(v) for v in (T, d, heads, int(causal))))
        return sp.Basic.__new__(cls, X, Wq, Wk, Wv, Wo, config)

    @property
    def geometry(self) -> tuple[int, int, int, int]:
        """(T, d, heads, causal as 0 or 1)."""
        return tuple(int(v) for v in self.args[5])

    @property
    def seq(self) -> tuple[int, int]:
        return self.geometry[:2]

    @property
    def heads(self) -> int:
        return self.geometry[2]

    @property
    def causal(self) -> bool:
        return bool(self.geometry[3])

    @property
    def shape(self):
        T, d = self.seq
        return (sp.Integer(T * d), sp.Integer(1))

    def _options(self, tex: bool = False) -> str:
        heads, causal = (r"\text{heads}", r"\text{causal}") if tex else ("heads", "causal")
        return (f", {heads}={self.heads}" if self.heads > 1 else "") + (f", {causal}" if self.causal else "")

    def _sympystr(self, printer):
        X, *W = (printer._print(a) for a in self.args[:5])
        return f"attention({X}; {', '.join(W)}{self._options()})"

    def _latex(self, printer):
        X, *W = (printer._print(a) for a in self.args[:5])
        return r"\operatorname{attention}\left(%s;\ %s%s\right)" % (X, ", ".join(W), self._options(tex=True))


@known_keywords
class MultiHeadAttention:
    """``a = attention(x; Wq, Wk, Wv, Wo)`` over a sequence of d features per position (a layer of
    ``sg.nn.Sequential`` with ``input_shape=(T, d)``): ``heads`` heads of d/heads features each,
    ``causal`` masking the later positions. The weights, ``Wq<k>``, ``Wk<k>``, ``Wv<k>``, ``Wo<k>``
    (d × d, used as ``X·W``: PyTorch's weights transposed), start Xavier normal; no biases.
    """

    def __init__(self, d: int, heads: int = 1, causal: bool = False):
        self.d = count(d, "MultiHeadAttention d", "e.g. MultiHeadAttention(16, heads=4) over 16 features per position.")
        self.heads = check_heads(self.d, heads, f"MultiHeadAttention({d}, {heads})")
        if not isinstance(causal, (bool, np.bool_)):
            raise OptionError(f"MultiHeadAttention(causal={causal!r}): True (each position sees itself and the ones "
                              "before: a language model) or False. Fix: causal=True or causal=False.")
        self.causal = bool(causal)
        self.W: list[sp.MatrixSymbol] = []

    def build(self, x: sp.MatrixExpr, shape, index: int):
        if len(shape) != 2:
            got = "an image" if len(shape) == 3 else "a flat vector"
            raise ShapeError(f"layer {index}, {self!r}, takes a sequence (T, d), but its input is {got} {tuple(shape)}. "
                             "Fix: Sequential(..., input_shape=(T, d)), attention before Flatten and Dense layers.")
        if shape[1] != self.d:
            raise ShapeError(f"layer {index}, {self!r}, takes {self.d} features per position but its input has "
                             f"{shape[1]} (shape {tuple(shape)}). Fix: MultiHeadAttention({shape[1]}, heads).")
        self.W = [sp.MatrixSymbol(f"W{w}{index}", self.d, self.d) for w in "qkvo"]
        a = attention(x, *self.W, heads=self.heads, causal=self.causal, seq=tuple(shape))
        return a, tuple(shape), {a: f"a{index}"}

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return list(self.W)

    def init_params(self, rng: np.random.Generator, dtype) -> list[np.ndarray]:
        """Xavier normal, std √(2/(d + d)), for each of Wq, Wk, Wv, Wo."""
        std = np.sqrt(2.0 / (2 * self.d))
        return [(rng.standard_normal((self.d, self.d)) * std).astype(dtype) for _ in self.W]

    def __repr__(self) -> str:
        return f"MultiHeadAttention({self.d}, heads={self.heads}, causal={self.causal})"
