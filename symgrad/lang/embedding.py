"""Token embeddings as one SymPy matrix expression: ``h = E[ids] (+ P)``, a (T, d) sequence.

``E`` is a vocab × d table (PyTorch's ``nn.Embedding.weight``), ``ids`` a T × 1 column of token
ids that the data holds (they arrive as numbers of the model's dtype, and are checked to be
integers in [0, vocab) when the model runs: ``symgrad.native.embedding``). Row t of the result
is ``E[id_t]`` (plus row t of a learned positional embedding ``P``, T × d), and the result is
stored as a sequence is (``symgrad.lang.attention``): one (T·d) × 1 column, position by position,
so ``MultiHeadAttention``, elementwise functions and ``Flatten`` then ``Dense`` take it as it is.

>>> import sympy as sp
>>> E, P, ids = sp.MatrixSymbol("E", 65, 8), sp.MatrixSymbol("P", 4, 8), sp.MatrixSymbol("x", 4, 1)
>>> h = embedding(E, ids, P)
>>> h, h.shape, h.seq, h.vocab
(E[x] + P, (32, 1), (4, 8), 65)
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import OptionError, ShapeError
from .args import count, known_keywords
from .walk import nodes, per_object


class embedding(sp.MatrixExpr):  # noqa: N801 (named like SymPy's functions and sg.attention)
    """``E[ids] (+ P)``: row ``id_t`` of the table ``E`` for each of the T positions (module docstring).

    ``E`` is vocab × d, ``ids`` is T × 1 (token ids from the data), ``P`` is T × d or None;
    ``seq=(T, d)``, when given, must agree with them.
    """

    def __new__(cls, E, ids, P=None, config=None, *, seq=None):
        if isinstance(config, sp.Tuple):  # SymPy rebuilding the node from its args
            return sp.Basic.__new__(cls, E, ids, P, config)
        if not isinstance(E, sp.MatrixExpr):
            raise ShapeError(f"embedding: the table {E!r} must be a matrix expression, vocab × d. "
                             "Fix: E = MatrixSymbol('E', vocab, d).")
        if not isinstance(ids, sp.MatrixExpr) or ids.shape[1] != 1:
            raise ShapeError(f"embedding: the token ids {ids!r} must be a T × 1 column (one id per position), got "
                             f"{getattr(ids, 'shape', None)}. Fix: ids = MatrixSymbol('x', T, 1) in data=[...].")
        vocab, d, T = int(E.shape[0]), int(E.shape[1]), int(ids.shape[0])
        if seq is not None:
            fix = f"seq=({T}, {d}), or drop seq=."
            if np.ndim(seq) != 1 or len(seq) != 2 or tuple(count(v, "seq entry", fix) for v in seq) != (T, d):
                raise ShapeError(f"embedding: seq={seq!r} does not match {T} ids (rows of {ids}) of {d} features "
                                 f"(columns of {E}). Fix: seq=({T}, {d}), or drop seq=.")
        if P is None:
            P = sp.ZeroMatrix(T, d)
        elif not isinstance(P, sp.MatrixExpr) or tuple(P.shape) != (T, d):
            raise ShapeError(f"embedding: the positional embedding {P} must be {T} × {d} (one row per position), "
                             f"got {getattr(P, 'shape', None)}. Fix: P = MatrixSymbol('P', {T}, {d}), or P=None.")
        config = sp.Tuple(*(sp.Integer(v) for v in (T, d, vocab)))
        return sp.Basic.__new__(cls, E, ids, P, config)

    @property
    def geometry(self) -> tuple[int, int, int, int]:
        """(T, d, vocab, 1 when a positional embedding is added else 0)."""
        return (*(int(v) for v in self.args[3]), int(self.positional))

    @property
    def positional(self) -> bool:
        return not isinstance(self.args[2], sp.ZeroMatrix)

    @property
    def seq(self) -> tuple[int, int]:
        return self.geometry[:2]

    @property
    def vocab(self) -> int:
        return self.geometry[2]

    @property
    def shape(self):
        T, d = self.seq
        return (sp.Integer(T * d), sp.Integer(1))

    def _sympystr(self, printer):
        E, ids, P = (printer._print(a) for a in self.args[:3])
        return f"{E}[{ids}]" + (f" + {P}" if self.positional else "")

    def _latex(self, printer):
        E, ids, P = (printer._print(a) for a in self.args[:3])
        return f"{E}[{ids}]" + (f" + {P}" if self.positional else "")


@known_keywords
class Embedding:
    """``h = E[x] (+ P)``: the first layer of a ``sg.nn.Sequential`` over token ids
    (``input_shape=context``, one id per position, the ids as numbers in X's rows). ``E<k>`` is
    vocab × d (PyTorch's ``nn.Embedding.weight``, standard normal at first, as PyTorch's);
    ``positional=True`` adds a learned ``P<k>``, context × d (normal, std 0.02 at first). The
    output is a (context, d) sequence: ``MultiHeadAttention(d, ...)`` can follow.
    """

    def __init__(self, vocab: int, d: int, context: int | None = None, positional: bool = False):
        fix = "e.g. Embedding(50, 16, context=64) for 50 token ids, 16 features and 64 positions."
        self.vocab, self.d = count(vocab, "Embedding vocab", fix), count(d, "Embedding d", fix)
        self.context = None if context is None else count(context, "Embedding context", fix)
        if not isinstance(positional, (bool, np.bool_)):
            raise OptionError(f"Embedding(positional={positional!r}): True (a learned embedding per position "
                              "added) or False. Fix: positional=True (with context=) or positional=False.")
        if positional and context is None:
            raise OptionError(f"Embedding({vocab}, {d}, positional=True): a positional embedding has one row per "
                              "position. Fix: give the context length, e.g. Embedding(vocab, d, context=64, "
                              "positional=True).")
        self.positional = bool(positional)
        self.E: sp.MatrixSymbol | None = None
        self.P: sp.MatrixSymbol | None = None

    def build(self, x: sp.MatrixExpr, shape, index: int):
        if len(shape) != 1 or index != 1:
            raise ShapeError(f"layer {index}, {self!r}, takes the token ids of the input, a flat vector of one id per "
                             f"position, but its input is {tuple(shape)}. Fix: make it the first layer, with "
                             "Sequential(..., input_shape=context).")
        T = int(shape[0])
        if self.context is not None and T != self.context:
            raise ShapeError(f"layer {index}, {self!r}, has a context of {self.context} positions but the input has "
                             f"{T}. Fix: Sequential(..., input_shape={self.context}), or "
                             f"Embedding({self.vocab}, {self.d}, context={T}).")
        self.E = sp.MatrixSymbol(f"E{index}", self.vocab, self.d)
        self.P = sp.MatrixSymbol(f"P{index}", T, self.d) if self.positional else None
        h = embedding(self.E, x, self.P)
        return h, (T, self.d), {h: f"h{index}"}

    @property
    def params(self) -> list[sp.MatrixSymbol]:
        return [p for p in (self.E, self.P) if p is not None]

    def init_params(self, rng: np.random.Generator, dtype) -> list[np.ndarray]:
        """E standard normal (PyTorch's ``nn.Embedding``); P normal with std 0.02 (GPT-2's)."""
        out = [rng.standard_normal((self.vocab, self.d)).astype(dtype)]
        if self.P is not None:
            out.append((0.02 * rng.standard_normal(tuple(int(v) for v in self.P.shape))).astype(dtype))
        return out

    def __repr__(self) -> str:
        ctx = "" if self.context is None else f", context={self.context}"
        return f"Embedding({self.vocab}, {self.d}{ctx}" + (", positional=True)" if self.positional else ")")


def not_token_ids(A: np.ndarray, vocab: int) -> np.ndarray:
    """Where the numbers ``A`` are no token ids of a vocabulary of ``vocab``: not whole numbers in
    [0, vocab) (NaN included); the one rule for input ids, next-token targets and prompts.

    >>> not_token_ids(np.array([0.0, 2.0, 2.5, 3.0, np.nan]), 3).tolist()
    [False, False, True, True, True]
    """
    return ~((A >= 0) & (A < vocab) & (A == np.floor(A)))


def check_token_ids(model, X: np.ndarray) -> None:
    """Refuse token ids that are not whole numbers in [0, vocab), naming the row of ``X``: checked
    before a native call too, because a kernel running on several threads cannot raise its own
    error (the kernels check again, for compiled models called directly)."""
    from ..native.embedding import TokenIdError

    if model is None:
        return
    for vocab in _vocabularies(model.expr, model.x):
        bad = not_token_ids(X, vocab)
        if bad.any():
            row, t = (int(i) for i in np.argwhere(bad)[0])
            raise TokenIdError(float(X[row, t]), row, t, vocab)


@per_object
def _vocabularies(expr: sp.Basic, x: sp.MatrixSymbol) -> tuple[int, ...]:
    # once per model, not per predict call: the walk cost more than predicting one row
    return tuple(e.vocab for e in nodes(expr) if isinstance(e, embedding) and e.args[1] == x)
