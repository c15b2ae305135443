"""Numeric worked traces: ``explain(..., at={x: 1.0})`` and ``formulas(..., at=(params, x, y))``.

A derivation's values are computed exactly with SymPy (the point is read as the decimals it
prints as, 0.1 is 1/10) and evaluated to 50 digits with mpmath; a network's values are computed
with NumPy from the delta rule the formulas print, one node of the tensor IR at a time. Neither
runs the compiled code, so each is an independent check of it. Values print with 6 significant
digits, ``=`` where that is the exact value and ``≈`` where it is rounded.

>>> x = sp.Symbol("x", real=True)
>>> point = resolve_point({"x": 0.1}, x**2, [x]); point
{x: 1/10}
>>> shown((x**2).xreplace(point), latex=False), shown(sp.sin(x).xreplace(point).evalf(DIGITS), latex=False)
('= 0.01', '≈ 0.0998334')
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

from ..derive.ir import OUT, TNode
from ..errors import OptionError, ShapeError, UnsupportedModelError

DIGITS = 50  #: the precision of a derivation's values
SIG = 6  #: significant digits printed
SHOWN = 6  #: entries of a vector printed; a longer one shows the first and last three and '…'


# -- printing numbers ---------------------------------------------------------------------------

def _digits(v, zeros: bool = False) -> str | None:
    """``v`` (a SymPy number or a float) to SIG significant digits, trailing zeros kept when
    ``zeros`` (a rounded value shows all its digits: 2.54030); None when not a finite real."""
    if isinstance(v, sp.Basic):
        if not (v.is_Number and v.is_finite and v.is_real):
            return None
        m = mpmath.mpf(sp.Float(v, DIGITS)._mpf_)
        if m != 0 and not 1e-300 < abs(m) < 1e300:
            return mpmath.nstr(m, SIG)  # beyond float64: softplus(-1000) = 5.07601e-435
        v = float(m)
    if not np.isfinite(v):
        return None
    s = f"{float(v):#.{SIG}g}" if zeros else f"{float(v):.{SIG}g}"
    return "0" if s == "-0" else s


def _exact(v, s: str) -> bool:
    """Whether ``s`` is exactly ``v``: a SymPy value is exact only as a Rational (sin(1) is
    not, and neither is softplus(1000), whose 50 digits all agree with 1000)."""
    if isinstance(v, sp.Basic):
        return isinstance(v, sp.Rational) and sp.Rational(s) == v
    return float(s) == float(v)


def number(v, latex: bool) -> str:
    """One value as printed; a value that is not a finite real number prints as SymPy writes it
    (zoo, nan, I), so a trace through log(0) shows where it breaks."""
    s = _digits(v)
    if s is None:
        return sp.latex(v) if latex else str(v)
    if not _exact(v, s):
        s = _digits(v, zeros=True)
    if latex and "e" in s:
        mant, exp = s.split("e")
        return r"%s \times 10^{%d}" % (mant, int(exp))
    return s


def shown(v, latex: bool) -> str:
    """``= 0.5`` or ``≈ 0.841471``: the relation and the value, for after a printed formula."""
    return f"{_relation([v], latex)} {number(v, latex)}"


def _relation(values, latex: bool) -> str:
    exact = all((s := _digits(v)) is None or _exact(v, s) for v in values)  # None: zoo, printed as is
    return "=" if exact else (r"\approx" if latex else "≈")


def array(a: np.ndarray, latex: bool) -> str:
    """A network value: ``≈ 0.5`` for a scalar, ``≈ [0.1, -0.2, …, 0.3]`` for a vector (its first
    and last entries when long), and its norm for a matrix."""
    a = np.asarray(a, dtype=float)
    if a.size == 1:
        return shown(float(a.reshape(-1)[0]), latex)
    if min(a.shape) > 1:
        return norm(a, latex)
    flat = a.reshape(-1)
    parts = [number(v, latex) for v in flat]
    if len(parts) > SHOWN:
        parts = parts[:SHOWN // 2] + [r"\ldots" if latex else "…"] + parts[-(SHOWN // 2):]
    sep = r",\ " if latex else ", "
    return f"{_relation(flat, latex)} [{sep.join(parts)}]"


def norm(a: np.ndarray, latex: bool, label: str = "") -> str:
    """``‖∂ℓ/∂W1‖ ≈ 0.123``: the Frobenius norm of ``a`` (``‖·‖`` when no label is given)."""
    inner = label or (r"\cdot" if latex else "·")
    bars = r"\|%s\|" % inner if latex else f"‖{inner}‖"
    return f"{bars} {shown(float(np.linalg.norm(a)), latex)}"


# -- explain(..., at=): the point --------------------------------------------------------------

def resolve_point(at: object, expr: sp.Expr, wrt: Sequence[sp.Symbol]) -> dict[sp.Symbol, sp.Expr]:
    """``at`` as exact values keyed by the expression's own symbols: keys are Symbols or their
    names ("x"), matched by name; every variable of ``expr`` needs one value."""
    if not isinstance(at, Mapping):
        raise OptionError(f"at= takes a dict {{variable: number}}, got {type(at).__name__} {at!r:.60}. "
                          "Fix: e.g. explain(J, x, at={x: 1.0}).")
    symbols = {s.name: s for s in (expr.free_symbols | set(wrt)) if isinstance(s, sp.Symbol)}
    point: dict[sp.Symbol, sp.Expr] = {}
    for key, value in at.items():
        name = key if isinstance(key, str) else key.name if isinstance(key, sp.Symbol) else None
        if name is None:
            raise OptionError(f"at= keys are the expression's variables (Symbols, or their names such as 'x'), "
                              f"got {key!r} ({type(key).__name__}). Fix: e.g. at={{x: 1.0}}.")
        if name not in symbols:
            raise OptionError(f"at= gives a value for {name!r}, which is not a variable of {expr}. Its "
                              f"variables are {', '.join(sorted(symbols)) or 'none'}. Fix: drop {key!r} or "
                              "check its spelling.")
        if symbols[name] in point:
            raise OptionError(f"at= gives {name!r} twice (as a Symbol and as a name). Fix: keep one.")
        point[symbols[name]] = _exact_number(value, name)
    missing = sorted(s.name for s in expr.free_symbols if isinstance(s, sp.Symbol) and s not in point)
    if missing:
        example = ", ".join(f"{n}: 1.0" for n in missing)
        raise OptionError(f"at= has no value for {', '.join(missing)}; a numeric trace needs every variable "
                          f"of the expression. Fix: add them, e.g. at={{..., {example}}}.")
    return point


def _exact_number(value: object, name: str) -> sp.Expr:
    """A real number as an exact SymPy number: a float as the decimal it prints as (0.1 is 1/10)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    out = None
    if isinstance(value, numbers.Rational) and not isinstance(value, bool):  # int, Fraction, np.int64
        out = sp.Rational(int(value.numerator), int(value.denominator))
    elif isinstance(value, (float, np.floating)) and np.isfinite(value):
        out = sp.Rational(repr(float(value)))
    elif isinstance(value, sp.Basic) and value.is_number:
        out = value
    if out is None or not (out.is_real and out.is_finite):
        raise OptionError(f"at[{name!r}] = {value!r:.40} is not a finite real number. Fix: pass a number, "
                          f"e.g. at={{{name}: 1.0}} (an int, a float, a Fraction or a SymPy number like sp.pi/4).")
    return out


