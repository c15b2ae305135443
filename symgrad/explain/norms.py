"""The notation of layer normalisation in the printed formulas (modelled on ``imaging``).

Each operation is a SymPy function that prints itself, in text and in LaTeX; the one that gives
a printout its value, ``Normalised``, also says what it means (its ``legend`` entry, listed by
``imaging.legends`` under the Backward heading when a printout uses it).

For ``x̂ = layernorm(x)``, with ``σ_x = √(var(x) + ε)``, the delta rule is

    δ_x = (δ_x̂ − mean(δ_x̂) − x̂ ⊙ mean(δ_x̂ ⊙ x̂)) / σ_x

and for a sequence normalised per position (``layernorm_pos``, each row of the T × d matrix X),
the same with ``rowmean``, the mean of each position's d features, and σ one per position.
A parameter broadcast over the positions (γ, β, a position-wise layer's bias) gets ``Σ_t``, the
sum of its delta over the positions.

>>> d, n, z = sp.Symbol("δ_n2"), sp.Symbol("n2"), sp.Symbol("z1")
>>> print(text(NormBackward(d, n, z, 1e-5), mul=" ⊙ "))
(δ_n2 - mean(δ_n2) - n2 ⊙ mean(n2 ⊙ δ_n2))/σ_z1
>>> print(tex(NormBackward(d, n, z, 1e-5), hadamard=True))
\\frac{1}{\\sigma_{z_{1}}} \\left(\\delta_{n_{2}} - \\operatorname{mean}\\left(\\delta_{n_{2}}\\right) - n_{2} \\odot \\operatorname{mean}\\left(n_{2} \\odot \\delta_{n_{2}}\\right)\\right)
>>> print(text(Normalised(z, 1e-3)), tex(Normalised(z, 1e-5)))
layernorm(z1, ε=0.001) \\operatorname{layernorm}\\left(z_{1}\\right)
>>> print(text(PosNormBackward(d, n, z, 1e-5), mul=" ⊙ "), "|", text(PosNormalised(z, 1e-5)))
(δ_n2 - rowmean(δ_n2) - n2 ⊙ rowmean(n2 ⊙ δ_n2))/σ_z1 | layernorm_pos(z1)
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from ..lang.norm import EPS
from .imaging import add_legends
from .printing import tex, text  # noqa: F401 (the examples above print with them)


class Mean(sp.Function):
    """mean(v): the mean of a vector's entries (one number, per sample)."""

    nargs = 1

    def _sympystr(self, p):
        return f"mean({p._print(self.args[0])})"

    def _latex(self, p):
        return r"\operatorname{mean}\left(%s\right)" % p._print(self.args[0])


class RowMean(Mean):
    """rowmean(V): the mean of each position's features (a column of T, per sample)."""

    def _sympystr(self, p):
        return f"rowmean({p._print(self.args[0])})"

    def _latex(self, p):
        return r"\operatorname{rowmean}\left(%s\right)" % p._print(self.args[0])


class Sigma(sp.Function):
    """σ_x = √(var(x) + ε) of the vector x: args x, ε."""

    nargs = 2

    def _sympystr(self, p):
        x = self.args[0]
        return f"σ_{p._print(x)}" if x.is_Symbol else f"σ_({p._print(x)})"

    def _latex(self, p):
        return r"\sigma_{%s}" % p._print(self.args[0])


class Normalised(sp.Function):
    """layernorm(x): (x − mean(x))/σ_x, a layer's normalised value; args x, ε."""

    nargs = 2
    family = "Normalisation"
    #: the printed name in text, and in LaTeX with its subscript (the per-position and batch
    #: forms set their own; a given ε joins the subscript, since LaTeX refuses two)
    text_name, tex_name, tex_sub = "layernorm", r"\operatorname{layernorm}", ""
    legend = (("layernorm(x) = (x - mean(x))/σ_x", r"\operatorname{layernorm}(x) = (x - \operatorname{mean}(x))/\sigma_{x}"),
              ", ", ("σ_x = √(var(x) + ε)", r"\sigma_{x} = \sqrt{\operatorname{var}(x) + \varepsilon}"),
              " over each sample's entries (var biased; ", ("ε = 1e-05", r"\varepsilon = 10^{-5}"), " unless given)")

    def _sympystr(self, p):
        eps = float(self.args[1])
        more = "" if eps == EPS else f", ε={eps:g}"
        return f"{self.text_name}({p._print(self.args[0])}{more})"

    def _latex(self, p):
        eps = float(self.args[1])
        subs = [s for s in (self.tex_sub, "" if eps == EPS else r"\varepsilon = %s" % f"{eps:g}") if s]
        sub = "_{%s}" % ", ".join(subs) if subs else ""
        return r"%s%s\left(%s\right)" % (self.tex_name, sub, p._print(self.args[0]))


