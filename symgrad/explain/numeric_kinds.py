"""NumPy rules for ``formulas(..., at=)`` through the structured kinds: convolution, pooling, layer
normalisation, attention, embedding, dropout and the position-wise ones.

Each kind's entry in :data:`RULES` is a forward ``f(n, ins) -> value`` and a backward ``b(n, ins,
value, δ) -> [δ of each input]``, over one sample's arrays (``ins`` in the node's input order,
any shape of the right size). They are written from each operation's definition in plain NumPy
(a convolution as a sum over its windows, its adjoint as the scatter of each window's δ), sharing
no code with the Numba kernels in ``symgrad/native`` nor with the printed rules, so a trace's
values check both. :data:`DIMS` gives each kind's value the shape a reader knows it by: an image
(C, H, W), a sequence (T, d).

>>> import numpy as np
>>> win = _windows(np.arange(16.0).reshape(1, 4, 4), 2, 2, 2, 2)  # 2×2 windows, stride 2
>>> win.shape, win.reshape(4, 4).max(axis=1)
((1, 2, 2, 2, 2), array([ 5.,  7., 13., 15.]))
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..derive.ir import TNode

Rule = tuple[Callable, Callable]


def _windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
    """The (C, Ho, Wo, kh, kw) windows of image x (C, H, W) at stride (sh, sw), without copying."""
    return sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]


def _scatter(dwin: np.ndarray, shape: tuple[int, ...], sh: int, sw: int) -> np.ndarray:
    """The adjoint of :func:`_windows`: each window's entries added back where the window read x."""
    _, Ho, Wo, kh, kw = dwin.shape
    dx = np.zeros(shape)
    for u in range(kh):
        for v in range(kw):
            dx[:, u:u + sh * (Ho - 1) + 1:sh, v:v + sw * (Wo - 1) + 1:sw] += dwin[:, :, :, u, v]
    return dx


# -- convolution: z[o] = b[o] + Σ_(c,u,v) K[o, c, u, v] · window(pad_p(x))[c, u, v] ------------

def _conv_parts(n: TNode, ins):
    C, H, W, kh, kw, sh, sw, ph, pw = n.geom
    K = np.reshape(ins[0], (-1, C, kh, kw))
    xp = np.pad(np.reshape(ins[1], (C, H, W)), ((0, 0), (ph, ph), (pw, pw)))
    return K, xp, _windows(xp, kh, kw, sh, sw)


def _conv_forward(n: TNode, ins) -> np.ndarray:
    K, _, win = _conv_parts(n, ins)
    z = np.einsum("ocuv,cyxuv->oyx", K, win)
    return z + np.reshape(ins[2], (-1, 1, 1)) if len(ins) > 2 else z


def _conv_backward(n: TNode, ins, value, d) -> list[np.ndarray]:
    K, xp, win = _conv_parts(n, ins)
    C, H, W, kh, kw, sh, sw, ph, pw = n.geom
    d = np.reshape(d, (K.shape[0],) + win.shape[1:3])
    dxp = _scatter(np.einsum("oyx,ocuv->cyxuv", d, K), xp.shape, sh, sw)
    out = [np.einsum("oyx,cyxuv->ocuv", d, win), dxp[:, ph:ph + H, pw:pw + W]]
    return out + ([d.sum(axis=(1, 2))] if len(ins) > 2 else [])


# -- pooling: each window's largest value (δ to its first arg-max) or mean (δ spread evenly) ----

def _pool_windows(n: TNode, x) -> np.ndarray:
    C, H, W, kh, kw, sh, sw = n.geom[:7]
    return _windows(np.reshape(x, (C, H, W)), kh, kw, sh, sw)


def _max_forward(n: TNode, ins) -> np.ndarray:
    return _pool_windows(n, ins[0]).max(axis=(3, 4))


def _max_backward(n: TNode, ins, value, d) -> list[np.ndarray]:
    win = _pool_windows(n, ins[0])
    flat = win.reshape(win.shape[:3] + (-1,))
    # argmax: the first largest in row-major order (a NaN counts as largest), as the kernels' tie rule
    first = np.argmax(flat, axis=-1)
    dwin = np.zeros(flat.shape)
    np.put_along_axis(dwin, first[..., None], np.reshape(d, first.shape)[..., None], axis=-1)
    return [_scatter(dwin.reshape(win.shape), n.geom[:3], *n.geom[5:7])]


