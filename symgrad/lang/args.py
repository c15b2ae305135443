"""Checks of the integer and on/off arguments that the layer and node constructors share."""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import OptionError


def count(v, what: str, fix: str | None = None) -> int:
    """``v`` as a positive int (Python's, NumPy's or SymPy's integers; not a bool); ``fix`` is the
    message's concrete fix (by default ``<name>=4``, the name being the last word of ``what``).

    >>> count(np.int64(3), "heads")
    3
    >>> count(0, "Embedding vocab", "e.g. Embedding(50, 16) for 50 token ids.")
    Traceback (most recent call last):
        ...
    symgrad.errors.OptionError: Embedding vocab=0: give a positive integer. Fix: e.g. Embedding(50, 16) for 50 token ids.
    """
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, sp.Integer)) or int(v) < 1:
        raise OptionError(f"{what}={v!r}: give a positive integer. Fix: {fix or f'e.g. {what.split()[-1]}=4.'}")
    return int(v)


def flag(v, what: str) -> bool:
    """``v`` when it is a bool (NumPy's too): any other value is refused, as a string such as 'no'
    is truthy and would silently do the opposite.

    >>> flag(np.True_, "bias")
    True
    """
    if not isinstance(v, (bool, np.bool_)):
        raise OptionError(f"{what}={v!r}: use True or False (any other value, even 'no', would count as True). "
                          f"Fix: {what.split()[-1]}=False or {what.split()[-1]}=True.")
    return bool(v)


def check_network(model: object) -> None:
    """Refuse a ``model`` that is not a network (``fit`` and ``formulas`` read its ``expr``,
    ``params`` and ``x``): a name or a bare formula would fail inside with an AttributeError."""
    missing = [a for a in ("expr", "params", "x") if not hasattr(model, a)]
    if missing:
        raise OptionError(f"the model must be a network such as sg.nn.MLP([2, 16, 1]) (anything with .expr, "
                          f".params and .x), got {type(model).__name__} {model!r:.60} without "
                          f"{', '.join('.' + a for a in missing)}. Fix: build it, e.g. "
                          "net = sg.nn.MLP([n_in, 16, n_out]); for a scalar formula use sg.compile.")
    scalars = [p for p in model.params if not isinstance(p, sp.MatrixSymbol)]
    if scalars:  # fit's parameter buffer and formulas read each one's shape
        raise OptionError(f"a network's parameters are matrices, and {scalars[0]} is a {type(scalars[0]).__name__}. "
                          f"Fix: sp.MatrixSymbol('{scalars[0]}', 1, 1) in its place, written {scalars[0]}[0, 0] "
                          "where the expression needs the number (sg.compile takes scalar Symbols).")
    for what, m in (("input", model.x), ("output", model.expr)):
        shape = getattr(m, "shape", (None, None))
        if shape[1] != 1:  # fit builds a column target and reads rows of X into a column x
            raise OptionError(f"a network's {what} is a column (n × 1), and this model's {what} {m} is "
                              f"{shape[0]}×{shape[1]}. Fix: write the model on columns, e.g. W·x with x of "
                              f"shape ({shape[1]}, 1) rather than x·W with x a row.")
