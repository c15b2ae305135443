"""The code cache's safety (issue 19): who may write it, a hash index, and Numba's files in it.

symgrad imports the modules it writes to its cache, and Numba unpickles the files it caches
beside them, so whoever can write the cache can run code in every later process. As pip and
ssh treat their folders, a cache folder (or a file in it) that another user could write
(POSIX: owned by someone other than this user or root, or group- or world-writable) is not
used: the folder is bypassed with a warning, for a private temporary folder, and such a file is
a cache miss. Every file symgrad or Numba writes there has its SHA-256 recorded outside it, in
``<cache>/index/<file name>.sha256`` (record first, then the file; both atomic), and a file
whose bytes do not match its record is a cache miss too: rebuilt, never imported or unpickled.
What this does not defend against is written down in docs/decisions.md.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import inspect
import io
import marshal
import os
import pickle
import shutil
import stat
import sys
import tempfile
import warnings
from pathlib import Path

from .errors import CacheError

INDEX = "index"
POSIX = os.name == "posix" and hasattr(os, "geteuid")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unsafe(path: Path) -> str | None:
    """Why a user other than this one (or root) could write ``path``; None when none can.
    Raises OSError when ``path`` cannot be examined. Always None off POSIX."""
    if not POSIX:
        return None
    st = os.stat(path)
    if st.st_uid not in (os.geteuid(), 0):
        return f"is owned by another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by other users (mode {stat.S_IMODE(st.st_mode):#o})"
    return None


def configured() -> Path:
    """The code cache folder as configured: ``$SYMGRAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/symgrad``."""
    # absolute: a relative folder held the path of a compiled module that os.chdir then lost
    env = os.environ.get("SYMGRAD_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "symgrad"
    return base.expanduser().absolute()


def private_dir(path: Path) -> str | None:
    """Make the folder ``path`` (mode 0o700 when made here) and say why it is unsafe (None: it
    is safe). OSError when it cannot be made."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return unsafe(path)


_FALLBACK: list[Path] = []
_WARNED: set[str] = set()


def _remove(path: Path, pid: int) -> None:
    if os.getpid() == pid:  # not from a forked child
        shutil.rmtree(path, ignore_errors=True)


def usable_dir(path: Path) -> tuple[Path, bool]:
    """The folder to cache in for the configured ``path``, and whether that answer is final:
    ``path`` itself when it is safe (made 0o700 if missing); a private temporary folder for this
    process, with a warning, when another user could write it. A folder that cannot be made is
    returned as is (not final): writing to it raises CacheError, which names the fix."""
    if path.exists() and not path.is_dir():  # `symgrad cache` said "0 files", a compile "the index is missing"
        raise CacheError(f"the code cache {path} is a file, not a folder. Fix: point SYMGRAD_CACHE_DIR at a "
                         "folder (it is made if missing), or unset it for ~/.cache/symgrad.")
    try:
        reason = private_dir(path)
    except OSError:
        return path, False
    if reason is None:
        return path, True
    if not _FALLBACK:
        tmp = Path(tempfile.mkdtemp(prefix="symgrad-cache-"))  # 0o700, this user's
        atexit.register(_remove, tmp, os.getpid())
        _FALLBACK.append(tmp)
    if str(path) not in _WARNED:
        _WARNED.add(str(path))
        warnings.warn(f"symgrad: the code cache {path} {reason}, so another user could change the code "
                      f"symgrad runs; it is not used, and this process caches in the private folder "
                      f"{_FALLBACK[0]}. Fix: chmod 700 {path} (or make it yours), or set SYMGRAD_CACHE_DIR "
                      "to a folder only you can write.", stacklevel=4)
    return _FALLBACK[0], True


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a private temporary file renamed into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")  # mode 0o600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def index_entry(path: Path) -> Path:
    """Where the cache index records the hash of cache file ``path``."""
    return path.parent / INDEX / f"{path.name}.sha256"


def record(path: Path, data: bytes) -> None:
    """Record the hash of ``data``, about to be written to ``path`` (in the folder's index)."""
    entry = index_entry(path)
    reason = private_dir(entry.parent)
    if reason is not None:
        raise PermissionError(f"the cache index {entry.parent} {reason}")
    write_atomic(entry, sha256(data).encode())


def trusted(path: Path, data: bytes) -> bool:
    """Whether ``data``, read from ``path``, is what symgrad wrote there: its hash is the one
    recorded, and neither the file, its folder nor the record could be written by another user."""
    return distrust(path, data) is None


def distrust(path: Path, data: bytes) -> str | None:
    """Why ``data`` (read from ``path``) is not trusted, or None when it is (see :func:`trusted`)."""
    entry = index_entry(path)
    try:
        if any(unsafe(p) for p in (path.parent, path)):
            return "another user could write it"
        if not entry.exists():
            return f"the cache index holds no hash for it ({INDEX}/{entry.name} is missing)"
        if any(unsafe(p) for p in (entry.parent, entry)):
            return "another user could write its record in the cache index"
        if entry.read_text(encoding="ascii").strip() != sha256(data):
            return "its SHA-256 differs from the one recorded in the cache index"
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return f"its record could not be read ({exc})"


