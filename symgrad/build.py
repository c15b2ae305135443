"""The build recipes, top to bottom: option checks, cache keys, and the three routes from a SymPy
model to a generated module file (formula, tensor, training). ``api.py`` and ``fit`` call these;
the runtime classes only load the files they are given.

Each recipe validates, then asks ``jit.ensure_source`` for the file under its key; derivation
and code generation run only on a cache miss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sympy as sp

from . import jit
from .codegen.accurate import factored
from .codegen.glue import aliases
from .codegen.printer import NumbaPrinter
from .codegen.program import Program
from .codegen.scalar import ScalarSpec, module_header, scalar_module
from .codegen.title import tensor_title
from .codegen.train import predict_source, train_source
from .derive.defined import guarded_branches, merged_powers, vanishing_logs
from .derive.fuse import fuse_maps
from .derive.ir import lower
from .derive.removable import isolate, restore
from .derive.reverse import sweep
from .derive.tails import accurate_tails
from .derive.tangent import tangent_graph
from .errors import DtypeError, NameClashError, OptionError, ShapeError, SymgradError, UnsupportedModelError
from .front.forms import check_float32_constants
from .front.prepare import prepare
from .front.validate import check_bindings, check_depth, check_scalar, check_size, depth
from .lang.losses import loss_fn, target_symbol
from .lang.walk import digest, fingerprint, forget_other_models

DTYPES = ("float32", "float64")
REDUCTIONS = ("mean", "sum", "none")
BACKENDS = ("numba", "python")

#: Above this many parameters we do not derive dense Hessians of formulas (k^2 expressions).
MAX_HESSIAN_PARAMS = 16


def check_options(dtype: object = "float64", reduction: str = "mean", backend: str = "numba",
                  parallel: bool = False) -> str:
    """The dtype's name, once every option is known to be supported (``compile`` and ``fit``).

    >>> check_options("float32")
    'float32'
    """
    try:
        dt = np.dtype(dtype).name
    except TypeError:
        dt = None
    if dt not in DTYPES:
        raise DtypeError(f"dtype {dtype!r} is not supported. Fix: use 'float32' or 'float64'.")
    if reduction not in REDUCTIONS:
        raise OptionError(f"reduction {reduction!r} is not one of {REDUCTIONS}. Fix: pass one of them.")
    if backend not in BACKENDS:
        raise OptionError(f"backend {backend!r} is not one of {BACKENDS}. Fix: 'numba' (compiled) or "
                          "'python' (the same generated source run as plain Python, for debugging).")
    if not isinstance(parallel, (bool, np.bool_)):
        raise OptionError(f"parallel={parallel!r} is not a bool. Fix: parallel=True (Numba's threads over "
                          "the samples) or parallel=False (the default).")
    return dt


def _shape(s: sp.Basic) -> tuple[int, int]:
    if not isinstance(s, sp.MatrixSymbol):
        return (1, 1)
    if not all(d.is_Integer for d in s.shape):  # int(n) raised SymPy's TypeError
        raise ShapeError(f"the matrix {s} has the shape {s.shape}; compiled code needs numbers. Fix: give its "
                         f"sizes, e.g. sp.MatrixSymbol('{s.name}', 2, 3), or substitute them: expr.subs(n, 3).")
    return int(s.shape[0]), int(s.shape[1])


# -- cache keys: every route's key in one place ----------------------------------------------

def formula_key(stable: sp.Expr, params, data, dtype: str, reduction: str, parallel: bool) -> str:
    return jit.cache_key("formula", sp.srepr(stable), sp.srepr(params), sp.srepr(data), dtype,
                         reduction, str(parallel))


def model_key(kind: str, loss, params, data, dtype, reduction, *more: str) -> str:
    """Tensor routes: ``kind`` is 'tensor', 'tensor-hvp' or 'fit'."""
    shapes = str([_shape(s) for s in list(params) + list(data)])
    # digest, not srepr: the text of a deep residual network's expression doubles with each block
    return jit.cache_key(kind, digest(loss), sp.srepr(sp.Tuple(*params)), sp.srepr(sp.Tuple(*data)),
                         shapes, dtype, reduction, *more)


# -- the formula route -----------------------------------------------------------------------

def build_spec(stable: sp.Expr, params, data, reduction, dtype, parallel, title) -> ScalarSpec:
    """Derive everything the generated module needs (runs only on a cache miss).

    The Hessian-vector product is one more reverse sweep, Hv = grad(grad f . v), so it costs
    about one gradient for any number of parameters; dense Hessians (k^2 expressions) are
    derived only for small k.
    """
    # Floats carried at 113 bits (their values unchanged): a derivative's coefficients are then
    # products rounded far below a double's ulp, and a polynomial that vanishes at σ = 1 is told from
    # one that misses by a user's constant (derive/tails.py); the code prints each as a double
    stable = stable.xreplace({f: sp.Float(f, precision=113) for f in stable.atoms(sp.Float)})
    stable, near = isolate(stable, [*params, *data])  # nodes finite where they divide 0 by 0 (restored below)
    v = [sp.Dummy(f"v{k}", real=True) for k in range(len(params))]
    hvp, hess = [], None
    reduced = reduction in ("mean", "sum")
    # each adjoint substituted as a factor, not multiplied out (Sweep.gradient's ``factors``)
    s = sweep(stable, factors=True)
    grads = [s.gradient(p, factors=True) for p in params]
    if reduced:
        directional = sweep(sp.Add(*[g * vk for g, vk in zip(grads, v)]), factors=True)
        hvp = [directional.gradient(p, factors=True) for p in params]
    if reduced and len(params) <= MAX_HESSIAN_PARAMS:
        hess = []
        for a, g in enumerate(grads):
            sg_ = sweep(g, factors=True)
            hess.append([sp.S.Zero] * a + [sg_.gradient(p, factors=True) for p in params[a:]])
    # the code computes derivatives in forms accurate in both tails (σ(1 − σ) as σ(z)σ(−z), ...)
    # and powers with a symbolic exponent merged (x**y·y/x as y·x**(y − 1): defined at x = 0), x**k·log(x) 0 there
    # and a Piecewise branch's derivative selected, not multiplied by its indicator (0·log(0) is NaN)
    # and, near a removable singularity ((t^λ − 1)/λ at λ = 0), from Taylor polynomials
    def out(d):
        return restore(d, near, _computed, dtype)
    grads, hvp = [out(g) for g in grads], [out(h) for h in hvp]
    hess = hess and [[out(h) for h in row] for row in hess]
    # the value too: SymPy writes σ(−a) as 1 − σ(a), which cancels (1/(1 + e^40) came out 0)
    return ScalarSpec(list(params), list(data), out(stable), grads, hvp, v, hess, reduction,
                      dtype, parallel, title)


def _computed(d: sp.Expr) -> sp.Expr:
    """A derivative in the form the code computes (derive/tails.py)."""
    return guarded_branches(accurate_tails(vanishing_logs(merged_powers(factored(d)))))


def formula_module(expr, wrt, data, dt: str, reduction: str, parallel: bool) -> tuple[Path, list, list]:
    """Validate, stabilise, derive and generate a formula module: (file, params, data symbols)."""
    # elements of an expanded sum (theta[0], after .doit()) as symbols named as they print
    named = {v: sp.Symbol(str(v), real=True) for v in (*wrt, *data) if isinstance(v, sp.Indexed)}
    if named and isinstance(expr, sp.Basic):
        plain = {s.name: s for s in [*expr.free_symbols, *wrt, *data] if isinstance(s, sp.Symbol)}
        if clash := next((v for v, s in named.items() if s.name in plain), None):
            raise NameClashError(f"the element {clash} of IndexedBase {clash.base} and a Symbol named {str(clash)!r} are "
                                 "two variables with one name, which compiled code cannot tell apart. Fix: rename the Symbol.")
        expr, wrt, data = expr.xreplace(named), [named.get(v, v) for v in wrt], [named.get(v, v) for v in data]
    wrt, data = list(wrt), list(data)
    check_depth(expr)  # before SymPy recurses through it, or the derivation takes minutes
    check_size(expr)
    stable, variables, _, _ = prepare(expr, wrt + data)
    params, data_syms = variables[: len(wrt)], variables[len(wrt):]
    check_bindings(stable, params, data_syms)
    if np.dtype(dt) == np.float32:
        check_float32_constants(stable)
    key = formula_key(stable, params, data_syms, dt, reduction, parallel)
    title = f"symgrad formula model\n\nloss (per sample) = {stable}\nparameters: {params}\ndata: {data_syms}"
    try:
        path = jit.ensure_source(
            key, lambda: scalar_module(build_spec(stable, params, data_syms, reduction, dt, parallel, title)))
    except RecursionError:
        # SymPy evaluates a Piecewise whose conditions hold deep expressions recursively; the long
        # corpus found a few nests of Max/Min/Piecewise (two or three deep, inside exp or atan)
        # whose second derivatives exceed Python's recursion limit there
        nested = any(isinstance(a, (sp.Max, sp.Min, sp.Piecewise)) for a in sp.preorder_traversal(stable))
        raise UnsupportedModelError(
            f"deriving this formula exceeded Python's recursion limit inside SymPy (depth {depth(stable)}"
            f"{', with Max/Min/Piecewise inside' if nested else ''}). Fix: "
            + ("replace inner Max/Min/Piecewise by symgrad's ops where they fit (relu(x) for Max(x, 0)), or "
               if nested else "") + "split the formula into simpler parts.") from None
    return path, params, data_syms


# -- the tensor route ------------------------------------------------------------------------

def tensor_program(loss, params, data, reduction, labels=None, hvp: bool = False) -> Program:
    """Lower and fuse a tensor loss into the program that writes its functions. With ``hvp``,
    the program differentiates the loss's directional derivative instead (``derive/tangent.py``):
    its gradient is (H v, ∇f)."""
    forget_other_models()
    nodes, out = lower(loss, params, data, labels)
    leaves = {n.label: n for n in nodes if n.kind == "leaf"}  # the user's names (n.name: identifiers)
    ps = [leaves[str(p)] for p in params]
    if hvp:
        nodes, out, directions = tangent_graph(nodes, out, ps)
        ps += directions
    nodes, out = fuse_maps(nodes, out)
    return Program(nodes, out, ps, [leaves[str(d)] for d in data], reduction, NumbaPrinter())


#: The functions of a tensor module that take its sizes, ``dims``, first (``jit.Bound``).
SIZED = ("loss", "loss_grad", "predict", "train_chunk", "train_chunk_par", "par_grads", "block_grad")


def module_source(prog: Program, title: str, dtype: str, funcs: list[str], segments: list[str],
                  callees: set[str]) -> tuple[str, np.ndarray]:
    """One module: header, helpers, the map kernels, the outlined ``segments``, ``funcs`` and
    the twins of the ``callees`` its glue calls (``codegen/glue.py``); and the model's sizes,
    which the text leaves out (``codegen/dims.py``)."""
    funcs = (["\n".join(segments)] if segments else []) + funcs
    if callees:
        funcs.append(aliases(callees))
    head = module_header(title, dtype, prog.kernels.p.helpers, glue=bool(callees), blas=True)
    sized = [f"SIZED = {SIZED!r}  # these take the model's sizes first (symgrad.jit.Bound)"]
    if ("", "OFFSETS") in prog.dims.vars:
        sized.append(f"OFFSETS_AT = {prog.dims.at('', 'OFFSETS')!r}  # the parameters' offsets are dims[a:b]")
    parts = ["\n".join(head), "\n".join(sized), prog.helpers(), *prog.kernels.sources, *funcs]
    return "\n\n\n".join(p for p in parts if p) + "\n", prog.dims.array()


def generate(loss, params, data, reduction, dtype, labels=None, hvp: bool = False) -> tuple[str, np.ndarray]:
    """The module source of a tensor loss: ``loss`` and ``loss_grad`` (with ``hvp``, only the
    Hessian-vector ``loss_grad``), and the model's sizes. ``labels`` name layers in comments.
    Runs on a cache miss."""
    prog = tensor_program(loss, params, data, reduction, labels, hvp)
    funcs = [] if hvp else ["\n".join(prog.loss_fn())]  # first: map kernels are named in order of use
    segments, loss_grad, callees = prog.loss_grad_fn()
    funcs.append("\n".join(loss_grad))
    title = f"symgrad tensor model{' (Hessian-vector products)' if hvp else ''}\n\n{tensor_title(loss)}"
    return module_source(prog, title, dtype, funcs, segments, callees)


def tensor_module(loss, wrt, data, dt: str, reduction: str, hvp: bool = False) -> tuple[Path, np.ndarray]:
    """Validate a tensor loss and make its module (``loss``, ``loss_grad``), or with ``hvp``
    its Hessian-vector module (``derive/tangent.py``): (file, sizes)."""
    loss = check_scalar(loss, "loss")
    wrt, data = list(wrt), list(data)
    check_bindings(loss, wrt, data)
    if reduction == "none":
        raise UnsupportedModelError("reduction='none' is for scalar formulas; tensor losses use 'mean' or 'sum'")
    key = model_key("tensor-hvp" if hvp else "tensor", loss, wrt, data, dt, reduction)
    return jit.ensure_sized(key, lambda: generate(loss, wrt, data, reduction, dt, hvp=hvp))


# -- the training route ----------------------------------------------------------------------

# Repeated fit() calls on the same model skip re-deriving the cache key (hashing the
# expression, printing the optimizer: milliseconds, which dominated short fits). Keyed by the
# expression's digest, never the expression: an unpickled copy of a deep model would be
# compared with the one held node by node, once per path (minutes for a 12-layer transformer).
_BUILT: dict[tuple, tuple] = {}


def training_module(model, loss, optimizer, dtype: str) -> tuple[Path, str, int, np.ndarray]:
    """The module with loss, loss_grad, predict, train_chunk: (file, loss name, outputs, sizes)."""
    labels = getattr(model, "labels", None)
    memo = (fingerprint(model.expr), tuple(model.params), model.x, tuple(labels.values()) if labels else None,
            loss, type(optimizer), tuple(sorted(optimizer.hyper.items())), dtype)
    hit = _BUILT.get(memo)
    if hit is not None and hit[0].exists():
        return hit
    _BUILT[memo] = _training_module(model, loss, optimizer, dtype)
    return _BUILT[memo]


def _training_module(model, loss, optimizer, dtype: str) -> tuple[Path, str, int, np.ndarray]:
    forget_other_models()  # the loss is built on this model's expression: see lang/walk.py
    fn, loss_name = loss_fn(loss)
    y = target_symbol(fn, model.expr)
    loss_expr = loss_of(fn, loss_name, model.expr, y)
    step = optimizer.step_source("opt_update")
    key = model_key("fit", loss_expr, model.params, [model.x, y], dtype, "mean", step, fingerprint(model.expr))
    path, dims = jit.ensure_sized(key, lambda: training_source(model, loss_expr, y, step, optimizer.state, dtype))
    return path, loss_name, int(model.expr.shape[0]), dims


def loss_of(fn, name: str, pred: sp.MatrixExpr, y: sp.MatrixSymbol) -> sp.Expr:
    """``fn(pred, y)``: a custom loss's SymPy errors (``(p - t)**2`` on two outputs is a power of
    a non-square matrix) and results that are not expressions are named, with the fix."""
    fix = ("Fix: reduce the entries to one number, e.g. sg.msum(sg.elementwise(lambda z: z**2, pred - target)), "
           "or use one of sg.losses (mse, mae, huber, bce, softmax_cross_entropy).")
    try:
        out = fn(pred, y)
    except SymgradError:  # ours, with its own fix (a sigmoid output under a logit loss)
        raise
    except Exception as exc:  # the user's function on SymPy matrices: any other failure is its
        raise UnsupportedModelError(f"the loss {name}(pred, target) failed on the model's output, a {pred.shape[0]}×1 "
                                    f"SymPy matrix ({type(exc).__name__}: {exc}). {fix}") from exc
    # not free_symbols: a naive walk of a deep residual model's shared nodes (lang/walk.py)
    if not isinstance(out, sp.Basic) or isinstance(out, sp.Number):
        raise UnsupportedModelError(f"the loss {name}(pred, target) returned {out!r:.60}, which does not depend on "
                                    f"the model's output: nothing to train. {fix}")
    return out


def training_source(model, loss_expr, y, step: str, opt_state: tuple[str, ...], dtype: str) -> tuple[str, np.ndarray]:
    """The training module's text (``step``: the optimizer's update, ``opt_update``) and the
    model's sizes; runs on a cache miss. The model is lowered and fused once, and every function
    comes from that one program."""
    params = model.params
    prog = tensor_program(loss_expr, params, [model.x, y], "mean", getattr(model, "labels", None))
    loss = prog.loss_fn()  # first: map kernels are named in order of use
    segments, loss_grad, callees = prog.loss_grad_fn()
    predict = predict_source(prog, model.expr, params, model.x)
    train, loop_callees = train_source(prog, opt_state)
    funcs = ["\n".join(loss), "\n".join(loss_grad), "\n".join(predict), step, "\n".join(train)]
    title = f"symgrad tensor model\n\n{tensor_title(loss_expr)}"
    return module_source(prog, title, dtype, funcs, segments, callees | loop_callees)
