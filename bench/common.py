"""Shared pieces of the benchmark suite: modes, machine information, peers, timing, checks,
and Markdown helpers.

Every workload module (``bench/w*_*.py``) exposes ``run(mode) -> Section``; ``bench/run.py``
runs them in order and writes ``BENCHMARKS.md``.
"""

from __future__ import annotations

import atexit
import datetime
import importlib
import inspect
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MIN_REPEATS = 5
# Idle worker threads spin before they sleep: libgomp's (Numba's and torch's OpenMP) for about
# 10-15 ms, OpenBLAS's for about 0.1 s. On this machine a thread spinning on the other core
# slowed a single-threaded kernel by 30% (measured), so without a pause an implementation pays
# for the one timed before it. Each timed call therefore waits this long first (untimed).
SETTLE_S = 0.15


# ---------------------------------------------------------------------------
# modes
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Mode:
    """How big and how often: 'full' (published numbers), 'quick' (minutes), 'tiny' (the test)."""

    name: str
    repeats: int

    @property
    def full(self) -> bool:
        return self.name == "full"

    @property
    def quick(self) -> bool:
        return self.name == "quick"

    @property
    def tiny(self) -> bool:
        return self.name == "tiny"

    def pick(self, full, quick, tiny):
        return {"full": full, "quick": quick, "tiny": tiny}[self.name]

    @property
    def settle(self) -> float:
        """``interleaved``'s pause before each timed call (SETTLE_S in --full)."""
        return self.pick(SETTLE_S, 0.05, 0.0)


def make_mode(name: str) -> Mode:
    return Mode(name, {"full": 7, "quick": 5, "tiny": MIN_REPEATS}[name])


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------
@dataclass
class Target:
    """One target of the issue, judged from measurements of the same run."""

    workload: str
    text: str
    measured: str
    met: bool | None  # None: could not be measured (peer missing, or tiny mode)
    evidence: str = ""


@dataclass
class Section:
    title: str
    markdown: str
    targets: list[Target] = field(default_factory=list)
    data: dict = field(default_factory=dict)


class BenchmarkDisagreement(AssertionError):
    """Two implementations computed different things: the benchmark must not report them."""


# ---------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------
_PEERS = {
    "torch": "torch",
    "jax": "jax",
    "sklearn": "scikit-learn",
    "threadpoolctl": "threadpoolctl",
    "pytensor": "pytensor",
}
_peer_cache: dict[str, Any] = {}


def _pytensor_compiledir() -> None:
    """Point PyTensor's compile and Numba caches at a fresh temporary folder (removed at exit), unless
    ``PYTENSOR_FLAGS`` already names one: its first call is then a cold compile, like symgrad's."""
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "compiledir" in flags:
        return
    d = tempfile.mkdtemp(prefix="pytensor-bench-")
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    os.environ["PYTENSOR_FLAGS"] = ",".join(x for x in (flags, f"base_compiledir={d}") if x)


def peer(module: str):
    """The imported peer module, or None if it is not installed (the caller skips it with a note)."""
    if module not in _peer_cache:
        if module == "pytensor":
            _pytensor_compiledir()  # must precede the import: PyTensor reads its flags once
        try:
            mod = importlib.import_module(module)
        except ImportError:
            mod = None
        if mod is not None and module == "jax":
            mod.config.update("jax_enable_x64", True)  # float64 benchmarks; float32 arrays stay float32
        _peer_cache[module] = mod
    return _peer_cache[module]


def skipped(module: str) -> str:
    return f"skipped: {_PEERS.get(module, module)} not installed"


def peer_status() -> dict[str, str]:
    out = {}
    for mod, dist in _PEERS.items():
        m = peer(mod)
        out[dist] = getattr(m, "__version__", "installed") if m is not None else "skipped: not installed"
    if peer("jax") is not None:
        import jaxlib

        out["jaxlib"] = jaxlib.__version__
    return out


