"""When a process that compiles beside this one may be forked (the build helper,
``build_helper.py``, and the row-block loop's compiler, ``runtime/prewarm.py``, ask the same),
and the messages the build helper and its parent send each other through pipes."""

from __future__ import annotations

import os
import pickle
import select
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


def write_message(fd: int, payload: bytes) -> None:
    """Write ``payload`` (a pickle) to pipe ``fd`` after its length, whole."""
    data = len(payload).to_bytes(4, "little") + payload
    while data:
        data = data[os.write(fd, data):]


class Messages:
    """Messages read from a pipe, each a pickle after its length (``write_message``)."""

    def __init__(self, fd: int):
        self.fd, self.buffer = fd, b""

    def read(self, timeout: float | None) -> list | None:
        """The messages complete so far, waiting up to ``timeout`` seconds (None: until there
        is one) for more; None at the end of the pipe or when the wait runs out empty."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        chunk = os.read(self.fd, 1 << 16) if ready else None
        if chunk == b"" or chunk is None and timeout != 0.0:
            return None  # the pipe's end, or a wait that ran out
        self.buffer += chunk or b""
        out = []
        while len(self.buffer) >= 4 and len(self.buffer) >= 4 + (k := int.from_bytes(self.buffer[:4], "little")):
            out.append(pickle.loads(self.buffer[4:4 + k]))
            self.buffer = self.buffer[4 + k:]
        return out


def claim_file(folder: str, name: str) -> bool:
    """Claim ``name`` in ``folder`` (an ``O_EXCL`` file); of two processes, one gets it.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> claim_file(folder, "sgk_a.py"), claim_file(folder, "sgk_a.py")
    (True, False)
    """
    try:
        os.close(os.open(os.path.join(folder, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False
