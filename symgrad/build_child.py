"""The build helper's side (``build_helper.py``): the forked child's loop, and what it does when
a glue function it compiles calls a file the parent holds.

The child takes the calls the parent sends, compiles the costliest file it can claim, and
reports each call compiled. Glue it compiles may call a file: it claims it, or waits for the
parent's copy in Numba's cache while compiling other kernels it can claim.
"""

from __future__ import annotations

import pickle
import time
import warnings

from . import build_helper
from .forking import Messages, claim_file, write_message


def serve(calls: int, done: int, claims: str) -> None:
    """The helper's loop: take the calls the parent sends, compile the costliest file it can
    claim (all calls of it), report each call compiled; leave when the parent closes the pipe
    and nothing is left."""
    build_helper._IN_HELPER = True
    # nothing from here goes through the parent's stream objects, whose locks a thread of the
    # parent may have held at the fork (a kernel's compile warnings are symgrad's, not the user's)
    warnings.simplefilter("ignore")
    me = build_helper._in_child = Child(Messages(calls), done, claims)
    while me.more or me.queue:
        me.read(None if not me.queue else 0.0)
        me.run_next()


class Child:
    """The helper's state: the calls sent and not compiled yet, by file; the files it claimed."""

    def __init__(self, reader: Messages, done: int, claims: str):
        self.reader, self.done, self.claims = reader, done, claims
        self.queue: dict[str, list] = {}
        self.mine: set[str] = set()
        self.more = True  # the parent may send more calls

    def take_or_wait(self, file: str, dispatcher) -> None:
        """A callee of glue it compiles: claim it (and compile the calls of it the parent sent:
        it may wait for them), or wait up to ``WAIT_S`` for the parent's copy in Numba's cache
        (calls have no cycles: the two never wait for each other), compiling the kernels it can
        claim meanwhile (a transformer's loss_grad keeps the parent 8 s)."""
        if self.claim(file):
            return self.run(file)
        end = time.monotonic() + build_helper.WAIT_S
        while not build_helper.cached(dispatcher) and time.monotonic() < end:
            if not self.run_next(kernels_only=True):
                time.sleep(0.005)

    def read(self, timeout: float | None) -> None:
        msgs = self.reader.read(timeout) if self.more else []
        if msgs is None:
            self.more = False
        for n, file, argtypes, cost in msgs or ():
            self.queue.setdefault(file, []).append((n, argtypes))
            build_helper.costs[file] = cost

    def claim(self, file: str) -> bool:
        if file in self.mine or claim_file(self.claims, file):
            self.mine.add(file)
            return True
        return False

    def run_next(self, kernels_only: bool = False) -> bool:
        """Compile the next file sent that it can claim, dropping those the parent holds: new
        calls of a file it holds first (the parent cannot take them, and may be waiting), then
        the costliest. ``kernels_only``: no glue (while it waits: a kernel waits for nothing).
        Whether there was one."""
        self.read(0.0)
        files = [f for f in self.queue if not kernels_only or ":" not in f]
        for file in sorted(build_helper.by_cost(files), key=lambda f: f not in self.mine):
            if self.claim(file):
                self.run(file)
                return True
            self.queue.pop(file)
        return False

    def run(self, file: str) -> None:
        """Compile every call of ``file`` sent so far, and report each."""
        from .shared_kernels import kernel

        self.read(0.0)
        d = kernel(file)
        for n, argtypes in self.queue.pop(file, ()):
            d.compile(argtypes)
            write_message(self.done, pickle.dumps(n))
