"""The notation of convolution and pooling in the printed formulas.

Each operation is a SymPy function that prints itself, in text and in LaTeX, so a delta rule is
an expression, not a string to parse back, and each says what it means (``legend``): a printout
lists, under its Backward heading, only the operations it uses (:func:`legends`).

The backward rules of ``Z = K ⋆ X + b`` (stride s, zero padding p, k×k kernels) are then

- ``∂ℓ/∂K = pad_p(X) ⋆ dilate_s(δ_Z)``: the valid correlation of the input with the delta;
- ``∂ℓ/∂b = Σ δ_Z``: the sum over the positions, per channel;
- ``δ_X = crop_p(pad_k−1(dilate_s(δ_Z)) ⋆ rot180(K))``: the full convolution ``dilate_s(δ_Z) ∗ K``,
  written as the textbook writes it, a full correlation with the rotated kernel.

>>> d, K = sp.Symbol("δ_z3"), sp.Symbol("K3")
>>> print(text(crop(Correlate(pad(dilate(d, 2, 2), 2, 2), Rot180(K)), 1, 1)))
crop_1(pad_2(dilate_2(δ_z3)) ⋆ rot180(K3))
>>> print(tex(Rot180(K)))
\\operatorname{rot180}\\left(K_{3}\\right)
>>> print(text(Conv(K, sp.Symbol("p2"), sp.Symbol("b3"), 32, 16, 3, 3, 2, 2, 1, 1)))
K3 ⋆ p2 + b3
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from ..lang.walk import nodes
from .printing import tex, tex_text, text

#: ⋆ binds looser than ⊙ (a product of correlations is parenthesised) and tighter than +.
INFIX = (PRECEDENCE["Add"] + PRECEDENCE["Mul"]) // 2
#: A legend line longer than this (in text) goes on with the next line.
WIDTH = 120

#: The tie convention of max pooling, as the image kernels implement it (kinds/image_kernels.py).
MAXPOOL_TIE = ("maxpool: at a tie δ goes to the window's first largest value in row-major order "
               "(a NaN counts as largest)",
               r"\operatorname{maxpool}\text{: at a tie }\delta\text{ goes to the window's first largest value in "
               r"row-major order (a NaN counts as largest)}")

# math pieces of the legends: (text, LaTeX)
_P, _DELTA, _KK = ("p", "p"), ("δ", r"\delta"), ("k×k", r"k \times k")


def _pair(a: int, b: int, latex: bool) -> str:
    if a == b:
        return f"{a}"
    return f"{a},{b}" if latex else f"({a},{b})"


def _join(parts, latex: bool) -> str:
    """Words and (text, LaTeX) math pieces as one line: plain words in LaTeX go in ``\\text``."""
    if not latex:
        return "".join(p if isinstance(p, str) else p[0] for p in parts)
    return "".join(tex_text(p) if isinstance(p, str) else p[1] for p in parts)


class ImageOp(sp.Function):
    """``word_k(arg)``: an image operation of one argument, subscripted by a size pair."""

    word = ""
    family = "Convolution"  # the legend line it is listed in
    legend: tuple = ()  # its meaning: words and (text, LaTeX) math pieces

    def sub(self, latex: bool) -> str:
        if len(self.args) < 3:
            return ""
        s = _pair(int(self.args[1]), int(self.args[2]), latex)
        return f"_{{{s}}}" if latex else f"_{s}"

    def _sympystr(self, p):
        return f"{self.word}{self.sub(False)}({p._print(self.args[0])})"

    def _latex(self, p):
        return r"\operatorname{%s}%s\left(%s\right)" % (self.word, self.sub(True), p._print(self.args[0]))


class Correlate(sp.Function):
    """``A ⋆ B``: the valid cross-correlation, the smaller operand slid over the larger."""

    precedence = INFIX
    family = "Convolution"
    legend = (("⋆", r"\star"), " is cross-correlation (the smaller operand slides over the larger, shared channels "
                               "summed; in the backward valid, stride 1)")

    def _infix(self, p, op: str) -> str:
        a, b = (p.parenthesize(x, PRECEDENCE["Mul"]) for x in self.args[:2])
        return f"{a} {op} {b}"

    def _sympystr(self, p):
        return self._infix(p, "⋆")

    def _latex(self, p):
        return self._infix(p, r"\star")


class Conv(Correlate):
    """A convolution layer's value ``K ⋆ X + b``, with its geometry for the note after it:
    K, X, b (0: none), c_out, c_in, kh, kw, stride_h, stride_w, pad_h, pad_w."""

    @property
    def precedence(self):
        return PRECEDENCE["Add"] if self.args[2] != 0 else INFIX

    def _infix(self, p, op: str) -> str:
        b = self.args[2]
        return super()._infix(p, op) + ("" if b == 0 else f" + {p._print(b)}")

    def note(self, latex: bool) -> str:
        """``(K1: 16×1×3×3, stride 1, padding 1)``: the kernel's shape and the layer's geometry."""
        c_out, c_in, kh, kw, sh, sw, ph, pw = (int(v) for v in self.args[3:])
        K = tex(self.args[0]) if latex else text(self.args[0])
        dims = (r" \times " if latex else "×").join(str(v) for v in (c_out, c_in, kh, kw))
        rest = f", stride {_pair(sh, sw, False)}, padding {_pair(ph, pw, False)}"
        return rf"\quad ({K}\text{{: }}{dims}\text{{{rest}}})" if latex else f"   ({K}: {dims}{rest})"


class Rot180(ImageOp):
    word = "rot180"
    legend = (("rot180", r"\operatorname{rot180}"), " turns each kernel by ", ("180°", r"180^{\circ}"),
              " and swaps its channels (",
              ("pad_k−1(A) ⋆ rot180(K)", r"\operatorname{pad}_{k-1}(A) \star \operatorname{rot180}(K)"),
              " is the full convolution ", ("A ∗ K", r"A \ast K"), ")")


class Dilate(ImageOp):
    word = "dilate"
    legend = (("dilate_s", r"\operatorname{dilate}_{s}"), " puts ", ("s − 1", "s - 1"),
              " zeros between the entries of ", _DELTA, " (and after them, to its size at stride 1)")


class Pad(ImageOp):
    word = "pad"
    legend = (("pad_p", r"\operatorname{pad}_{p}"), " adds ", _P, " zero rows and columns at each border")


class Crop(ImageOp):
    word = "crop"
    legend = (("crop_p", r"\operatorname{crop}_{p}"), " removes ", _P, " rows and columns at each border")


class SumPositions(ImageOp):
    """Σ δ: the sum over the positions of each channel (a convolution's bias gradient)."""

    legend = (("Σ", r"\sum"), " sums over the positions, per channel")

    def _sympystr(self, p):
        return "Σ " + p.parenthesize(self.args[0], PRECEDENCE["Mul"])

    def _latex(self, p):
        return r"\sum " + p.parenthesize(self.args[0], PRECEDENCE["Mul"])


class MaxPool(ImageOp):
    """maxpool_k(X): args X, kh, kw, stride_h, stride_w."""

    word, family, kink = "maxpool", "Pooling", MAXPOOL_TIE
    legend = (("maxpool_k", r"\operatorname{maxpool}_{k}"), " takes each ", _KK, " window's largest value")


class AvgPool(ImageOp):
    """avgpool_k(X): args X, kh, kw, stride_h, stride_w."""

    word, family = "avgpool", "Pooling"
    legend = (("avgpool_k", r"\operatorname{avgpool}_{k}"), " takes each ", _KK, " window's mean")


class MaxUnpool(ImageOp):
    word, family = "maxunpool", "Pooling"
    legend = (("maxunpool_k", r"\operatorname{maxunpool}_{k}"), " puts each window's ", _DELTA,
              " at the window's arg-max, 0 elsewhere")


class Upsample(ImageOp):
    word, family = "upsample", "Pooling"
    legend = (("upsample_k", r"\operatorname{upsample}_{k}"), " copies each window's ", _DELTA,
              " to all its entries")


def pad(e, ph: int, pw: int) -> sp.Expr:
    return e if (ph, pw) == (0, 0) else Pad(e, ph, pw)


def crop(e, ph: int, pw: int) -> sp.Expr:
    return e if (ph, pw) == (0, 0) else Crop(e, ph, pw)


def dilate(e, sh: int, sw: int) -> sp.Expr:
    return e if (sh, sw) == (1, 1) else Dilate(e, sh, sw)


def _note(e: sp.Basic, latex: bool) -> str:
    if isinstance(e, Conv):
        return e.note(latex)
    if tuple(e.args[1:3]) == tuple(e.args[3:5]):  # a pooling whose stride is its size
        return ""
    overlap = "; the windows overlap, their deltas add up" if e.args[3] < e.args[1] or e.args[4] < e.args[2] else ""
    s = f"(stride {_pair(int(e.args[3]), int(e.args[4]), False)}{overlap})"
    return rf"\quad \text{{{s}}}" if latex else f"   {s}"


def notes(exprs, latex: bool) -> list[str]:
    """What follows each forward equation: the geometry of each convolution (its kernel's shape,
    stride and padding) and the stride of each pooling whose stride is not its window's size,
    on the first equation that shows it."""
    seen: set[sp.Basic] = set()
    out = []
    for e in exprs:
        found = [a for a in nodes(e) if isinstance(a, (Conv, MaxPool, AvgPool)) and a not in seen]
        seen.update(found)
        out.append("".join(_note(a, latex) for a in found))
    return out


#: The order in which the operations are explained; Conv is explained by Correlate's entry.
#: Other notations append theirs (``add_legends``), each family one more legend line.
_LEGEND_ORDER = [Correlate, Rot180, Dilate, Pad, Crop, SumPositions, MaxPool, AvgPool, MaxUnpool, Upsample]


def add_legends(*ops: type) -> None:
    """Explain ``ops`` too (each has ``family`` and ``legend``), after those already listed:
    how another notation (explain/norms.py) gets its legend line."""
    _LEGEND_ORDER.extend(op for op in ops if op not in _LEGEND_ORDER)


def _used(exprs) -> set[type]:
    used = {type(f) for e in exprs for f in e.atoms(sp.Function)}
    return used | ({Correlate} if Conv in used else set())


def legends(exprs, latex: bool) -> list[str]:
    """The legend lines (``Convolution: ...``, ``Pooling: ...``, ...) of the operations ``exprs`` use,
    entries separated by "; ", a line that grows past WIDTH going on with an indented one."""
    used, lines = _used(exprs), []
    found = {c: [f for e in exprs for f in e.atoms(c)] for c in used if hasattr(c, "legend_for")}
    for family in dict.fromkeys(c.family for c in _LEGEND_ORDER):
        # a legend with the values the formulas use (Huber's δ), or the operation's fixed one
        entries = [c.legend_for(found[c]) if c in found else c.legend
                   for c in _LEGEND_ORDER if c.family == family and c in used]
        if not entries:
            continue
        rows = [[f"{family}: ", *entries[0]]]
        for entry in entries[1:]:
            if len(_join([*rows[-1], "; ", *entry], False)) > WIDTH:
                rows[-1].append(";")
                rows.append([("    ", r"\quad "), *entry])
            else:
                rows[-1] += ["; ", *entry]
        lines += [_join(r, latex) for r in rows]
    return lines


def kink_notes(exprs, latex: bool) -> list[str]:
    """The tie conventions of the operations ``exprs`` use (max pooling's)."""
    return [MaxPool.kink[1 if latex else 0]] if MaxPool in _used(exprs) else []
