"""What every compiled model shares: its generated file, symbols, dtype and backend."""

from __future__ import annotations

import copy
import html
from pathlib import Path
from types import ModuleType

import numpy as np
import sympy as sp

from .. import jit
from ..errors import CacheError
from ..explain.printing import tex_name, tex_text


class Compiled:
    """A generated module loaded for one backend. Subclasses add the calls (value, grad, ...)."""

    def __init__(self, path: Path, params, data, dtype: str, reduction: str, backend: str,
                 dims: np.ndarray | None = None):
        self.path = path
        self.dims = dims  # a tensor model's sizes, which its shape-generic module reads (codegen/dims.py)
        self.params = list(params)
        self.data = list(data)
        self.dtype = np.dtype(dtype)
        self.reduction = reduction
        self.backend = backend
        self._mod = jit.load(path, jit=(backend == "numba"), dims=dims)

    @property
    def source(self) -> str:
        """The generated module (the same file for both backends)."""
        return jit.read_source(self.path)

    @property
    def python(self):
        """The same functions as plain Python: the reference path for tests."""
        twin = copy.copy(self)
        twin.backend = "python"
        twin._mod = jit.load(self.path, jit=False, dims=self.dims)
        twin._reset()
        return twin

    def _reset(self) -> None:
        """Forget what was loaded lazily for the other backend (a subclass hook)."""

    # A loaded module does not pickle. The pickle carries the generated source instead, so it
    # unpickles where the cache lacks the file (another machine, a cleared cache) into the
    # very code that was compiled; the checksummed cache file is reused when present.
    def __getstate__(self) -> dict:
        try:
            source = jit.read_source(self.path)
        except OSError as exc:
            raise CacheError(f"the generated module {self.path} is gone from the code cache, so this "
                             f"compiled model cannot be pickled ({exc}). Fix: compile it again.") from exc
        state = {k: v for k, v in self.__dict__.items() if not isinstance(v, (ModuleType, jit.Bound))}
        return state | {"path": self.path.name, "_source": source}

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        source = state.pop("_source")
        key = Path(state["path"]).stem.removeprefix("sg_")
        state["path"] = jit.ensure_source(key, lambda: source)
        self.__dict__.update(state)
        self._mod = jit.load(self.path, jit=(self.backend == "numba"), dims=self.dims)
        self._reset()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} wrt={self.params} data={self.data} {self.dtype.name} "
                f"reduction={self.reduction} backend={self.backend} file={self.path.name}>")

    # -- rich display (Jupyter) -------------------------------------------------------------------
    def _summary(self) -> list[tuple[str, str]]:
        """(what, value) rows of the notebook summary: symbols, dtype, backend, the generated file."""
        def listed(symbols) -> str:
            return _listed([str(s) + (f" {_dims(s)}" if _dims(s) else "") for s in symbols]) or "none"

        return [("parameters", listed(self.params)), ("data", listed(self.data)), ("dtype", self.dtype.name),
                ("reduction", self.reduction), ("backend", self.backend), ("generated source", str(self.path))]

    def _repr_html_(self) -> str:
        return html_table(type(self).__name__, self._summary())

    def _latex_lines(self) -> list[str]:
        """One formula per line (each renders in mathtext): names as a textbook writes them."""
        def listed(symbols) -> str:
            shown = [tex_name(str(s)) + (r"\ (%s)" % r" \times ".join(map(str, _dims(s))) if _dims(s) else "")
                     for s in symbols]
            return _listed(shown, latex=True) or tex_text("none")

        return [tex_text(f"{type(self).__name__}: {self.dtype.name}, reduction {self.reduction}, "
                         f"backend {self.backend}"),
                tex_text("parameters: ") + listed(self.params), tex_text("data: ") + listed(self.data),
                tex_text(f"generated source: {self.path.name}")]

    def _repr_latex_(self) -> str:
        return "$$" + latex_block(self._latex_lines()) + "$$"


def _dims(s) -> tuple[int, ...] | None:
    """A matrix symbol's shape (for data: one sample's), None for a scalar symbol."""
    return tuple(int(d) for d in s.shape) if isinstance(s, sp.MatrixSymbol) else None


def _listed(items: list[str], latex: bool = False, most: int = 12) -> str:
    """``items`` joined by commas; a long list shows its first few, its last, and how many in all."""
    sep = r",\ " if latex else ", "
    if len(items) <= most:
        return sep.join(items)
    tail = f" ({len(items)} in all)"
    return sep.join([*items[:most - 2], r"\ldots" if latex else "…", items[-1]]) + (tex_text(tail) if latex else tail)


def latex_block(lines: list[str]) -> str:
    """Formulas, one per line, as one amsmath ``aligned`` block (flush left)."""
    return "\\begin{aligned}\n" + " \\\\\n".join("&" + s for s in lines) + "\n\\end{aligned}"


def html_table(title: str, rows, header: tuple[str, ...] = (), note: str = "") -> str:
    """A small HTML table for a notebook: a bold title, optional header, rows of cells, a note."""
    def cells(tag: str, row) -> str:
        return "<tr>" + "".join(f"<{tag} style='text-align:left'>{html.escape(str(c))}</{tag}>"
                                for c in row) + "</tr>"

    body = (cells("th", header) if header else "") + "".join(cells("td", r) for r in rows)
    tail = f"<p>{html.escape(note)}</p>" if note else ""
    return f"<div><strong>{html.escape(title)}</strong><table>{body}</table>{tail}</div>"
