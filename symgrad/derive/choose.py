"""A removable node's output: its Taylor polynomial where that has converged, else its written form
(``derive/removable.py``), as one function SymPy leaves alone.

>>> x = sp.Symbol("x", real=True)
>>> c = Choose(1 - x**2 / 6, sp.sin(x) / x, x**2 / 6, 1e-16, 1, 1e308)
>>> float(c.subs(x, 0)), float(c.subs(x, 0.5)) == float(sp.sin(0.5) / 0.5)
(1.0, True)
"""

from __future__ import annotations

import sympy as sp


class Choose(sp.Function):
    """``series if tail <= bound and scale <= top else written``: a node's output.

    Not a Piecewise: SymPy folds a Piecewise out of any condition it sits in and solves that for x
    (the degree-14 series: mpmath's NoConvergence, or RecursionError), as in a user's condition
    (e^a − 1)/a > 0 or x**k·log(x)'s rule; a function's arguments it leaves alone."""

    nargs = 6
    is_real = True

    def taken(self, values: list) -> int:
        """0 for the series, 1 for the written form, given the numbers of the last four arguments."""
        tail, bound, scale, top = values
        return 0 if (tail <= bound and scale <= top) else 1

    def _eval_evalf(self, prec):
        test = [a.evalf(prec) for a in self.args[2:]]
        if all(v.is_Number for v in test):
            return self.args[self.taken(test)].evalf(prec)
        return None

    def _pythoncode(self, printer, *args, **kwargs):
        s, w, tail, bound, scale, top = (printer._print(a) for a in self.args)
        return f"(({s}) if (({tail}) <= ({bound}) and ({scale}) <= ({top})) else ({w}))"

    _mpmathcode = _pythoncode

    def _numpycode(self, printer, *args, **kwargs):
        s, w, tail, bound, scale, top = (printer._print(a) for a in self.args)
        where = printer._module_format("numpy.where")
        return f"{where}((({tail}) <= ({bound})) & (({scale}) <= ({top})), {s}, {w})"

    _scipycode = _numpycode
