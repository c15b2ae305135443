"""``sg.nn.Transformer``: a decoder-only (GPT-style) language model built from symgrad's layers.

Token ids in, next-token logits at every position out::

    h = E[x] + P                                        (Embedding, learned positions)
    h = h + attention(layernorm(h))                      (causal, ``heads`` heads)   } ``layers``
    h = h + W₂·gelu(W₁·layernorm(h) + b₁) + b₂           (position-wise MLP, 4d wide)} times
    z = W·layernorm(h) + b                               (the vocabulary's logits, per position)

Pre-norm blocks as in GPT-2; train it with the ``"token_cross_entropy"`` loss on (n, context) ids
and the (n, context) ids that come next, and sample from it with :func:`symgrad.generate`.

>>> net = Transformer(vocab=20, d=8, heads=2, layers=1, context=6)
>>> net.output_shape, [str(p) for p in net.params][:4]
((6, 20), ['E1', 'P1', 'gamma3', 'beta3'])
"""

from __future__ import annotations

from .args import count, known_keywords
from .attention import MultiHeadAttention, check_heads
from .blocks import PositionwiseDense, Residual
from .embedding import Embedding
from .layers import LayerNorm, Sequential


@known_keywords
class Transformer(Sequential):
    """A ``Sequential`` of Embedding (with positions), ``layers`` pre-norm transformer blocks, a final
    LayerNorm and a PositionwiseDense to ``vocab`` logits: module docstring. ``mlp`` is the
    hidden width of each block's MLP as a multiple of d (4, as in GPT-2), ``activation`` its
    activation."""

    def __init__(self, vocab: int, d: int, heads: int, layers: int, context: int, mlp: int = 4,
                 activation: str = "gelu", init: str | None = None):
        fix = "e.g. Transformer(vocab=50, d=32, heads=4, layers=2, context=64, mlp=4)."
        vocab, d, context = (count(v, f"Transformer {n}", fix) for n, v in (("vocab", vocab), ("d", d), ("context", context)))
        layers, mlp = count(layers, "Transformer layers", fix), count(mlp, "Transformer mlp", fix)
        heads = check_heads(d, heads, f"Transformer(d={d}, heads={heads})")
        stack: list = [Embedding(vocab, d, context=context, positional=True)]
        for _ in range(layers):
            stack += [Residual([LayerNorm(d), MultiHeadAttention(d, heads, causal=True)]),
                      Residual([LayerNorm(d), PositionwiseDense(d, mlp * d, activation), PositionwiseDense(mlp * d, d)])]
        stack += [LayerNorm(d), PositionwiseDense(d, vocab)]
        self.config = dict(vocab=vocab, d=d, heads=heads, layers=layers, context=context, mlp=mlp, activation=activation)
        super().__init__(stack, input_shape=context, init=init)

    def __repr__(self) -> str:
        return "Transformer(" + ", ".join(f"{k}={v!r}" for k, v in self.config.items()) + ")"
