"""A cold build's forked helper (symgrad/build_helper.py): it compiles part of a glue
function's shared kernels, each exactly once between the two processes, and a helper that
dies or hangs costs time, never a kernel or a number."""

import os
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from child_process import run_result

from symgrad import build_child, build_helper, shared_kernels

PARENT = os.getpid()


class FakeKernel:
    """A dispatcher stand-in: compiling writes a record naming the process that did it; a
    compile after another process's (the helper's) finds that record, as Numba finds the
    helper's code in its cache, and records nothing."""

    def __init__(self, name, records, in_child=None, seconds=0.15):
        self.name, self.records, self.in_child, self.seconds = name, records, in_child, seconds
        self.overloads = {}

    def compile(self, sig):
        if os.getpid() != PARENT and self.in_child is not None:
            self.in_child()
        done = list(self.records.glob(f"{self.name}-{sig[0]}-*"))
        if not done:
            time.sleep(self.seconds)
            (self.records / f"{self.name}-{sig[0]}-{os.getpid()}").touch()
        self.overloads[tuple(sig)] = True


@pytest.fixture
def helper_on(monkeypatch):
    monkeypatch.setattr(build_helper, "enabled", lambda: True)
    monkeypatch.setattr(build_helper, "STATS", dict.fromkeys(build_helper.STATS, 0))
    build_helper._deferred.clear()
    yield
    build_helper._deferred.clear()


def _build(tmp_path, monkeypatch, n_files=6, **kw):
    """Defer two signatures of each of ``n_files`` kernels, then make their code as a glue
    function's code generation does (ensure, in typing order); the records by (kernel, sig)."""
    records = tmp_path / "records"
    records.mkdir()
    kernels = [FakeKernel(f"k{i}", records, **kw) for i in range(n_files)]
    # the child finds a kernel by its file, as shared_kernels.kernel finds a module it loaded
    fakes = {f"sgk_{k.name}.py": k for k in kernels}
    monkeypatch.setattr(shared_kernels, "kernel", fakes.__getitem__)
    for k in kernels:
        for sig in (("f32",), ("f64",)):
            build_helper.defer(f"sgk_{k.name}.py", sig, k)
    for k in kernels:
        for sig in (("f32",), ("f64",)):
            build_helper.ensure(f"sgk_{k.name}.py", sig, k)
            assert k.overloads[sig]
    assert not build_helper._deferred and build_helper._helper is None
    by = {}
    for r in records.iterdir():
        name, sig, pid = r.name.split("-")
        by.setdefault((name, sig), []).append(int(pid))
    return by


def test_each_kernel_is_compiled_once_by_one_of_the_two_processes(tmp_path, helper_on, monkeypatch):
    by = _build(tmp_path, monkeypatch)
    assert sorted(by) == sorted((f"k{i}", s) for i in range(6) for s in ("f32", "f64"))
    assert all(len(pids) == 1 for pids in by.values()), by
    pids = {p for (name, _), (p,) in by.items()}
    assert PARENT in pids and len(pids) == 2, "both processes compiled kernels"
    # a kernel's signatures stay in one process (its cache index is written by one)
    for i in range(6):
        assert by[(f"k{i}", "f32")] == by[(f"k{i}", "f64")]
    stats = build_helper.STATS
    assert stats["helpers"] == 1 and stats["helper_files"] + stats["parent_files"] == 6
    assert stats["helper_files"] == sum(1 for i in range(6) if by[(f"k{i}", "f32")] != [PARENT])


