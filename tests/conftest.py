"""Test-wide setup: a private Numba/symgrad cache so runs never depend on each other."""

import os
import tempfile

# Set before symgrad is imported anywhere, so every compiled module lands here.
os.environ.setdefault("SYMGRAD_CACHE_DIR", tempfile.mkdtemp(prefix="symgrad-test-cache-"))
# no background compiles of the row-block loop (runtime/prewarm.py) from the test workers' fits:
# they would fork pytest's workers; tests/test_prewarm.py turns them on in its own processes
os.environ.setdefault("SYMGRAD_PREWARM", "0")


def pytest_addoption(parser):
    parser.addoption("--corpus", type=int, default=300,
                     help="examples in the random-expression differential corpus (tests/test_corpus.py)")
