"""The elementwise extension point: activations and their rules, as SymPy functions.

Each op is one small ``sympy.Function`` subclass. Its derivative rule is ``fdiff``
(derived from the defining formula unless a stable or kink-safe form is needed),
its definition in primitives is ``definition()``, and its Numba code is ``HELPERS``
(lang/numba_helpers.py). ``stable()`` is the definition arranged for floating point, which
SymPy's own code printers print, so that ``sympy.lambdify`` works on every expression symgrad
returns; the base class that wires this into SymPy is ``_Op`` (lang/opbase.py).
Everything else (printing, tests, codegen) follows from these.

>>> import sympy as sp
>>> z = sp.Symbol("z", real=True)
>>> sp.diff(sigmoid(z), z)
(1 - sigmoid(z))*sigmoid(z)
"""

from __future__ import annotations

import mpmath
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

# HELPERS and HELPER_NEEDS are read from here by the code generator (codegen/scalar.py, maps.py).
from .numba_helpers import HELPER_NEEDS, HELPERS, AfterExp, bce_logits_e, sigmoid_e, softplus_e  # noqa: F401
from .opbase import _Op


class sigmoid(_Op):
    """Logistic function σ(z) = 1/(1+e^{-z}); σ'(z) = σ(z)(1−σ(z))."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        # σ(−z) stays σ(−z): SymPy's 1 − σ(z) would cancel where σ(z) is near 1 (textbook_signs
        # writes it so for reading)
        return sp.S.Half if z.is_zero else None

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


def textbook_signs(e: sp.Basic) -> sp.Basic:
    """``e`` with σ(−a) written 1 − σ(a), as the notes write it (dJ/da = σ(a) − 1): for formulas
    handed back to read. Compiled code keeps σ(−a), which does not cancel where σ(a) is near 1.
    A sum whose every term holds σ(−a) has it taken out first: σ(−a)² − σ(−a) (σ(−a)'s derivative,
    expanded) reads σ(a)·(σ(a) − 1), not (1 − σ(a))² + σ(a) − 1."""
    def negated(n: sp.Basic) -> bool:
        return isinstance(n, sigmoid) and n.args[0].could_extract_minus_sign()

    def held(f: sp.Basic, term: sp.Basic) -> bool:
        return any(g == f or (g.is_Pow and g.base == f) for g in sp.Mul.make_args(term))

    def common(n: sp.Basic) -> bool:
        first = {g.base if g.is_Pow else g for g in sp.Mul.make_args(n.args[0])} if n.is_Add else ()
        return any(negated(f) and all(held(f, t) for t in n.args) for f in first)

    e = e.replace(common, sp.factor_terms)
    e = e.replace(negated, lambda n: 1 - sigmoid(-n.args[0]))

    def flip(m: sp.Mul) -> sp.Expr:  # −(1 − σ(a))·x as (σ(a) − 1)·x
        c, factors = m.as_coeff_mul()
        k = next(i for i, f in enumerate(factors) if f.is_Add and f.has(sigmoid))
        return sp.Mul(-c, *factors[:k], -factors[k], *factors[k + 1:])

    return e.replace(lambda n: n.is_Mul and n.as_coeff_mul()[0].is_negative
                     and any(f.is_Add and f.has(sigmoid) for f in n.args), flip)


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
        # 0 where z <= 0, so that NumPy's and mpmath's relu(nan) is nan, as the compiled code's
        return sp.Piecewise((sp.S.Zero, z <= 0), (z, True))

    _eval_rewrite_as_Piecewise = _Op._rewrite_as_definition

    def _latex(self, printer):
        return r"\operatorname{ReLU}\left(%s\right)" % printer._print(self.args[0])


class leaky_relu(_Op):
    """leaky_relu(z, α) = z if z > 0 else α·z (α = 0.01 if not given, as PyTorch's). Convention:
    derivative at 0 is α."""

    nargs, least_args = 2, 1

    def __new__(cls, z, alpha=None, **options):  # leaky_relu(z) named no α: SymPy's TypeError
        return super().__new__(cls, z, sp.Rational(1, 100) if alpha is None else alpha, **options)

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
    """elu(z, α) = z if z > 0 else α(e^z − 1) (α = 1 if not given, as PyTorch's). Convention:
    derivative at 0 is α."""

    nargs, least_args = 2, 1

    def __new__(cls, z, alpha=None, **options):
        return super().__new__(cls, z, sp.S.One if alpha is None else alpha, **options)

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
        # unevaluated: softplus of a number would already be a Float, which has no definition
        return (y * softplus(-a, evaluate=False).definition()
                + (1 - y) * softplus(a, evaluate=False).definition())

    def stable(self):
        # softplus(a) - y·a, with its two terms kept apart: for 0 <= y <= 1 both are >= 0 on
        # each side, so nothing cancels (a - y·a + log1p(e) would lose log1p(e) for y = 1).
        a, y = self.args
        tail = log1p(sp.exp(-sp.Abs(a)))
        # y = σ(u) (a sigmoid's entropy): 1 − σ(u) as σ(−u), or 1 − σ(40) is 0 where it is 4e-18
        rest = sigmoid(-y.args[0]) if isinstance(y, sigmoid) else 1 - y
        return sp.Piecewise((rest * a + tail, a > 0), (-y * a + tail, True))

    _eval_rewrite_as_exp = _Op._rewrite_as_definition

    def _latex(self, printer):
        a, y = (printer._print(x) for x in self.args)
        return r"\operatorname{BCE}_{\text{logits}}\left(%s, %s\right)" % (a, y)


class logcosh(_Op):
    """log(cosh(z)), the log-cosh loss of a residual z; logcosh'(z) = tanh(z). As written it is inf
    from |z| = 710 (cosh overflows: a fit stops as diverged at an outlier) and 0 for 5e-17 at 1e-8;
    computed as log1p(expm1(|z|)²·e^−|z|/2) below |z| = 1 and |z| − log 2 + log1p(e^−2|z|) above."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sp.tanh(self.args[0])

    def _mp(self, z):  # cosh(z) − 1 = 2·sinh²(z/2): log of cosh(5e-17) kept 2 digits at 117 bits
        return mpmath.log1p(2 * mpmath.sinh(z / 2) ** 2)

    def definition(self):
        return sp.log(sp.cosh(self.args[0]))

    def stable(self):
        m = sp.Abs(self.args[0])
        e = sp.exp(-m)
        small = log1p(expm1(sp.Min(m, 1)) ** 2 * e / 2)  # Min: NumPy computes both branches
        return sp.Piecewise((small, m < 1), (m - sp.log(2) + log1p(e * e), True))

    _eval_rewrite_as_exp = _eval_rewrite_as_cosh = _Op._rewrite_as_definition

    def _latex(self, printer):
        return r"\log\cosh\left(%s\right)" % printer._print(self.args[0])


def gelu(z: sp.Expr) -> sp.Expr:
    """GELU in its exact erf form, a composite: z·(1+erf(z/√2))/2."""
    return z * (1 + sp.erf(z / sp.sqrt(2))) / 2


def silu(z: sp.Expr) -> sp.Expr:
    """SiLU / swish, a composite: z·σ(z)."""
    return z * sigmoid(z)


swish = silu

#: Our own ops, by name. The parser and the codegen both read this table.
OPS: dict[str, type[_Op]] = {
    c.__name__: c for c in (sigmoid, softplus, relu, leaky_relu, elu, bce_logits, logcosh)
}

#: The ops that compute e^-|a| of their first argument a first, and their forms that take it.
EXP_FIRST: dict[type[_Op], type[AfterExp]] = {sigmoid: sigmoid_e, softplus: softplus_e, bce_logits: bce_logits_e}


def expand_ops(expr: sp.Expr) -> sp.Expr:
    """Replace every symgrad op by its definition in SymPy primitives.

    Used to verify our rules against plain ``sympy.diff`` and high-precision evaluation.

    >>> z = sp.Symbol("z", real=True)
    >>> expand_ops(softplus(z))
    log(exp(z) + 1)
    """
    # an op of numbers evaluates to a number when rebuilt: then there is nothing to expand
    return expr.replace(lambda e: isinstance(e, _Op), lambda e: e.definition() if isinstance(e, _Op) else e)


#: Conventions at kinks, printed by ``explain`` and in the docs.
KINK_CONVENTIONS: dict[str, str] = {
    "relu": "relu'(0) = 0",
    "Abs": "|x|' = sign(x), sign(0) = 0",
    "leaky_relu": "leaky_relu'(0) = alpha",
    "elu": "elu'(0) = alpha",
    "Max": "at a tie, max/min take the derivative of the later argument, constants last: d max(x, 0)/dx = 0 at 0",
}
