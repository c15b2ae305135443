"""Optimizers as elementwise SymPy update rules: one definition, printed and compiled.

An optimizer is a short ordered list of assignments such as ``m ← β1·m + (1 − β1)·g``.
Its text, its LaTeX and its Numba kernel all come from that list, so what you read is
what runs. ``reference_step`` is a separate hand-written NumPy version, kept as a test
oracle; semantics follow ``torch.optim`` for the same hyperparameters.

>>> print(SGD(lr=0.1, weight_decay=1e-4))
SGD(lr=0.1, weight_decay=0.0001)
g ← g + λ·p
p ← p − lr·g
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter
from sympy.printing.str import StrPrinter

from ..codegen.printer import NumbaPrinter, py_name
from ..errors import SymgradError


class OptimizerConfigError(SymgradError, ValueError):
    """A hyperparameter of an optimizer or schedule is out of its valid range."""


def _sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


P, G, LR, T = _sym("p"), _sym("g"), _sym("lr"), _sym("t")
Schedule = Callable[[float, int], float]  # (base_lr, epoch) -> lr; see ConstantLR and friends

_TEXT_NAMES = {"beta": "β", "beta1": "β1", "beta2": "β2", "alpha": "α", "eps": "ε",
               "weight_decay": "λ", "mhat": "m̂", "vhat": "v̂"}
_LATEX_NAMES = {"eps": r"\varepsilon", "weight_decay": r"\lambda", "lr": r"\eta"}
_TEXT_OPS = ((r"\*\*2\b", "²"), (r"\*\*", "^"), (r"\*", "·"), (" - ", " − "), (r"sqrt\(", "√("),
             (r"√\(([^()\s·/+−-]+)\)", r"√\1"))


class _TextPrinter(StrPrinter):
    def _print_Symbol(self, e):
        return _TEXT_NAMES.get(e.name, e.name)


def _display(e: sp.Expr, target: sp.Symbol, coef: set) -> sp.Expr:
    """``e`` unevaluated, in textbook order: ``v ← β·v + g``, ``p ← p − lr·g``, ``1 − β1``.

    SymPy sorts terms and factors by name (``g + β·v``); printing follows the stored order
    only for unevaluated trees, so we rebuild one. ``coef``: scalars such as lr and β1.
    """
    if e.is_Atom:
        return e
    args = [_display(a, target, coef) for a in e.args]
    if isinstance(e, sp.Add):  # the updated variable first, then positive terms, states before constants
        args.sort(key=lambda a: (target not in a.free_symbols, a.could_extract_minus_sign(),
                                 not a.is_Number, a.free_symbols <= coef, sp.default_sort_key(a)))
    elif isinstance(e, sp.Mul):  # numbers, then scalar coefficients, then states: (1 − β1)·g
        args.sort(key=lambda a: (not a.is_Number, not a.free_symbols <= coef, sp.default_sort_key(a)))
    return e.func(*args, evaluate=False)


def _text(e: sp.Expr) -> str:
    out = _TextPrinter({"order": "none"}).doprint(e)
    for pattern, repl in _TEXT_OPS:
        out = re.sub(pattern, repl, out)
    return out


def _latex(e: sp.Expr) -> str:
    names = {s: _LATEX_NAMES[s.name] for s in e.free_symbols if s.name in _LATEX_NAMES}
    return sp.latex(e, order="none", symbol_names=names)


def _hoist(e: sp.Expr, invariant: set, table: dict) -> sp.Expr:
    """Replace the parts of ``e`` that depend only on ``invariant`` symbols by new symbols.

    They are the same for every element (bias corrections, lr·λ, 1 − β1), so they are
    computed once before the loop, instead of a ``pow`` per element.
    """
    if not e.free_symbols:
        return e
    if e.free_symbols <= invariant:
        if e not in table:
            named = e.is_Symbol and e not in (LR, T)  # a lone hyperparameter keeps its name: beta1
            table[e] = e if named else _sym(f"c{sum(k != v for k, v in table.items())}")
        return table[e]
    if e.is_Atom:
        return e
    if isinstance(e, (sp.Add, sp.Mul)):
        fixed = [a for a in e.args if a.free_symbols <= invariant]
        if any(a.free_symbols for a in fixed):  # group lr·c·… into one hoisted factor
            rest = [_hoist(a, invariant, table) for a in e.args if a not in fixed]
            return e.func(_hoist(e.func(*fixed), invariant, table), *rest)
    return e.func(*[_hoist(a, invariant, table) for a in e.args])


class _HostPrinter(PythonCodePrinter):
    """Prints the per-call scalars with hyperparameters baked in as Python floats.

    These run in float64 and are cast with ``F(...)`` once: in float32, ``1 − F(0.999)``
    is off by 1.3e-5 relative, while PyTorch computes such scalars in double too.
    """

    def __init__(self, hyper: dict[str, float]):
        super().__init__({"standard": "python3"})
        self.hyper = hyper

    def _print_Symbol(self, e):
        return repr(self.hyper[e.name]) if e.name in self.hyper else py_name(e)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise OptimizerConfigError(message)


class Optimizer:
    """Base class: an optimizer is its ordered elementwise update rules.

    Subclasses give ``state`` and ``_rules()``; printing, LaTeX and the Numba kernel
    follow. ``weight_decay`` adds ``λ·p`` to the gradient (L2, coupled, as torch.optim);
    ``clip_norm`` is applied by the training kernel to the global gradient norm before
    the update (see :func:`clip_scale`); ``schedule`` sets lr between epochs.

    >>> opt = Momentum(lr=0.1, beta=0.9)
    >>> opt.state, opt.hyper
    (('v',), {'beta': 0.9, 'weight_decay': 0.0})
    >>> opt.rules()[-1]
    (p, -lr*v + p)
    """

    state: tuple[str, ...] = ()
    decoupled_decay = False  # True: weight decay shrinks p directly instead of adding λ·p to g

    def __init__(self, lr: float, hyper: dict[str, float], *, weight_decay: float = 0.0,
                 clip_norm: float | None = None, schedule: Schedule | None = None):
        hyper = {**hyper, "weight_decay": weight_decay}
        for k, v in hyper.items():
            _check(math.isfinite(v) and v >= 0, f"{k}={v!r}: use a finite value >= 0")
            _check(not k.startswith(("beta", "alpha")) or v < 1, f"{k}={v!r}: use a value in [0, 1)")
        _check(math.isfinite(lr) and lr >= 0, f"lr={lr!r}: use a finite learning rate >= 0")
        _check(clip_norm is None or clip_norm > 0, f"clip_norm={clip_norm!r}: use a value > 0, or None")
        self.lr = float(lr)
        self.hyper = {k: float(v) for k, v in hyper.items()}
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.schedule = ConstantLR() if schedule is None else schedule

    # the rules ---------------------------------------------------------------
    def _rules(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        raise NotImplementedError

    def _decay_rules(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        wd = self.hyper["weight_decay"]
        return [(G, G + _sym("weight_decay") * P)] if wd else []

    def rules(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        """Ordered assignments ``(target, expr)``; the last one is the new ``p``."""
        return self._decay_rules() + self._rules()

    def lr_at(self, epoch: int) -> float:
        """The learning rate the schedule gives for ``epoch`` (0-based)."""
        return self.schedule(self.lr, epoch)

    # printing ------------------------------------------------------------------
    def __repr__(self) -> str:
        shown = {k: v for k, v in self.hyper.items() if k != "weight_decay" or v}
        args = [f"lr={self.lr!r}"] + [f"{k}={v!r}" for k, v in shown.items()]
        if self.clip_norm is not None:
            args.append(f"clip_norm={self.clip_norm!r}")
        if not isinstance(self.schedule, ConstantLR):
            args.append(f"schedule={self.schedule!r}")
        return f"{type(self).__name__}({', '.join(args)})"

    def _display_rules(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        coef = {LR, T, *map(_sym, self.hyper)}
        return [(target, _display(expr, target, coef)) for target, expr in self.rules()]

    def __str__(self) -> str:
        lines = [f"{_text(target)} ← {_text(expr)}" for target, expr in self._display_rules()]
        return "\n".join([repr(self), *lines])

    def latex(self) -> str:
        """The rules as a LaTeX ``aligned`` block."""
        rows = [f"{_latex(target)} &\\leftarrow {_latex(expr)}" for target, expr in self._display_rules()]
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    # code ------------------------------------------------------------------------
    def _final_exprs(self) -> dict[str, sp.Expr]:
        """New value of each written array, in terms of the old values."""
        values: dict[sp.Symbol, sp.Expr] = {}
        for target, expr in self.rules():
            values[target] = expr.xreplace(values)
        return {name: values[_sym(name)] for name in (*self.state, "p") if _sym(name) in values}

    def step_source(self, name: str = "opt_update") -> str:
        """Numba-ready source of ``name(p, g, *state, lr, t)``, updating flat arrays in place.

        Needs ``math``, ``F`` (the dtype) and ``jit`` in the module it is placed in.
        """
        arrays = ["p", "g", *self.state]
        scalars = {_sym(a): _sym(f"{a}_i") for a in arrays}
        finals = self._final_exprs()
        table: dict[sp.Expr, sp.Symbol] = {}
        invariant = {LR, T, *map(_sym, self.hyper)}
        outs = [_hoist(e.xreplace(scalars), invariant, table) for e in finals.values()]
        host, pr = _HostPrinter(self.hyper), NumbaPrinter()
        lines = ["@jit", f"def {name}({', '.join([*arrays, 'lr', 't'])}):"]
        prelude = sorted(table.items(), key=lambda ec: ec[0] != ec[1])  # named hyperparameters first
        lines += [f"    {py_name(c)} = F({host.doprint(e)})" for e, c in prelude]
        lines += ["    for i in range(p.shape[0]):"] + [f"        {a}_i = {a}[i]" for a in arrays]
        repl, reduced = sp.cse(outs, symbols=sp.numbered_symbols("x", real=True), order="none")
        lines += [f"        {py_name(s)} = {pr.doprint(v)}" for s, v in repl]
        lines += [f"        {a}[i] = {pr.doprint(r)}" for a, r in zip(finals, reduced, strict=True)]
        return "\n".join(lines) + "\n"

    def init_state(self, shape, dtype=np.float64) -> dict[str, np.ndarray]:
        """Zero-initialised state arrays, one per name in ``state``."""
        return {s: np.zeros(shape, dtype=dtype) for s in self.state}

    def reference_step(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], t: int) -> None:
        """One in-place step written by hand in NumPy (an oracle independent of the rules)."""
        if self.hyper["weight_decay"] and not self.decoupled_decay:
            g = g + self.hyper["weight_decay"] * p
        self._reference(p, g, state, t)

    def _reference(self, p, g, state, t) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Plain gradient descent: ``p ← p − lr·g``.

    >>> print(SGD(lr=0.01))
    SGD(lr=0.01)
    p ← p − lr·g
    """

    def __init__(self, lr: float = 0.01, *, weight_decay: float = 0.0,
                 clip_norm: float | None = None, schedule: Schedule | None = None):
        super().__init__(lr, {}, weight_decay=weight_decay, clip_norm=clip_norm, schedule=schedule)

    def _rules(self):
        return [(P, P - LR * G)]

    def _reference(self, p, g, state, t):
        p -= self.lr * g