def read_trusted(path: Path) -> bytes | None:
    """The bytes of ``path`` when they are what symgrad wrote there, else None (a cache miss)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if trusted(path, data) else None


def compiled(path: Path, text: str):
    """``text`` (the verified module at ``path``) compiled, from the bytecode cached beside it
    when that is what symgrad wrote (Python's own .pyc would be read unverified); written on a
    miss. The bytecode's name holds a hash of the path and text, so it never goes stale."""
    tag = sha256(f"{path}\0{text}".encode())[:24]
    store = path.parent / "__pycache__" / f"{path.stem}.{sys.implementation.cache_tag}.{tag}.code"
    data = read_trusted(store)
    if data is not None:
        with contextlib.suppress(Exception):
            return marshal.loads(data)
    code = compile(text, str(path), "exec", dont_inherit=True)
    with contextlib.suppress(OSError):
        private_dir(store.parent)
        record(store, data := marshal.dumps(code))
        write_atomic(store, data)
    return code


# -- Numba's cache files for generated modules ------------------------------------------------

def _numba_cache_class():
    """A Numba FunctionCache for generated modules: its files go to ``<cache>/__pycache__``
    only (never NUMBA_CACHE_DIR or a user-wide folder), are read only when their recorded hash
    matches (so a replaced ``.nbi``/``.nbc`` is never unpickled), are written with their hashes
    recorded, and any failure to load is a miss (Numba compiles) and to save, no cache."""
    from numba.core import caching

    class Locator(caching.InTreeCacheLocator):
        def ensure_cache_path(self):
            reason = private_dir(Path(self._cache_path))
            if reason is not None:
                raise PermissionError(f"Numba's cache folder {self._cache_path} {reason}")

    class Impl(caching.CompileResultCacheImpl):
        def __init__(self, py_func):  # Numba's, with this one locator
            self._lineno = py_func.__code__.co_firstlineno
            source = inspect.getfile(py_func)
            self._locator = Locator(py_func, source)
            fullname = f"{Path(source).stem}.{py_func.__qualname__}"
            self._filename_base = self.get_filename_base(fullname, getattr(sys, "abiflags", ""))

    class CheckedFile(caching.IndexDataCacheFile):
        def _load_index(self):
            data = read_trusted(Path(self._index_path))
            if data is None:
                return {}
            try:
                f = io.BytesIO(data)
                if pickle.load(f) != self._version:
                    return {}
                stamp, overloads = pickle.loads(f.read())
            except Exception:  # written by us yet unreadable: a miss
                return {}
            return overloads if stamp == self._source_stamp else {}

        def _save_index(self, overloads):
            data = pickle.dumps(self._version, protocol=-1) + self._dump((self._source_stamp, overloads))
            self._write(Path(self._index_path), data)

        def _load_data(self, name):
            data = read_trusted(Path(self._data_path(name)))
            if data is None:
                raise OSError(f"{name}: missing, or not what symgrad recorded")  # load() makes it a miss
            return pickle.loads(data)

        def _save_data(self, name, data):
            self._write(Path(self._data_path(name)), self._dump(data))

        @staticmethod
        def _write(path: Path, data: bytes) -> None:
            record(path, data)
            write_atomic(path, data)

    class SafeCache(caching.FunctionCache):
        _impl_class = Impl

        def __init__(self, py_func):
            super().__init__(py_func)
            self._cache_file = CheckedFile(self._cache_path, self._impl.filename_base,
                                           self._cache_file._source_stamp)

        def load_overload(self, sig, target_context):
            try:
                return super().load_overload(sig, target_context)
            except Exception:  # garbage, truncated, another version's pickle: compile instead
                return None

        def save_overload(self, sig, data):
            with contextlib.suppress(Exception):  # a read-only cache: the code runs uncached
                super().save_overload(sig, data)

    return SafeCache


try:
    _SAFE_CACHE = _numba_cache_class()
except (ImportError, AttributeError, TypeError):  # another Numba's internals: no disk cache at all
    _SAFE_CACHE = None


def protect(module) -> None:
    """Give every Numba dispatcher ``module`` defines the checked cache above (no disk cache if
    that cannot be made). Runs right after the module executes, before anything compiles."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    for obj in list(vars(module).values()):
        if not isinstance(obj, Dispatcher) or isinstance(obj._cache, NullCache):
            continue
        if getattr(obj.py_func, "__globals__", None) is not vars(module):
            continue  # defined elsewhere (symgrad.native): cached with its package
        try:
            obj._cache = _SAFE_CACHE(obj.py_func)
        except Exception:
            obj._cache = NullCache()
