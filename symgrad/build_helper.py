"""A cold build on two cores: a forked helper compiles part of a glue function's shared kernels.

A cold build's time is mostly Numba compiling the shared kernels a glue function calls
(``shared_kernels.py``), one after another on one core, while the machine's other cores wait.
Numba's compiler is single-threaded and holds a process-wide lock, so a second thread cannot
help; a second process can, because every shared kernel is cached on disk (``cache=True``):
what the helper compiles, the parent loads from the cache instead of compiling it.

How the work is split. Typing a glue function defers each call of a shared kernel, or of
the module's own functions it calls by address (the row-block step), whose type it can know
without compiling the callee (from the kernel's text, or from Numba's typing passes alone:
``shared_kernels._typed_only``) and notes it here; the callee's code is needed only when the
glue's code is generated. The first deferred call of a file Numba has not cached forks the
process, and each call typed from then on is sent to the child, which compiles while the
parent is still typing. Both processes take the costliest file nobody has claimed yet (an
``O_EXCL`` file), so no file is compiled twice and the large ones are spread first (greedy
scheduling); a glue function's callees are claimed or waited for the same way. The parent then
waits for the child's word that each of its files is in the cache, and loads it. If the child
dies, or says nothing for ``WAIT_S``, the parent compiles what is missing itself: a helper
makes a build faster, never wrong or stuck.

The child's side is ``build_child.py``. The helper runs only where forking is safe and
useful (docs/decisions.md, "A cold build on two cores"): Linux, two CPUs or more for this
process, no other Python thread running (a forked thread's locks would be lost), and a CPU
idle or the helper asked for (``enabled``).
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import tempfile
import time
import warnings

from . import build_child
from .forking import Messages, claim_file, may_fork, write_message
from .switches import switch

WAIT_S = 30.0  #: seconds the parent waits for word from the child about a file the child claimed
_deferred: dict[tuple, object] = {}  # (file, argtypes) -> the kernel's dispatcher, typed, not compiled
costs: dict[str, float] = {}  #: file -> its estimated compile cost
_helper: _Helper | None = None
_IN_HELPER = False  # True in the forked child: it never forks a helper of its own
_in_child = None  # in the helper: its build_child.Child (what it was sent, what it claimed)
STATS = {"helpers": 0, "helper_files": 0, "parent_files": 0}  #: for tests and benchmarks: who compiled what


def enabled() -> bool:
    """Whether this process may fork a build helper now: ``SYMGRAD_BUILD_HELPER`` is ``0``
    (never), ``1`` (wherever forking is safe) or unset (also only while a CPU is idle: fewer
    tasks are running, this one included, than the CPUs this process may use; switches.py)."""
    return may_fork(switch("SYMGRAD_BUILD_HELPER"))


def helping() -> bool:
    """Whether a helper runs (so this process is no longer alone on the CPUs), or may start."""
    return _helper is not None or _in_child is not None or enabled()


def defer(file: str, argtypes: tuple, dispatcher, cost: float = 0.0) -> None:
    """Note a call of shared kernel ``file`` for ``argtypes``, typed but not compiled yet;
    ``cost`` estimates its compile time (any unit: the costliest files are compiled first).
    The first such call of a kernel not in Numba's cache yet starts the helper."""
    global _helper
    key = (file, argtypes)
    if key in _deferred:
        return
    _deferred[key] = dispatcher
    costs[file] = cost
    if _helper is None and not _IN_HELPER and not cached(dispatcher) and enabled():
        _helper = _Helper.start()  # None if the fork failed
        for k in _deferred if _helper is not None else ():  # the calls typed before this one too
            _helper.send(*k)
    elif _helper is not None:
        _helper.send(*key)


def ensure(file: str, argtypes: tuple, dispatcher) -> None:
    """Make ``dispatcher`` (shared kernel ``file``) hold its code for ``argtypes``: compiled
    here, or by the helper and loaded from Numba's cache."""
    try:
        if tuple(argtypes) not in dispatcher.overloads:
            helper = _helper  # a nested call may stop it: a stopped helper leaves every file here
            if helper is not None:
                helper.share()  # at the outermost call; a nested one takes or waits for this file
                if file not in helper.mine and not helper.take(file) and not helper.wait_for(file):
                    STATS["parent_files"] += 1  # the helper died or hung: compiled here
            elif _in_child is not None:
                _in_child.take_or_wait(file, dispatcher)
            _compile(file)  # loads the helper's code from Numba's cache, or compiles it
            dispatcher.compile(argtypes)
        _deferred.pop((file, argtypes), None)
        for key in [k for k, d in _deferred.items() if tuple(k[1]) in d.overloads]:
            del _deferred[key]  # loaded on the way: the callees of glue that the helper compiled
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


