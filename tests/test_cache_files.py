"""``symgrad cache`` shows what the code cache holds; ``symgrad cache clear`` removes symgrad's
files only, and the next build compiles again (symgrad/cache_files.py)."""

import sys

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad import cache_files, jit
from symgrad.__main__ import main


@pytest.mark.numba
def test_cache_lists_and_clears_only_symgrads_files(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(cache))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 5)).astype(np.float32), rng.integers(0, 3, 24)
    net = sg.nn.MLP([5, 7, 3], activation="tanh")
    first = sg.fit(net, "softmax_cross_entropy", X, y, epochs=2, batch_size=8, seed=1)
    a = sp.Symbol("a", real=True)
    sg.compile((a - 1.5) ** 2, wrt=[a])  # a formula module too
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

    # a process that built before the clear builds again, to the same numbers
    jit._TRUSTED.clear()
    for name in [m for m in list(sys.modules) if m.startswith(("sg_", "sgk_"))]:
        del sys.modules[name]
    again = sg.fit(sg.nn.MLP([5, 7, 3], activation="tanh"), "softmax_cross_entropy", X, y, epochs=2,
                   batch_size=8, seed=1)
    for p, q in zip(first.params, again.params):
        np.testing.assert_array_equal(p, q)
    assert cache_files.summary()["shared kernels"][0] >= 5
