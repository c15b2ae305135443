"""The shared base of symgrad's ops: how an op talks to the rest of SymPy.

An op (``lang/ops.py``) states its formulas; this base turns them into SymPy behaviour: code
printers print ``stable()``, ``evalf`` evaluates the op in mpmath with guard bits, and
``_rewrite_as_definition`` is what an op's ``rewrite(sp.exp)`` or ``rewrite(sp.Piecewise)`` runs.

>>> import sympy as sp
>>> from symgrad.lang.ops import softplus
>>> softplus(sp.Integer(-1000)).evalf(5)  # log(1 + e^-1000), which float64 rounds to 0
5.0760e-435
"""

from __future__ import annotations

import mpmath
import sympy as sp
from mpmath.libmp import prec_to_dps
from sympy.printing.pycode import PythonCodePrinter


class _Op(sp.Function):
    """Shared behaviour: real-valued, evalf through the primitive definition."""

    is_real = True

    def definition(self) -> sp.Expr:
        raise NotImplementedError

    def stable(self) -> sp.Expr:
        """The definition arranged so that no float64 step overflows or cancels, in SymPy
        functions that every code printer knows (exp, log1p, expm1, Abs, Max, Piecewise).
        A Piecewise's branches only ever see e^-|z|: NumPy computes every branch."""
        return self.definition()

    # SymPy's code printers ask the expression first, by the printer's ``printmethod``:
    # "_numpycode" (NumPyPrinter, and SciPyPrinter, lambdify's default), "_mpmathcode"
    # (MpmathPrinter), "_pythoncode" (PythonCodePrinter, for "math"). Each prints stable()
    # in its own language, so lambdify's namespace has every name it uses. In parentheses,
    # always: the printer around us sees a call (it never parenthesizes one), but stable() is
    # a sum or a product, so softplus(a)**2 would print as log1p(...) + max(0, a)**2.
    def _print_stable(self, printer) -> str:
        return f"({printer._print(self.stable())})"

    _numpycode = _mpmathcode = _print_stable

    def _pythoncode(self, printer) -> str:
        # "_pythoncode" is also the printmethod of every PythonCodePrinter subclass, symgrad's
        # NumbaPrinter among them (our ops print as calls to its Numba helpers), and of
        # SymPyPrinter. Those keep their own method; only a printer that would print an unknown
        # call, as the stock one does, gets the stable formula.
        names = (f"_print_{c.__name__}" for c in type(self).__mro__)
        own = next((getattr(printer, n) for n in names if hasattr(printer, n)), None)
        if own is None or getattr(own, "__func__", None) is PythonCodePrinter._print_Function:
            return self._print_stable(printer)
        return own(self)

    def _rewrite_as_definition(self, *args, **hints):
        # rewrite passes the arguments already rewritten; evaluate=False keeps an op of them
        # (sigmoid(-z) would otherwise become 1 - sigmoid(z)).
        return self.func(*args, evaluate=False).definition()

    def _eval_evalf(self, prec):
        # Evaluate in mpmath with guard bits and the stable formulas: the primitive definition
        # at the target precision cancels (softplus(-1000) would come out as 0).
        args = [a.evalf(prec_to_dps(prec) + 20) for a in self.args]
        if not all(a.is_Number for a in args):
            return None
        # exp(-z) is only as accurate as z is to absolute 2^-prec: a large argument needs its
        # magnitude's bits more (sigmoid(-1e300) came out 1.04159e-… for 1.83816e-…)
        extra = max((int(abs(a)).bit_length() for a in args if a.is_finite), default=0)
        if extra:
            args = [a.evalf(prec_to_dps(prec + extra) + 20) for a in self.args]
        with mpmath.workprec(prec + 64 + extra):
            value = self._mp(*[mpmath.mpf(str(a)) if a.is_Float else mpmath.mpf(a.p) / a.q for a in args])
        return sp.Float(value, prec_to_dps(prec))

    def _mp(self, *args):
        return sp.lambdify(sp.symbols(f"a0:{len(args)}"), self.func(*sp.symbols(f"a0:{len(args)}",
                           real=True)).stable(), "mpmath")(*args)

    def _eval_is_real(self):
        return all(a.is_real for a in self.args) or None
