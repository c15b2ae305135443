"""Generated modules live in real files, so Numba's ``cache=True`` works across processes.

Numba cannot cache ``exec``'d code (numba/numba#3501), so every generated module is
written to ``<cache>/<key>.py`` and imported from there. The first line is a checksum
of the rest: a corrupt or truncated file is detected and rebuilt, never trusted.
Writes go to a temporary file and are renamed into place, which is atomic on POSIX, so
two processes compiling the same model never see half a file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numba

from .errors import CacheError

VERSION = "0.1.0"
_HEADER = "# symgrad-sha256: "


def cache_dir() -> Path:
    """The code cache folder: ``$SYMGRAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/symgrad``."""
    env = os.environ.get("SYMGRAD_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "symgrad"


def _code_fingerprint() -> str:
    # The generator's own source is part of the key: a changed codegen never reuses stale modules.
    h = hashlib.sha256()
    for f in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()


_FINGERPRINT = _code_fingerprint()


def cache_key(*parts: str) -> str:
    """Hash of the canonical model description plus every version that affects the code."""
    h = hashlib.sha256()
    for p in (VERSION, _FINGERPRINT, numba.__version__, sys.version.split()[0], *parts):
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _valid(path: Path) -> bool:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    first, _, body = text.partition("\n")
    return first == _HEADER + _digest(body)


def _write_atomic(path: Path, body: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(_HEADER + _digest(body) + "\n" + body)
        os.replace(tmp, path)
    except OSError as exc:
        raise CacheError(
            f"cannot write the code cache at {path.parent}: {exc}. "
            "Fix: set SYMGRAD_CACHE_DIR to a writable folder."
        ) from exc


def module_path(key: str) -> Path:
    return cache_dir() / f"sg_{key}.py"


def ensure_source(key: str, make_source: Callable[[], str]) -> Path:
    """Return the path of a valid module file for ``key``, generating it if needed.

    ``make_source`` (derivation + codegen) runs only on a cache miss.
    """
    path = module_path(key)
    if path.exists() and not _valid(path):
        warnings.warn(f"symgrad: cache file {path} was corrupt; rebuilding it", stacklevel=3)
        path.unlink(missing_ok=True)
    if not path.exists():
        _write_atomic(path, make_source())
    return path


def load(path: Path, jit: bool) -> ModuleType:
    """Import the module at ``path``: with ``jit`` its functions are Numba dispatchers,
    without it they are plain Python (the reference path)."""
    name = f"{path.stem}_{'jit' if jit else 'py'}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    module.__dict__["_JIT"] = jit
    module.__dict__["_GLUE"] = glue_options()
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:  # checksum matched yet it does not parse: give up loudly
        raise CacheError(f"generated module {path} does not compile: {exc}; delete it") from exc
    sys.modules[name] = module
    return module


def glue_options() -> dict[str, bool]:
    """Numba options for glue (functions that only make arrays and call compiled kernels: deep
    models' loss_grad, and the training loop of all but small models): LLVM's optimiser and
    inliner are skipped there, which halves their compile time at a run-time cost measured at
    1-3% at most (docs/decisions.md). The glue must call other
    functions through overloads (``callee`` in the generated module), or Numba cannot cache
    it. Numba marks the option internal, so it is used only where this Numba knows it."""
    try:
        from numba.core.cpu import CPUTargetOptions

        known = isinstance(getattr(CPUTargetOptions, "_dbg_optnone", None), CPUTargetOptions.Mapping)
    except (ImportError, AttributeError):
        known = False
    return {"_dbg_optnone": True} if known else {}


def read_source(path: Path) -> str:
    """The generated module's text, without the checksum line."""
    return path.read_text().partition("\n")[2]
