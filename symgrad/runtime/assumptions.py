"""Values checked against their symbols' SymPy assumptions, at call time.

SymPy simplifies with what a symbol is declared to be: for ``x = Symbol("x", positive=True)``,
``sqrt(x**2)`` is ``x`` and ``log(x*y)`` may split, so the compiled code is exact only for data
that satisfy the declaration. Negative data would give a wrong number without a word; this
refuses them, naming the symbol, the value and where it is.

>>> import sympy as sp, numpy as np
>>> x = sp.Symbol("x", positive=True)
>>> checks = assumption_checks([x])
>>> check_assumptions(checks, [np.array([1.0, -3.0])], "data", [x])
Traceback (most recent call last):
...
symgrad.errors.AssumptionError: x is declared positive=True (SymPy simplified with it, e.g. sqrt(x**2) = x), but the data x holds -3 (at index 1). Fix: pass values that are > 0, or declare x with real=True only, so that nothing relies on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sympy as sp

from ..errors import AssumptionError
from .checks import ROW_OFFSET

#: (assumption, test, what it needs), strongest first: one per symbol, and one of parity or integer.
#: SymPy derives facts (``even`` is an integer, ``irrational`` is nonzero), so a symbol is checked
#: against what SymPy knows of it, not only what was written; the extended_ forms allow ±inf.
_SIGN = tuple((f"{ext}{name}", test, need) for name, test, need in (
    ("zero", lambda a: a == 0, "0"),
    ("positive", lambda a: a > 0, "> 0"),
    ("negative", lambda a: a < 0, "< 0"),
    ("nonnegative", lambda a: a >= 0, ">= 0"),
    ("nonpositive", lambda a: a <= 0, "<= 0"),
    ("nonzero", lambda a: a != 0, "!= 0"),
) for ext in ("", "extended_") if not (ext and name == "zero"))
def _primes(a) -> np.ndarray:
    whole = (a == np.floor(a)) & (a >= 2) & np.isfinite(a)
    u = np.unique(a[whole]) if np.ndim(a) else np.unique(np.where(whole, a, 0))
    prime = {v for v in u if sp.isprime(int(v))}
    return whole & np.isin(a, list(prime) or [0.5])


_WHOLE = (
    ("prime", _primes, "prime numbers (2, 3, 5, ...)"),
    ("composite", lambda a: (a == np.floor(a)) & (a >= 4) & ~_primes(a), "composite numbers (4, 6, 8, 9, ...)"),
    ("even", lambda a: (a == np.floor(a)) & (np.fmod(a, 2) == 0), "even whole numbers"),
    ("odd", lambda a: (a == np.floor(a)) & (np.abs(np.fmod(a, 2)) == 1), "odd whole numbers"),
    ("integer", lambda a: a == np.floor(a), "whole numbers"),
    ("noninteger", lambda a: np.isfinite(a) & (a != np.floor(a)), "numbers that are not whole"),
)
_EXAMPLE = {"zero": "cos({s}) = 1", "positive": "sqrt({s}**2) = {s}", "nonnegative": "sqrt({s}**2) = {s}",
            "negative": "sqrt({s}**2) = -{s}", "nonpositive": "sqrt({s}**2) = -{s}", "nonzero": "{s}/{s} = 1",
            "even": "(-1)**{s} = 1", "odd": "(-1)**{s} = -1", "integer": "sin(pi*{s}) = 0",
            "prime": "Abs({s} - 2) = {s} - 2", "composite": "Abs({s} - 3) = {s} - 3", "noninteger": "Eq({s}, 2) = False"}


def assumption_checks(symbols: Sequence[sp.Basic]) -> list[tuple[int, str, object, str]]:
    """(position, assumption, test, what it needs) for each sign, parity or integer fact SymPy
    holds about a symbol (declared, or derived from what was declared)."""
    out = []
    for k, s in enumerate(symbols):
        if not isinstance(s, sp.Symbol):
            continue
        sign = next((c for c in _SIGN if getattr(s, f"is_{c[0]}") is True), None)
        whole = next((c for c in _WHOLE if getattr(s, f"is_{c[0]}") is True), None)
        out += [(k, *c) for c in (sign, whole) if c is not None]
    return out


def check_assumptions(checks, arrays: Sequence[np.ndarray], what: str, symbols: Sequence[sp.Basic] = ()) -> None:
    """Refuse values that break a check of :func:`assumption_checks` (``what``: 'data' or 'theta')."""
    for k, name, test, need in checks:
        a = np.asarray(arrays[k])
        ok = test(a)
        if np.all(ok):
            continue
        at = tuple(int(i) for i in np.argwhere(~np.asarray(ok))[0]) if a.ndim else ()
        v = a[at] if at else a
        if at and what == "data":  # a row of the whole data, also in a Dask chunk
            at = (at[0] + ROW_OFFSET.get(), *at[1:])
        sym = symbols[k] if symbols else None
        label = str(sym) if sym is not None else f"argument {k}"
        where = f" (at index {at[0] if len(at) == 1 else at})" if at else ""
        given = getattr(sym, "_assumptions_orig", None) or {}  # what the user wrote, when SymPy derived `name`
        said = f"{name}=True" if given.get(name) or not given else ", ".join(f"{a}={v}" for a, v in given.items())
        why = "" if given.get(name) or not given else f", so SymPy takes it to be {name}"
        raise AssumptionError(
            f"{label} is declared {said}{why} (SymPy simplified with it, e.g. "
            f"{_EXAMPLE[name.removeprefix('extended_')].format(s=label)}), "
            f"but the {what} {label} holds {float(v):g}{where}. Fix: pass values that are {need}, or declare "
            f"{label} with {_weaker(name, float(v))}real=True only, so that nothing relies on it.")


def _weaker(name: str, v: float) -> str:
    # an optimizer's bound (0, None) evaluates a positive parameter at 0
    return "nonnegative=True if 0 is allowed (an optimizer's bound of 0 tries it), or " \
        if v == 0 and name in ("positive", "extended_positive") else ""


def refuse_unreal(symbols) -> None:
    """Symbols declared as no real number is (imaginary, infinite, polar, antihermitian) are refused:
    SymPy simplified with those facts (sqrt(s**2) is s for a polar s, re(z) is 0 for an imaginary
    z), so real values would give numbers that are not the formula's."""
    for s in sorted((s for s in symbols if isinstance(s, sp.Symbol)), key=str):
        facts = [f for f in ("imaginary", "infinite", "polar", "antihermitian") if getattr(s, f"is_{f}")]
        if facts or s.is_real is False:
            raise AssumptionError(
                f"the symbol {s} is declared {', '.join(f'{f}=True' for f in facts) or 'not real'}, but symgrad "
                f"computes with real numbers, and SymPy has already simplified the formula with that fact. "
                f"Fix: declare it real, sp.Symbol({s.name!r}, real=True) (with its sign, e.g. positive=True).")