class Momentum(Optimizer):
    """Heavy-ball momentum, as ``torch.optim.SGD(momentum=beta)`` (no dampening).

    >>> print(Momentum(lr=0.1))
    Momentum(lr=0.1, beta=0.9)
    v ← β·v + g
    p ← p − lr·v
    """

    state = ("v",)

    def __init__(self, lr: float = 0.01, beta: float = 0.9, *, weight_decay: float = 0.0,
                 clip_norm: float | None = None, schedule: Schedule | None = None):
        hyper = {"beta": beta}
        super().__init__(lr, hyper, weight_decay=weight_decay, clip_norm=clip_norm, schedule=schedule)

    def _rules(self):
        v, beta = _sym("v"), _sym("beta")
        return [(v, beta * v + G), (P, P - LR * v)]

    def _reference(self, p, g, state, t):
        v = state["v"]
        v *= self.hyper["beta"]
        v += g
        p -= self.lr * v


class Nesterov(Momentum):
    """Nesterov momentum, as ``torch.optim.SGD(momentum=beta, nesterov=True)``.

    >>> print(Nesterov(lr=0.1))
    Nesterov(lr=0.1, beta=0.9)
    v ← β·v + g
    p ← p − lr·(g + β·v)
    """

    def _rules(self):
        v, beta = _sym("v"), _sym("beta")
        return [(v, beta * v + G), (P, P - LR * (G + beta * v))]

    def _reference(self, p, g, state, t):
        v = state["v"]
        v *= self.hyper["beta"]
        v += g
        p -= self.lr * (g + self.hyper["beta"] * v)