class FakeGlue(FakeKernel):
    """A glue function called by address: unless another compile's record is there (Numba's
    cache), it makes its callees' code (as its code generation does), then leaves a record of
    its own, however many there are already (a second compile in one process counts too)."""

    def __init__(self, name, records, callees):
        super().__init__(name, records, seconds=0.3)
        self.callees = callees

    def compile(self, sig):
        if list(self.records.glob(f"{self.name}-{sig[0]}-*")):  # Numba loads it from the cache,
            for _, k in self.callees:  # its callees too (shared_kernels.Reregister)
                k.compile(sig)
        else:
            for file, k in self.callees:
                build_helper.ensure(file, sig, k)
            time.sleep(self.seconds)
            (self.records / f"{self.name}-{sig[0]}-{os.getpid()}-{time.monotonic_ns()}").touch()
        self.overloads[tuple(sig)] = True


@pytest.mark.parametrize("late_helper", [False, True])
def test_glue_called_by_address_is_shared_too_and_nothing_is_compiled_twice(tmp_path, helper_on, monkeypatch, late_helper):
    """A row-block step's shape: glue g1 calls glue g0 and two kernels, g0 two others, all typed
    before any code is made. The processes share glue as they share kernels; a callee the other
    process holds is waited for (the helper polls Numba's cache), never compiled again; and the
    parent, compiling g0 while the helper is still starting (``late_helper``), takes only g0's
    callees then, not g1, whose code would need g0 before g0 is done."""
    records = tmp_path / "records"
    records.mkdir()
    if late_helper:
        start = build_child.Child.__init__
        monkeypatch.setattr(build_child.Child, "__init__", lambda *a: (time.sleep(0.5), start(*a))[1])
    ks = {f"sgk_k{i}.py": FakeKernel(f"k{i}", records, seconds=0.1) for i in range(4)}
    files = list(ks)
    g0 = FakeGlue("g0", records, [(f, ks[f]) for f in files[:2]])
    g1 = FakeGlue("g1", records, [("sg_m.py:g0", g0)] + [(f, ks[f]) for f in files[2:]])
    monkeypatch.setattr(shared_kernels, "kernel", {**ks, "sg_m.py:g0": g0, "sg_m.py:g1": g1}.__getitem__)
    monkeypatch.setattr(build_helper, "cached", lambda d: bool(list(records.glob(f"{d.name}-*"))))
    for f in files[:2]:  # typing order: g1's typing types g0 (its callees first), then g1's own
        build_helper.defer(f, ("f32",), ks[f], cost=1.0)
    build_helper.defer("sg_m.py:g0", ("f32",), g0, cost=10.0)
    for f in files[2:]:
        build_helper.defer(f, ("f32",), ks[f], cost=1.0)
    build_helper.defer("sg_m.py:g1", ("f32",), g1, cost=5.0)
    build_helper.ensure("sg_m.py:g1", ("f32",), g1)  # the caller's code generation
    assert not build_helper._deferred and build_helper._helper is None
    made = {}
    for r in records.iterdir():
        made.setdefault(r.name.split("-")[0], []).append(int(r.name.split("-")[2]))
    assert sorted(made) == ["g0", "g1", "k0", "k1", "k2", "k3"]
    assert all(len(pids) == 1 for pids in made.values()), made
    if not late_helper:
        assert len({p for pids in made.values() for p in pids}) == 2, "both processes compiled files"


