"""The row-block loop is compiled by a background child after a first fit on one block
(runtime/prewarm.py, issue 21): a later fit whose batch size crosses into it loads it from
Numba's cache instead of compiling it. Each case runs in a fresh process with its own cache (forking inside pytest's workers would copy
them), and compares the trained parameters with the same run without the child."""

from __future__ import annotations

import os
import sys
import textwrap

import numpy as np
import pytest
from child_process import run_result

SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import symgrad as sg
    from symgrad import build_helper
    from symgrad.runtime import prewarm
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2100, 7)).astype(np.float32); y = rng.integers(0, 3, 2100)
    net = sg.nn.MLP([7, 19, 3], activation="tanh")
    first, second = (16, 2100) if sys.argv[1] == "serial-first" else (2100, 16)
    a = sg.fit(net, "softmax_cross_entropy", X, y, epochs=1, batch_size=first, seed=2)
    started = len(prewarm._running)
    other = a._mod.train_chunk_par if first == 16 else a._mod.train_chunk
    waited = prewarm.wait(300)
    cached = build_helper.cached(other)
    b = sg.fit(net, "softmax_cross_entropy", X, y, epochs=2, batch_size=second, seed=3)
    print("RESULT " + json.dumps({"started": started, "waited": waited, "cached": cached,
                                  "hits": sum(other.stats.cache_hits.values()),
                                  "misses": sum(other.stats.cache_misses.values()),
                                  "params": [np.asarray(v).tolist() for v in a.params + b.params]}))
''')


def _run(tmp_path, order: str, setting: str) -> dict:
    return run_result(SCRIPT, {"SYMGRAD_CACHE_DIR": str(tmp_path / f"{order}{setting}"), "SYMGRAD_PREWARM": setting},
                      order)


@pytest.mark.numba
@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="the child is forked on Linux with two CPUs or more")
def test_the_row_block_loop_comes_from_the_cache(tmp_path):
    on, off = _run(tmp_path, "serial-first", "1"), _run(tmp_path, "serial-first", "0")
    assert on["started"] == 1 and on["waited"] and on["cached"]
    assert on["hits"] >= 1 and on["misses"] == 0  # loaded, not compiled
    assert off["started"] == 0 and not off["cached"] and off["hits"] == 0 and off["misses"] >= 1
    for p, q in zip(on["params"], off["params"], strict=True):
        np.testing.assert_array_equal(np.array(p), np.array(q))


@pytest.mark.numba
def test_nothing_is_forked_after_a_first_fit_on_row_blocks(tmp_path):
    """That fit trains on both cores: a compiling child would slow it down."""
    on = _run(tmp_path, "blocks-first", "1")
    assert on["started"] == 0 and on["misses"] >= 1
