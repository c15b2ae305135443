"""Sums of one and a term that cancels, written as the functions that keep their digits.

1 ± erf(u) as erfc(∓u), p − p·e^u as −p·expm1(u), p − p·cos(u) as 2p·sin²(u/2), log(k·erfc(w))
by the side where k·erfc(w) nears 1; ``accurate.py`` applies them after CSE, reading temporaries
through ``value`` (a temporary -> what it holds).
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p


class Erfc(sp.Function):
    """erfc(u), unevaluated: SymPy writes erfc(−u) as 2 − erfc(u), which cancels where erfc(u) → 2."""

    nargs = 1
    is_real = True

    def _eval_evalf(self, prec):  # a number (Max(p, 1 + erf(2))) compares as one
        return sp.erfc(self.args[0])._eval_evalf(prec)


def _erfc_sum(n: sp.Add, value: dict) -> sp.Expr | None:
    """``n`` with c + c·erf(u) as c·erfc(−u), c·erf(u) − c as −c·erfc(u), or c·erfc(u) − 2c as
    −c·erfc(−u), or None: the normal CDF (1 + erf(u/√2))/2 was 0 at u = −9, and a probit model's
    log-likelihood inf; Φ(6)'s log 5.6e-8 off."""
    for t in n.args:
        c, f = t.as_coeff_Mul()
        for _ in range(3):  # through temporaries: t0 = erf(u)/2 beside 1/2
            k, f = value.get(f, f).as_coeff_Mul()
            c *= k
        if isinstance(f, sp.erf):
            pairs = ((c, Erfc(-f.args[0]), c), (-c, Erfc(f.args[0]), -c))  # (the number needed, erfc, its factor)
        elif isinstance(f, sp.erfc):
            pairs = ((-2 * c, Erfc(-f.args[0]), -c),)
        else:
            continue
        for need, g, k in pairs:
            if need in n.args:
                return sp.Add(k * g, *(u for u in n.args if u is not t and u != need))
    return None


def _log_erfc(k: sp.Expr, g: sp.Expr) -> sp.Expr:
    """log(k·erfc(w)) (g = Erfc(w)), chosen by w where k·erfc(w) nears 1 and its log would cancel: for k = 1
    near w = 0 (log(1 + erf(1e-20)) was 0), for k = ½ (the normal CDF) for w < 0 (log Φ(6) 5.6e-8 off)."""
    if not isinstance(g, Erfc) or k not in (1, sp.S.Half):
        return sp.log(k * g)
    w = g.args[0]
    if k == 1:
        return sp.Piecewise((log1p(-sp.erf(w)), sp.Abs(w) < sp.S.Half), (sp.log(g), True))
    return sp.Piecewise((log1p(-Erfc(-w) / 2), w < 0), (sp.log(g / 2), True))


def _written(arg: sp.Expr, value: dict) -> sp.Expr:
    """A log's argument as written where CSE left it behind a temporary, or behind a temporary and
    a factor (log(−t0) with t0 = p − 1; log(t2/2) with t2 = 1 + erf(u)): the sum the rules read."""
    if arg in value:
        return value[arg]
    if arg.is_Mul and (held := arg.free_symbols & value.keys()):
        return arg.xreplace({t: value[t] for t in held})
    return arg


def _one_minus(n: sp.Add, value: dict) -> sp.Expr | None:
    """A pair p − p·cos(u) among the sum's terms as 2p·sin²(u/2) (1 − cos(u) was 8e-8 off at u = 1e-5
    as written, a − a·cos(b) 0 for 1e-18), p − p·e^u as −p·expm1(u) (1 − e^(5b/2) was 0 at 1e-17), for
    any term p; or None."""
    terms = list(n.args)
    # each term also with its temporaries of products put back (_product): a − t1 with t1 = a·t0, t0 = e^b
    # is found so, and t0·t1 − t0 (t0 = 3a/4, t1 = cos(a)) as written
    flat = [sp.Mul(*_product(t, value)) for t in terms]
    where: dict[sp.Expr, list[int]] = {}  # a term, as written or flat -> its places: no scan per term
    for i, t in enumerate(terms):
        for form in dict.fromkeys((t, flat[i])):
            where.setdefault(form, []).append(i)
    for qi, q in enumerate(terms):
        for qv in dict.fromkeys((q, flat[qi])):
            for f in sp.Mul.make_args(qv):
                w, k = value.get(f, f), sp.S.One
                if w.is_Mul and isinstance(w.as_coeff_Mul()[1], (sp.cos, sp.exp)):  # a temporary 2·e^u
                    k, w = w.as_coeff_Mul()
                if not isinstance(w, (sp.cos, sp.exp)):
                    continue
                # qv's other factors: dividing by f leaves e^(-u)·e^u uncancelled where u is a sum
                rest_f = list(sp.Mul.make_args(qv))
                rest_f.remove(f)
                p = -k * sp.Mul(*rest_f)
                pi = next((i for i in where.get(p, ()) if i != qi), None)
                if pi is None:
                    continue
                p = terms[pi]
                rest = [t for i, t in enumerate(terms) if i not in (qi, pi)]
                pair = 2 * p * sp.sin(w.args[0] / 2) ** 2 if isinstance(w, sp.cos) else -p * expm1(w.args[0])
                return sp.Add(pair, *rest)
    return None


def _product(g: sp.Expr, value: dict) -> list[sp.Expr]:
    """``g``'s factors, with temporaries that hold products of powers put back (t2 = 4·t1, t1 = t0·a²,
    t0 = x²: 4, a², x²), so that each of them can be divided by a root in turn. Only numbers, symbols
    and positive powers: a temporary a/|a| (±1) divided apart was a·(1/|a|/h)·(t/h), which underflows."""
    out = []
    for p in sp.Mul.make_args(g):
        v = value.get(p)
        if v is not None and all(f.is_Number or f.is_Symbol or f.is_Pow and f.exp.is_Integer and f.exp > 0
                                 for f in sp.Mul.make_args(v)):
            out += _product(v, value)
        else:
            out.append(p)
    return out
