"""What the code cache holds, and emptying it (``symgrad cache``, ``symgrad cache clear``).

Every model adds files to the code cache (``$SYMGRAD_CACHE_DIR``), and symgrad removes none:
a generated module ``sg_<key>.py`` per structure, a record of sizes ``sg_<key>.dims`` per
model, a file ``sgk_<key>.py`` per shared kernel, Numba's compiled code for each in
``__pycache__/``, and the hashes of all of these in ``index/`` folders (``cache_safety.py``). A
width sweep adds only ``.dims`` records (a few hundred bytes each); new structures and dtypes
add compiled code. ``clear`` removes exactly these files, so a cache folder that also holds
other files keeps them; the next build compiles again. Clear it while no symgrad process is
building: a build that finds its files gone midway fails.

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "sg_0123.py").write_text("x = 1\\n"); _ = (folder / "notes.txt").write_text("mine")
>>> summary(folder)["generated modules"]
(1, 6)
>>> clear(folder), sorted(p.name for p in folder.iterdir())
((1, 6), ['notes.txt'])
"""

from __future__ import annotations

from pathlib import Path

# kind -> the pattern of its files, relative to the cache folder
KINDS = {
    "generated modules": ("sg_*.py",),
    "model sizes (.dims)": ("sg_*.dims",),
    "shared kernels": ("sgk_*.py",),
    "compiled code (__pycache__)": ("__pycache__/sg*",),
    "hashes (index)": ("index/sg*.sha256", "__pycache__/index/sg*.sha256"),
}


def location(folder: Path | None = None) -> Path:
    """``folder``, or the code cache folder symgrad uses (``jit.cache_dir``)."""
    from .jit import cache_dir

    return Path(folder) if folder is not None else cache_dir()


def _files(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    return [p for pattern in patterns for p in folder.glob(pattern) if p.is_file() and not p.is_symlink()]


def summary(folder: Path | None = None) -> dict[str, tuple[int, int]]:
    """Each kind of file symgrad keeps in the code cache -> (how many, their bytes)."""
    root = location(folder)
    out = {}
    for kind, patterns in KINDS.items():
        files = _files(root, patterns)
        out[kind] = (len(files), sum(p.stat().st_size for p in files))
    return out


def clear(folder: Path | None = None) -> tuple[int, int]:
    """Remove every file symgrad keeps in the code cache: (files removed, their bytes)."""
    root = location(folder)
    n = size = 0
    for patterns in KINDS.values():
        for p in _files(root, patterns):
            try:
                b = p.stat().st_size
                p.unlink()
            except FileNotFoundError:  # another process removed it first
                continue
            n, size = n + 1, size + b
    return n, size


def report(folder: Path | None = None) -> str:
    """The summary as lines of text, for the command line."""
    root = location(folder)
    rows = summary(root)
    width = max(len(k) for k in rows)
    lines = [f"code cache: {root}"]
    lines += [f"  {kind:<{width}}  {n:6d} files  {_mb(b)}" for kind, (n, b) in rows.items()]
    total_n, total_b = sum(n for n, _ in rows.values()), sum(b for _, b in rows.values())
    lines.append(f"  {'total':<{width}}  {total_n:6d} files  {_mb(total_b)}")
    return "\n".join(lines)


def _mb(b: int) -> str:
    return f"{b / 1e6:8.1f} MB"
