"""A tensor module's title: its loss, printed without the numbers the module reads at run time.

The sizes the lang nodes print (a broadcast's positions, a sequence's shape, attention's heads)
and their float constants (dropout's rate, a normalisation's ε and momentum) come from ``dims``
(``codegen/dims.py``): a title that kept them would give each model its own file and
compilation. The title is the loss as ``str()`` prints it, but for those nodes, which a printer
subclass writes with letters (T, d, h, p) in place of the numbers.

>>> import sympy as sp
>>> from symgrad.lang.dropout import dropout
>>> x = sp.MatrixSymbol("x", 3, 1)
>>> print(tensor_title(sp.Trace(dropout(x, 0.25).T * x)))
loss (per sample) = Trace(dropout(x, p).T*x)
(dropout's rate p, and the normalisations' ε and momentum: each model's own)
"""

from __future__ import annotations

from sympy.printing.str import StrPrinter

from ..lang.walk import tree_size

#: Losses whose printed tree has more nodes than this are not printed whole in the module's title.
TITLE_MAX_NODES = 2000


class _TitlePrinter(StrPrinter):
    """``str()``'s printer, but for the lang nodes that print numbers the module reads from
    ``dims``; it notes which kinds of number it left out, for the title's footnotes."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes = self.constants = False

    def _print(self, expr, **kwargs) -> str:
        # a node's own _sympystr comes first in StrPrinter's dispatch, so these are looked up first
        own = getattr(self, f"_title_{type(expr).__name__}", None)
        return own(expr) if own is not None else super()._print(expr, **kwargs)

    def _positions(self, e) -> str:
        self.sizes = True
        return f"{type(e).__name__}({self._print(e.args[0])}, T)"

    _title_broadcast = _title_per_channel = _positions

    def _title_layernorm(self, e) -> str:
        self.constants = True
        self.sizes |= bool(e.seq)
        return f"layernorm({self._print(e.args[0])}{', seq=(T, d)' if e.seq else ''})"

    def _title_batchnorm(self, e) -> str:
        self.constants = True
        return f"batchnorm({self._print(e.args[0])})"

    def _title_dropout(self, e) -> str:
        self.constants = True
        return f"dropout({self._print(e.args[0])}, p)"

    def _title_attention(self, e) -> str:
        self.sizes |= e.heads > 1
        X, *W = (self._print(a) for a in e.args[:5])
        options = (", heads=h" if e.heads > 1 else "") + (", causal" if e.causal else "")
        return f"attention({X}; {', '.join(W)}{options})"


def tensor_title(loss) -> str:
    """The title of ``loss``'s module (see the module's docstring). A deep residual network's
    loss prints as a tree that doubles with each block: that one is only named."""
    nodes = tree_size(loss)
    if nodes > TITLE_MAX_NODES:
        return (f"loss (per sample) = {type(loss).__name__}(...): printed whole, its expression would be a "
                f"tree of {nodes} nodes (it shares subexpressions)")
    printer = _TitlePrinter()
    text = printer.doprint(loss)
    note = "\n(T positions, d features, h heads: each model's own sizes)" if printer.sizes else ""
    if printer.constants:  # whether or not they print (a default ε does not)
        note += "\n(dropout's rate p, and the normalisations' ε and momentum: each model's own)"
    return f"loss (per sample) = {text}{note}"