def _avg_forward(n: TNode, ins) -> np.ndarray:
    return _pool_windows(n, ins[0]).mean(axis=(3, 4))


def _avg_backward(n: TNode, ins, value, d) -> list[np.ndarray]:
    win = _pool_windows(n, ins[0])
    share = np.reshape(d, win.shape[:3]) / (win.shape[3] * win.shape[4])
    return [_scatter(np.broadcast_to(share[..., None, None], win.shape), n.geom[:3], *n.geom[5:7])]


# -- layer normalisation: x̂ = (x − mean)/√(var + ε) over each block (the sample, or a position) -

def _blocks(n: TNode, x) -> np.ndarray:
    return np.reshape(x, (n.geom[0], -1) if n.geom else (1, -1))


def _norm_forward(n: TNode, ins) -> np.ndarray:
    x = _blocks(n, ins[0])
    c = x - x.mean(axis=1, keepdims=True)
    return c / np.sqrt((c * c).mean(axis=1, keepdims=True) + float(n.body))  # the biased variance


def _norm_backward(n: TNode, ins, value, d) -> list[np.ndarray]:
    x, xh, d = _blocks(n, ins[0]), _blocks(n, value), _blocks(n, d)
    c = x - x.mean(axis=1, keepdims=True)
    r = 1 / np.sqrt((c * c).mean(axis=1, keepdims=True) + float(n.body))
    return [r * (d - d.mean(axis=1, keepdims=True) - xh * (d * xh).mean(axis=1, keepdims=True))]


# -- attention: per head P = softmax(Q_h·K_hᵀ/√d_h) (causal: 0 above the diagonal), out = O·Wo ---

