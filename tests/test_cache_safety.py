"""The code cache is safe the way pip's and ssh's folders are (issue 19, "The cache").

A module symgrad did not write is rebuilt, never imported, even with its checksum line
recomputed; one that fails to import is rebuilt; a cache folder another user can write is
bypassed with a warning; Numba's cache files that are garbage, truncated or a planted pickle
are a cache miss, never an error or an execution; a read-only cache raises CacheError naming
the fix; concurrent and killed compiles leave a working cache. Each test has its own
SYMGRAD_CACHE_DIR; a fresh process runs where the point is what a later process does.
(tests/test_formula_compile.py keeps its corrupt-file, two-process and Numba-hit tests.)
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad import cache_safety, jit
from symgrad.errors import CacheError

a, t, y = sp.symbols("a t y", real=True)
T = np.linspace(0.0, 1.0, 64)
Y = np.exp(-0.5 * T)
ROOT = str(Path(sg.__file__).resolve().parents[1])


def _loss(k: int):
    """A small formula; each test its own ``k``, so no two share a module name."""
    return (sp.exp(-a * t) - y) ** 2 + sp.sin(a) / k


def _compile(k: int, backend: str = "python"):
    return sg.compile(_loss(k), wrt=[a], data=[t, y], backend=backend)


def _want(k: int) -> float:
    return float(np.mean((np.exp(-0.3 * T) - Y) ** 2) + np.sin(0.3) / k)


def _forget(path: Path) -> None:
    """As a new process would: nothing of ``path`` loaded or trusted from memory."""
    for name in [m for m in sys.modules if m.startswith(path.stem)]:
        del sys.modules[name]
    jit._TRUSTED.pop(path, None)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(d))
    return d


def _rewrite(path: Path, body: str) -> None:
    """Replace the module by other valid Python, with its checksum line recomputed."""
    path.write_text(jit._HEADER + jit._digest(body) + "\n" + body, encoding="utf-8")
    assert jit._valid(path)


_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    import numpy as np, sympy as sp
    import symgrad as sg
    from symgrad import cache_safety as cs
    kill = os.environ.get("SG_KILL")
    real_write, real_replace = cs.write_atomic, os.replace
    def write(path, data):  # SIGKILL at a chosen point of writing the cache
        if kill == path.suffix:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_write(path, data)
    def replace(src, dst):
        if kill == "rename" and str(dst).endswith(".py"):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)
    cs.write_atomic, os.replace = write, replace
    k, backend = int(sys.argv[1]), sys.argv[2]
    a, t, y = sp.symbols("a t y", real=True)
    f = sg.compile((sp.exp(-a * t) - y) ** 2 + sp.sin(a) / k, wrt=[a], data=[t, y], backend=backend)
    T = np.linspace(0.0, 1.0, 64)
    v = f.value([0.3], T, np.exp(-0.5 * T))
    st = getattr(f._mod.value, "stats", None)
    print(json.dumps(dict(v=float(v), path=str(f.path), hits=st and sum(st.cache_hits.values()),
                          misses=st and sum(st.cache_misses.values()))))
""")


def _spawn(cache: Path, k: int, backend: str = "python", kill: str = "") -> subprocess.Popen:
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(cache), SG_KILL=kill,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", _SCRIPT, str(k), backend], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(cache: Path, k: int, backend: str = "python", kill: str = "", proc=None) -> tuple[dict, str]:
    p = proc or _spawn(cache, k, backend, kill)
    out, err = p.communicate(timeout=300)
    if kill:
        assert p.returncode == -9, err
        return {}, err
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


# -- modules symgrad did not write ---------------------------------------------------------------

def test_new_cache_is_private_and_tampered_module_is_rebuilt_in_a_later_process(cache):
    path = _compile(3).path
    if cache_safety.POSIX:  # made 0o700, files 0o600
        assert stat.S_IMODE(cache.stat().st_mode) == 0o700 and stat.S_IMODE(path.stat().st_mode) == 0o600
    _rewrite(path, jit.read_source(path) + "\n\ndef value(*args):\n    return 42.0\n")
    second, err = _run(cache, 3)
    # the same module file (a child importing other symgrad sources would key another one:
    # the sources' fingerprint is part of the key)
    assert second["path"] == str(path), "symgrad's sources changed while the test ran"
    assert second["v"] == pytest.approx(_want(3), rel=1e-12)  # not 42.0
    assert "is not known to be what symgrad wrote there (its SHA-256 differs" in err and "rebuilding it" in err
    third, err = _run(cache, 3)  # and every later process uses the rebuilt module quietly
    assert third["v"] == second["v"] and "rebuilding" not in err


@pytest.mark.parametrize("forge_index", [False, True])
def test_module_raising_at_import_is_rebuilt(cache, forge_index):
    k = 5 + forge_index
    path = _compile(k).path
    _rewrite(path, "raise RuntimeError('planted')\n")
    if forge_index:  # the index says it is ours: it runs, fails, and is rebuilt (a cache miss)
        cache_safety.record(path, path.read_bytes())
    _forget(path)
    with pytest.warns(UserWarning, match="failed to import .*planted" if forge_index else "not known to be what symgrad wrote"):
        f = _compile(k)
    assert f.value([0.3], T, Y) == pytest.approx(_want(k), rel=1e-12)
    assert "planted" not in path.read_text()


