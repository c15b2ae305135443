"""The elementwise extension point: activations and their rules, as SymPy functions.

Each op is one small ``sympy.Function`` subclass. Its derivative rule is ``fdiff``
(derived from the defining formula unless a stable or kink-safe form is needed),
its definition in primitives is ``definition()``, and its Numba code is ``HELPERS``.
``stable()`` is the definition arranged for floating point, which SymPy's own code
printers print, so that ``sympy.lambdify`` works on every expression symgrad returns.
Everything else (printing, tests, codegen) follows from these.

>>> import sympy as sp
>>> z = sp.Symbol("z", real=True)
>>> sp.diff(sigmoid(z), z)
(1 - sigmoid(z))*sigmoid(z)
"""

from __future__ import annotations

import mpmath
import sympy as sp
from mpmath.libmp import prec_to_dps
from sympy.codegen.cfunctions import expm1, log1p
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
    # in its own language, so lambdify's namespace has every name it uses.
    def _print_stable(self, printer) -> str:
        return printer._print(self.stable())

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
        with mpmath.workprec(prec + 64):
            value = self._mp(*[mpmath.mpf(str(a)) if a.is_Float else mpmath.mpf(a.p) / a.q for a in args])
        return sp.Float(value, prec_to_dps(prec))

    def _mp(self, *args):
        return sp.lambdify(sp.symbols(f"a0:{len(args)}"), self.func(*sp.symbols(f"a0:{len(args)}",
                           real=True)).stable(), "mpmath")(*args)

    def _eval_is_real(self):
        return all(a.is_real for a in self.args) or None


class sigmoid(_Op):
    """Logistic function σ(z) = 1/(1+e^{-z}); σ'(z) = σ(z)(1−σ(z))."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.S.Half
        if z.is_Number:  # keep numbers whole: 1 - sigmoid(40.0) would cancel to 0
            return None
        # Canonical sign: σ(−z) = 1 − σ(z). This is what lets the gradient of BCE
        # collapse to the textbook σ(a) − y instead of a mix of σ(a) and σ(−a).
        if z.could_extract_minus_sign():
            return 1 - cls(-z)
        return None

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _mp(self, z):
        return 1 / (1 + mpmath.exp(-z))

    def definition(self):
        return 1 / (1 + sp.exp(-self.args[0]))

    def stable(self):
        z = self.args[0]
        e = sp.exp(-sp.Abs(z))
        return sp.Piecewise((1 / (1 + e), z >= 0), (e / (1 + e), True))

    _eval_rewrite_as_exp = _Op._rewrite_as_definition

    def _latex(self, printer):
        return r"\sigma\left(%s\right)" % printer._print(self.args[0])


class softplus(_Op):
    """softplus(z) = log(1+e^z), computed stably; softplus'(z) = σ(z)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _mp(self, z):
        return max(z, 0) + mpmath.log1p(mpmath.exp(-abs(z)))

    def definition(self):
        return sp.log(1 + sp.exp(self.args[0]))

    def stable(self):
        z = self.args[0]
        return sp.Max(z, 0) + log1p(sp.exp(-sp.Abs(z)))

    _eval_rewrite_as_exp = _Op._rewrite_as_definition

    def _latex(self, printer):
        return r"\operatorname{softplus}\left(%s\right)" % printer._print(self.args[0])


class relu(_Op):
    """relu(z) = max(z, 0). Convention at the kink: relu'(0) = 0 (as PyTorch and JAX)."""

    nargs = 1

    def fdiff(self, argindex=1):
        z = self.args[0]
        # Explicit rule: sympy's Heaviside(0) = 1/2 would silently differ from every framework.
        return sp.Piecewise((sp.S.One, z > 0), (sp.S.Zero, True))

    def definition(self):
        z = self.args[0]
        return sp.Piecewise((z, z > 0), (sp.S.Zero, True))

    _eval_rewrite_as_Piecewise = _Op._rewrite_as_definition

    def _latex(self, printer):
        return r"\operatorname{ReLU}\left(%s\right)" % printer._print(self.args[0])