# ---------------------------------------------------------------------------
# machine
# ---------------------------------------------------------------------------
def loadavg() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, str]:
    """CPU, cores, versions and thread settings (reuses the workload-1 script's list)."""
    from bench.bench_formula import machine_info as base_info

    info = base_info()
    info["memory"] = _meminfo()
    info.update({k: v for k, v in peer_status().items()})
    import scipy

    info["SciPy"] = scipy.__version__
    tpc = peer("threadpoolctl")
    if tpc is not None:
        libs = []
        for lib in tpc.threadpool_info():
            where = Path(lib.get("filepath", "")).parent.parent.name or "?"
            libs.append(f"{lib.get('internal_api')} {lib.get('version')} ({where}, {lib.get('user_api')}, "
                        f"{lib.get('num_threads')} threads)")
        info["thread pools (threadpoolctl, at start)"] = "; ".join(libs) or "none loaded"
    torch = peer("torch")
    if torch is not None:
        info["torch threads (intra-op / inter-op)"] = f"{torch.get_num_threads()} / {torch.get_num_interop_threads()}"
    jax = peer("jax")
    if jax is not None:
        info["JAX backend"] = f"{jax.default_backend()} ({', '.join(str(d) for d in jax.devices())}); " \
                              f"XLA_FLAGS={os.environ.get('XLA_FLAGS', 'unset')}; x64 enabled"
    import symgrad.jit as sgjit

    dirty = _git("status", "--porcelain", "--", "symgrad")
    info["symgrad source"] = (f"commit {_git('rev-parse', '--short', 'HEAD') or '?'}"
                              f"{', symgrad/ has uncommitted changes' if dirty else ', clean'}; "
                              f"code fingerprint {sgjit._FINGERPRINT[:12]}")
    return info


def _meminfo() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


class LoadMonitor:
    """CPU time used by *other* processes while a workload runs, in cores on average.

    busy time of the whole machine (/proc/stat) minus this process and its waited-for children
    (getrusage). Other work on a 2-core machine skews timings, threaded peers most of all.
    """

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        import resource

        try:
            f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
            busy = (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            busy = float("nan")
        own = sum(getattr(resource.getrusage(w), k) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                  for k in ("ru_utime", "ru_stime"))
        return time.perf_counter(), busy, own

    def others(self) -> float:
        t1, b1, o1 = self._sample()
        t0, b0, o0 = self.start
        return max(0.0, ((b1 - b0) - (o1 - o0)) / max(t1 - t0, 1e-9))

    def note(self) -> str:
        x = self.others()
        warn = " (other work was running: threaded implementations suffer most; compare with care)" if x > 0.1 else ""
        return (f"Load: other processes used {x:.2f} cores on average while this section ran; load average "
                f"at the end {loadavg()}{warn}.")


def now() -> str:
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def python_cmd() -> str:
    return f"python {platform.python_version()}"


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------
@dataclass
class Timing:
    first: float  # the first call: includes JIT compile / tracing
    times: list[float]
    result: Any = None  # the value returned by the last call

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)


def interleaved(impls: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1,
                first_results: dict[str, Any] | None = None, settle: float = SETTLE_S) -> dict[str, Timing]:
    """Time each zero-argument callable: the first call alone (compile/trace), ``warmup`` untimed
    rounds, then ``repeats`` (>= 5) rounds with the implementations interleaved and the order
    reversed every other round. Medians are robust to the odd slow round. Each timed call waits
    ``settle`` seconds first (untimed), so that the previous implementation's idle worker
    threads have stopped spinning (see SETTLE_S)."""
    repeats = max(repeats, MIN_REPEATS)
    first: dict[str, float] = {}
    results: dict[str, Any] = {}
    for name, fn in impls.items():
        t0 = time.perf_counter()
        results[name] = fn()
        first[name] = time.perf_counter() - t0
    if first_results is not None:
        first_results.update(results)
    for _ in range(warmup):
        for fn in impls.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in impls}
    for r in range(repeats):
        order = list(impls.items())
        if r % 2:
            order.reverse()
        for name, fn in order:
            time.sleep(settle)
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {k: Timing(first[k], times[k], results[k]) for k in impls}


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(max(repeats, MIN_REPEATS)):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


