"""``formulas(..., at=(params, x, y))``: one sample through a network, node by node in NumPy.

The forward pass and the delta rule run over the tensor IR that the printed formulas come from:
elementwise maps, products and the losses' reductions here, by the rule each prints; the
structured kinds (convolution, pooling, layer normalisation, attention, embedding, the
position-wise ones) by the NumPy definitions in ``numeric_kinds``. Neither runs the compiled code,
so a trace is an independent check of it. Each value is returned in the shape a reader knows it
by: an image (C, H, W), a sequence (T, d), a layer's column otherwise.

>>> import symgrad as sg
>>> net = sg.nn.MLP([2, 1], activation="identity")
>>> leaves = network_sample(net, "mse", ([np.ones((1, 2)), np.zeros((1, 1))], [1.0, 2.0], 0.5),
...                         sp.MatrixSymbol("y", 1, 1))
>>> sorted(leaves), leaves["x"].ravel()
(['W1', 'b1', 'x', 'y'], array([1., 2.]))
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import sympy as sp

from ..derive.ir import OUT, TNode
from ..errors import OptionError, ShapeError, UnsupportedModelError
from ..runtime.inputs import as_data
from .numeric_kinds import DIMS, RULES

#: the kinds whose rules are written here; ``numeric_kinds.RULES`` holds the others
DENSE = {"leaf", "map", "matmul", "sum", "select", "softmax", "logsumexp", "softmax_ce"}


def network_sample(model, loss_name: str, at: object, target: sp.MatrixSymbol) -> dict[str, np.ndarray]:
    """``at=(params, x, y)`` as the value of each leaf of the lowered loss, by name; x in the
    model's input shape (an image's (C, H, W), a sequence's (T, d)), y a column."""
    from ..lang.conv import model_input
    from ..lang.embedding import check_token_ids
    from ..runtime.inputs import TOKEN_LOSSES, prepare_xy

    if not isinstance(at, (tuple, list)) or len(at) != 3:
        got = f"a {type(at).__name__}" + (f" of {len(at)} items" if isinstance(at, (tuple, list)) else "")
        raise OptionError(f"at= takes (params, x, y) for one sample, got {got}. "
                          "Fix: e.g. formulas(net, 'bce', at=(trained.params, X[0], Y[0])).")
    params, x, y = at
    leaves = _param_leaves(model, params)
    n_in, n_out = model_input(model), int(target.shape[0])
    x, y = np.asarray(as_data(x, "x")), np.asarray(as_data(y, "y"))
    given = x.shape, y.shape  # as the user passed them, for the message
    # y as the target's n_out numbers in any shape (a sequence's (T, k) rows), or a column of one sample
    y = y.reshape(1) if y.ndim == 0 else y.reshape(1, n_out) if y.size == n_out and n_out > 1 else y
    if x.ndim < 2 or (isinstance(n_in, tuple) and x.shape in (n_in, n_in[1:] if n_in[:1] == (1,) else n_in)):
        x = x[None]  # one sample: a row of features, one image or one sequence
    if len(x) != 1 or len(y) != 1:
        shape = f"shape {n_in} (or flat)" if isinstance(n_in, tuple) else f"{n_in} features (1-D, or one row)"
        raise ShapeError(f"at=(params, x, y) is one sample: x of {shape} and y its target ({n_out} number"
                         f"{'s' * (n_out > 1)}); got x of shape {given[0]} and y of shape {given[1]}. "
                         "Fix: e.g. at=(params, X[0], Y[0]).")
    tokens = loss_name in TOKEN_LOSSES  # y is the T next ids; the model gives T·V logits
    X, Y = prepare_xy(x, y, loss_name, n_in, int(model.expr.shape[0]) if tokens else n_out, np.dtype(np.float64),
                      ("x", "y"), positions=n_out if tokens else None)
    check_token_ids(model, X)
    dims = n_in if isinstance(n_in, tuple) else (-1, 1)
    return leaves | {str(model.x): X.reshape(dims), str(target): Y.reshape(-1, 1)}


