"""The public entry points: ``grad``, ``explain``, ``compile`` and ``compile_residuals``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sympy as sp

from . import jit
from .codegen_scalar import scalar_module
from .compiled import MAX_HESSIAN_PARAMS, CompiledFormula, CompiledResiduals, build_spec
from .derive import sweep
from .errors import DtypeError, SymgradError
from .formulas import Derivation, check_trace_names, resolve_names
from .rewrite import stabilize
from .validate import check_bindings, check_functions, check_matrix_elements, check_scalar, realify


def _fold_extremum(is_max: bool, args: list[sp.Expr]) -> sp.Expr:
    """max(a1, ..., an) as nested Piecewise with the convention of ops.KINK_CONVENTIONS['Max']:
    strict comparisons, so a tie goes to the later argument, and constants are placed last,
    so d max(x, 0)/dx = 0 at x = 0 (as relu'(0))."""
    args = sorted(args, key=lambda a: (not a.free_symbols, sp.default_sort_key(a)))
    acc = args[-1]
    for a in reversed(args[:-1]):
        acc = sp.Piecewise((a, a > acc if is_max else a < acc), (acc, True))
    return acc


def _max_to_piecewise(e: sp.Expr) -> sp.Expr:
    """Max/Min as Piecewise: SymPy differentiates Max into Heaviside, whose value at 0 is 1/2."""
    if e.is_Atom:
        return e
    args = [_max_to_piecewise(a) for a in e.args]
    if isinstance(e, (sp.Max, sp.Min)):
        return _fold_extremum(isinstance(e, sp.Max), args)
    return e.func(*args) if args != list(e.args) else e


def prepare(expr: object, variables: Sequence[sp.Basic]) -> tuple[sp.Expr, list[sp.Symbol], list[str], sp.Expr]:
    """Validate, make symbols real, and stabilise. Returns (stable, variables, rules, original).

    Symbols not declared real are replaced by real twins (``validate.realify``); use
    :func:`unrealify` to hand results back in the caller's symbols.
    """
    if _is_tensor(expr) and not isinstance(expr, sp.MatrixBase):
        check_scalar(expr, "expression")  # a matrix expression: NonScalarLossError
        raise SymgradError("grad/explain work on scalar formulas; for matrix models use sg.formulas()")
    e = check_scalar(expr, "expression")
    check_functions(e)
    e, mapping = realify(e)
    out_vars = []
    for v in variables:
        if not isinstance(v, sp.Symbol):
            raise SymgradError(f"can only differentiate with respect to a Symbol, got {v!r} ({type(v).__name__})")
        out_vars.append(mapping.get(v, v))
    original = e
    e = _max_to_piecewise(e)
    stable, rules = stabilize(e)
    return stable, out_vars, rules, original


def grad(expr: sp.Expr, wrt: sp.Symbol | Sequence[sp.Symbol]) -> sp.Expr | list[sp.Expr]:
    """The simplified, stabilised gradient of a scalar expression.

    One reverse sweep gives every partial; SymPy only differentiates single nodes.

    >>> x = sp.Symbol("x", real=True)
    >>> grad(sp.cos(sp.sin(x**2) + 3*x**2), x)
    -2*x*(cos(x**2) + 3)*sin(3*x**2 + sin(x**2))
    """
    single = isinstance(wrt, sp.Basic)
    stable, variables, _, _ = prepare(expr, [wrt] if single else list(wrt))
    s = sweep(stable)
    out = [unrealify(s.gradient(v), expr) for v in variables]
    return out[0] if single else out


def unrealify(result: sp.Expr, user_expr: sp.Basic) -> sp.Expr:
    """Put the caller's own (possibly non-real) symbols back into a result."""
    back = {sp.Symbol(s.name, real=True): s for s in getattr(user_expr, "free_symbols", ())
            if isinstance(s, sp.Symbol) and not s.is_real}
    return result.xreplace(back) if back else result


def explain(
    expr: sp.Expr,
    wrt: sp.Symbol | Sequence[sp.Symbol],
    names: dict[sp.Expr, str] | None = None,
    output: str = "J",
) -> Derivation:
    """The derivation of ``d expr / d wrt``: forward trace, adjoint steps, result.

    ``names`` maps subexpressions to the names used in the printout (default v1, v2, ...).
    A key is an expression as you wrote it, or a string such as ``"x**2"``. A name that is
    already used (by a variable, ``output``, another key or an automatic ``v3``) raises
    :class:`~symgrad.errors.NameClashError`; a key that matches no subexpression raises
    :class:`~symgrad.errors.NamingError`.

    >>> x = sp.Symbol("x", real=True)
    >>> print(explain(sp.sin(x**2), x, names={x**2: "t"}))  # doctest: +NORMALIZE_WHITESPACE
    Forward
      t = x**2
      J = sin(t)
    Backward (adjoint steps)
      dJ/dt += cos(t)
      dJ/dx += dJ/dt * dt/dx,   dt/dx = 2*x
    Collected adjoints
      dJ/dt = cos(t)
    Result
      dJ/dx = 2*x*cos(x**2)
    """
    single = isinstance(wrt, sp.Basic)
    stable, variables, rules, original = prepare(expr, [wrt] if single else list(wrt))
    named = resolve_names(names, original, stable, _name_forms, output)
    s = sweep(stable, {node: name for node, (name, _) in named.items()}, output, rename_output=False)
    check_trace_names(s, named, stable, bool(rules))
    d = Derivation(original, stable, rules, s, variables)
    d.gradients = [unrealify(s.gradient(v), expr) for v in variables]
    return d


def _name_forms(key: sp.Expr) -> list[sp.Expr]:
    """The forms a ``names=`` key may take in the prepared expression, most prepared first:
    keys are written as the user wrote the expression, which ``prepare`` has rewritten."""
    real, _ = realify(key)
    piecewise = _max_to_piecewise(real)
    return [stabilize(piecewise)[0], piecewise, real]


_REDUCTIONS = ("mean", "sum", "none")


def _check_options(dtype: str, reduction: str, backend: str) -> str:
    dt = np.dtype(dtype).name if isinstance(dtype, (str, type, np.dtype)) else str(dtype)
    if dt not in ("float32", "float64"):
        raise DtypeError(f"dtype {dtype!r} is not supported. Fix: use 'float32' or 'float64'.")
    if reduction not in _REDUCTIONS:
        raise SymgradError(f"reduction {reduction!r} is not one of {_REDUCTIONS}")
    if backend not in ("numba", "python"):
        raise SymgradError(f"backend {backend!r} is not one of ('numba', 'python')")
    return dt


def compile(
    expr: sp.Expr,
    wrt: Sequence[sp.Basic],
    data: Sequence[sp.Basic] = (),
    *,
    dtype: str = "float64",
    reduction: str = "mean",
    parallel: bool = False,
    backend: str = "numba",
) -> CompiledFormula:
    """Compile a scalar formula (a per-sample loss) to Numba value/gradient/Hessian functions.

    ``reduction='mean'`` (default) averages over samples, ``'sum'`` adds them up, and
    ``'none'`` evaluates pointwise, treating ``wrt`` symbols as per-point inputs.

    >>> import numpy as np
    >>> a, t, y = sp.symbols("a t y", real=True)
    >>> f = compile((sp.exp(-a * t) - y) ** 2, wrt=[a], data=[t, y], backend="python")
    >>> t_ = np.linspace(0, 1, 5); bool(abs(f.value([0.5], t_, np.exp(-0.5 * t_))) < 1e-15)
    True
    """
    if _is_tensor(expr):
        from .tensor.api import compile_tensor

        check_matrix_elements(expr)  # (w.T*X)[0, 0] is expanded per element by SymPy: refuse, name sg.msum

        return compile_tensor(expr, wrt, data, dtype=_check_options(dtype, reduction, backend),
                              reduction=reduction, parallel=parallel, backend=backend)
    dt = _check_options(dtype, reduction, backend)
    path, params, data_syms = _build_formula(expr, wrt, data, dt, reduction, parallel)
    has_hessian = reduction != "none" and len(params) <= MAX_HESSIAN_PARAMS
    return CompiledFormula(path, params, data_syms, dt, reduction, has_hessian, backend)


def compile_residuals(
    expr: sp.Expr,
    wrt: Sequence[sp.Basic],
    data: Sequence[sp.Basic] = (),
    *,
    dtype: str = "float64",
    backend: str = "numba",
) -> CompiledResiduals:
    """Compile per-sample residuals r_i(θ) = ``expr`` and their Jacobian, for least squares.

    ``r.residuals(theta, *data)`` (n,) and ``r.jacobian(theta, *data)`` (n, k) plug into
    ``scipy.optimize.least_squares(r.residuals, x0, jac=r.jacobian, args=data)``;
    ``r.covariance(theta, *data)`` is s²(JᵀJ)⁻¹ with s² = Σr²/(n − k).

    >>> import numpy as np
    >>> a, b, x, y = sp.symbols("a b x y", real=True)
    >>> r = compile_residuals(a * sp.exp(-b * x) - y, [a, b], [x, y], backend="python")
    >>> r.jacobian([2.0, 0.0], np.array([0.0, 1.0]), np.array([1.0, 1.0])).tolist()
    [[1.0, -0.0], [1.0, -2.0]]
    """
    dt = _check_options(dtype, "mean", backend)
    if _is_tensor(expr):
        raise SymgradError("compile_residuals takes a scalar formula of parameters and per-sample data, "
                           "got a matrix expression. Fix: write one residual per sample as a scalar "
                           "formula, or use sg.compile for matrix models.")
    path, params, data_syms = _build_formula(expr, wrt, data, dt, "residuals", False)
    return CompiledResiduals(path, params, data_syms, dt, "residuals", False, backend)


def _build_formula(expr, wrt, data, dt: str, reduction: str, parallel: bool):
    """Validate, stabilise, derive and generate a formula module (derivation only on a cache miss)."""
    wrt, data = list(wrt), list(data)
    stable, variables, _, _ = prepare(expr, wrt + data)
    params, data_syms = variables[: len(wrt)], variables[len(wrt):]
    check_bindings(stable, params, data_syms)
    key = jit.cache_key("formula", sp.srepr(stable), sp.srepr(params), sp.srepr(data_syms), dt,
                        reduction, str(parallel))
    title = f"symgrad formula model\n\nloss (per sample) = {stable}\nparameters: {params}\ndata: {data_syms}"
    path = jit.ensure_source(
        key, lambda: scalar_module(build_spec(stable, params, data_syms, reduction, dt, parallel, title))
    )
    return path, params, data_syms


def _is_tensor(expr: object) -> bool:
    if isinstance(expr, (sp.MatrixExpr, sp.MatrixBase)):
        return True
    return isinstance(expr, sp.Basic) and bool(expr.atoms(sp.MatrixSymbol))


def formulas(model, loss):
    """Per-layer backprop equations (delta rule) of ``model`` under ``loss``, text and LaTeX.

    ``model`` is an :class:`symgrad.nn.MLP` (or anything with ``expr``, ``params``, ``x``),
    ``loss`` a name ('mse', 'bce', 'softmax_cross_entropy', ...) or ``f(pred, target)``.

    >>> import symgrad as sg
    >>> print(sg.formulas(sg.nn.MLP([3, 4, 1], activation="sigmoid"), "bce"))  # doctest: +ELLIPSIS
    Forward (per sample)
    ...
      δ_z2 = -y + sigmoid(z2)
    ...
    """
    from .tensor.formulas import network_formulas
    from .train import _loss_fn

    loss_fn, _ = _loss_fn(loss)
    y = sp.MatrixSymbol("y", int(model.expr.shape[0]), 1)
    return network_formulas(loss_fn(model.expr, y), model.params, [model.x, y], getattr(model, "labels", None))
