"""Stabilisation rules, applied *before* differentiating.

Rules are data: a table of :class:`Rule`, each with an example pair that the tests
verify at high precision (mpmath, 50 digits) and at extreme inputs. ``stabilize``
applies every rule bottom-up and reports which ones fired, so printouts can show
the stable form the user's model was turned into.

>>> import sympy as sp
>>> a = sp.Symbol("a", real=True)
>>> stabilize(sp.log(1 / (1 + sp.exp(-a))))[0]
-softplus(-a)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from ..lang.functions import logsumexp, msum
from ..lang.ops import bce_logits, logcosh, sigmoid, softplus

_z = sp.Symbol("z", real=True)
_y = sp.Symbol("y", real=True)


@dataclass(frozen=True)
class Rule:
    """One rewrite: ``apply`` maps a node to its stable form, or returns None."""

    name: str
    description: str
    apply: Callable[[sp.Expr], sp.Expr | None]
    example: tuple[sp.Expr, sp.Expr]  # (unstable form, stable form), verified in tests


def _exp_arg(e: sp.Expr) -> sp.Expr | None:
    return e.args[0] if isinstance(e, sp.exp) else None


def _one_plus_exp(e: sp.Expr) -> sp.Expr | None:
    """If e == 1 + exp(w), return w."""
    if isinstance(e, sp.Add) and len(e.args) == 2 and sp.S.One in e.args:
        other = e.args[0] if e.args[1] == 1 else e.args[1]
        return _exp_arg(other)
    return None


def _sigmoid_form(e: sp.Expr) -> sp.Expr | None:
    # 1/(1+exp(w)) == sigmoid(-w); exp(w)/(1+exp(w)) == sigmoid(w)
    if isinstance(e, sp.Pow) and e.exp == -1:
        w = _one_plus_exp(e.base)
        return None if w is None else sigmoid(-w)
    if isinstance(e, sp.Mul):
        for f in e.args:
            if isinstance(f, sp.Pow) and f.exp == -1:
                w = _one_plus_exp(f.base)
                if w is not None and sp.exp(w) in e.args:
                    rest = list(e.args)
                    rest.remove(f)
                    rest.remove(sp.exp(w))
                    return sp.Mul(*rest) * sigmoid(w)
    return None


def _exp_power(t: sp.Expr) -> sp.Expr | None:
    """p where t is e^p (1 is e^0), else None."""
    return sp.S.Zero if t == 1 else t.args[0] if isinstance(t, sp.exp) else None


def _tanh_form(e: sp.Expr) -> sp.Expr | None:
    # (e^p − e^q)/(e^p + e^q) == tanh((p − q)/2): written so, its derivative cancels in 1 − q/(...)
    # (half the true sech²(x) from x = 19 on, its Hessian of the wrong sign)
    if not isinstance(e, sp.Mul):
        return None
    for d in e.args:
        if not (d.is_Pow and d.exp == -1 and d.base.is_Add and len(d.base.args) == 2):
            continue
        t1, t2 = d.base.args
        p1, p2 = _exp_power(t1), _exp_power(t2)
        if p1 is None or p2 is None:
            continue
        for num in e.args:
            c, prim = num.as_content_primitive() if num.is_Add else (None, None)  # 3e^−x − 3e^x: 3(e^−x − e^x)
            sign = 1 if prim == t1 - t2 else -1 if prim == t2 - t1 else 0
            if sign:
                rest = list(e.args)
                rest.remove(d)
                rest.remove(num)
                return sp.Mul(*rest) * sign * c * sp.tanh((p1 - p2) / 2)
    return None


def _log_one_plus_exp(e: sp.Expr) -> sp.Expr | None:
    if isinstance(e, sp.log):
        w = _one_plus_exp(e.args[0])
        return None if w is None else softplus(w)
    return None


def _log_sigmoid(e: sp.Expr) -> sp.Expr | None:
    if isinstance(e, sp.log):
        inner = e.args[0]
        if isinstance(inner, sigmoid):
            return -softplus(-inner.args[0])
        # 1 - sigmoid(z) == sigmoid(-z), so log of it is -softplus(z)
        if isinstance(inner, sp.Add) and len(inner.args) == 2 and sp.S.One in inner.args:
            other = inner.args[0] if inner.args[1] == 1 else inner.args[1]
            if isinstance(other, sp.Mul) and other.args[0] == -1 and len(other.args) == 2:
                s = other.args[1]
                if isinstance(s, sigmoid):
                    return -softplus(s.args[0])
    return None


def _bce_pair(e: sp.Expr) -> sp.Expr | None:
    """c*softplus(-a) + (1-c)*softplus(a) (+ rest)  ->  bce_logits(a, c) (+ rest), up to sign."""
    if not isinstance(e, sp.Add):
        return None
    sps = [f for f in e.atoms(softplus)]
    for p in sps:
        for q in sps:
            # pair softplus(-a) with softplus(a), taking a with its canonical sign as the logit
            if p is q or q.args[0].could_extract_minus_sign() or sp.expand(p.args[0] + q.args[0]) != 0:
                continue
            # only the terms that hold the pair are multiplied out (and no powers): expanding the whole
            # sum turned (w - 1)**6 beside a BCE into w**6 - 6*w**5 + ..., which cancels near w = 1
            held = sp.Add(*(t for t in e.args if t.has(p, q)))
            others = sp.Add(*(t for t in e.args if not t.has(p, q)))
            flat = sp.expand(held, multinomial=False, power_exp=False, power_base=False, log=False)
            coeffs = sp.collect(flat, [p, q], evaluate=False)
            c1, c2 = coeffs.get(p, sp.S.Zero), coeffs.get(q, sp.S.Zero)
            total = sp.expand(c1 + c2)
            if total in (1, -1) and not (c1.has(p, q) or c2.has(p, q)):
                # every other term, collected or not: softplus(a)**2 or 1/softplus(-a) is a key of its own
                rest = sp.Add(*(k * v for k, v in coeffs.items() if k not in (p, q)))
                return total * _bce_or_entropy(q.args[0], sp.expand(c1 / total)) + rest + others
    return None


def _bce_or_entropy(a: sp.Expr, y: sp.Expr) -> sp.Expr:
    """bce_logits(a, y), or where y is σ(±a) (or 1 − σ(±a)) the entropy of σ(a), softplus(a) − a·σ(a),
    as softplus(−|a|) + |a|·σ(−|a|): the BCE's max(a, 0) − y·a cancels there (4e-18 for 1.7e-16 at a = 40)."""
    if y in {sigmoid(a), sigmoid(-a), 1 - sigmoid(a), 1 - sigmoid(-a)}:
        return softplus(-sp.Abs(a)) + sp.Abs(a) * sigmoid(-sp.Abs(a))
    return bce_logits(a, y)