class leaky_relu(_Op):
    """leaky_relu(z, α) = z if z > 0 else α·z. Convention: derivative at 0 is α."""

    nargs = 2

    def fdiff(self, argindex=1):
        z, alpha = self.args
        if argindex == 1:
            return sp.Piecewise((sp.S.One, z > 0), (alpha, True))
        return sp.Piecewise((sp.S.Zero, z > 0), (z, True))

    def definition(self):
        z, alpha = self.args
        return sp.Piecewise((z, z > 0), (alpha * z, True))

    _eval_rewrite_as_Piecewise = _Op._rewrite_as_definition

    def _latex(self, printer):
        z, a = (printer._print(a) for a in self.args)
        return r"\operatorname{LeakyReLU}_{%s}\left(%s\right)" % (a, z)


class elu(_Op):
    """elu(z, α) = z if z > 0 else α(e^z − 1). Convention: derivative at 0 is α."""

    nargs = 2

    def fdiff(self, argindex=1):
        z, alpha = self.args
        if argindex == 1:
            return sp.Piecewise((sp.S.One, z > 0), (alpha * sp.exp(z), True))
        return sp.Piecewise((sp.S.Zero, z > 0), (sp.exp(z) - 1, True))

    def definition(self):
        z, alpha = self.args
        return sp.Piecewise((z, z > 0), (alpha * (sp.exp(z) - 1), True))

    def stable(self):
        z, alpha = self.args
        # expm1 keeps the digits of e^z - 1 near 0; -|z| is z where the branch is taken
        return sp.Piecewise((z, z > 0), (alpha * expm1(-sp.Abs(z)), True))

    _eval_rewrite_as_Piecewise = _Op._rewrite_as_definition

    def _latex(self, printer):
        z, a = (printer._print(a) for a in self.args)
        return r"\operatorname{ELU}_{%s}\left(%s\right)" % (a, z)


class bce_logits(_Op):
    """Binary cross-entropy on a logit: y·softplus(−a) + (1−y)·softplus(a).

    Its gradient is the textbook σ(a) − y. Computing it through σ and log would give
    NaN for |a| > ~37 in float64 (aesara-devs/aeppl#156); this form is finite everywhere.
    """

    nargs = 2

    def fdiff(self, argindex=1):
        a, y = self.args
        return sigmoid(a) - y if argindex == 1 else -a

    def definition(self):
        a, y = self.args
        return y * softplus(-a).definition() + (1 - y) * softplus(a).definition()

    def stable(self):
        # softplus(a) - y·a, with its two terms kept apart: for 0 <= y <= 1 both are >= 0 on
        # each side, so nothing cancels (a - y·a + log1p(e) would lose log1p(e) for y = 1).
        a, y = self.args
        tail = log1p(sp.exp(-sp.Abs(a)))
        return sp.Piecewise(((1 - y) * a + tail, a > 0), (-y * a + tail, True))

    _eval_rewrite_as_exp = _Op._rewrite_as_definition

    def _latex(self, printer):
        a, y = (printer._print(x) for x in self.args)
        return r"\operatorname{BCE}_{\text{logits}}\left(%s, %s\right)" % (a, y)


def gelu(z: sp.Expr) -> sp.Expr:
    """GELU in its exact erf form, a composite: z·(1+erf(z/√2))/2."""
    return z * (1 + sp.erf(z / sp.sqrt(2))) / 2


def silu(z: sp.Expr) -> sp.Expr:
    """SiLU / swish, a composite: z·σ(z)."""
    return z * sigmoid(z)


swish = silu

#: Our own ops, by name. The parser and the codegen both read this table.
OPS: dict[str, type[_Op]] = {
    c.__name__: c for c in (sigmoid, softplus, relu, leaky_relu, elu, bce_logits)
}


class AfterExp(sp.Function):
    """An op of ``EXP_FIRST`` whose e^-|a| was computed beforehand and is its last argument.
    Only printed, never differentiated: the code generator makes these after derivation, to
    compute e^-|a| for all samples in a loop of its own (codegen/maps.py)."""


class sigmoid_e(AfterExp):  # noqa: N801 (named as the helper it prints as)
    nargs = 2


class softplus_e(AfterExp):  # noqa: N801
    nargs = 2


class bce_logits_e(AfterExp):  # noqa: N801
    nargs = 3


#: The ops that compute e^-|a| of their first argument a first, and their forms that take it.
EXP_FIRST: dict[type[_Op], type[AfterExp]] = {sigmoid: sigmoid_e, softplus: softplus_e, bce_logits: bce_logits_e}