def _param_leaves(model, params) -> dict[str, np.ndarray]:
    """``params`` (a list in ``model.params`` order, a dict by name, a trained model) by name."""
    from ..runtime.inputs import as_model_array, check_finite

    params = getattr(params, "params", params)  # a Trained model
    names = [str(p) for p in model.params]
    if isinstance(params, Mapping):
        given = {str(k) for k in params}
        if given != set(names):
            missing, unknown = sorted(set(names) - given), sorted(given - set(names))
            raise OptionError(f"at=(params, x, y): the params dict lacks {', '.join(missing) or 'nothing'} and "
                              f"has {', '.join(unknown) or 'no'} unknown names; the model's parameters are "
                              f"{', '.join(names)}. Fix: a dict with exactly these names, or a trained model.")
        params = [params.get(p, params.get(str(p))) for p in model.params]
    if not isinstance(params, (list, tuple)) or len(params) != len(names) or any(v is None for v in params):
        got = f"{len(params)} arrays" if isinstance(params, (list, tuple)) else type(params).__name__
        raise OptionError(f"at=(params, x, y): params must hold one array for each of {', '.join(names)} "
                          f"(a list in that order, a dict by name, or a trained model), got {got}. Fix: e.g. "
                          "at=(trained.params, x, y), or at=(net.init_params(0), x, y).")
    leaves = {}
    for p, v in zip(model.params, params):
        a = as_model_array(v, np.dtype(np.float64), str(p))
        shape = tuple(int(d) for d in p.shape)
        if a.shape != shape and not (a.ndim == 1 and 1 in shape and a.size == np.prod(shape)):
            fix = (f"transpose it, {p}.T (it is stored the other way round)" if a.ndim == 2 and a.shape == shape[::-1]
                   else f"reshape it, {p}.reshape{shape} (a convolution's kernel is stored flat, one row per output "
                   "channel)" if a.size == np.prod(shape) else
                   "pass the parameters in model.params order, e.g. a trained model's .params")
            raise ShapeError(f"at=: {p} has shape {a.shape}, but the model's {p} is {shape}. Fix: {fix}.")
        check_finite(a, str(p), "Fix: pass finite parameters.")
        leaves[str(p)] = a.reshape(shape)
    return leaves


