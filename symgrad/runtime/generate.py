"""Sampling text from a trained language model (``"token_cross_entropy"``): ``sg.generate``.

Each step feeds the last ``context`` tokens, reads the logits at the last filled position, and
draws the next token from ``softmax(logits / temperature)`` (the likeliest at temperature 0).
A prompt shorter than the context is padded after its end; that is exact only when no position
sees a later one, so the model must be position-wise apart from causal attention (checked).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from ..errors import OptionError
from ..lang.args import known_keywords
from ..lang.attention import attention, sequence_shape
from ..lang.conv import model_input
from ..lang.dropout import dropout
from ..lang.embedding import embedding, not_token_ids
from ..lang.norm import layernorm
from ..lang.rowwise import broadcast, residual, rowmatmul
from ..lang.walk import nodes

# dropout is elementwise (and off in predict): a GPT's dropout after its embeddings was refused
_POSITIONWISE = (embedding, rowmatmul, broadcast, residual, dropout, ElementwiseApplyFunction, sp.MatAdd,
                 sp.HadamardProduct, sp.MatrixSymbol, sp.ZeroMatrix)


def _leak(expr: sp.Basic) -> str | None:
    """What lets a position see later ones (padding would then change the logits), or None."""
    for e in nodes(expr):
        if not isinstance(e, sp.MatrixExpr) or isinstance(e, _POSITIONWISE):
            continue
        if isinstance(e, attention):
            if not e.causal:
                return "attention without causal=True"
        elif isinstance(e, layernorm):
            if e.seq is None:
                return "a LayerNorm over the whole sequence (LayerNorm(d) normalises each position)"
        elif not (isinstance(e, sp.MatMul) and len([a for a in e.args if isinstance(a, sp.MatrixExpr)]) == 1):
            return f"{type(e).__name__} ({e})"
    return None


def _vocabulary(alphabet, V: int) -> list | None:
    if alphabet is None:
        return None
    items = list(alphabet)
    if len(set(items)) != len(items):
        raise OptionError("generate(alphabet=...): the tokens must be distinct (token id k is alphabet[k]).")
    if len(items) != V:
        raise OptionError(f"generate(alphabet=...) has {len(items)} tokens, but the model's vocabulary has {V} ids "
                          "(token id k is alphabet[k]). Fix: the list that numbered the training text, all of it.")
    return items


@known_keywords
def generate(trained, prompt: str | Sequence[int], n: int, temperature: float = 1.0, *,
             alphabet: str | Sequence | None = None, seed: int | None = 0) -> str | list:
    """The prompt continued by ``n`` tokens sampled from a trained language model.

    ``prompt`` is token ids, or text (or a list of string tokens, for an alphabet of words) when
    ``alphabet`` (token id k is ``alphabet[k]``, one per id of the vocabulary) is given; the result
    is the prompt and its continuation: ids, or with an alphabet its tokens (joined into text when
    they are strings).
    ``temperature`` 0 takes the likeliest token each step; ``seed`` fixes the draws.

    >>> import numpy as np, symgrad as sg
    >>> text = "abcabcabcabc" * 20
    >>> ids = np.array(["abc".index(c) for c in text])
    >>> X = np.stack([ids[i:i + 4] for i in range(100)]).astype(float)
    >>> Y = np.stack([ids[i + 1:i + 5] for i in range(100)])
    >>> net = sg.nn.Transformer(vocab=3, d=8, heads=2, layers=1, context=4)
    >>> lm = sg.fit(net, "token_cross_entropy", X, Y, optimizer="adam", epochs=30, seed=0)
    >>> sg.generate(lm, "ab", 7, temperature=0, alphabet="abc")
    'abcabcabc'
    """
    if getattr(trained, "_loss_name", None) != "token_cross_entropy" or trained.model is None:
        raise OptionError("generate() samples from a language model: a model trained with "
                          "sg.fit(net, 'token_cross_entropy', X, Y), e.g. net = sg.nn.Transformer(...). "
                          f"Got {type(trained).__name__}{' trained with ' + repr(trained._loss_name) if hasattr(trained, '_loss_name') else ''}.")
    leak = _leak(trained.model.expr)
    if leak is not None:
        raise OptionError(f"generate(): the model has {leak}, so a position sees later ones and the logits at a "
                          "prompt's end depend on what fills the rest of the context. Fix: causal attention and "
                          "position-wise layers only (as sg.nn.Transformer builds).")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise OptionError(f"generate(n={n!r}): the number of tokens to add, an integer >= 0.")
    if isinstance(temperature, bool) or not isinstance(temperature, Real) or not temperature >= 0 \
            or not np.isfinite(temperature):
        raise OptionError(f"generate(temperature={temperature!r}): a number >= 0 (0 takes the likeliest token, "
                          "1 samples the model's distribution, higher is more random).")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise OptionError(f"generate(seed={seed!r}): an integer >= 0 (the same seed draws the same tokens), "
                          "or None for fresh randomness.")
    T, V = sequence_shape(trained.model.expr)
    vocab = _vocabulary(alphabet, V)
    ids = _encode(prompt, vocab, V)
    rng = np.random.default_rng(seed)
    for _ in range(int(n)):
        window = ids[-T:]
        x = np.zeros((1, model_input(trained.model)), dtype=trained.dtype)
        x[0, :len(window)] = window
        logits = np.asarray(trained.predict(x)[0, len(window) - 1], dtype=np.float64)
        if temperature == 0:
            ids.append(int(np.argmax(logits)))
            continue
        with np.errstate(over="ignore"):  # a subnormal temperature: the others' scores go to −inf, p to 0
            p = np.exp((logits - logits.max()) / temperature)
        ids.append(int(rng.choice(V, p=p / p.sum())))
    if vocab is None:
        return ids
    tokens = [vocab[i] for i in ids]
    return "".join(tokens) if all(isinstance(t, str) for t in tokens) else tokens


def _encode(prompt, vocab: list | None, V: int) -> list[int]:
    words = vocab is not None and isinstance(prompt, (list, tuple)) and all(isinstance(t, str) for t in prompt)
    if isinstance(prompt, str) or words and prompt:  # text, or a list of the alphabet's (word) tokens
        if vocab is None:
            raise OptionError("generate(): a text prompt needs alphabet= (token id k is alphabet[k]) to become ids. "
                              "Fix: pass alphabet=chars (the same list that numbered the training text), or ids.")
        where = {c: k for k, c in enumerate(vocab)}
        unknown = sorted({c for c in prompt if c not in where})
        if unknown:
            raise OptionError(f"generate(): the prompt has {unknown!r}, which the alphabet lacks. Fix: use only the "
                              "tokens the model was trained on.")
        ids = [where[c] for c in prompt]
    else:
        arr = np.asarray(prompt)
        if arr.ndim != 1 or arr.dtype.kind not in "iuf" or not_token_ids(arr, V).any():
            raise OptionError(f"generate(): the prompt must be text (with alphabet=) or a list of token ids in "
                              f"[0, {V}), got {prompt!r}.")
        ids = [int(v) for v in arr]
    if not ids:
        raise OptionError("generate(): the prompt is empty; the model needs at least one token to continue. "
                          "Fix: e.g. prompt='\\n' or [0].")
    return ids
