"""Test-wide setup: a private Numba/symgrad cache so runs never depend on each other."""

import os
import tempfile

# Set before symgrad is imported anywhere, so every compiled module lands here.
os.environ.setdefault("SYMGRAD_CACHE_DIR", tempfile.mkdtemp(prefix="symgrad-test-cache-"))


def pytest_addoption(parser):
    parser.addoption("--corpus", type=int, default=300,
                     help="examples in the random-expression differential corpus (tests/test_corpus.py)")
