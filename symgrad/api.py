"""The public entry points: ``grad``, ``explain``, ``compile`` and ``compile_residuals``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence

import sympy as sp

from .build import MAX_HESSIAN_PARAMS, check_options, formula_module, loss_of, tensor_module
from .derive.reverse import sweep
from .errors import NamingError, OptionError, SymgradError, UnsupportedModelError
from .explain.indexed import explain_indexed, grad_indexed
from .explain.numeric import network_sample, resolve_point
from .explain.trace import Derivation, agreement, check_trace_names, resolve_names
from .front.indexed import uses_indices
from .front.prepare import is_tensor, prepare, unrealify
from .front.rewrite import stabilize
from .front.validate import GRAD_MAX_ARGS, check_matrix_elements, check_size, depth, realify, symbol_list
from .lang.args import check_network, known_keywords
from .lang.losses import loss_fn, target_symbol
from .runtime.formula import CompiledFormula, CompiledResiduals
from .runtime.nonfinite import MODES, check_mode
from .runtime.tensor import CompiledTensor


def _bounded_recursion(func):
    """Turn a RecursionError from SymPy's recursive algorithms into an error that says why and what to do
    (a very deep expression exceeds Python's limit); a keyword the function lacks names the nearest."""

    @functools.wraps(func)
    def wrapper(expr, *args, **kwargs):
        check_size(expr, ops=None, args=GRAD_MAX_ARGS)  # a Max of hundreds: minutes, so refused at once
        try:
            return func(expr, *args, **kwargs)
        except RecursionError:
            d = f"nested {depth(expr)} levels deep" if isinstance(expr, sp.Basic) else "too deep"
            raise UnsupportedModelError(
                f"this expression is {d}, beyond what SymPy's recursive algorithms take under Python's recursion "
                f"limit ({sys.getrecursionlimit()}). Fix: split it into named parts (compile the inner part "
                "separately, or write the model with matrices), or raise the limit with sys.setrecursionlimit "
                "at your own risk.") from None
    return known_keywords(wrapper)


@_bounded_recursion
def grad(expr: sp.Expr, wrt: sp.Symbol | Sequence[sp.Symbol]) -> sp.Expr | list[sp.Expr]:
    """The simplified, stabilised gradient of a scalar expression.

    One reverse sweep gives every partial; SymPy only differentiates single nodes.

    >>> x = sp.Symbol("x", real=True)
    >>> grad(sp.cos(sp.sin(x**2) + 3*x**2), x)
    -2*x*(cos(x**2) + 3)*sin(3*x**2 + sin(x**2))
    """
    single = isinstance(wrt, sp.Basic)
    if uses_indices(expr, [wrt] if single else _variables(wrt)):  # Sum, theta[j]: explain/indexed.py
        out = grad_indexed(expr, [wrt] if single else _variables(wrt))
        return out[0] if single else out
    stable, variables, _, _ = prepare(expr, [wrt] if single else _variables(wrt))
    s = sweep(stable)
    out = [unrealify(s.gradient(v), expr) for v in variables]
    return out[0] if single else out


def _variables(wrt: object) -> list:
    """``wrt`` as a list; ``prepare`` then checks that each is a Symbol."""
    try:
        return list(wrt)
    except TypeError:
        raise SymgradError(f"wrt must be a Symbol or a list of Symbols, got {wrt!r} ({type(wrt).__name__}). "
                           "Fix: e.g. grad(expr, x) or grad(expr, [x, y]).") from None


@_bounded_recursion
def explain(
    expr: sp.Expr,
    wrt: sp.Symbol | Sequence[sp.Symbol],
    names: dict[sp.Expr, str] | None = None,
    output: str = "J",
    at: dict | None = None,
    textbook: bool = False,
) -> Derivation:
    """The derivation of ``d expr / d wrt``: forward trace, adjoint steps, result.

    ``names`` maps subexpressions to the names used in the printout (default v1, v2, ...).
    A key is an expression as you wrote it, or a string such as ``"x**2"``. A name that is
    already used (by a variable, ``output``, another key or an automatic ``v3``) raises
    :class:`~symgrad.errors.NameClashError`; a key that matches no subexpression raises
    :class:`~symgrad.errors.NamingError`.

    ``textbook=True`` derives the expression as written, step by step, as the lecture notes do
    (``dJ/dy = -t/y + (1 - t)/(1 - y)``, ``dy/da = e^-a/(e^-a + 1)²`` for the logistic loss),
    and then shows the stable form symgrad compiles (``bce_logits``), its derivative, and that
    the two agree (simplified to 0, or equal at random points to 25 digits when SymPy cannot
    simplify the difference).

    ``at={x: 1.0}`` (keys Symbols or names, one number for every variable) makes it a worked
    exercise: each forward value, adjoint step and adjoint is followed by its value there, to 6
    significant digits (``=`` exact, ``≈`` rounded), computed exactly with SymPy (a float is the
    decimal it prints as), not with compiled code. A missing or unknown variable, or a value that
    is not a real number, raises :class:`~symgrad.errors.OptionError`.

    >>> x = sp.Symbol("x", real=True)
    >>> print(explain(sp.sin(x**2), x, names={x**2: "t"}))  # doctest: +NORMALIZE_WHITESPACE
    Forward
      t = x**2
      J = sin(t)
    Backward (adjoint steps)
      ∂J/∂t += cos(t)
      ∂J/∂x += ∂J/∂t * ∂t/∂x,   ∂t/∂x = 2*x
    Collected adjoints (the sums of the += steps)
      ∂J/∂t = cos(t)
    Result
      ∂J/∂x = 2*x*cos(x**2)
    >>> print(explain(sp.sin(x**2), x, names={x**2: "t"}, at={x: 1.0}))  # doctest: +NORMALIZE_WHITESPACE
    At x = 1 (values to 6 significant digits)
    Forward
      t = x**2 = 1
      J = sin(t) ≈ 0.841471
    Backward (adjoint steps)
      ∂J/∂t += cos(t) ≈ 0.540302
      ∂J/∂x += ∂J/∂t * ∂t/∂x ≈ 1.08060,   ∂t/∂x = 2*x = 2
    Collected adjoints (the sums of the += steps)
      ∂J/∂t = cos(t) ≈ 0.540302
    Result
      ∂J/∂x = 2*x*cos(x**2) ≈ 1.08060
    """
    _explain_options(names, output, textbook)
    single = isinstance(wrt, sp.Basic)
    if uses_indices(expr, [wrt] if single else _variables(wrt)):  # Sum, theta[j]: explain/indexed.py
        return explain_indexed(expr, [wrt] if single else _variables(wrt), names, output, at, textbook)
    stable, variables, rules, original = prepare(expr, [wrt] if single else _variables(wrt))
    derived = original if textbook else stable  # textbook: the expression as written
    named = resolve_names(names, original, derived, _as_written if textbook else _name_forms, output)
    s = sweep(derived, {node: name for node, (name, _) in named.items()}, output, rename_output=False)
    check_trace_names(s, named, derived, bool(rules) and not textbook)
    point = resolve_point(at, original, variables) if at is not None else {}
    d = Derivation(original, stable, rules, s, variables, point=point, textbook=textbook)
    d.gradients = [unrealify(s.gradient(v), expr) for v in variables]
    if textbook and rules:  # what would be compiled, and that it is the same derivative
        stable_sweep = sweep(stable, {}, output, rename_output=False)
        d.stable_raw = [stable_sweep.gradient(v) for v in variables]  # in the real symbols, for at=
        d.stable_gradients = [unrealify(g, expr) for g in d.stable_raw]
        d.agreement = [agreement(g, h, original.free_symbols) for g, h in zip(d.gradients, d.stable_gradients)]
    return d


def _explain_options(names: object, output: object, textbook: object) -> None:
    """explain's printout options, checked before they reach the trace (a str output, a bool, a dict)."""
    if names is not None and not isinstance(names, dict):
        raise NamingError(f"names must be a dict {{subexpression: name}}, got {type(names).__name__}. "
                          "Fix: e.g. names={x**2: 't'}.")
    if not isinstance(output, str) or not output.isidentifier():  # '2J' would print ∂2J/∂x, read as 2·∂J/∂x
        raise OptionError(f"output={output!r} is not a name. Fix: letters, digits and '_', e.g. output='L'.")
    if not isinstance(textbook, bool):
        raise OptionError(f"textbook={textbook!r} is not a bool. Fix: textbook=True (the derivation as "
                          "written) or False.")


def _nonfinite_mode(mode: object) -> str:
    """``on_nonfinite`` checked for every kind of model."""
    if mode not in MODES:
        raise OptionError(f"on_nonfinite={mode!r} is not one of {MODES}. Fix: 'warn' (the default: a "
                          "NonFiniteWarning naming the sample and the sub-expression), 'raise' (a "
                          "NonFiniteError) or 'ignore'.")
    return check_mode(mode)


def _as_written(key: sp.Expr) -> list[sp.Expr]:
    """A ``names=`` key in textbook mode: the expression is not stabilised, nor are its keys."""
    real, _ = realify(key)
    return [real]


def _name_forms(key: sp.Expr) -> list[sp.Expr]:
    """The forms a ``names=`` key may take in the prepared expression, most prepared first:
    keys are written as the user wrote the expression, which ``prepare`` has rewritten."""
    real, _ = realify(key)
    return [stabilize(real)[0], real]


@_bounded_recursion
def compile(
    expr: sp.Expr,
    wrt: Sequence[sp.Basic],
    data: Sequence[sp.Basic] = (),
    *,
    dtype: str = "float64",
    reduction: str = "mean",
    parallel: bool = False,
    backend: str = "numba",
    on_nonfinite: str = "warn",
) -> CompiledFormula:
    """Compile a scalar formula (a per-sample loss) to Numba value/gradient/Hessian functions.

    ``reduction='mean'`` (default) averages over samples, ``'sum'`` adds them up, and
    ``'none'`` evaluates pointwise, treating ``wrt`` symbols as per-point inputs. A NaN or Inf
    value, gradient or Hessian (log of a negative number, division by zero, ...) warns, naming the sample
    and the sub-expression where it arose (``on_nonfinite='warn'``); ``'raise'`` raises
    :class:`~symgrad.errors.NonFiniteError` instead and ``'ignore'`` returns it silently.

    >>> import numpy as np
    >>> a, t, y = sp.symbols("a t y", real=True)
    >>> f = compile((sp.exp(-a * t) - y) ** 2, wrt=[a], data=[t, y], backend="python")
    >>> t_ = np.linspace(0, 1, 5); bool(abs(f.value([0.5], t_, np.exp(-0.5 * t_))) < 1e-15)
    True
    """
    dt = check_options(dtype, reduction, backend, parallel)
    _nonfinite_mode(on_nonfinite)
    wrt, data = symbol_list(wrt, "wrt"), symbol_list(data, "data")
    if is_tensor(expr):
        check_matrix_elements(expr)  # (w.T*X)[0, 0] is expanded per element by SymPy: refuse, name sg.msum
        path, dims = tensor_module(expr, wrt, data, dt, reduction)
        return CompiledTensor(path, wrt, data, dt, backend, loss=expr, reduction=reduction, dims=dims,
                              on_nonfinite=on_nonfinite)
    check_mode(on_nonfinite)
    path, params, data_syms = formula_module(expr, wrt, data, dt, reduction, parallel)
    has_hessian = reduction != "none" and len(params) <= MAX_HESSIAN_PARAMS
    return CompiledFormula(path, params, data_syms, dt, reduction, has_hessian, backend, expr=expr,
                           on_nonfinite=on_nonfinite)


@_bounded_recursion
def compile_residuals(
    expr: sp.Expr,
    wrt: Sequence[sp.Basic],
    data: Sequence[sp.Basic] = (),
    *,
    dtype: str = "float64",
    backend: str = "numba",
    on_nonfinite: str = "warn",
) -> CompiledResiduals:
    """Compile per-sample residuals r_i(θ) = ``expr`` and their Jacobian, for least squares.

    ``r.residuals(theta, *data)`` (n,) and ``r.jacobian(theta, *data)`` (n, k) plug into
    ``scipy.optimize.least_squares(r.residuals, x0, jac=r.jacobian, args=data)``;
    ``r.covariance(theta, *data)`` is s²(JᵀJ)⁻¹ with s² = Σr²/(n − k). ``on_nonfinite`` as in
    :func:`compile`.

    >>> import numpy as np
    >>> a, b, x, y = sp.symbols("a b x y", real=True)
    >>> r = compile_residuals(a * sp.exp(-b * x) - y, [a, b], [x, y], backend="python")
    >>> r.jacobian([2.0, 0.0], np.array([0.0, 1.0]), np.array([1.0, 1.0])).tolist()
    [[1.0, -0.0], [1.0, -2.0]]
    """
    dt = check_options(dtype, "mean", backend)
    _nonfinite_mode(on_nonfinite)
    wrt, data = symbol_list(wrt, "wrt"), symbol_list(data, "data")
    if is_tensor(expr):
        raise SymgradError("compile_residuals takes a scalar formula of parameters and per-sample data, "
                           "got a matrix expression. Fix: write one residual per sample as a scalar "
                           "formula, or use sg.compile for matrix models.")
    check_mode(on_nonfinite)
    path, params, data_syms = formula_module(expr, wrt, data, dt, "residuals", False)
    return CompiledResiduals(path, params, data_syms, dt, "residuals", False, backend, expr=expr,
                             on_nonfinite=on_nonfinite)


@known_keywords
def formulas(model, loss, at: tuple | None = None):
    """Per-layer backprop equations (delta rule) of ``model`` under ``loss``, text and LaTeX.

    ``model`` is an :class:`symgrad.nn.MLP` (or anything with ``expr``, ``params``, ``x``),
    ``loss`` a name ('mse', 'bce', 'softmax_cross_entropy', ...) or ``f(pred, target)``.
    ``at=(params, x, y)`` adds the values for one sample: each layer's value and each δ (vectors
    as [a, b, …]) and each parameter gradient's norm, computed with NumPy from the printed delta
    rule. ``params`` in ``model.params`` order (a list, a dict by name, or a trained model),
    ``x`` one sample (features, an image or token ids), ``y`` its target as the loss takes it (a
    class label or a one-hot row for 'softmax_cross_entropy', the next ids for
    'token_cross_entropy'). Every layer kind: dense, convolution, pooling, layer norm,
    attention, embedding, dropout (with the mask of ``fit``'s first step under seed 0: its zeros
    are the dropped entries); an image or a sequence prints its first entries, shape and norm.

    >>> import symgrad as sg
    >>> print(sg.formulas(sg.nn.MLP([3, 4, 1], activation="sigmoid"), "bce"))  # doctest: +ELLIPSIS
    Forward (per sample)
    ...
      δ_z2 = sigmoid(z2) - y
    ...
    >>> import numpy as np
    >>> net = sg.nn.MLP([2, 2, 1], activation="tanh")
    >>> params = [np.array([[1.0, -1.0], [0.5, 2.0]]), np.zeros((2, 1)), np.array([[1.0, 1.0]]), np.zeros((1, 1))]
    >>> print(sg.formulas(net, "bce", at=(params, [1.0, 0.5], 1)))  # doctest: +ELLIPSIS
    At one sample: x = [1, 0.5], y = 1 (values to 6 significant digits)
    Forward (per sample)
      z1 = W1·x + b1 = [0.5, 1.5]
      a1 = tanh(z1) ≈ [0.462117, 0.905148]
    ...
      δ_z2 = sigmoid(z2) - y ≈ -0.203062
    ...
      ∂ℓ/∂W1 = δ_z1·xᵀ,   ‖∂ℓ/∂W1‖ ≈ 0.183200
    """
    from .explain.network import network_formulas
    check_network(model)
    fn, name = loss_fn(loss)
    y = target_symbol(fn, model.expr, getattr(model, "target_name", "y"))  # the notes' y* or t, when named
    leaves = network_sample(model, name, at, y) if at is not None else None  # a custom loss's SymPy error: loss_of's
    return network_formulas(loss_of(fn, name, model.expr, y), model.params, [model.x, y], getattr(model, "labels", None), leaves)