def test_the_helper_compiles_kernels_while_it_waits_for_a_callee_the_parent_holds(tmp_path, helper_on, monkeypatch):
    """The parent claims glue g0 (2 s: a transformer's loss_grad) before the helper has started;
    the helper then takes glue g1, which calls g0, and waits for it. Meanwhile it compiles the
    kernels nobody has claimed (those of g2, which the parent compiles after g0), rather than
    leave them all to the parent once g0 is done."""
    records = tmp_path / "records"
    records.mkdir()
    start = build_child.Child.__init__
    monkeypatch.setattr(build_child.Child, "__init__", lambda *a: (time.sleep(0.3), start(*a))[1])
    ks = {f"sgk_k{i}.py": FakeKernel(f"k{i}", records, seconds=0.1) for i in range(4)}
    g0 = FakeGlue("g0", records, [])
    g0.seconds = 2.0
    g1 = FakeGlue("g1", records, [("sg_m.py:g0", g0)])
    g2 = FakeGlue("g2", records, list(ks.items()))
    glue = {"sg_m.py:g0": g0, "sg_m.py:g1": g1, "sg_m.py:g2": g2}
    monkeypatch.setattr(shared_kernels, "kernel", {**ks, **glue}.__getitem__)
    monkeypatch.setattr(build_helper, "cached", lambda d: bool(list(records.glob(f"{d.name}-*"))))
    for file, cost in (("sg_m.py:g0", 10.0), ("sg_m.py:g1", 5.0), *((f, 1.0) for f in ks), ("sg_m.py:g2", 2.0)):
        build_helper.defer(file, ("f32",), {**ks, **glue}[file], cost=cost)
    build_helper.ensure("sg_m.py:g1", ("f32",), g1)  # the caller's code generation
    build_helper.ensure("sg_m.py:g2", ("f32",), g2)
    assert not build_helper._deferred and build_helper._helper is None
    made = {r.name.split("-")[0]: int(r.name.split("-")[2]) for r in records.iterdir()}
    assert made["g0"] == PARENT and made["g1"] != PARENT
    assert all(made[f"k{i}"] == made["g1"] for i in range(4)), made


def test_a_helper_that_dies_leaves_its_work_to_the_parent(tmp_path, helper_on, monkeypatch):
    by = _build(tmp_path, monkeypatch, in_child=lambda: os._exit(3))
    assert len(by) == 12 and all(pids == [PARENT] for pids in by.values())
    assert build_helper.STATS["helper_files"] == 0 and build_helper.STATS["parent_files"] == 6


def test_a_silent_helper_is_stopped_and_the_parent_compiles(tmp_path, helper_on, monkeypatch):
    monkeypatch.setattr(build_helper, "WAIT_S", 0.5)
    t = time.perf_counter()
    by = _build(tmp_path, monkeypatch, n_files=3, in_child=lambda: time.sleep(60), seconds=0.0)
    assert time.perf_counter() - t < 20
    assert len(by) == 6 and all(pids == [PARENT] for pids in by.values())


def test_no_helper_while_another_thread_runs_or_when_switched_off(monkeypatch):
    monkeypatch.setenv("SYMGRAD_BUILD_HELPER", "1")
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not build_helper.enabled()  # a forked child would hold none of that thread's locks
    finally:
        stop.set()
        t.join()
    monkeypatch.setenv("SYMGRAD_BUILD_HELPER", "0")
    assert not build_helper.enabled()


CHILD = textwrap.dedent('''
    import json, sys
    import numpy as np
    import symgrad as sg
    from symgrad import build_helper, shared_kernels
    from symgrad.runtime.execution import fit_threads, sample_work
    rng = np.random.default_rng(1)
    X = rng.normal(size=(96, 40)).astype(np.float32); y = rng.integers(0, 3, 96)
    # 40·300 + 300·300 + 300·3 = 102,900 multiply-adds a row: a batch of 48 is two row blocks, whose
    # step (block_grad, par_grads, par_update) is glue called by address, shared with the helper
    net = sg.nn.MLP([40, 300, 300, 3], activation="tanh")
    r = sg.fit(net, "softmax_cross_entropy", X, y, optimizer=sg.optim.Adam(0.01), epochs=2, batch_size=48, seed=2,
               threads=2)
    print("RESULT " + json.dumps({"stats": build_helper.STATS, "blocks": fit_threads(48, 2, work=sample_work(net.expr)),
                                  "params": [np.asarray(v).tolist() for v in r.params]}))
''')


def _cold_fit(tmp_path, setting):
    return run_result(CHILD, {"SYMGRAD_CACHE_DIR": str(tmp_path / f"cache{setting}"), "SYMGRAD_BUILD_HELPER": setting})


