"""The optimizer base class: hyperparameters, ordered update rules, and what follows from them.

Printing comes from ``update_rules``, the Numba kernel from ``optim_kernel``; the concrete
optimizers (``optim``) only give their state and rules. Gradient clipping is applied by the
trainer before the update, with the factor :func:`clip_scale`.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers

import numpy as np
import sympy as sp

from ..explain.display import Printout, Row, Style
from ..explain.printing import tex_text
from .optim_kernel import update_source
from .schedules import ConstantLR, OptimizerConfigError, Schedule, require
from .update_rules import LR, G, P, T, rule_latex, rule_text, sym, textbook_order


class Optimizer(Printout):
    """Base class: an optimizer is its ordered elementwise update rules.

    Subclasses give ``state`` and ``_rules()``; printing (``str``, ``latex()``,
    ``latex_lines()``, typeset in a notebook) and the Numba kernel follow.
    ``weight_decay`` adds ``λ·p`` to the gradient (L2, coupled, as torch.optim);
    ``clip_norm`` is applied by the training kernel to the global gradient norm before
    the update (see :func:`clip_scale`); ``schedule`` sets lr between epochs.

    >>> from symgrad.lang.optim import Momentum
    >>> opt = Momentum(lr=0.1, beta=0.9)
    >>> opt.state, opt.hyper
    (('v',), {'beta': 0.9, 'weight_decay': 0.0})
    >>> opt.rules()[-1]
    (p, -lr*v + p)
    """

    state: tuple[str, ...] = ()
    _indent = ""  # rules print flush left, under the constructor line

    def __init_subclass__(cls, **kwargs):
        # an unknown or doubled setting (PyTorch's momentum=, Keras's learning_rate=) is an
        # OptimizerConfigError naming the settings there are, not Python's bare TypeError
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            sig = inspect.signature(init)  # once per class: it took most of a constructor's time

            @functools.wraps(init)
            def checked(self, *args, **kw):
                _check_call(sig, self, args, kw)
                init(self, *args, **kw)

            cls.__init__ = checked

    def __init__(self, lr: float, hyper: dict[str, float], *, weight_decay: float = 0.0,
                 clip_norm: float | None = None, schedule: Schedule | None = None):
        hyper = {**hyper, "weight_decay": weight_decay}
        for k, v in {"lr": lr, **hyper, "clip_norm": 1.0 if clip_norm is None else clip_norm}.items():
            require(isinstance(v, numbers.Real) and not isinstance(v, bool),
                    f"{k}={v!r} is not a number. Fix: pass a real number (a float or an int), "
                    f"not a {type(v).__name__}.")
        for k, v in hyper.items():
            require(math.isfinite(v) and v >= 0, f"{k}={v!r} is out of range. Fix: use a finite value >= 0.")
            require(not k.startswith(("beta", "alpha")) or v < 1,
                    f"{k}={v!r} is out of range. Fix: use a value in [0, 1), e.g. {k}=0.9.")
        require(math.isfinite(lr) and lr >= 0,
                f"lr={lr!r} is out of range. Fix: use a finite learning rate >= 0, e.g. lr=0.01.")
        require(clip_norm is None or (math.isfinite(clip_norm) and clip_norm > 0),
                f"clip_norm={clip_norm!r} is out of range. Fix: use a finite value > 0, or None (no clipping).")
        require(schedule is None or (callable(schedule) and not isinstance(schedule, (type, Optimizer))),
                f"schedule={schedule!r} is not a learning-rate schedule. Fix: pass one of sg.optim's, e.g. "
                "schedule=sg.optim.StepLR(step_size=10), or None for a constant rate.")
        self.lr = float(lr)
        self.hyper = {k: float(v) for k, v in hyper.items()}
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.schedule = ConstantLR() if schedule is None else schedule

    # the rules ---------------------------------------------------------------
    def _rules(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        raise NotImplementedError

    def _decay_rules(self, always: bool = False) -> list[tuple[sp.Symbol, sp.Expr]]:
        return [(G, G + sym("weight_decay") * P)] if always or self.hyper["weight_decay"] else []

    def rules(self, compiled: bool = False) -> list[tuple[sp.Symbol, sp.Expr]]:
        """Ordered assignments ``(target, expr)``; the last one is the new ``p``. The printed
        rules show weight decay only when it is on; the ``compiled`` ones always hold it, so
        that λ = 0 and λ > 0 share one module (λ = 0 adds an exact 0 to each element)."""
        return self._decay_rules(compiled) + self._rules()

    def lr_at(self, epoch: int, history: dict | None = None) -> float:
        """The learning rate the schedule gives for ``epoch`` (0-based); a schedule that follows
        the training (ReduceLROnPlateau) reads the ``history`` of the epochs before it."""
        monitor = getattr(self.schedule, "monitor", None)
        if monitor is None:
            return self.schedule(self.lr, epoch)
        return self.schedule.from_history(self.lr, list((history or {}).get(monitor, []))[:epoch])

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
        coef = {LR, T, *map(sym, self.hyper)}
        return [(target, textbook_order(expr, target, coef)) for target, expr in self.rules()]

    def _rows(self, s: Style) -> list[Row]:
        """``Adam(lr=0.001, ...)`` then one ``target ← expr`` per rule (text, and LaTeX alike)."""
        head = Row("head", s.pick(repr(self), self._latex_head()))
        arrow, show = s.pick("←", r"\leftarrow"), s.pick(rule_text, rule_latex)
        # clipping scales the whole gradient (every parameter's) before the rules, as the kernel does
        clip = [s.eq(show(G), arrow, s.pick("g·c/(‖g‖ + 10⁻⁶) if ‖g‖ + 10⁻⁶ > c (c = clip_norm, ‖g‖ over all parameters)",
                                            r"g \, \frac{c}{\|g\| + 10^{-6}} \text{ if } \|g\| + 10^{-6} > c"
                                            r"\quad (c = \text{clip\_norm})"))] if self.clip_norm is not None else []
        return [head] + clip + [s.eq(show(target), arrow, show(expr)) for target, expr in self._display_rules()]

    def _latex_head(self) -> str:
        shown = {"lr": self.lr} | {k: v for k, v in self.hyper.items() if k != "weight_decay" or v}
        args = [f"{rule_latex(sym(k))} = {_tex_number(v)}" for k, v in shown.items()]
        if self.clip_norm is not None:
            args.append(tex_text(f"clip_norm = {self.clip_norm!r}"))
        if not isinstance(self.schedule, ConstantLR):
            args.append(tex_text(f"schedule = {self.schedule!r}"))
        return tex_text(type(self).__name__) + r"\quad " + r",\ ".join(args)

    # code ------------------------------------------------------------------------
    def _final_exprs(self) -> dict[str, sp.Expr]:
        """New value of each written array, in terms of the old values."""
        values: dict[sp.Symbol, sp.Expr] = {}
        for target, expr in self.rules(compiled=True):
            values[target] = expr.xreplace(values)
        return {name: values[sym(name)] for name in (*self.state, "p") if sym(name) in values}

    def step_source(self, name: str = "opt_update") -> str:
        """Numba-ready source of ``name(p, g, *state, lr, t, hyper)``, updating flat arrays in
        place; ``hyper`` is :meth:`hyper_values`. The source depends on the hyperparameters'
        names, not their values, so a new value (weight decay 0 included) compiles nothing.

        Needs ``math``, ``F`` (the dtype) and ``jit`` in the module it is placed in.
        """
        return update_source(name, self._final_exprs(), self.state, list(self.hyper))

    def hyper_values(self) -> np.ndarray:
        """The hyperparameters as the float64 array the generated update takes, in ``hyper``'s order."""
        return np.array(list(self.hyper.values()), dtype=np.float64)

    def init_state(self, shape, dtype=np.float64) -> dict[str, np.ndarray]:
        """Zero-initialised state arrays, one per name in ``state``."""
        return {s: np.zeros(shape, dtype=dtype) for s in self.state}


