"""Checks of the integer arguments that the layer and node constructors share."""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import OptionError


def count(v, what: str) -> int:
    """``v`` as a positive int (Python's, NumPy's or SymPy's integers; not a bool).

    >>> count(np.int64(3), "heads")
    3
    """
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, sp.Integer)) or int(v) < 1:
        raise OptionError(f"{what}={v!r}: give a positive integer.")
    return int(v)
