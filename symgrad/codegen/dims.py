"""The sizes a generated tensor module reads at run time instead of having them written in.

A module's functions take ``dims`` (one int64 array) first, and every size that comes from the
model's shapes (a layer's width, a parameter's offset in ``theta``, a convolution's geometry) is
an entry of it, named by what it is the size of, not by its value. Two models that differ only
in their numbers therefore generate the same text, share one cache file and one Numba
compilation (issue 21); each model carries its own ``dims`` (``jit.Bound``). The float
constants of layers and losses (dropout's rate, ε, Huber's δ) ride along as their float64 bits.
"""

from __future__ import annotations

import numpy as np

from ..derive.ir import TNode
from .names import reads


class Dims:
    """The entries of ``dims``, each read into a local variable named for what it is the size of
    (``n_v6``: node v6's length, ``r_W1``: W1's rows), never for its value, so the text does not
    depend on which sizes happen to be equal. ``scope`` keeps apart the functions whose node
    names mean other nodes (``predict`` lowers the model again).

    >>> d = Dims()
    >>> d.ref("", "n_v6", 7), d.ref("", "r_W1", 7), d.span("", "z3_g", (1, 8, 8))
    ('n_v6', 'r_W1', 'z3_g')
    >>> d.bind("", ["    v6 = np.empty((B, n_v6), dtype=F)"]), d.array().tolist()
    (['    n_v6 = dims[0]'], [7, 7, 1, 8, 8])
    """

    def __init__(self) -> None:
        self.values: list[int] = []
        self.vars: dict[tuple[str, str], tuple[int, int]] = {}  # (scope, variable) -> (first entry, count)
        self.floats: set[tuple[str, str]] = set()  # variables whose entry holds a float64's bits

    def _add(self, scope: str, var: str, values: tuple[int, ...]) -> str:
        hit = self.vars.get((scope, var))
        if hit is None:
            self.vars[(scope, var)] = (len(self.values), len(values))
            self.values += values
        elif tuple(self.values[hit[0]:hit[0] + hit[1]]) != values:
            # one name for two sizes: the generator named two different things alike
            raise AssertionError(f"dims variable {var!r} has sizes {values} and "
                                 f"{self.values[hit[0]:hit[0] + hit[1]]}")
        return var

    def ref(self, scope: str, var: str, value: int) -> str:
        """``var``, which the function reads from one entry of ``dims``."""
        return self._add(scope, var, (int(value),))

    def span(self, scope: str, var: str, values) -> str:
        """``var``, a run of entries (a native kernel's geometry array)."""
        return self._add(scope, var, tuple(int(v) for v in values))

    def const(self, scope: str, var: str, value: float) -> str:
        """``var``, a float constant (dropout's rate, a normalisation's ε, Huber's δ): the entry
        holds its float64 bits, so that models differing only in it share the text too.

        >>> d = Dims()
        >>> d.const("", "d2_rate", 0.25), d.bind("", ["    f(x, d2_rate)"])
        ('d2_rate', ['    d2_rate = dims[0:1].view(np.float64)[0]'])
        """
        self.floats.add((scope, var))
        return self._add(scope, var, (int(np.float64(value).view(np.int64)),))

    def names(self, scope: str) -> list[str]:
        return [v for s, v in self.vars if s == scope]

    def bind(self, scope: str, body: list[str]) -> list[str]:
        """The statements that read the variables ``body`` uses, in the table's order."""
        used = reads(body)
        out = []
        for (s, var), (k, n) in self.vars.items():
            if s != scope or var not in used:
                continue
            if (s, var) in self.floats:
                out.append(f"    {var} = dims[{k}:{k + 1}].view(np.float64)[0]")
            else:
                out.append(f"    {var} = dims[{k}]" if n == 1 else f"    {var} = dims[{k}:{k + n}]")
        return out

    def at(self, scope: str, var: str) -> tuple[int, int]:
        """Where ``var``'s entries are: ``dims[a:b]``."""
        k, n = self.vars[(scope, var)]
        return k, k + n

    def array(self) -> np.ndarray:
        return np.array(self.values, dtype=np.int64)


