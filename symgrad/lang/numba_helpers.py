"""The Numba source that symgrad's ops print as, and the forms of them that take e^-|a|.

``HELPERS`` holds one helper per op (and a few for powers, sign and running sums); the code
printer prints an op as a call to its helper, and the generated module defines the helpers it
calls. The ``AfterExp`` forms exist only after derivation: the code generator makes them where
it computes e^-|a| for all samples first (``ops.EXP_FIRST``, codegen/maps.py).

>>> print(HELPERS["relu"], end="")
@jit_inline
def relu(z):
    # 'not <=' so that relu(nan) is nan (torch.relu, np.maximum), not a silent 0
    return z if not (z <= F(0.0)) else F(0.0)
"""

from __future__ import annotations

import sympy as sp


class AfterExp(sp.Function):
    """An op of ``EXP_FIRST`` whose e^-|a| was computed beforehand and is its last argument.
    Only printed, never differentiated: the code generator makes these after derivation, to
    compute e^-|a| for all samples in a loop of its own (codegen/maps.py). Real, so that SymPy
    writes |exp(σ(a) − 1)| as exp(σ(a) − 1), not exp(re(...)), which no printer knows."""

    is_real = True


class sigmoid_e(AfterExp):  # noqa: N801 (named as the helper it prints as)
    nargs = 2


class softplus_e(AfterExp):  # noqa: N801
    nargs = 2


class bce_logits_e(AfterExp):  # noqa: N801
    nargs = 3


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
        "    # 'not <=' so that relu(nan) is nan (torch.relu, np.maximum), not a silent 0\n"
        "    return z if not (z <= F(0.0)) else F(0.0)\n"
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
    "logcosh": (
        "@jit_inline\n"
        "def logcosh(z):\n"
        "    # log(cosh z) = log1p((cosh|z| - 1)) with cosh m - 1 = expm1(m)²·e^-m/2 below 1 (no cancelling),\n"
        "    # |z| - log 2 + log1p(e^-2|z|) above (no overflow); a select, so loops over it vectorise\n"
        "    m = abs(z)\n"
        "    e = vm.exp(-m)\n"
        "    u = vm.expm1(min(m, F(1.0)))\n"
        "    small = vm.log1p(u * u * e * F(0.5))\n"
        "    large = m - F(0.6931471805599453) + vm.log1p(e * e)\n"
        "    return small if m < F(1.0) else large\n"
    ),
    "radd": (
        "@jit_reduce\n"
        "def radd(a, b):\n"
        "    # a running sum's '+': the terms are computed exactly as written, only their order may change\n"
        "    return a + b\n"
    ),
    "max2": (
        "@jit_inline\n"
        "def max2(a, b):\n"
        "    # Max of two with NaN propagating (np.maximum); Python's max(0.0, nan) is 0.0\n"
        "    return a if (a > b or a != a) else b\n"
    ),
    "min2": (
        "@jit_inline\n"
        "def min2(a, b):\n"
        "    # Min of two with NaN propagating (np.minimum); Python's min(1.0, nan) is 1.0\n"
        "    return a if (a < b or a != a) else b\n"
    ),
    "pow2": "@jit_inline\ndef pow2(x):\n    return x * x\n",
    "pow3": "@jit_inline\ndef pow3(x):\n    return x * x * x\n",
    "pow4": "@jit_inline\ndef pow4(x):\n    x2 = x * x\n    return x2 * x2\n",
    "sqrt_sq": (
        "@jit_inline\n"
        "def sqrt_sq(u, c):\n"
        "    # sqrt(u*u + c) for a number c > 0, scaled by |u| above 1: u*u overflows where the root does not\n"
        "    m = abs(u)\n"
        "    if m > F(1.0):\n"
        "        return m * math.sqrt(F(1.0) + (c / m) / m)\n"
        "    return math.sqrt(u * u + c)\n"
    ),
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
