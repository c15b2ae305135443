"""symgrad: gradients you can read, training at native speed.

>>> import sympy as sp, symgrad as sg
>>> x = sp.Symbol("x", real=True)
>>> sg.grad(sp.cos(sp.sin(x**2) + 3*x**2), x)
-2*x*(cos(x**2) + 3)*sin(3*x**2 + sin(x**2))
"""

import sys

from .api import compile, compile_residuals, explain, formulas, grad
from .errors import SymgradError
from .lang import losses, nn, ops, optim
from .lang.attention import attention
from .lang.batchnorm import batchnorm
from .lang.conv import avgpool2d, conv2d, maxpool2d
from .lang.dropout import dropout
from .lang.embedding import embedding
from .lang.functions import bce_sum, elementwise, logsumexp, mean, msum, softmax, softmax_ce
from .lang.nn import activation
from .lang.norm import layernorm
from .lang.parse import parse_expr
from .lang.rowwise import broadcast, rowmatmul
from .runtime.epochs import GradientHealthWarning
from .runtime.fit import Trained, fit
from .runtime.generate import generate
from .runtime.nonfinite import NonFiniteWarning
from .runtime.persist import load
from .testing import GradCheck, GradientCheckError, check_grads

__all__ = [
    "GradCheck", "GradientCheckError", "GradientHealthWarning", "NonFiniteWarning", "SymgradError", "Trained", "attention", "avgpool2d", "batchnorm", "bce_sum", "check_grads", "conv2d", "dropout", "elementwise", "embedding", "activation", "compile", "compile_residuals", "explain", "fit", "formulas", "generate", "grad", "layernorm", "load", "logsumexp",
    "losses", "maxpool2d", "mean", "msum", "nn", "ops", "optim", "parse_expr", "softmax", "softmax_ce",
    "broadcast", "rowmatmul",
]
__version__ = "0.1.0"

# The language modules live in symgrad/lang/ with the rest of the pipeline, but users write
# ``from symgrad.ops import sigmoid`` and ``import symgrad.nn``: those names stay importable.
for _m in (losses, nn, ops, optim):
    sys.modules[f"{__name__}.{_m.__name__.rsplit('.', 1)[1]}"] = _m