def _softplus_complement(e: sp.Expr) -> sp.Expr | None:
    """c·softplus(u) − c·u (+ rest)  ->  c·softplus(−u) (+ rest): the two cancel where u is large
    (y + log σ(−y) at y = 20 kept 7 digits, its gradient none), softplus(−u) is e^−u there."""
    if not isinstance(e, sp.Add):
        return None
    terms = list(e.args)
    for i, t in enumerate(terms):
        for f in sp.Mul.make_args(t):
            if not isinstance(f, softplus):
                continue
            c, u = t / f, f.args[0]
            others = Counter(terms[:i] + terms[i + 1:])
            for need in ([-c * u], sp.Add.make_args(sp.expand(-c * u, power_exp=False, log=False))):
                if Counter(need) <= others:  # −c·u whole, or its terms among the sum's
                    return c * softplus(-u) + sp.Add(*(others - Counter(need)).elements())
    return None


def _log_cosh(e: sp.Expr) -> sp.Expr | None:
    return logcosh(e.args[0].args[0]) if isinstance(e, sp.log) and isinstance(e.args[0], sp.cosh) else None


RULES: list[Rule] = [
    Rule(
        "sigmoid",
        "1/(1+exp(-z)) -> sigmoid(z): evaluated without overflow",
        _sigmoid_form,
        (1 / (1 + sp.exp(-_z)), sigmoid(_z)),
    ),
    Rule(
        "softplus",
        "log(1+exp(z)) -> softplus(z): exp(z) overflows for z > 88 (float32) / 709 (float64)",
        _log_one_plus_exp,
        (sp.log(1 + sp.exp(_z)), softplus(_z)),
    ),
    Rule(
        "log-sigmoid",
        "log(sigmoid(z)) -> -softplus(-z), log(1-sigmoid(z)) -> -softplus(z): "
        "the BCE on logits form; its gradient is sigmoid(z) - y",
        _log_sigmoid,
        (sp.log(sigmoid(_z)), -softplus(-_z)),
    ),
    Rule(
        "bce-logits",
        "y*softplus(-a) + (1-y)*softplus(a) -> bce_logits(a, y): fused, gradient sigmoid(a) - y",
        _bce_pair,
        (_y * softplus(-_z) + (1 - _y) * softplus(_z), bce_logits(_z, _y)),
    ),
    Rule(
        "softplus-complement",
        "softplus(z) - z -> softplus(-z): the difference cancels for large z, softplus(-z) is exp(-z) there",
        _softplus_complement,
        (softplus(_z) - _z, softplus(-_z)),
    ),
    Rule(
        "tanh",
        "(exp(z)-exp(-z))/(exp(z)+exp(-z)) -> tanh(z): its derivative 1 - tanh(z)**2 is computed without cancelling",
        _tanh_form,
        ((sp.exp(_z) - sp.exp(-_z)) / (sp.exp(_z) + sp.exp(-_z)), sp.tanh(_z)),
    ),
    Rule(
        "log-cosh",
        "log(cosh(z)) -> logcosh(z): cosh overflows from |z| = 710 (float32: 89), and log of cosh near 1 "
        "loses its digits; its derivative is tanh(z)",
        _log_cosh,
        (sp.log(sp.cosh(_z)), logcosh(_z)),
    ),
]