class Adam(Optimizer):
    """Adam with bias correction; ``t`` counts steps from 1 (``torch.optim.Adam``).

    >>> print(Adam(lr=1e-3))
    Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08)
    m ← β1·m + (1 − β1)·g
    v ← β2·v + (1 − β2)·g²
    m̂ ← m/(1 − β1^t)
    v̂ ← v/(1 − β2^t)
    p ← p − lr·m̂/(√v̂ + ε)
    """

    state = ("m", "v")

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, *,
                 weight_decay: float = 0.0, clip_norm: float | None = None,
                 schedule: Schedule | None = None):
        hyper = {"beta1": beta1, "beta2": beta2, "eps": eps}
        super().__init__(lr, hyper, weight_decay=weight_decay, clip_norm=clip_norm, schedule=schedule)

    def _rules(self):
        m, v, mhat, vhat = map(_sym, ("m", "v", "mhat", "vhat"))
        b1, b2, eps = map(_sym, ("beta1", "beta2", "eps"))
        return [(m, b1 * m + (1 - b1) * G), (v, b2 * v + (1 - b2) * G**2),
                (mhat, m / (1 - b1**T)), (vhat, v / (1 - b2**T)),
                (P, P - LR * mhat / (sp.sqrt(vhat) + eps))]

    def _reference(self, p, g, state, t):
        b1, b2, eps = (self.hyper[k] for k in ("beta1", "beta2", "eps"))
        m, v = state["m"], state["v"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        # PyTorch's arrangement: bias corrections folded into the step size and denominator
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
        p -= (self.lr / (1 - b1**t)) * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay ``p ← p·(1 − lr·λ)`` first (``torch.optim.AdamW``).

    >>> print(str(AdamW(lr=1e-3)).splitlines()[:2])
    ['AdamW(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.01)', 'p ← (1 − lr·λ)·p']
    """

    decoupled_decay = True

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, *,
                 weight_decay: float = 0.01, clip_norm: float | None = None,
                 schedule: Schedule | None = None):
        super().__init__(lr, beta1, beta2, eps, weight_decay=weight_decay, clip_norm=clip_norm,
                         schedule=schedule)

    def _decay_rules(self):
        wd = self.hyper["weight_decay"]
        return [(P, P * (1 - LR * _sym("weight_decay")))] if wd else []

    def _reference(self, p, g, state, t):
        p *= 1 - self.lr * self.hyper["weight_decay"]
        super()._reference(p, g, state, t)


class AdaGrad(Optimizer):
    """AdaGrad: squared gradients summed over all steps (``torch.optim.Adagrad``).

    >>> print(AdaGrad(lr=0.01))
    AdaGrad(lr=0.01, eps=1e-10)
    s ← s + g²
    p ← p − lr·g/(√s + ε)
    """

    state = ("s",)

    def __init__(self, lr: float = 0.01, eps: float = 1e-10, *, weight_decay: float = 0.0,
                 clip_norm: float | None = None, schedule: Schedule | None = None):
        hyper = {"eps": eps}
        super().__init__(lr, hyper, weight_decay=weight_decay, clip_norm=clip_norm, schedule=schedule)

    def _rules(self):
        s, eps = _sym("s"), _sym("eps")
        return [(s, s + G**2), (P, P - LR * G / (sp.sqrt(s) + eps))]

    def _reference(self, p, g, state, t):
        s = state["s"]
        s += g * g
        p -= self.lr * g / (np.sqrt(s) + self.hyper["eps"])


class RMSProp(Optimizer):
    """RMSProp: a running mean of squared gradients (``torch.optim.RMSprop``, not centred).

    >>> print(RMSProp(lr=0.01))
    RMSProp(lr=0.01, alpha=0.99, eps=1e-08)
    s ← α·s + (1 − α)·g²
    p ← p − lr·g/(√s + ε)
    """

    state = ("s",)

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, *,
                 weight_decay: float = 0.0, clip_norm: float | None = None,
                 schedule: Schedule | None = None):
        hyper = {"alpha": alpha, "eps": eps}
        super().__init__(lr, hyper, weight_decay=weight_decay, clip_norm=clip_norm, schedule=schedule)

    def _rules(self):
        s, alpha, eps = _sym("s"), _sym("alpha"), _sym("eps")
        return [(s, alpha * s + (1 - alpha) * G**2), (P, P - LR * G / (sp.sqrt(s) + eps))]

    def _reference(self, p, g, state, t):
        s, alpha = state["s"], self.hyper["alpha"]
        s *= alpha
        s += (1 - alpha) * g * g
        p -= self.lr * g / (np.sqrt(s) + self.hyper["eps"])


# learning-rate schedules: called by the trainer between epochs (epoch is 0-based) ----------


@dataclass(frozen=True)
class ConstantLR:
    """The learning rate stays at its base value.

    >>> ConstantLR()(0.1, epoch=7), ConstantLR().formula
    (0.1, 'lr = lr0')
    """

    formula = "lr = lr0"

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr


@dataclass(frozen=True)
class StepLR:
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (``torch`` StepLR).

    >>> s = StepLR(step_size=2, gamma=0.5)
    >>> [s(1.0, e) for e in range(5)], s.formula
    ([1.0, 1.0, 0.5, 0.5, 0.25], 'lr = lr0·0.5^⌊epoch/2⌋')
    """

    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        ok = int(self.step_size) == self.step_size >= 1
        _check(ok, f"step_size={self.step_size!r}: use an integer >= 1")
        _check(self.gamma > 0, f"gamma={self.gamma!r}: use a value > 0")

    @property
    def formula(self) -> str:
        return f"lr = lr0·{self.gamma!r}^⌊epoch/{self.step_size}⌋"

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


@dataclass(frozen=True)
class ExponentialLR:
    """Multiply the learning rate by ``gamma`` every epoch (``torch`` ExponentialLR).

    >>> s = ExponentialLR(gamma=0.5)
    >>> s(1.0, 3), s.formula
    (0.125, 'lr = lr0·0.5^epoch')
    """

    gamma: float

    def __post_init__(self):
        _check(self.gamma > 0, f"gamma={self.gamma!r}: use a value > 0")

    @property
    def formula(self) -> str:
        return f"lr = lr0·{self.gamma!r}^epoch"

    def __call__(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma**epoch


@dataclass(frozen=True)
class CosineLR:
    """Cosine annealing from the base rate to ``lr_min`` over ``t_max`` epochs.

    Same closed form as torch's CosineAnnealingLR up to ``t_max``; after it the rate
    stays at ``lr_min`` (torch's closed form would rise again).

    >>> s = CosineLR(t_max=4, lr_min=0.0)
    >>> [round(s(1.0, e), 4) for e in (0, 2, 4, 9)]
    [1.0, 0.5, 0.0, 0.0]
    """

    t_max: int
    lr_min: float = 0.0

    def __post_init__(self):
        _check(self.t_max >= 1, f"t_max={self.t_max!r}: use a value >= 1")
        _check(self.lr_min >= 0, f"lr_min={self.lr_min!r}: use a value >= 0")

    @property
    def formula(self) -> str:
        return (f"lr = {self.lr_min!r} + (lr0 − {self.lr_min!r})·(1 + cos(π·min(epoch, {self.t_max})"
                f"/{self.t_max}))/2")

    def __call__(self, base_lr: float, epoch: int) -> float:
        frac = min(epoch, self.t_max) / self.t_max
        return self.lr_min + (base_lr - self.lr_min) * (1 + math.cos(math.pi * frac)) / 2


def clip_scale(grad_norm: float, clip_norm: float | None) -> float:
    """Factor to multiply every gradient by so their global L2 norm is at most ``clip_norm``.

    The rule of ``torch.nn.utils.clip_grad_norm_``: ``min(1, clip_norm / (grad_norm + 1e-6))``;
    the 1e-6 keeps a zero norm finite. ``None`` means no clipping (1.0). A NaN norm gives
    NaN, so the trainer's NaN guard sees the bad step instead of a silent unclipped one.

    >>> clip_scale(0.5, 1.0), round(clip_scale(10.0, 1.0), 6), clip_scale(10.0, None)
    (1.0, 0.1, 1.0)
    """
    if clip_norm is None:
        return 1.0
    if math.isnan(grad_norm):
        return math.nan
    return min(1.0, clip_norm / (grad_norm + 1e-6))
