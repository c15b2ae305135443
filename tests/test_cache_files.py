"""``symgrad cache`` shows what the code cache holds; ``symgrad cache clear`` removes symgrad's
files only, and the next build compiles again (symgrad/cache_files.py). The builds run in
fresh processes: a process that compiled the same kernels before writes no compiled code."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from symgrad import cache_files
from symgrad.__main__ import main

ROOT = str(Path(__file__).resolve().parents[1])
BUILD = textwrap.dedent('''
    import json
    import numpy as np, sympy as sp
    import symgrad as sg
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 5)).astype(np.float32), rng.integers(0, 3, 24)
    r = sg.fit(sg.nn.MLP([5, 7, 3], activation="tanh"), "softmax_cross_entropy", X, y, epochs=2, batch_size=8, seed=1)
    a = sp.Symbol("a", real=True)
    sg.compile((a - 1.5) ** 2, wrt=[a]).value([0.0])  # a formula module too
    print("RESULT " + json.dumps([np.asarray(p).tolist() for p in r.params]))
''')


def _build(cache: Path) -> list:
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(cache), PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", BUILD], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])


@pytest.mark.numba
def test_cache_lists_and_clears_only_symgrads_files(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(cache))
    first = _build(cache)
    (cache / "notes.txt").write_text("the user's own file")

    counts = cache_files.summary()
    assert counts["generated modules"][0] >= 2 and counts["model sizes (.dims)"][0] == 1
    assert counts["shared kernels"][0] >= 5 and counts["compiled code (__pycache__)"][0] >= 5
    assert counts["hashes (index)"][0] >= counts["generated modules"][0] + counts["shared kernels"][0]
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(cache) in out and "shared kernels" in out and "total" in out

    total = sum(n for n, _ in counts.values())
    assert main(["cache", "clear"]) == 0
    assert f"removed {total} files" in capsys.readouterr().out
    assert all(n == 0 for n, _ in cache_files.summary().values())
    assert (cache / "notes.txt").read_text() == "the user's own file"

    assert _build(cache) == first  # built again, to the same numbers
    assert cache_files.summary()["shared kernels"][0] == counts["shared kernels"][0]