def whole_floats(expr: sp.Expr) -> sp.Expr:
    """Floats that hold a whole number (``1.0``, ``-2.0``) as Integers: SymPy 1.13+ no longer
    counts ``Float(1.0)`` equal to 1, so ``log(1.0 - sigmoid(a))`` and ``1/(1.0 + exp(-a))`` escaped
    every rule above and overflowed where the same formula written with 1 did not. Up to 2^24,
    where float32 holds them exactly too.

    >>> a = sp.Symbol("a", real=True)
    >>> whole_floats(1.0 - 2.0 * a + 0.5 * a**2)
    0.5*a**2 - 2*a + 1
    """
    floats = {f: sp.Integer(int(f)) for f in expr.atoms(sp.Float) if abs(f) <= 2**24 and float(f) == int(f)}
    return expr.xreplace(floats) if floats else expr


def stabilize(expr: sp.Expr) -> tuple[sp.Expr, list[str]]:
    """Apply every rule bottom-up until none fires. Returns (stable expr, rule names fired).

    >>> z = sp.Symbol("z", real=True)
    >>> stabilize(sp.log(1 + sp.exp(z)))
    (softplus(z), ['softplus'])
    """
    fired: list[str] = []
    expr = whole_floats(expr)

    def fire(e: sp.Expr) -> sp.Expr | None:
        for rule in RULES:
            out = rule.apply(e)
            if out is not None:
                fired.append(rule.name)
                return out
        return None

    def visit(e: sp.Expr) -> sp.Expr:
        if e.is_Atom:
            return e
        # top-down first: exp(z)/(1+exp(z)) must be seen whole before its factor 1/(1+exp(z)) is rewritten
        out = fire(e)
        if out is not None:
            return visit(out)
        if e.args:
            new_args = [visit(a) for a in e.args]
            if new_args != list(e.args):
                e = e.func(*new_args)
        out = fire(e)
        return e if out is None else visit(out)

    return visit(expr), fired


def log_sum_exp(e: sp.Basic) -> sp.Basic:
    """log(Σ exp.(z)) as logsumexp(z), the max taken out: written out, exp overflowed from z = 709
    (float32: 88), and a hand-written softmax cross-entropy was inf at such logits."""
    def exp_of(m):  # z where m = exp.(z), as sg.elementwise or applyfunc writes it
        f = getattr(m, "function", None)
        if f is sp.exp or isinstance(f, sp.Lambda) and len(f.variables) == 1 and f.expr == sp.exp(f.variables[0]):
            return m.expr
        return None

    def visit(n):  # the loss's scalar nodes only: a deep network's matrix expression is a DAG that a
        # tree walk (replace) visits once per path, exponentially many (docs/decisions.md, deep residual networks)
        if isinstance(n, sp.MatrixExpr) or n.is_Atom:
            return n
        if isinstance(n, sp.log) and isinstance(n.args[0], msum) and exp_of(n.args[0].args[0]) is not None:
            return logsumexp(exp_of(n.args[0].args[0]))
        args = [visit(a) for a in n.args]
        return n.func(*args) if args != list(n.args) else n

    return visit(e)