class NormBackward(sp.Function):
    """δ_x = (δ − mean(δ) − x̂ ⊙ mean(δ ⊙ x̂))/σ_x: args δ (of x̂), x̂, x, ε."""

    nargs = 4
    precedence = PRECEDENCE["Mul"]

    def _parts(self) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
        d, xh, x, eps = self.args
        return d, Mean(d), xh * Mean(d * xh), Sigma(x, eps)

    def _sympystr(self, p):
        d, m, proj, s = self._parts()
        return f"({p._print(d)} - {p._print(m)} - {p.parenthesize(proj, PRECEDENCE['Add'])})/{p._print(s)}"

    def _latex(self, p):
        d, m, proj, s = self._parts()
        inner = f"{p._print(d)} - {p._print(m)} - {p.parenthesize(proj, PRECEDENCE['Add'])}"
        return r"\frac{1}{%s} \left(%s\right)" % (p._print(s), inner)


class PosNormalised(Normalised):
    """layernorm_pos(X): (X − rowmean(X))/σ_X, each position (row) of a sequence; args X, ε."""

    text_name, tex_sub = "layernorm_pos", r"\text{pos}"

    legend = (("layernorm_pos(X) = (X - rowmean(X))/σ_X", r"\operatorname{layernorm}_{\text{pos}}(X) = "
               r"(X - \operatorname{rowmean}(X))/\sigma_{X}"), ", ",
              ("σ_X = √(rowvar(X) + ε)", r"\sigma_{X} = \sqrt{\operatorname{rowvar}(X) + \varepsilon}"),
              " per position (each row of the ", ("T × d", r"T \times d"), " sequence X, over its d features; var biased; ",
              ("ε = 1e-05", r"\varepsilon = 10^{-5}"), " unless given)")


class PosNormBackward(NormBackward):
    """NormBackward per position: rowmean for mean, σ_x one per position."""

    def _parts(self):
        d, xh, x, eps = self.args
        return d, RowMean(d), xh * RowMean(d * xh), Sigma(x, eps)


class _SumOver(sp.Function):
    """Σ δ, printed with the sum's subscript (``sign``: text and LaTeX)."""

    nargs = 1
    sign = ("Σ", r"\sum")

    def _sympystr(self, p):
        return f"{self.sign[0]} " + p.parenthesize(self.args[0], PRECEDENCE["Mul"])

    def _latex(self, p):
        return f"{self.sign[1]} " + p.parenthesize(self.args[0], PRECEDENCE["Mul"])


class SumOverPositions(_SumOver):
    """Σ_t δ: a delta summed over a sequence's positions (the gradient of a parameter that every
    position shares: LayerNorm's γ and β, a position-wise layer's bias)."""

    sign = ("Σ_t", r"\sum_{t}")
    family = "Sequence"
    legend = (sign, " sums over the positions (a parameter every position shares)")


class SumOverEntries(_SumOver):
    """Σ δ: a delta summed over its entries (the gradient of a number every entry uses: a scale s of s·z)."""

    family = "Vector"
    legend = (_SumOver.sign, " sums a vector's entries (a number every entry uses)")


class BatchMean(Mean):
    """mean_B(v): the mean of each feature over the minibatch's samples."""

    def _sympystr(self, p):
        return f"mean_B({p._print(self.args[0])})"

    def _latex(self, p):
        return r"\operatorname{mean}_{B}\left(%s\right)" % p._print(self.args[0])


class BatchSigma(Sigma):
    """σ_B = √(var_B(x) + ε) of each feature of x over the minibatch: args x, ε."""

    def _sympystr(self, p):
        return "σ_B" + super()._sympystr(p)[1:]

    def _latex(self, p):
        return r"\sigma_{B, %s}" % p._print(self.args[0])


class BatchNormalised(Normalised):
    """batchnorm(x): (x − mean_B(x))/σ_B in training, by the running statistics in inference."""

    text_name, tex_name = "batchnorm", r"\operatorname{batchnorm}"

    legend = (("batchnorm(x) = (x - mean_B(x))/σ_B", r"\operatorname{batchnorm}(x) = (x - \operatorname{mean}_{B}(x))/\sigma_{B}"),
              ", ", ("σ_B = √(var_B(x) + ε)", r"\sigma_{B} = \sqrt{\operatorname{var}_{B}(x) + \varepsilon}"),
              " per feature (an image's channel: over its positions too) over the minibatch in training (var biased); "
              "predict and evaluate use running statistics")


class BatchNormBackward(NormBackward):
    """NormBackward over the minibatch: mean_B for mean, σ_B per feature (each sample's δ_x depends
    on every sample's δ, as the batch's statistics do)."""

    def _parts(self):
        d, xh, x, eps = self.args
        return d, BatchMean(d), xh * BatchMean(d * xh), BatchSigma(x, eps)


class SumOverChannel(SumOverPositions):
    """Σ_hw δ: a delta summed over each channel's positions of an image (a parameter with one entry
    per channel: batch norm's γ and β)."""

    sign = ("Σ_hw", r"\sum_{h,w}")
    family = "Convolution"
    legend = (sign, " sums over each channel's positions (a parameter per channel)")


add_legends(Normalised, PosNormalised, BatchNormalised, SumOverPositions, SumOverChannel, SumOverEntries)