class Sizes:
    """What a program (``codegen/program.py``) writes for sizes: names read from its ``dims``
    table at the top of each function, and the parameters' views into the flat buffers. Needs
    ``self.dims``, ``self.scope`` and ``self.params``."""

    dims: Dims
    scope: str
    params: list

    def size(self, var: str, value: int) -> str:
        """A size the function reads from ``dims`` as ``var`` (a 1, which the generated code
        already treats as a different model, is written as it is)."""
        return "1" if value == 1 else self.dims.ref(self.scope, var, value)

    def rows(self, n: TNode) -> str:
        """A parameter's rows (``r_W1``), or a node's (``rows_v5``: a user may name a weight v5)."""
        return self.size(f"r_{n.name}" if n.kind == "leaf" else f"rows_{n.name}", n.shape[0])

    def cols(self, n: TNode) -> str:
        return self.size(f"c_{n.name}" if n.kind == "leaf" else f"cols_{n.name}", n.shape[1])

    def length(self, n: TNode, name: str) -> str:
        """Node n's length, named after the node (or, for a helper array, after ``name``)."""
        return self.size(f"n_{n.name or name}", n.length)

    def const(self, n: TNode, what: str, value) -> str:
        """Node n's float constant ``what`` (``d2_rate``), read from ``dims`` (:meth:`Dims.const`)."""
        return self.dims.const(self.scope, f"{n.name}_{what}", float(value))

    def geom(self, n: TNode) -> str:
        """Node n's geometry for its native kernels (``{name}_g``): an array, not integer
        constants, which Numba would compile a kernel anew for (docs/decisions.md)."""
        return self.dims.span(self.scope, f"{n.name}_g", n.geom)

    def bind(self, body: list[str]) -> list[str]:
        """The statements that read, from ``dims``, the sizes ``body`` uses."""
        return self.dims.bind(self.scope, body)

    def offsets(self) -> list[int]:
        """Where each parameter starts in the flat buffers (and where the last one ends)."""
        out = [0]
        for p in self.params:
            out.append(out[-1] + p.length)
        return out

    def _views(self, flat: str) -> list[tuple[TNode, str, str, str, str]]:
        """(parameter, its offset, rows and columns as sizes, its slice of buffer ``flat``)."""
        out = []
        for p, at in zip(self.params, self.offsets()):
            o, r, c = self.size(f"o_{p.name}", at), self.rows(p), self.cols(p)
            out.append((p, o, r, c, f"{flat}[{o}:{o} + {r} * {c}]"))
        return out

    def views(self, flat: str, names: list[str], fn=None) -> list[str]:
        """Each parameter-shaped array as a view into one flat buffer. ``fn``, the glue's namer
        (``codegen/glue.py``): through the kernel ``view2``, as the glue calls everything that is
        more than a name: unoptimised, a slice and a reshape compiled in 3x the time of the call
        (docs/decisions.md, "Views in the glue")."""
        return [f"    {name} = {fn('view2')}({flat}, {o}, {r}, {c})" if fn is not None
                else f"    {name} = {part}.reshape(({r}, {c}))"
                for (_, o, r, c, part), name in zip(self._views(flat), names)]

    def segment_views(self) -> dict[str, str]:
        """For outlined segments: each parameter/gradient view (and flat view) as a statement
        over ``theta``/``grad`` and the parameter's offset and shape as variables, so that a
        segment makes the views it uses and layers that differ only in size share one segment.
        Returns view name -> statement."""
        views = {}
        for buf, named in (("theta", self.v), ("grad", self.d)):
            for p, _, r, c, part in self._views(buf):
                views[named(p)] = f"    {named(p)} = {part}.reshape(({r}, {c}))"
                views[f"{named(p)}_f"] = f"    {named(p)}_f = {part}"
        return views