def network_values(nodes: list[TNode], out: TNode, leaves: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each printed quantity's value by its row's name (z1, δ_z1, ∂ℓ/∂W1, ℓ): the forward pass,
    then the delta rule, node by node in NumPy."""
    other = sorted({n.kind for n in nodes} - DENSE - set(RULES))
    if other:
        raise UnsupportedModelError(f"at= has no numeric rule for {', '.join(other)} nodes yet. Fix: drop at= to "
                                    "print the formulas, or check the gradients numerically with sg.check_grads.")
    val: dict[int, np.ndarray] = {}
    for n in nodes:
        v = leaves[n.label] if n.kind == "leaf" else _forward(n, [val[id(i)] for i in n.inputs])
        val[id(n)] = np.reshape(v, n.shape)
    delta: dict[int, np.ndarray] = {id(out): np.ones((1, 1))}
    for n in reversed(nodes):
        if n.kind == "leaf" or id(n) not in delta:
            continue
        ins = [val[id(i)] for i in n.inputs]
        for i, d in zip(n.inputs, _backward(n, ins, val[id(n)], delta[id(n)]), strict=True):
            delta[id(i)] = delta.get(id(i), 0) + np.reshape(d, i.shape)
    dims = _dims(nodes, leaves)
    rows = {"ℓ": val[id(out)]}
    for n in nodes:
        d = delta.get(id(n), np.zeros(n.shape))
        if n.kind != "leaf":
            rows[n.label], rows[f"δ_{n.label}"] = val[id(n)].reshape(dims[id(n)]), d.reshape(dims[id(n)])
        elif n.role == "param":
            rows[f"∂ℓ/∂{n.label}"] = d
    return rows


def _dims(nodes: list[TNode], leaves: dict[str, np.ndarray]) -> dict[int, tuple[int, ...]]:
    """The shape each node's value is read in: a structured kind's own (``numeric_kinds.DIMS``), an
    elementwise node's that of an input of its size, one that depends on the data first (relu of
    an image is an image, γ ⊙ x̂ + β is x̂'s), else its shape."""
    dims: dict[int, tuple[int, ...]] = {}
    for n in nodes:
        if n.kind == "leaf":
            dims[id(n)] = np.shape(leaves[n.label]) if np.size(leaves[n.label]) == n.length else n.shape
        elif n.kind in DIMS:
            dims[id(n)] = DIMS[n.kind](n)
        else:
            same = [i for i in n.inputs if i.length == n.length]  # the data's shape first: γ ⊙ n is n's
            dims[id(n)] = next((dims[id(i)] for i in sorted(same, key=lambda i: not i.batched)), n.shape)
    return dims


@functools.lru_cache(maxsize=512)
def _lambda(args: tuple, body: sp.Expr):
    # SciPy first: with NumPy alone, erf (in GELU) is math.erf, which takes no arrays
    return sp.lambdify(args, body, ["scipy", "numpy"])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _forward(n: TNode, ins: list[np.ndarray]) -> np.ndarray:
    if n.kind in RULES:
        return RULES[n.kind][0](n, ins)
    if n.kind == "map":  # lanes are flat, of the node's length or one element (broadcast)
        r = _lambda(n.lanes, n.body)(*[v.reshape(-1) for v in ins])
        return np.broadcast_to(np.asarray(r, dtype=float), (n.length,))
    if n.kind == "matmul":
        (a, b), (ta, tb) = ins, n.trans
        return (a.T if ta else a) @ (b.T if tb else b)
    if n.kind == "sum":
        return np.array(ins[0].sum())
    if n.kind == "select":
        return ins[0].reshape(-1)[n.index]
    z = ins[0]
    if n.kind == "softmax":
        return _softmax(z)
    lse = z.max() + np.log(np.exp(z - z.max()).sum())
    return np.array(lse if n.kind == "logsumexp" else lse - (ins[1] * z).sum())


def _backward(n: TNode, ins: list[np.ndarray], value: np.ndarray, d: np.ndarray) -> list[np.ndarray]:
    """The delta of each input of ``n`` from its own, as the printed delta rule states it."""
    if n.kind in RULES:
        return RULES[n.kind][1](n, ins, value, d)
    if n.kind == "map":  # δ_lane = δ ⊙ ∂body/∂lane; a broadcast lane sums its contributions
        args = [v.reshape(-1) for v in ins] + [value.reshape(-1)]
        out = []
        for i, p in zip(ins, n.partials):
            g = d.reshape(-1) * np.asarray(_lambda((*n.lanes, OUT), p)(*args), dtype=float)
            out.append(np.broadcast_to(g, (n.length,)).sum() if i.size == 1 else g)
        return out
    if n.kind == "matmul":  # out = A·B: δA = δ·Bᵀ, δB = Aᵀ·δ (transposed back for an operand aᵀ)
        (a, b), (ta, tb) = ins, n.trans
        A, B = (a.T if ta else a), (b.T if tb else b)
        da, db = d @ B.T, A.T @ d
        return [da.T if ta else da, db.T if tb else db]
    g = float(d.reshape(-1)[0])
    if n.kind == "sum":
        return [np.full(ins[0].shape, g)]
    if n.kind == "select":
        out = np.zeros(ins[0].size)
        out[n.index] = g
        return [out]
    if n.kind == "softmax":  # δ_z = p ⊙ (δ_p − pᵀ·δ_p)
        return [value * (d - (value * d).sum())]
    p = _softmax(ins[0])
    if n.kind == "logsumexp":
        return [g * p]
    return [g * (p - ins[1]), -g * ins[0]]  # softmax_ce(z, t) = lse(z) − t·z
