"""The independent oracle: ``sympy.diff`` of the user's original expression, evaluated by mpmath.

It shares no code with symgrad's generator: symgrad's own ops are first replaced by their
primitive definitions (``expand_ops``), then SymPy differentiates the whole expression and
``sympy.lambdify`` evaluates it in mpmath at 50 digits. A printer that drops a parenthesis,
or a name that shadows a generated one, shows up here and nowhere else.
"""

from __future__ import annotations

import mpmath
import numpy as np
import sympy as sp

from symgrad.lang.ops import expand_ops

DPS = 50


class OutsideDomain(Exception):
    """The truth is not a finite real number at this point (or it sits on a kink)."""


def _num(v) -> mpmath.mpf:
    if isinstance(v, mpmath.mpc):
        if abs(v.imag) > mpmath.mpf(10) ** (-DPS // 2) * max(1, abs(v.real)):
            raise OutsideDomain(f"complex value {v}")
        v = v.real
    v = mpmath.mpf(v)
    if not mpmath.isfinite(v):
        raise OutsideDomain(f"non-finite value {v}")
    return v


class Oracle:
    """Value, gradient and Hessian of a scalar expression in ``params``, per data sample, at 50 digits."""

    def __init__(self, expr: sp.Expr, params: list[sp.Symbol], data: list[sp.Symbol]):
        # fresh plain names: lambdify must never see a user's name (lambda, θ, np, ...)
        self.vars = list(params) + list(data)
        plain = sp.symbols(f"z0:{len(self.vars)}", real=True)
        e = expand_ops(expr).xreplace(dict(zip(self.vars, plain)))
        ps = plain[: len(params)]
        grads = [_off_kinks(sp.diff(e, p)) for p in ps]
        hess = [[_off_kinks(sp.diff(g, q)) for q in ps] for g in grads]
        self.k = len(params)
        self._kinks = [sp.lambdify(plain, c, "mpmath") for c in _kink_args(e)]
        # SymPy leaves d sign(u) unevaluated where it cannot tell u is real (atanh(u) may not be)
        self._unevaluated = any(d.has(sp.Derivative) for d in [*grads, *sum(hess, [])])
        # sympy.diff can leave zoo (1/0) in a branch (acosh'(u) at u = 1): mpmath's printer has no
        # name for it, and a point that reaches it is outside the domain (_num refuses NaN)
        exprs = sp.Tuple(e, sp.Tuple(*grads), sp.Tuple(*[sp.Tuple(*r) for r in hess])).xreplace({sp.zoo: sp.nan})
        self._f = None if self._unevaluated else sp.lambdify(plain, exprs, "mpmath")

    def at(self, theta, *rows, kink_tol: float = 1e-6) -> tuple[mpmath.mpf, list, list]:
        """(value, gradient, Hessian) at one sample; OutsideDomain where undefined or at a kink."""
        if self._unevaluated:
            raise OutsideDomain("SymPy could not differentiate this expression")
        with mpmath.workdps(DPS):
            args = [mpmath.mpf(float(v)) for v in list(theta) + list(rows)]
            for k in self._kinks:
                if abs(_num(k(*args))) < kink_tol:
                    raise OutsideDomain("at a kink")
            try:
                v, g, h = self._f(*args)
            except (ValueError, ZeroDivisionError, OverflowError) as exc:
                raise OutsideDomain(str(exc)) from exc
            return _num(v), [_num(x) for x in g], [[_num(x) for x in row] for row in h]

    def reduced(self, theta, data: list[np.ndarray], reduction: str = "mean"):
        """Mean (or sum) over samples of value, gradient and Hessian, as float64 arrays."""
        n = len(data[0]) if data else 1
        tot_v, tot_g, tot_h = mpmath.mpf(0), [mpmath.mpf(0)] * self.k, [[mpmath.mpf(0)] * self.k] * self.k
        for i in range(n):
            v, g, h = self.at(theta, *[d[i] for d in data])
            tot_v += v
            tot_g = [a + b for a, b in zip(tot_g, g)]
            tot_h = [[a + b for a, b in zip(ra, rb)] for ra, rb in zip(tot_h, h)]
        scale = n if reduction == "mean" else 1
        return (float(tot_v / scale), np.array([float(x / scale) for x in tot_g]),
                np.array([[float(x / scale) for x in row] for row in tot_h]).reshape(self.k, self.k))


def _off_kinks(e: sp.Expr) -> sp.Expr:
    """Distributions as their values away from their kinks (points at kinks are refused):
    DiracDelta is 0 and Heaviside a step, which mpmath can evaluate."""
    e = e.replace(lambda n: isinstance(n, sp.DiracDelta), lambda n: sp.S.Zero)
    return e.replace(lambda n: isinstance(n, sp.Heaviside),
                     lambda n: sp.Piecewise((sp.S.One, n.args[0] > 0), (sp.S.Zero, True)))


def _kink_args(e: sp.Expr) -> list[sp.Expr]:
    """Expressions whose zeros are kinks or switch points: derivatives jump there."""
    out = []
    for node in sp.preorder_traversal(e):
        if isinstance(node, (sp.Abs, sp.sign, sp.Heaviside)):
            out.append(node.args[0])
        elif isinstance(node, (sp.Max, sp.Min)):
            out += [a - b for a in node.args for b in node.args if a is not b]
        elif isinstance(node, sp.Piecewise):
            out += [c.lhs - c.rhs for _, c in node.args if isinstance(c, sp.core.relational.Relational)]
        elif isinstance(node, sp.atan2):
            out.append(node.args[1])  # atan2 jumps across the negative x-axis
    return out


def close(got, want, rtol: float, what: str) -> None:
    """Assert ``got`` matches ``want`` to ``rtol`` relative to the larger of |want| and 1."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    err = np.abs(got - want) / np.maximum(np.abs(want), 1.0)
    assert np.all(err <= rtol), f"{what}: got {got}, truth {want}, relative error {np.max(err):.3g} > {rtol}"