def test_a_module_without_its_index_entry_is_rebuilt_and_says_so(cache):
    path = _compile(8).path
    cache_safety.index_entry(path).unlink()  # the index lost (deleted by hand)
    _forget(path)
    with pytest.warns(UserWarning, match=r"the cache index holds no hash for it \(index/sg_.*\.sha256 is missing\)"):
        f = _compile(8)
    assert f.value([0.3], T, Y) == pytest.approx(_want(8), rel=1e-12)


def test_a_deleted_index_is_reported_once_and_every_module_is_rebuilt(cache):
    import shutil
    import warnings

    paths = [_compile(k).path for k in (11, 12, 13)]
    shutil.rmtree(paths[0].parent / cache_safety.INDEX)  # deleted by hand
    for p in paths:
        _forget(p)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fs = [_compile(k) for k in (11, 12, 13)]
    texts = [str(w.message) for w in seen if "rebuilding it" in str(w.message)]
    assert len(texts) == 1 and "the cache index" in texts[0] and "is missing" in texts[0], texts
    for k, f in zip((11, 12, 13), fs, strict=True):
        assert f.value([0.3], T, Y) == pytest.approx(_want(k), rel=1e-12)
    assert all(cache_safety.index_entry(p).exists() for p in paths)


def test_module_file_another_user_can_write_is_rebuilt(cache):
    path = _compile(7).path
    if not cache_safety.POSIX:
        pytest.skip("permission checks are POSIX only")
    path.chmod(0o666)
    _forget(path)
    with pytest.warns(UserWarning, match="another user could write it"):
        f = _compile(7)
    assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
    assert f.value([0.3], T, Y) == pytest.approx(_want(7), rel=1e-12)


def test_load_refuses_a_module_it_cannot_verify_or_rebuild(cache):
    path = _compile(8).path
    _rewrite(path, "value = lambda *args: 42.0\n")
    _forget(path)
    with pytest.raises(CacheError, match="not known to be what symgrad wrote.*Fix: compile the model again"):
        jit.load(path, jit=False)


# -- who may write the cache -------------------------------------------------------------------

@pytest.mark.skipif(not cache_safety.POSIX, reason="permission checks are POSIX only")
@pytest.mark.parametrize("how", ["world_writable", "group_writable", "another_owner"])
def test_cache_folder_another_user_can_write_is_bypassed(tmp_path, monkeypatch, how):
    shared = tmp_path / how
    shared.mkdir()
    if how == "another_owner":
        if os.geteuid() != 0:
            pytest.skip("only root can give a folder to another user")
        os.chown(shared, 65534, 65534)
    else:
        shared.chmod(0o777 if how == "world_writable" else 0o770)
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(shared))
    match = "owned by another user" if how == "another_owner" else "writable by other users"
    with pytest.warns(UserWarning, match=f"{match}.*not used.*Fix: chmod 700"):
        f = _compile(10 + len(how))
    assert f.path.parent != shared and f.path.parent == jit.cache_dir()
    assert not list(shared.iterdir()), "symgrad wrote into a cache another user can write"
    assert f.value([0.3], T, Y) == pytest.approx(_want(10 + len(how)), rel=1e-12)


