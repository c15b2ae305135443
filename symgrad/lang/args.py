"""Checks of the integer and on/off arguments that the layer and node constructors share."""

from __future__ import annotations

import difflib
import functools
import inspect

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


#: PyTorch's options that symgrad does not offer, with what to do instead
_NOT_OFFERED = {
    "top_k": "generate samples from the whole softmax (no top-k or top-p); a temperature below 1 sharpens it, "
             "temperature=0 is greedy",
    "dilation": "Conv2D has no dilation (à trous) option; a larger kernel_size covers the same field",
    "groups": "Conv2D has no groups; each kernel sees every input channel",
    "padding_idx": "Embedding has no padding id (every id's row is trained); pad with an id the data never uses, "
                   "or cut windows to the context",
    "padding_mode": "Conv2D pads with zeros only",
}
_NOT_OFFERED["top_p"] = _NOT_OFFERED["top_k"]


def known_keywords(obj, hints: dict[str, str] | None = None):
    """A layer class (its ``__init__``) or a function refusing a keyword it does not take with an
    OptionError that names the nearest one, or, for PyTorch's options it lacks (dilation=,
    padding_idx=, top_k=) and the words in ``hints``, what to do instead: Python's TypeError named
    neither. A set difference per call (~0.3 µs): a short fit's bookkeeping is ~1 ms.

    >>> @known_keywords
    ... def layer(width, activation="relu"): return width
    >>> layer(3, activaton="tanh")
    Traceback (most recent call last):
        ...
    symgrad.errors.OptionError: layer() has no option 'activaton'. Fix: activation=.
    """
    func = obj.__init__ if isinstance(obj, type) else obj
    params = inspect.signature(func).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return obj
    names, instead = frozenset(params) - {"self"}, _NOT_OFFERED | (hints or {})

    @functools.wraps(func)
    def checked(*args, **kwargs):
        unknown = kwargs.keys() - names
        if unknown:
            word = sorted(unknown)[0]
            near = difflib.get_close_matches(word, names, n=1)
            fix = instead.get(word) or (f"{near[0]}=" if near else f"one of {', '.join(sorted(names))}")
            raise OptionError(f"{obj.__name__}() has no option {word!r}. Fix: {fix}.")
        return func(*args, **kwargs)

    if isinstance(obj, type):
        obj.__init__ = checked
        return obj
    return checked
