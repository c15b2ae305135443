"""Embedding kernels for generated code (``symgrad/kinds/embedding.py``): a gather forward, a
scatter-add backward.

Like the attention and image kernels they do not depend on the model: the geometry comes as one
small int64 array (T, d, vocab, positional) and the dtype is the arrays', so they live here,
compiled once per machine and dtype into Numba's on-disk cache, and generated modules only
import them.

The ids come as a (B, T) array of the model's dtype (data are float rows): the forward pass
checks that each is a whole number in [0, vocab) before it reads the table, and raises
:class:`TokenIdError` (a ``DataError`` naming the id, where it is, and the fix) otherwise, from
compiled code as from Python. The output is (B, T·d), position by position; the backward pass adds
each position's delta into its token's row of ∂ℓ/∂E (repeated ids accumulate) and, with a
positional embedding, into its position's row of ∂ℓ/∂P. The ids get no gradient.

>>> import numpy as np
>>> E, g = np.arange(6.0).reshape(3, 2), np.array([2, 2, 3, 0])  # vocab 3, d 2; T = 2, no P
>>> out, empty = np.empty((1, 4)), np.empty((0, 0))
>>> embedding_fwd(np.array([[2.0, 0.0]]), E, empty, out, g)
>>> out
array([[4., 5., 0., 1.]])
>>> dE = np.zeros((3, 2))
>>> embedding_bwd(np.array([[1.0, 1.0]]), np.ones((1, 4)), dE, empty, g)  # id 1 twice: adds up
>>> dE[1]
array([2., 2.])
"""

from __future__ import annotations

import math

import numba

from ..errors import DataError

njit = numba.njit(cache=True, error_model="numpy")


class TokenIdError(DataError):
    """A token id that is not a whole number in [0, vocab): args (the id, row, position, vocab).

    The message is made from the numbers (so compiled code raises it with them, and it pickles).
    """

    def __str__(self) -> str:
        if len(self.args) != 4:
            return super().__str__()
        v, row, t, vocab = self.args
        where = f"token id {v:g} (position {int(t)}, in row {int(row)} of the batch being computed)"
        how = "np.unique(tokens, return_inverse=True)[1] numbers the distinct tokens 0, 1, ..."
        if v == v and v == math.floor(v):  # a whole number, outside the vocabulary
            more = f", or a table with more rows: Embedding({int(v) + 1}, d)" if v >= vocab else ""
            return (f"{where} is outside the vocabulary of {vocab} ids (0 to {vocab - 1}). Fix: map the tokens "
                    f"to 0 ... {vocab - 1} ({how}){more}.")
        return (f"{where} is not a whole number: token ids index the rows of the embedding table, 0 to {vocab - 1}. "
                f"Fix: pass the ids themselves, not scaled or standardised values ({how}).")


@njit
def embedding_fwd(ids, E, P, out, g):
    # out[b, t·d:(t+1)·d] = E[ids[b, t]] (+ P[t]); each id is checked before it is used
    T, d, vocab, positional = g[0], g[1], g[2], g[3] != 0
    for b in range(ids.shape[0]):
        for t in range(T):
            v = ids[b, t]
            if not (v >= 0 and v < vocab and v == math.floor(v)):  # NaN fails too
                raise TokenIdError(float(v), b, t, vocab)
            row = E[int(v)]
            at = t * d
            if positional:
                for j in range(d):
                    out[b, at + j] = row[j] + P[t, j]
            else:
                for j in range(d):
                    out[b, at + j] = row[j]


@njit
def embedding_bwd(ids, dout, dE, dP, g):
    # dE[ids[b, t]] += δ[b, t·d:(t+1)·d] (repeated ids accumulate); dP[t] += Σ_b δ[b, t·d:(t+1)·d].
    # An empty dE or dP is an adjoint nobody needs; the ids were checked by the forward pass
    T, d = g[0], g[1]
    B = ids.shape[0]
    if dE.shape[0] > 0:
        for b in range(B):
            for t in range(T):
                k = int(ids[b, t])
                at = t * d
                for j in range(d):
                    dE[k, j] += dout[b, at + j]
    if dP.shape[0] > 0:
        for b in range(B):
            for t in range(T):
                at = t * d
                for j in range(d):
                    dP[t, j] += dout[b, at + j]