def _attend(n: TNode, ins):
    T, d, heads, causal = n.geom
    X = np.reshape(ins[0], (T, d))
    Wq, Wk, Wv, Wo = (np.reshape(w, (d, d)) for w in ins[1:])
    # (heads, T, d_h): head h is columns h·d_h ... (h+1)·d_h − 1 of the projections
    Q, K, V = ((X @ w).reshape(T, heads, -1).transpose(1, 0, 2) for w in (Wq, Wk, Wv))
    S = Q @ K.transpose(0, 2, 1) / np.sqrt(d // heads)
    if causal:
        S = np.where(np.tril(np.ones((T, T), dtype=bool)), S, -np.inf)
    P = np.exp(S - S.max(axis=2, keepdims=True))
    P /= P.sum(axis=2, keepdims=True)
    heads_out = (P @ V).transpose(1, 0, 2).reshape(T, d)  # the heads' O side by side
    return X, (Wq, Wk, Wv, Wo), (Q, K, V), P, heads_out


def _attention_forward(n: TNode, ins) -> np.ndarray:
    _, W, _, _, heads_out = _attend(n, ins)
    return heads_out @ W[3]


def _attention_backward(n: TNode, ins, value, d) -> list[np.ndarray]:
    T, dm, heads, _ = n.geom
    X, (Wq, Wk, Wv, Wo), (Q, K, V), P, heads_out = _attend(n, ins)
    d = np.reshape(d, (T, dm))
    dO = (d @ Wo.T).reshape(T, heads, -1).transpose(1, 0, 2)
    dP = dO @ V.transpose(0, 2, 1)
    dS = P * (dP - (dP * P).sum(axis=2, keepdims=True)) / np.sqrt(dm // heads)  # 0 where masked
    joined = [m.transpose(1, 0, 2).reshape(T, dm) for m in (dS @ K, dS.transpose(0, 2, 1) @ Q,
                                                              P.transpose(0, 2, 1) @ dO)]
    dX = sum(g @ w.T for g, w in zip(joined, (Wq, Wk, Wv)))
    return [dX, *(X.T @ g for g in joined), heads_out.T @ d]


# -- embedding, position-wise product, broadcast ------------------------------------------------

def _embedding_forward(n: TNode, ins) -> np.ndarray:
    T, d = n.geom[:2]
    E, ids = np.reshape(ins[0], (-1, d)), np.reshape(ins[1], T).astype(np.int64)
    return E[ids] + (np.reshape(ins[2], (T, d)) if len(ins) > 2 else 0)


def _embedding_backward(n: TNode, ins, value, d) -> list[np.ndarray]:
    T, dm = n.geom[:2]
    dE, ids, d = np.zeros(np.shape(ins[0])), np.reshape(ins[1], T).astype(np.int64), np.reshape(d, (T, dm))
    np.add.at(dE.reshape(-1, dm), ids, d)  # a repeated id accumulates
    return [dE, np.zeros(T)] + ([d] if len(ins) > 2 else [])  # the ids get no gradient


def _rows(x, w) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(w)
    return np.reshape(x, (-1, w.shape[0])), w


def _rowmatmul_forward(n: TNode, ins) -> np.ndarray:
    X, W = _rows(*ins)
    return X @ W


def _rowmatmul_backward(n: TNode, ins, value, d) -> list[np.ndarray]:
    X, W = _rows(*ins)
    d = np.reshape(d, (X.shape[0], W.shape[1]))
    return [d @ W.T, X.T @ d]


def _broadcast_forward(n: TNode, ins) -> np.ndarray:
    return np.tile(np.reshape(ins[0], -1), n.geom[0])


def _broadcast_backward(n: TNode, ins, value, d) -> list[np.ndarray]:
    return [np.reshape(d, n.geom).sum(axis=0)]


def _token_probs(n: TNode, ins) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.reshape(ins[0], tuple(n.geom))
    ids = np.reshape(ins[1], -1).astype(int)
    shifted = z - z.max(axis=1, keepdims=True)
    return z, ids, np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)


def _token_ce_forward(n: TNode, ins) -> np.ndarray:
    # mean over positions of −log softmax(z_t)[y_t]
    z, ids, p = _token_probs(n, ins)
    return np.array([[-np.log(p[np.arange(len(ids)), ids]).mean()]])


def _token_ce_backward(n: TNode, ins, value, d) -> list[np.ndarray]:
    z, ids, p = _token_probs(n, ins)
    p[np.arange(len(ids)), ids] -= 1.0
    return [float(np.reshape(d, -1)[0]) * p.reshape(-1) / len(ids), np.zeros(len(ids))]  # the ids get none


# -- dropout: d = m ⊙ x/(1 − p), with the mask of fit's first step under seed 0, first sample ----

def _mask(n: TNode, size: int) -> np.ndarray:
    from ..native.noise import keep_u, step_key  # the mask's definition: (key, row, column) -> [0, 1)

    key = step_key(0, 0)
    return np.array([keep_u(key, 0, j) >= float(n.body) for j in range(size)], dtype=float)


def _dropout_forward(n: TNode, ins) -> np.ndarray:
    x = np.ravel(ins[0])
    return _mask(n, x.size) * x / (1 - float(n.body))


def _dropout_backward(n: TNode, ins, value, d) -> list[np.ndarray]:
    d = np.ravel(d)
    return [_mask(n, d.size) * d / (1 - float(n.body))]


#: kind -> (forward, backward), one sample's NumPy arrays in and out
RULES: dict[str, Rule] = {
    "conv2d": (_conv_forward, _conv_backward),
    "maxpool2d": (_max_forward, _max_backward),
    "avgpool2d": (_avg_forward, _avg_backward),
    "layernorm": (_norm_forward, _norm_backward),
    "attention": (_attention_forward, _attention_backward),
    "embedding": (_embedding_forward, _embedding_backward),
    "rowmatmul": (_rowmatmul_forward, _rowmatmul_backward),
    "broadcast": (_broadcast_forward, _broadcast_backward),
    "token_ce": (_token_ce_forward, _token_ce_backward),
    "dropout": (_dropout_forward, _dropout_backward),
}


def _pooled(n: TNode) -> tuple[int, ...]:
    C, H, W, kh, kw, sh, sw = n.geom[:7]
    ph, pw = n.geom[7:9] if len(n.geom) > 7 else (0, 0)
    return (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1


#: kind -> the shape its value is read in, from the node: (C, H, W) images, (T, d) sequences
DIMS: dict[str, Callable[[TNode], tuple[int, ...]]] = {
    "conv2d": lambda n: (n.inputs[0].shape[0], *_pooled(n)),
    "maxpool2d": lambda n: (n.geom[0], *_pooled(n)),
    "avgpool2d": lambda n: (n.geom[0], *_pooled(n)),
    "attention": lambda n: tuple(n.geom[:2]),
    "embedding": lambda n: tuple(n.geom[:2]),
    "rowmatmul": lambda n: (n.length // n.inputs[1].shape[1], n.inputs[1].shape[1]),
    "broadcast": lambda n: tuple(n.geom[:2]),
}