@pytest.mark.numba
@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="the helper forks, on Linux with two CPUs")
def test_a_cold_build_with_the_helper_trains_to_the_same_numbers(tmp_path):
    """Two cold builds of a model on row blocks in fresh processes, with and without the helper:
    the helper compiled some of the files, and the trained parameters are identical to the last bit."""
    on, off = _cold_fit(tmp_path, "1"), _cold_fit(tmp_path, "0")
    assert on["blocks"] == 2, "the model trains on row blocks (fit's rule changed: make it heavier)"
    assert on["stats"]["helpers"] == 1 and on["stats"]["helper_files"] >= 1
    assert off["stats"]["helpers"] == 0
    assert len(on["params"]) == len(off["params"]) == 6
    for a, b in zip(on["params"], off["params"]):
        np.testing.assert_array_equal(a, b)


def test_a_fork_that_fails_leaves_the_build_to_the_parent(tmp_path, helper_on, monkeypatch):
    def no_fork():
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    by = _build(tmp_path, monkeypatch, n_files=3, seconds=0.0)
    assert len(by) == 6 and all(pids == [PARENT] for pids in by.values())
    assert build_helper.STATS["helpers"] == 0


def test_typing_alone_gives_the_compiled_return_type_and_compiles_nothing():
    """What the glue's typing takes from numba_typing is what the compiled kernel returns; a
    kernel that does not type falls back to compiling (which then names the error)."""
    import numba
    from numba.core import types

    from symgrad import numba_typing

    f = numba.njit(lambda a, o, r, c: a[o:o + r * c].reshape((r, c)))
    g = numba.njit(lambda a: a.sum())
    for fn, sig in ((f, (types.float32[::1], types.int64, types.int64, types.int64)), (g, (types.float64[:, ::1],))):
        typed = numba_typing.return_type(fn, sig)
        assert not fn.overloads
        fn.compile(sig)
        assert fn.overloads[sig].signature.return_type == typed
    bad = numba.njit(lambda a: a.no_such_attribute)
    with pytest.raises(Exception, match="no_such_attribute"):
        numba_typing.return_type(bad, (types.float64[::1],))


@pytest.mark.parametrize("value", ["yes", "off", "2"])
def test_a_switch_set_to_neither_0_nor_1_warns_and_counts_as_unset(monkeypatch, value):
    from symgrad.switches import switch

    monkeypatch.setenv("SYMGRAD_BUILD_HELPER", value)
    with pytest.warns(UserWarning, match=f"SYMGRAD_BUILD_HELPER='{value}' is neither 0 nor 1.*Fix: set"):
        assert switch("SYMGRAD_BUILD_HELPER") is None
    monkeypatch.setenv("SYMGRAD_KEEP_MEMORY", " 0 ")
    assert switch("SYMGRAD_KEEP_MEMORY") is False
    monkeypatch.delenv("SYMGRAD_KEEP_MEMORY")
    assert switch("SYMGRAD_KEEP_MEMORY") is None


def test_an_index_without_its_data_is_not_cached_code(tmp_path):
    # Numba saves a new entry's index before its data: a process polling for another's compile
    # must not take the index alone for the code (it would load nothing and compile it again)
    import importlib.util

    (tmp_path / "sg_cached_probe.py").write_text("import numba\n\n\n@numba.njit(cache=True)\ndef f(x):\n"
                                                 "    return x + 1\n")
    spec = importlib.util.spec_from_file_location("sg_cached_probe", tmp_path / "sg_cached_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert not build_helper.cached(mod.f)  # nothing compiled yet
    assert mod.f(1) == 2
    assert build_helper.cached(mod.f)
    folder = mod.f._cache._cache_file._cache_path
    data = [n for n in os.listdir(folder) if n.endswith(".nbc")]
    assert data and any(n.endswith(".nbi") for n in os.listdir(folder))
    for n in data:
        os.remove(os.path.join(folder, n))
    assert not build_helper.cached(mod.f)  # the index alone, as while the data is being written
