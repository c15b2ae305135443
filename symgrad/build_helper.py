"""A cold build on two cores: a forked helper compiles half of a glue function's shared kernels.

A cold build's time is mostly Numba compiling the shared kernels a glue function calls
(``shared_kernels.py``), one after another on one core, while the machine's other cores wait.
Numba's compiler is single-threaded and holds a process-wide lock, so a second thread cannot
help; a second process can, because every shared kernel is cached on disk (``cache=True``):
what the helper compiles, the parent loads from the cache instead of compiling it.

How the work is split. Typing a glue function defers each shared kernel that returns nothing
(its call's type is known without compiling it: ``shared_kernels.returns_nothing``) and notes
it here. When the glue's code is generated, the first deferred call forks the process. Both
processes then go through the deferred kernels' files, the costliest first, and each compiles
every file it claims first (an ``O_EXCL`` file): no file is compiled twice, and the larger
files are spread first (greedy scheduling). The parent then waits for the child's word that
each of its files is in the cache, and loads it. If the child dies, or says nothing for
``WAIT_S``, the parent compiles what is missing itself: the helper can make a build faster,
never wrong or stuck.

The helper runs only where forking is safe and useful (docs/decisions.md, "A cold build on two
cores"): Linux, at least two CPUs for this process, no other Python thread running (a forked
thread's locks would be lost), and a CPU idle or the helper asked for (``enabled``).

Claims are files created with ``O_EXCL``: of two processes, one gets each.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> _claim(folder, "sgk_a.py"), _claim(folder, "sgk_a.py")
(True, False)
"""

from __future__ import annotations

import os
import select
import shutil
import sys
import tempfile
import threading

#: Seconds the parent waits for word from the child about a file the child claimed.
WAIT_S = 300.0

# (file, argtypes) -> the kernel's dispatcher, for calls typed but not yet compiled, in order
_deferred: dict[tuple, object] = {}
_costs: dict[str, float] = {}  # file -> its estimated compile cost
_helper: _Helper | None = None
#: Counts for tests and benchmarks: files the helper compiled, files the parent compiled.
STATS = {"helpers": 0, "helper_files": 0, "parent_files": 0}


def enabled() -> bool:
    """Whether this process may fork a build helper now: ``SYMGRAD_BUILD_HELPER`` is ``0``
    (never), ``1`` (wherever forking is safe) or unset (also only while a CPU is idle: fewer
    tasks are running, this one included, than the CPUs this process may use)."""
    setting = os.environ.get("SYMGRAD_BUILD_HELPER", "")
    if setting == "0" or not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    if threading.active_count() != 1:
        return False
    cpus = len(os.sched_getaffinity(0))
    return cpus >= 2 and (setting == "1" or _running() < cpus)


def _running() -> int:
    """Tasks running or runnable on the machine now, this one included (a load average lags
    by a minute; the kernel's count of runnable tasks does not)."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 1 << 30  # unknown: no helper


def defer(file: str, argtypes: tuple, dispatcher, cost: float = 0.0) -> None:
    """Note a call of shared kernel ``file`` for ``argtypes``, typed but not compiled yet;
    ``cost`` estimates its compile time (any unit: the larger files are handed out first)."""
    _deferred.setdefault((file, argtypes), dispatcher)
    _costs[file] = cost


def ensure(file: str, argtypes: tuple, dispatcher) -> None:
    """Make ``dispatcher`` (shared kernel ``file``) hold its code for ``argtypes``: compiled
    here, or by the helper and loaded from Numba's cache."""
    global _helper
    try:
        if tuple(argtypes) not in dispatcher.overloads:
            if _helper is None and enabled():
                work = _work()
                if len(work) >= 2:
                    _helper = _Helper.start(work)
            if _helper is not None:
                _helper.share()
                if file in _helper.theirs and not _helper.wait_for(file):
                    STATS["parent_files"] += 1  # the helper died or hung: compiled here
            _compile(file)  # loads the helper's code from Numba's cache, or compiles it
            dispatcher.compile(argtypes)
        _deferred.pop((file, argtypes), None)
    except BaseException:
        _stop()
        raise
    if not _deferred:
        _stop()


def _stop() -> None:
    global _helper
    if _helper is not None:
        _helper.finish()
        _helper = None


def _compile(file: str) -> None:
    for key in [k for k in _deferred if k[0] == file]:
        _deferred.pop(key).compile(key[1])


def _work() -> list[tuple[str, list[tuple], object]]:
    """The deferred calls grouped by file, the costliest first: (file, its argtypes, its
    dispatcher). A file is one unit of work: two processes compiling two signatures of one
    kernel would each rewrite its cache index, and one entry could be lost. Both processes
    take the next file nobody has claimed, so the costliest go first (greedy scheduling)."""
    groups: dict[str, tuple[str, list[tuple], object]] = {}
    for (file, argtypes), d in _deferred.items():
        groups.setdefault(file, (file, [], d))[1].append(argtypes)
    return sorted(groups.values(), key=lambda g: -_costs.get(g[0], 0.0))


class _Helper:
    """The forked child, seen from the parent: the work list, the claims folder, and the pipe
    the child reports on."""

    def __init__(self, pid: int, work: list, claims: str, fd: int):
        self.pid, self.work, self.claims, self.fd = pid, work, claims, fd
        self.theirs: set[str] = set()  # the files the child claimed
        self.reported: set[str] = set()
        self.buffer = b""
        self.alive = True
        self.shared = False

    @classmethod
    def start(cls, work: list[tuple[str, list[tuple], object]]) -> _Helper | None:
        claims = tempfile.mkdtemp(prefix="symgrad-build-")
        r, w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            shutil.rmtree(claims, ignore_errors=True)
            return None
        if pid == 0:  # the child: compile every file it can claim, report each, leave at once
            code = 0
            try:
                os.close(r)
                for file, sigs, dispatcher in work:
                    if _claim(claims, file):
                        for sig in sigs:
                            dispatcher.compile(sig)
                        os.write(w, (file + "\n").encode())
            except BaseException:  # the parent compiles whatever is left
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        STATS["helpers"] += 1
        return cls(pid, work, claims, r)

    def share(self) -> None:
        """The parent's part, once: compile each file of the work list it can claim."""
        if self.shared:
            return
        self.shared = True
        for file, _, _ in self.work:
            if self.claim(file):
                _compile(file)
                STATS["parent_files"] += 1
            else:
                self.theirs.add(file)

    def claim(self, file: str) -> bool:
        """Whether the parent may compile ``file`` (else the child has it)."""
        return not self.alive or _claim(self.claims, file)

    def wait_for(self, file: str) -> bool:
        """Wait until the child reports ``file`` compiled; False if it died first or was silent
        for WAIT_S (the parent then compiles ``file`` itself)."""
        while file not in self.reported and self.alive:
            ready, _, _ = select.select([self.fd], [], [], WAIT_S)
            chunk = os.read(self.fd, 65536) if ready else b""
            if not chunk:  # the child exited (or hung: it is stopped below)
                self.finish()
                break
            self.buffer += chunk
            *lines, self.buffer = self.buffer.split(b"\n")
            self.reported.update(line.decode() for line in lines)
        if file in self.reported:
            STATS["helper_files"] += 1
            return True
        return False

    def finish(self) -> None:
        """Reap the child (it has nothing left to do once the parent needs no more files)."""
        if not self.alive:
            return
        self.alive = False
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
        except OSError:
            pass
        os.close(self.fd)
        shutil.rmtree(self.claims, ignore_errors=True)


def _claim(folder: str, file: str) -> bool:
    try:
        os.close(os.open(os.path.join(folder, file), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False