def cached(dispatcher) -> bool:
    """Whether Numba's cache holds code of ``dispatcher`` (for some signature): no helper then.
    Numba writes a new entry's index before its data (``IndexDataCacheFile.save``), so an index
    alone may be a compile still being saved: a data file must be there too (written whole, by a
    rename), or a process waiting for the code would load nothing and compile it again."""
    try:
        file = dispatcher._cache._cache_file
        if not os.path.exists(file._index_path):
            return False
        if os.path.exists(os.path.join(file._cache_path, file._data_name_pattern.format(number=1))):
            return True  # the usual case, without listing a folder of every model's files (~1 ms a fit)
        stem = file._data_name_pattern.partition("{")[0]  # "<base>." before the overload's number
        return any(n.startswith(stem) and n.endswith(".nbc") for n in os.listdir(file._cache_path))
    except (AttributeError, OSError):  # not a caching dispatcher, Numba's internals moved, no folder
        return False


def by_cost(files) -> list[str]:
    """The costliest first (greedy scheduling: the large files spread over both processes first)."""
    return sorted(files, key=lambda f: -costs.get(f, 0.0))


class _Helper:
    """The forked child, seen from the parent: pipes to it (calls typed), from it (calls compiled)."""

    def __init__(self, pid: int, claims: str, to_child: int, from_child: int):
        self.pid, self.claims, self.to_child, self.from_child = pid, claims, to_child, from_child
        self.sent: dict[tuple, int] = {}  # (file, argtypes) -> its number in the pipe
        self.mine: set[str] = set()  # the files the parent claimed
        self.reported: set[int] = set()
        self.reader = Messages(from_child)
        self.alive, self.sharing = True, False

    @classmethod
    def start(cls) -> _Helper | None:
        claims = tempfile.mkdtemp(prefix="symgrad-build-")
        calls_r, calls_w = os.pipe()
        done_r, done_w = os.pipe()
        try:
            with warnings.catch_warnings():  # JAX warns at every fork of a process holding its
                # threads; the child calls into no library's threads: it compiles, then os._exit
                warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
                pid = os.fork()
        except OSError:
            for fd in (calls_r, calls_w, done_r, done_w):
                os.close(fd)
            shutil.rmtree(claims, ignore_errors=True)
            return None
        if pid == 0:  # the child never returns from here
            code = 1
            try:
                os.close(calls_w)
                os.close(done_r)
                build_child.serve(calls_r, done_w, claims)
                code = 0
            finally:  # any error: the parent compiles whatever is left
                os._exit(code)
        os.close(calls_r)
        os.close(done_w)
        STATS["helpers"] += 1
        return cls(pid, claims, calls_w, done_r)

    def send(self, file: str, argtypes: tuple) -> None:
        """Tell the child of a call typed (it may claim and compile its file)."""
        if not self.alive:
            return
        n = self.sent[(file, argtypes)] = len(self.sent)
        try:
            write_message(self.to_child, pickle.dumps((n, file, argtypes, costs.get(file, 0.0))))
        except (OSError, pickle.PicklingError):
            self.finish()

    def share(self) -> None:
        """The parent's part: compile each deferred file it can claim, the costliest first. Not
        again while a file of it compiles: that file's callees are taken one at a time (``take``),
        so a glue function is never compiled inside another that the parent claimed."""
        if self.sharing:
            return
        self.sharing = True
        try:
            for file in by_cost({f for f, _ in _deferred} - self.mine):
                if self.take(file):
                    _compile(file)
        finally:
            self.sharing = False

    def take(self, file: str) -> bool:
        """Claim ``file`` for the parent (every file, once the child is gone); whether it did."""
        if self.alive and not claim_file(self.claims, file):
            return False
        self.mine.add(file)
        STATS["parent_files"] += 1
        return True

    def wait_for(self, file: str) -> bool:
        """Wait until the child reports every call of ``file`` it was sent compiled; False
        if it died first or was silent for WAIT_S (the parent then compiles ``file`` itself)."""
        need = {n for (f, _), n in self.sent.items() if f == file}
        while self.alive and not need <= self.reported:
            msgs = self.reader.read(WAIT_S)
            if msgs is None:  # the child exited, or hung (it is stopped)
                self.finish(grace=0.0)
            else:
                self.reported.update(msgs)
        if need and need <= self.reported:
            STATS["helper_files"] += 1
            return True
        return False

    def finish(self, grace: float = 1.0) -> None:
        """Close the pipes and reap the child: it leaves once it has read the end of the calls;
        after ``grace`` seconds it is stopped (it compiles what nobody needs now, or hangs)."""
        if not self.alive:
            return
        self.alive = False
        os.close(self.to_child)
        try:
            deadline = time.monotonic() + grace
            while os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    break
                time.sleep(0.005)
        except OSError:
            pass
        os.close(self.from_child)
        shutil.rmtree(self.claims, ignore_errors=True)
