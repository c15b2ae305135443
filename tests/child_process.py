"""A test's code run in a fresh Python process (its own cache, switches or forks), which prints
its result as one line ``RESULT <json>``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])


def run_result(code: str, env: dict[str, str], *args: str) -> dict | list:
    """``python -c code *args`` with ``env`` over this process's environment and symgrad importable;
    the value of its last ``RESULT`` line (the run must succeed)."""
    full = dict(os.environ, **env)
    full["PYTHONPATH"] = ROOT + os.pathsep + full.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-c", code, *args], env=full, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])