#: settings as other libraries spell them -> symgrad's
ALIASES = {"momentum": "beta", "betas": "beta1=..., beta2", "learning_rate": "lr", "rho": "alpha",
           "epsilon": "eps"}


def _check_call(sig: inspect.Signature, self, args: tuple, kwargs: dict) -> None:
    try:
        sig.bind(self, *args, **kwargs)
    except TypeError as exc:
        names = [p for p in sig.parameters if p != "self"]
        # only where this optimizer has the setting (Adam has no beta for PyTorch's momentum=)
        hints = [f"{k}= is {ALIASES[k]}=" for k in kwargs if k in ALIASES and k not in names
                 and ALIASES[k].split("=")[0] in names]
        raise OptimizerConfigError(f"{type(self).__name__}(...): {exc}. Fix: its settings are "
                                   f"{', '.join(names)}{' (' + '; '.join(hints) + ')' if hints else ''}.") from None


def _tex_number(v: float) -> str:
    """1e-08 as 10^{-8}, 2.5e-05 as 2.5 \\cdot 10^{-5}: LaTeX would print 1e-08 as 1e − 08."""
    mantissa, _, exponent = f"{v:.6g}".partition("e")
    if not exponent:
        return mantissa
    power = "10^{%d}" % int(exponent)
    return power if mantissa == "1" else rf"{mantissa} \cdot {power}"


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