#: Numba helper source for each op. ``F`` is the dtype constructor (np.float32 or
#: np.float64) so that constants never promote float32 to float64. ``jit_inline`` inlines
#: them where they are called, so the vm functions inside stay small enough for LLVM to
#: inline in turn, and the loops calling them vectorise.
HELPERS: dict[str, str] = {
    "sigmoid": (
        "@jit_inline\n"
        "def sigmoid(z):\n"
        "    return sigmoid_e(z, vm.exp(-abs(z)))  # e^-|z| never overflows\n"
    ),
    "sigmoid_e": (
        "@jit_inline\n"
        "def sigmoid_e(z, e):\n"
        "    # e = e^-|z|; a select, not a branch, so loops over it vectorise\n"
        "    s = F(1.0) / (F(1.0) + e)\n"
        "    return s if z >= F(0.0) else e * s\n"
    ),
    "softplus": (
        "@jit_inline\n"
        "def softplus(z):\n"
        "    return softplus_e(z, vm.exp(-abs(z)))\n"
    ),
    "softplus_e": (
        "@jit_inline\n"
        "def softplus_e(z, e):\n"
        "    # log(1+e^z) = max(z,0) + log1p(e^-|z|): finite for any z\n"
        "    return max(z, F(0.0)) + vm.log1p(e)\n"
    ),
    "relu": (
        "@jit_inline\n"
        "def relu(z):\n"
        "    return z if z > F(0.0) else F(0.0)\n"
    ),
    "leaky_relu": (
        "@jit_inline\n"
        "def leaky_relu(z, alpha):\n"
        "    return z if z > F(0.0) else alpha * z\n"
    ),
    "elu": (
        "@jit_inline\n"
        "def elu(z, alpha):\n"
        "    return z if z > F(0.0) else alpha * vm.expm1(z)\n"
    ),
    "bce_logits": (
        "@jit_inline\n"
        "def bce_logits(a, y):\n"
        "    return bce_logits_e(a, y, vm.exp(-abs(a)))\n"
    ),
    "bce_logits_e": (
        "@jit_inline\n"
        "def bce_logits_e(a, y, e):\n"
        "    # y*softplus(-a) + (1-y)*softplus(a) == softplus(a) - y*a, with e = e^-|a|. max(a,0) - y*a\n"
        "    # first: for 0 <= y <= 1 it is >= 0, so adding log1p(e) last keeps its digits (y = 1, a = 30)\n"
        "    return (max(a, F(0.0)) - y * a) + vm.log1p(e)\n"
    ),
    "radd": (
        "@jit_reduce\n"
        "def radd(a, b):\n"
        "    # a running sum's '+': the terms are computed exactly as written, only their order may change\n"
        "    return a + b\n"
    ),
    "pow2": "@jit_inline\ndef pow2(x):\n    return x * x\n",
    "pow3": "@jit_inline\ndef pow3(x):\n    return x * x * x\n",
    "pow4": "@jit_inline\ndef pow4(x):\n    x2 = x * x\n    return x2 * x2\n",
    "sign": (
        "@jit_inline\n"
        "def sign(z):\n"
        "    # sign(0) = 0: the convention for |x|' at the kink\n"
        "    if z > F(0.0):\n"
        "        return F(1.0)\n"
        "    if z < F(0.0):\n"
        "        return F(-1.0)\n"
        "    return F(0.0)\n"
    ),
}


#: Helpers that print in terms of others.
HELPER_NEEDS: dict[str, str] = {"sigmoid": "sigmoid_e", "softplus": "softplus_e", "bce_logits": "bce_logits_e"}


def expand_ops(expr: sp.Expr) -> sp.Expr:
    """Replace every symgrad op by its definition in SymPy primitives.

    Used to verify our rules against plain ``sympy.diff`` and high-precision evaluation.

    >>> z = sp.Symbol("z", real=True)
    >>> expand_ops(softplus(z))
    log(exp(z) + 1)
    """
    return expr.replace(lambda e: isinstance(e, _Op), lambda e: e.definition())


#: Conventions at kinks, printed by ``explain`` and in the docs.
KINK_CONVENTIONS: dict[str, str] = {
    "relu": "relu'(0) = 0",
    "Abs": "|x|' = sign(x), sign(0) = 0",
    "leaky_relu": "leaky_relu'(0) = alpha",
    "elu": "elu'(0) = alpha",
    "Max": "at a tie, max/min take the derivative of the later argument, constants last: d max(x, 0)/dx = 0 at 0",
}