# ---------------------------------------------------------------------------
# agreement
# ---------------------------------------------------------------------------
def rel_err(a, b) -> float:
    """max |a - b| / max(|b|, tiny), elementwise over the flattened arrays."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return float("inf")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    scale = np.maximum(np.abs(b), 1e-300)
    return float(np.max(np.abs(a - b) / scale)) if a.size else 0.0


def check_agreement(what: str, reference: str, values: dict[str, Any], rtol: float, atol: float = 0.0
                    ) -> dict[str, float]:
    """Compare every entry of ``values`` with ``values[reference]`` (arrays or lists of arrays).

    Returns each implementation's max error, measured as max |x - ref| / (atol + rtol-scale);
    raises :class:`BenchmarkDisagreement`, with a table, if any exceeds its tolerance.
    """
    ref = values[reference]
    errs: dict[str, float] = {}
    bad = []
    for name, v in values.items():
        pairs = list(zip(v, ref, strict=False)) if isinstance(ref, (list, tuple)) else [(v, ref)]
        if isinstance(ref, (list, tuple)) and len(v) != len(ref):
            errs[name] = float("inf")
        else:
            worst = 0.0
            for a, b in pairs:
                a = np.asarray(a, dtype=np.float64).ravel()
                b = np.asarray(b, dtype=np.float64).ravel()
                if a.shape != b.shape or not np.all(np.isfinite(a)):
                    worst = float("inf")
                    break
                excess = np.abs(a - b) / (atol + rtol * np.abs(b))
                worst = max(worst, float(np.max(excess)) if a.size else 0.0)
            errs[name] = worst
        if not errs[name] <= 1.0:
            bad.append(name)
    if bad:
        lines = [f"BENCHMARK DISAGREEMENT in {what}: these implementations differ from '{reference}' beyond "
                 f"rtol={rtol:g}, atol={atol:g} (error 1.0 = at the tolerance):"]
        for name in values:
            flag = "  <-- FAIL" if name in bad else ""
            lines.append(f"  {name}: {errs[name]:.3g}{flag}")
            lines.append(f"      first values: {_head(values[name])}")
        raise BenchmarkDisagreement("\n".join(lines))
    return errs


def _head(v) -> str:
    if isinstance(v, (list, tuple)):
        v = v[0]
    a = np.asarray(v, dtype=np.float64).ravel()[:6]
    return np.array2string(a, precision=8)


# ---------------------------------------------------------------------------
# data for the training workloads
# ---------------------------------------------------------------------------
def epoch_perms(n: int, epochs: int, seed: int) -> np.ndarray:
    """The per-epoch shuffles that ``symgrad.fit`` draws for ``seed`` (one generator, one
    permutation per epoch); every peer uses the same ones, so all train on the same batches."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.int64)


def batches(n: int, bs: int) -> list[tuple[int, int]]:
    return [(s, min(s + bs, n)) for s in range(0, n, bs)]


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------
def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    align = align or ("l" + "r" * (len(header) - 1))
    sep = ["---:" if a == "r" else "---" for a in align]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.2f}x"


def fmt_time(s: float) -> str:
    """Seconds with a sensible unit."""
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def verdict(met: bool | None) -> str:
    return {True: "met", False: "**not met**", None: "not measured"}[met]


def blas_threads() -> str:
    tpc = peer("threadpoolctl")
    if tpc is None:
        return "?"
    ns = sorted({lib["num_threads"] for lib in tpc.threadpool_info() if lib.get("user_api") == "blas"})
    return "/".join(map(str, ns)) or "?"


def thread_note() -> str:
    """Who uses how many threads, as one line for a section."""
    import inspect

    import numba

    import symgrad

    bt = inspect.signature(symgrad.fit).parameters.get("blas_threads")
    try:
        from symgrad.native.blas_lib import register
        lib = f"symgrad's compiled products call {'NumPy' if register() == 'numpy' else 'SciPy'}'s"
    except ImportError:  # a symgrad from before blas_lib: SciPy's, through Numba
        lib = "symgrad's compiled products call SciPy's"
    parts = [f"BLAS (NumPy's and SciPy's OpenBLAS; {lib}, Numba's `np.dot` SciPy's): {blas_threads()} threads"
             + ("" if bt is None else ", but `symgrad.fit` chooses while its kernel runs (its default "
                "blas_threads='auto': one thread below 4M multiply-adds per step or with row blocks, BLAS's own above)"
                if bt.default == "auto" else f", but `symgrad.fit` caps it at blas_threads={bt.default} while its "
                "kernel runs (its default)"),
             f"Numba: serial kernels unless noted (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS})"]
    torch = peer("torch")
    if torch is not None:
        parts.append(f"torch: {torch.get_num_threads()} intra-op threads")
    if peer("jax") is not None:
        parts.append("JAX/XLA CPU: its default thread pool (all cores)")
    return "; ".join(parts)


def flush_print(*a) -> None:
    print(*a, flush=True)
    sys.stdout.flush()


