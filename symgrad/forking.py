"""When a process that compiles beside this one may be forked: the build helper
(``build_helper.py``) and the row-block loop's compiler (``runtime/prewarm.py``) ask the same."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path


def may_fork(setting: bool | None) -> bool:
    """Given the forking feature's switch ``setting`` (False: never; True: wherever forking is
    safe; None: also only while a CPU is idle: fewer tasks are running, this one included, than
    the CPUs this process may use). Safe: Linux, and no other Python thread (a forked thread's
    locks would be lost)."""
    if setting is False or not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    cpus = len(os.sched_getaffinity(0))
    return cpus >= 2 and (setting is True or running() < cpus)


def running() -> int:
    """Tasks running or runnable now, this one included (a load average lags by a minute)."""
    try:  # the fourth field: running/all
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 1 << 30  # unknown: no fork
