"""symgrad's on/off environment variables, all read one way.

``SYMGRAD_BUILD_HELPER`` (build_helper.py), ``SYMGRAD_PREWARM`` (runtime/prewarm.py),
``SYMGRAD_KEEP_MEMORY`` (runtime/memory.py) and ``SYMGRAD_NUMPY_BLAS`` (native/blas_lib.py) take ``0`` (off) or ``1`` (on); unset or empty
leaves symgrad's default. Any other value (``yes``, ``false``, ``off``) is not guessed at: it
warns, naming the variable and the two values, and counts as unset.

>>> import os
>>> os.environ["SYMGRAD_EXAMPLE_SWITCH"] = "0"
>>> switch("SYMGRAD_EXAMPLE_SWITCH")
False
"""

from __future__ import annotations

import os
import warnings


def switch(name: str) -> bool | None:
    """The environment variable ``name``: False for ``0``, True for ``1``, None when unset or
    empty; another value warns once per call and counts as unset."""
    value = os.environ.get(name, "").strip()
    if value in ("", "0", "1"):
        return None if value == "" else value == "1"
    warnings.warn(f"symgrad: {name}={value!r} is neither 0 nor 1, so it is ignored (symgrad's default "
                  f"applies). Fix: set {name}=0 to switch it off or {name}=1 to switch it on.", stacklevel=3)
    return None