def jax_scan_epoch(step, n: int, bs: int):
    """A jitted epoch for JAX: ``lax.scan`` of ``step(state, X_batch, Y_batch) -> (state, loss)``
    over the full batches of ``perm``, then the last partial batch; returns (state, mean loss).
    The same shuffles as symgrad's ``fit``, so trajectories can be compared."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    nf, rem = n // bs, n % bs

    @jax.jit
    def epoch_fn(state, X_, Y_, perm):
        idx = perm[: nf * bs].reshape(nf, bs)
        state, ls = lax.scan(lambda c, ib: step(c, X_[ib], Y_[ib]), state, idx)
        total = jnp.sum(ls) * bs
        if rem:
            tail = perm[nf * bs:]
            state, val = step(state, X_[tail], Y_[tail])
            total = total + val * rem
        return state, total / n

    return epoch_fn


def fit_defaults(bs: int, work: int = 0) -> dict:
    """``fit``'s thread options and what they come to for minibatches of ``bs`` rows of ``work``
    multiply-adds each (``symgrad.runtime.execution.sample_work``; 0: unknown)."""
    import symgrad as sg
    from symgrad.runtime.execution import fit_threads

    ps = inspect.signature(sg.fit).parameters
    out = {"threads": ps["threads"].default if "threads" in ps else "n/a",
           "blas_threads": ps["blas_threads"].default if "blas_threads" in ps else "n/a"}
    try:
        threads = out["threads"] if out["threads"] != "n/a" else None
        try:
            out["numba_threads_at_bs"] = fit_threads(bs, threads, work=work)
        except TypeError:  # before row blocks by work
            out["numba_threads_at_bs"] = fit_threads(bs, threads)
    except Exception:  # the helper is internal
        out["numba_threads_at_bs"] = "?"
    return out


def sg_fit_runner(net, loss: str, X, Y, flat0, epochs: int, bs: int, lr: float, seed: int, kernel_times=None):
    """symgrad's run for a workload: ``sg_fit(**fit_options)`` -> (per-epoch losses, final params),
    float32 Adam from ``flat0``; ``fit``'s own timer (native calls only) goes to ``kernel_times``
    for the run with fit's defaults."""
    import symgrad as sg

    def sg_fit(**kw):
        m = sg.fit(net, loss, X, Y, optimizer=sg.optim.Adam(lr), epochs=epochs, batch_size=bs,
                   params=[p.copy() for p in flat0], seed=seed, dtype="float32", **kw)
        if kernel_times is not None and not kw:
            kernel_times.append(float(np.sum(m.history["time"])))
        return np.array(m.history["loss"]), [p.copy() for p in m.params]

    return sg_fit


def jax_adam_runners(loss_fn, lr: float, flat0, Xd, Yd, perms, bl, w, n: int, bs: int, epochs: int,
                     b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, dtype=np.float32):
    """JAX's two ways to run Adam (PyTorch's defaults) on ``loss_fn(params, X_batch, Y_batch)``
    from ``flat0`` on ``fit``'s shuffles ``perms``: a jitted step per minibatch (``bl``: the
    batches, ``w``: their sizes) and a ``lax.scan`` per epoch, the bias corrections in ``dtype``
    (the parameters'). Each returns (the per-epoch mean losses, the final parameters as NumPy
    arrays shaped like ``flat0``)."""
    import jax
    import jax.numpy as jnp

    def adam_step(state, Xb, Yb):
        p, m, v, t = state
        val, g = jax.value_and_grad(loss_fn)(p, Xb, Yb)
        t = t + 1
        tf = t.astype(jnp.float64)
        c1 = (lr / (1.0 - b1**tf)).astype(dtype)
        c2 = jnp.sqrt(1.0 - b2**tf).astype(dtype)
        m = tuple(b1 * a + (1 - b1) * b for a, b in zip(m, g, strict=True))
        v = tuple(b2 * a + (1 - b2) * (b * b) for a, b in zip(v, g, strict=True))
        p = tuple(a - c1 * mm / (jnp.sqrt(vv) / c2 + eps) for a, mm, vv in zip(p, m, v, strict=True))
        return (p, m, v, t), val

    step = jax.jit(lambda st, X_, Y_, idx: adam_step(st, X_[idx], Y_[idx]))
    epoch_fn = jax_scan_epoch(adam_step, n, bs)

    def init():
        p = tuple(jnp.asarray(q) for q in flat0)
        z = tuple(jnp.zeros_like(q) for q in p)
        return p, z, z, jnp.zeros((), dtype=jnp.int64)

    def out(st):
        return [np.asarray(a).reshape(q.shape) for a, q in zip(st[0], flat0, strict=True)]

    def jax_step():
        st, vals = init(), []
        for e in range(epochs):
            for s, u in bl:
                st, val = step(st, Xd, Yd, perms[e, s:u])
                vals.append(val)
        v = np.asarray(jnp.stack(vals)).astype(np.float64).reshape(epochs, len(bl))
        return (v * w).sum(1) / n, out(st)

    def jax_scan():
        st, ls = init(), []
        for e in range(epochs):
            st, le = epoch_fn(st, Xd, Yd, perms[e])
            ls.append(le)
        return np.asarray(jnp.stack(ls)).astype(np.float64), out(st)

    return jax_step, jax_scan