class PointValues:
    """The exact values of a sweep's quantities (expressions in its seams and leaves) at a point."""

    def __init__(self, sweep, point: dict[sp.Symbol, sp.Expr]):
        self.point = point
        self.exact = dict(point) | {n.out: n.expr.xreplace(point) for n in sweep.nodes}
        self.memo: dict[sp.Basic, sp.Expr] = {}

    def __call__(self, e: sp.Expr) -> sp.Expr:
        e = sp.sympify(e)
        if e not in self.memo:
            exact = e.xreplace(self.exact)
            self.memo[e] = exact if exact.is_Rational else exact.evalf(DIGITS)
        return self.memo[e]


# -- formulas(..., at=): one sample through a dense network ------------------------------------

def network_sample(model, loss_name: str, at: object, target: sp.MatrixSymbol) -> dict[str, np.ndarray]:
    """``at=(params, x, y)`` as the value of each leaf of the lowered loss, by name."""
    from ..lang.conv import model_input
    from ..runtime.inputs import as_model_array, check_finite, prepare_xy

    if not isinstance(at, (tuple, list)) or len(at) != 3:
        got = f"a {type(at).__name__}" + (f" of {len(at)} items" if isinstance(at, (tuple, list)) else "")
        raise OptionError(f"at= takes (params, x, y) for one sample, got {got}. "
                          "Fix: e.g. formulas(net, 'bce', at=(trained.params, X[0], Y[0])).")
    params, x, y = at
    params = getattr(params, "params", params)  # a Trained model
    if isinstance(params, Mapping):
        params = [params.get(p, params.get(str(p))) for p in model.params]
    names = [str(p) for p in model.params]
    if not isinstance(params, (list, tuple)) or len(params) != len(names) or any(v is None for v in params):
        raise OptionError(f"at=(params, x, y): params must hold one array for each of {', '.join(names)} "
                          "(a list in that order, a dict by name, or a trained model). Fix: e.g. "
                          "at=(trained.params, x, y).")
    leaves = {}
    for p, v in zip(model.params, params):
        a = as_model_array(v, np.dtype(np.float64), str(p))
        shape = tuple(int(d) for d in p.shape)
        if a.shape != shape and not (a.ndim == 1 and 1 in shape and a.size == np.prod(shape)):
            raise ShapeError(f"at=: {p} has shape {a.shape}, but the model's {p} is {shape}. Fix: pass the "
                             "parameters in model.params order, e.g. a trained model's .params.")
        check_finite(a, str(p), "Fix: pass finite parameters.")
        leaves[str(p)] = a.reshape(shape)
    n_in, n_out = model_input(model), int(target.shape[0])
    x, y = np.asarray(x), np.asarray(y)
    y = y.reshape(1) if y.ndim == 0 else y[None] if y.ndim == 1 and len(y) == n_out and n_out > 1 else y
    if x.ndim < 2 or (x.ndim > 2 and isinstance(n_in, tuple)):
        x = x[None]  # one sample: a row of features, or one image
    if len(x) != 1 or len(y) != 1:
        raise ShapeError(f"at=(params, x, y) is one sample: x of {n_in} features (1-D, or one row) and y its "
                         f"target; got x of shape {x.shape} and y of shape {y.shape}. Fix: e.g. at=(params, "
                         "X[0], Y[0]).")
    X, Y = prepare_xy(x, y, loss_name, n_in, n_out, np.dtype(np.float64), ("x", "y"))
    return leaves | {str(model.x): X.reshape(-1, 1), str(target): Y.reshape(-1, 1)}