def test_a_cache_path_that_is_a_file_names_the_fix(tmp_path, monkeypatch):
    # `symgrad cache` reported "0 files" and a compile warned that the index was missing first
    plain = tmp_path / "notes.txt"
    plain.write_text("mine")
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(plain))
    with pytest.raises(CacheError, match="is a file, not a folder. Fix: point SYMGRAD_CACHE_DIR"):
        _compile(41)
    assert plain.read_text() == "mine"
    cli = subprocess.run([sys.executable, "-m", "symgrad", "cache"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert cli.returncode == 2 and "is a file, not a folder" in cli.stderr and "0 files" not in cli.stdout


def test_read_only_cache_with_a_corrupt_module_names_the_fix(cache, monkeypatch):
    path = _compile(30).path
    root = os.geteuid() == 0 if cache_safety.POSIX else True
    if root:  # chmod does not stop root (nor Windows here): make every write fail instead
        def refuse(p, data):
            raise PermissionError(13, "Permission denied", str(p))
        monkeypatch.setattr(cache_safety, "write_atomic", refuse)
    else:
        cache.chmod(0o500)
    try:
        _forget(path)  # a valid module in a read-only cache is used
        assert _compile(30).value([0.3], T, Y) == pytest.approx(_want(30), rel=1e-12)
        if not root:
            cache.chmod(0o700)
        path.write_text("garbage")
        if not root:
            cache.chmod(0o500)
        _forget(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "was corrupt; rebuilding it"
            with pytest.raises(CacheError, match="cannot write the code cache.*Fix: set SYMGRAD_CACHE_DIR"):
                _compile(30)
    finally:
        cache.chmod(0o700)


# -- Numba's cache files ------------------------------------------------------------------------

class _Planted:
    """Unpickling this creates a file: what a replaced .nbi could do if Numba unpickled it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.numba
def test_garbage_truncated_or_planted_numba_files_are_a_miss(cache, tmp_path):
    first, _ = _run(cache, 40, "numba")
    files = sorted((cache / "__pycache__").glob(f"{Path(first['path']).stem}.*.nb[ic]"))
    assert files and first["misses"] >= 1
    marker = tmp_path / "planted-code-ran"
    for n, f in enumerate(files):
        if f.suffix == ".nbi":
            f.write_bytes(pickle.dumps(_Planted(marker)))
        else:
            f.write_bytes(b"\x80\x05garbage" if n % 2 else f.read_bytes()[:100])
    second, err = _run(cache, 40, "numba")
    assert second["v"] == pytest.approx(_want(40), rel=1e-12) and second["hits"] == 0
    assert not marker.exists(), "a planted Numba index was unpickled"
    assert "Error" not in err
    third, _ = _run(cache, 40, "numba")  # recompiled and cached again
    assert third["v"] == second["v"] and third["hits"] >= 1 and third["misses"] == 0


# -- concurrent and killed compiles ----------------------------------------------------------------

def test_four_processes_compile_concurrently(cache):
    procs = [_spawn(cache, 50) for _ in range(4)]
    results = [_run(cache, 50, proc=p) for p in procs]
    assert {r["path"] for r, _ in results} == {results[0][0]["path"]}
    for r, err in results:
        assert r["v"] == pytest.approx(_want(50), rel=1e-12)
        assert "rebuilding" not in err, err
    assert not list(cache.rglob("*.tmp*")), "temporary files were left behind"
    path = Path(results[0][0]["path"])
    assert jit._valid(path) and cache_safety.read_trusted(path) is not None


def test_processes_killed_mid_compile_then_good_compiles(cache):
    """Killed between writing the hash record and the module, and with the module written but
    not renamed into place: the next compile of each is a plain miss, without a warning."""
    kills = [".py", "rename"]
    for n, p in enumerate([_spawn(cache, 60 + n, kill=kill) for n, kill in enumerate(kills)]):
        _run(cache, 60 + n, kill=kills[n], proc=p)
    for n, p in enumerate([_spawn(cache, 60 + n) for n in range(len(kills))]):
        good, err = _run(cache, 60 + n, proc=p)
        assert good["v"] == pytest.approx(_want(60 + n), rel=1e-12)
        assert "rebuilding" not in err and "Error" not in err, err


@pytest.mark.numba
def test_a_process_killed_while_numba_saves_then_a_good_compile(cache):
    _run(cache, 70, "numba", kill=".nbc")  # its .nbi was written, its .nbc not
    good, err = _run(cache, 70, "numba")
    assert good["v"] == pytest.approx(_want(70), rel=1e-12) and "Error" not in err
    assert good["misses"] >= 1


def test_symgrads_own_kernels_cache_in_its_folder_where_numba_has_none(tmp_path):
    # installed where the user cannot write, with no writable home (a container's uid), import symgrad
    # failed with Numba's "cannot cache function '_two_prod': no locator available". Numba's locators
    # are left out here (its NUMBA_CACHE_LOCATOR_CLASSES), as none would find a folder there.
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "symgrad.native.locator.InSymgradCache",
           "SYMGRAD_CACHE_DIR": str(tmp_path / "cache"), "SYMGRAD_PREWARM": "0",
           "PYTHONPATH": str(Path(sg.__file__).parent.parent)}
    code = "from symgrad.native import fpcore; print(fpcore._two_prod(3.0, 1.0 / 3))"
    for _ in range(2):  # compiled and cached, then loaded from the cache
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split() == ["(1.0,", "-5.551115123125783e-17)"]
    folder = next((tmp_path / "cache" / "native").iterdir())
    assert {p.suffix for p in folder.iterdir()} == {".nbi", ".nbc"}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_symgrads_own_kernels_never_cache_under_a_folder_another_user_can_write(tmp_path):
    # the code cache bypasses such a folder for a private one; the kernels' locator checked only
    # <cache>/native/<subpath>, which it made 0o700 itself, and so kept Numba's pickles (run when
    # loaded) under a world-writable SYMGRAD_CACHE_DIR that symgrad's own modules had refused
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "symgrad.native.locator.InSymgradCache",
           "SYMGRAD_CACHE_DIR": str(shared), "SYMGRAD_PREWARM": "0",
           "PYTHONPATH": str(Path(sg.__file__).parent.parent)}
    code = ("from symgrad.native import fpcore; print(fpcore._two_prod(3.0, 1.0 / 3)); "
            "print(fpcore._two_prod._cache._impl.locator._cache_path)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "is writable by other users" in out.stderr
    assert not out.stdout.splitlines()[1].startswith(str(shared))
    assert not (shared / "native").exists()
