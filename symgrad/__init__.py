"""symgrad: gradients you can read, training at native speed.

>>> import sympy as sp, symgrad as sg
>>> x = sp.Symbol("x", real=True)
>>> sg.grad(sp.cos(sp.sin(x**2) + 3*x**2), x)
-2*x*(cos(x**2) + 3)*sin(3*x**2 + sin(x**2))
"""

from . import losses, nn, ops, optim
from .api import compile, compile_residuals, explain, formulas, grad
from .errors import SymgradError
from .nn import activation
from .parse import parse_expr
from .tensor.functions import bce_sum, elementwise, logsumexp, mean, msum, softmax, softmax_ce
from .testing import GradCheck, GradientCheckError, check_grads
from .train import Trained, fit

__all__ = [
    "GradCheck", "GradientCheckError", "SymgradError", "Trained", "bce_sum", "check_grads", "elementwise", "activation", "compile", "compile_residuals", "explain", "fit", "formulas", "grad", "logsumexp",
    "losses", "mean", "msum", "nn", "ops", "optim", "parse_expr", "softmax", "softmax_ce",
]
__version__ = "0.1.0"