def network_values(nodes: list[TNode], out: TNode, leaves: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each printed quantity's value by its row's name (z1, δ_z1, ∂ℓ/∂W1, ℓ): the forward pass,
    then the delta rule, node by node in NumPy."""
    other = sorted({n.kind for n in nodes} - {"leaf", "map", "matmul", "sum", "select", "softmax", "logsumexp",
                                              "softmax_ce"})
    if other:
        raise UnsupportedModelError(f"at= supports dense networks for now; this model has {', '.join(other)} "
                                    "layers. Fix: drop at= to print the formulas, or check the gradients "
                                    "numerically with sg.check_grads.")
    val: dict[int, np.ndarray] = {}
    for n in nodes:
        v = leaves[n.name] if n.kind == "leaf" else _forward(n, [val[id(i)] for i in n.inputs])
        val[id(n)] = np.reshape(v, n.shape)
    delta: dict[int, np.ndarray] = {id(out): np.ones((1, 1))}
    for n in reversed(nodes):
        if n.kind == "leaf" or id(n) not in delta:
            continue
        ins = [val[id(i)] for i in n.inputs]
        for i, d in zip(n.inputs, _backward(n, ins, val[id(n)], delta[id(n)])):
            delta[id(i)] = delta.get(id(i), 0) + np.reshape(d, i.shape)
    rows = {"ℓ": val[id(out)]}
    for n in nodes:
        d = delta.get(id(n), np.zeros(n.shape))
        if n.kind != "leaf":
            rows[n.label], rows[f"δ_{n.label}"] = val[id(n)], d
        elif n.role == "param":
            rows[f"∂ℓ/∂{n.label}"] = d
    return rows


@functools.lru_cache(maxsize=512)
def _lambda(args: tuple, body: sp.Expr):
    return sp.lambdify(args, body, "numpy")


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _forward(n: TNode, ins: list[np.ndarray]) -> np.ndarray:
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
