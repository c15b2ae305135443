"""The codebase stays ruff-clean (the style guide's linter), checked with the tests."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by the [test] extra")
def test_ruff_clean():
    proc = subprocess.run(["ruff", "check", "symgrad", "tests", "examples"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_no_module_over_300_lines():
    """Modules stay readable in one sitting (STYLE.md); split by concern when one grows."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "symgrad").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"modules over 300 lines: {long}"
