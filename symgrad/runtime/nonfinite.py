"""What a compiled formula does when its value or gradient comes out NaN or infinite.

A domain error inside the model (``log`` or ``sqrt`` of negative data, a division by zero, an
overflowing ``exp``) gives NaN or Inf, which would otherwise come back without a word.
``compile(..., on_nonfinite=)`` chooses: ``"warn"`` (the default) warns with a
:class:`NonFiniteWarning`, ``"raise"`` raises :class:`~symgrad.errors.NonFiniteError`,
``"ignore"`` returns the value as it is. The message names the first sample where the formula
(or, when the value is finite, one of its derivatives) is not finite, that sample's values, and
the innermost sub-expression that is not finite there while its own arguments are: the step
where the number was lost. The search runs only then, in NumPy on the formula as written.

>>> import sympy as sp, numpy as np
>>> a, x = sp.symbols("a x", real=True)
>>> print(diagnose(a * sp.log(x), [a], [x], np.array([2.0]), [np.array([1.0, -3.0])], "value"))
the value is not finite: sample 1 (x = -3) gives nan, first at log(x) = nan, where x = -3
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import numpy as np
import sympy as sp

from ..derive.choose import Choose
from ..derive.defined import merged_powers, vanishing_logs
from ..derive.removable import isolate, restore
from ..errors import NonFiniteError, OptionError
from .checks import ROW_OFFSET

MODES = ("warn", "raise", "ignore")


class NonFiniteWarning(RuntimeWarning):
    """A compiled formula returned NaN or Inf (``compile(..., on_nonfinite='warn')``)."""


def check_mode(mode: object) -> str:
    if mode not in MODES:
        raise OptionError(f"on_nonfinite={mode!r}: use 'warn' (the default: a NonFiniteWarning naming the sample "
                          "and the sub-expression), 'raise' (a NonFiniteError) or 'ignore'.")
    return mode


def report(compiled, what: str, theta: np.ndarray, arrays: Sequence[np.ndarray]) -> None:
    """Warn or raise for a non-finite ``what`` of ``compiled``, as its ``on_nonfinite`` says."""
    mode = compiled.on_nonfinite
    if mode == "ignore" or compiled.expr is None:
        return
    try:
        found = diagnose(compiled.expr, compiled.params, compiled.data, theta, arrays, what)
    except Exception as exc:  # the search is a courtesy: a form NumPy cannot evaluate still gets the warning
        found = f"the {what} is not finite (where, symgrad could not work out: {type(exc).__name__})"
    emit(mode, found, stacklevel=4)


def finite_rows(out: np.ndarray) -> np.ndarray:
    """``out``, a network's outputs for checked (finite) rows, after a warning where any is not
    finite: a row of -1e308 gave NaN probabilities and, by argmax, the first class, silently."""
    if not np.isfinite(out).all():
        from .epochs import user_level  # epochs imports the trained model, which imports this

        rows = np.flatnonzero(~np.isfinite(out.reshape(len(out), -1)).all(axis=1))
        warnings.warn(f"the network's outputs for {len(rows)} row(s) of X (first: row {rows[0]}) are not finite "
                      f"(NaN/Inf) though the rows are: the network overflowed on them, and their predictions "
                      "(an argmax of NaN is the first class) mean nothing. Fix: scale X as the training data was "
                      "(StandardScaler), or drop rows far outside its range.", NonFiniteWarning,
                      stacklevel=user_level())
    return out


def emit(mode: str, found: str, stacklevel: int) -> None:
    """Warn or raise (``mode``) that ``found``, with the fix."""
    msg = found + (
        ". Fix: keep the data and parameters inside the formula's domain (log and sqrt of positive values, no "
        "division by zero, exp of moderate arguments), or pass on_nonfinite='ignore' to sg.compile to accept it")
    if mode == "raise":
        raise NonFiniteError(msg)
    warnings.warn(msg, NonFiniteWarning, stacklevel=stacklevel)


def _fn(e: sp.Expr, symbols: list[sp.Symbol]):
    # renamed: a symbol named sign, abs or exp shadowed NumPy's function of that name (dummify does not help:
    # lambdify puts the symbols' own names into the namespace too)
    safe = [sp.Symbol(f"_sg{k}", real=True) for k in range(len(symbols))]
    return sp.lambdify(safe, e.xreplace(dict(zip(symbols, safe))), modules=["scipy", "numpy"])


def _at(e: sp.Expr, symbols, values, n: int, limit: float = np.inf) -> np.ndarray:
    """``e`` in float64 at ``values``; beyond ``limit`` (float32's largest number for float32 inputs)
    a value is inf, as the compiled float32 code has it."""
    # IEEE, not Python's ZeroDivisionError; every column n long, or NumPy's logical_and.reduce of a
    # condition on a parameter and one on data (a Piecewise's) is a ragged tuple
    values = [np.full(n, v, dtype=np.float64) if np.ndim(v) == 0 else v for v in values]
    with np.errstate(all="ignore"):
        out = np.asarray(_fn(e, symbols)(*values))
        if np.iscomplexobj(out):  # log of a negative number in NumPy's complex mode: not a real value
            out = np.where(out.imag != 0, np.nan, out.real)
        out = np.where(np.abs(out) > limit, np.copysign(np.inf, out), out)
    return np.broadcast_to(out.astype(np.float64), (n,))


def _origin(e: sp.Expr, symbols, values, limit: float) -> tuple[sp.Expr, float] | None:
    """The innermost sub-expression of e that is not finite at one point while its arguments are;
    in a Piecewise, only the branch taken there (a removable node's written form is 0/0 at its
    point, where its Taylor branch is what the code computes)."""
    seen: dict[sp.Expr, float] = {}

    def value(node: sp.Expr) -> float:
        if node not in seen:
            seen[node] = (float(values[symbols.index(node)]) if isinstance(node, sp.Symbol)
                          else float(_at(node, symbols, values, 1, limit)[0]))
        return seen[node]

    def find(node) -> tuple[sp.Expr, float] | None:
        if not isinstance(node, sp.Expr) or not node.free_symbols:
            return None  # conditions are not numbers
        if isinstance(node, sp.Piecewise):
            taken = next((b for b, c in node.args if c == sp.true or bool(np.ravel(_at_bool(c, symbols, values))[0])), None)
            return None if taken is None else find(taken)
        if isinstance(node, Choose):  # a removable node's output: the form computed at this point
            return find(node.args[node.taken([value(a) for a in node.args[2:]])])
        for a in node.args:
            if (got := find(a)) is not None:
                return got
        v = value(node)
        if not np.isfinite(v) and all(np.isfinite(value(a)) for a in node.args if isinstance(a, sp.Expr) and a.free_symbols):
            return node, v
        return None
    return find(e)


def _at_bool(c, symbols, values):
    with np.errstate(all="ignore"):
        return _fn(c, symbols)(*[np.float64(v) for v in values])


def _forms(expr: sp.Expr, symbols: list, dtype: str):
    """``expr`` with its removable nodes isolated, and how to put them back: the value and
    derivatives as the compiled code computes them (derive/removable.py)."""
    iso, near = _isolated(expr, tuple(symbols))
    return iso, lambda d: restore(d, near, lambda e: vanishing_logs(merged_powers(e)), dtype)


@functools.lru_cache(maxsize=16)
def _isolated(expr: sp.Expr, symbols: tuple):
    # once per formula: SymPy's series of a node takes up to a second, and an optimizer that steps
    # into a formula's bad region warns at every call
    return isolate(expr, list(symbols))


def diagnose(expr: sp.Expr, params, data, theta, arrays, what: str) -> str:
    """Where the formula stops being finite: the first such sample and sub-expression."""
    by_name = {s.name: s for s in expr.free_symbols if isinstance(s, sp.Symbol)}
    symbols = [by_name.get(str(s), sp.Symbol(str(s))) for s in (*params, *data)]
    # theta: one number per parameter, or (pointwise functions) one array per parameter
    per_point = isinstance(theta, (list, tuple))
    thetas = [np.asarray(t, dtype=np.float64) for t in theta] if per_point else [float(t) for t in np.ravel(theta)]
    n = len(arrays[0]) if len(arrays) else len(thetas[0]) if per_point and thetas else 1
    single = any(np.asarray(a).dtype == np.float32 for a in (*(theta if per_point else [theta]), *arrays))
    limit = float(np.finfo(np.float32).max) if single else np.inf
    columns = thetas + [np.asarray(a, dtype=np.float64) for a in arrays]
    written, put_back = _forms(expr, symbols, "float32" if single else "float64")
    target, where = put_back(written), ""
    values = _at(target, symbols, columns, n, limit)
    bad = np.flatnonzero(~np.isfinite(values))
    # the value is finite at every sample: one of its derivatives is not (for a Hessian, of its
    # second derivatives: the first few pairs, each a diff of the formula)
    pairs = list(zip(params, symbols))
    order = [(p,) for p in pairs]
    if what.startswith("Hessian"):
        order += [(a, b) for i, a in enumerate(pairs) for b in pairs[i:]][:36]
    for wrt in ([] if bad.size else order):
        d = written
        for _, s in wrt:
            d = merged_powers(sp.diff(d, s))  # as compiled: x**y*y/x is y*x**(y - 1), finite at x = 0
            d = d.replace(lambda n: isinstance(n, sp.DiracDelta), lambda n: sp.S.Zero)  # sign'(x) = 0, as compiled
        d = put_back(d)
        values = _at(d, symbols, columns, n, limit)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            target, where = d, f"its derivative with respect to {' and '.join(str(p) for p, _ in wrt)}, "
            break
    if not bad.size:
        within = " (within float32's range)" if single else ""
        return (f"the {what} is not finite, though the formula as written and SymPy's derivatives of it are finite "
                f"at every one of the {n} samples in NumPy{within}: the compiled form (a 0/0 where a limit exists, such as "
                "x/sqrt(a*x) at x = 0) or the sum over the samples is where it arises")
    i = int(bad[0])
    point = [c if np.ndim(c) == 0 else float(c[i]) for c in columns]
    shown = list(zip((*params, *data), point)) if per_point else list(zip(data, point[len(params):]))
    sample = ", ".join(f"{s} = {v:g}" for s, v in shown)
    at = ", ".join(f"{s} = {v:g}" for s, v in zip(params, point))  # a formula without data: its parameters
    row = i + ROW_OFFSET.get()  # a row of the whole data, also in a Dask chunk
    head = f"the {what} is not finite: {where}" + (f"{'at ' * bool(where)}sample {row} ({sample}) gives" if sample else f"at {at} gives")
    origin = _origin(target, symbols, point, limit)
    if origin is None:
        return f"{head} {values[i]:g}"
    node, v = origin
    inputs = ", ".join(f"{s} = {point[symbols.index(s)]:g}" for s in sorted(node.free_symbols, key=str))
    return f"{head} {values[i]:g}, first at {node} = {v:g}, where {inputs}"
