"""Workload 8: symgrad on Dask (``symgrad.distributed``) on one machine: what distribution costs.

A formula with 3 parameters, the squared error of a logistic growth curve
K / (1 + exp(-r (t - t0))), float64. One synchronous step is ``f.value_and_grad(theta, T, Y)``
over persisted Dask arrays on a ``LocalCluster`` of worker processes with one thread each (one
row chunk per worker), against the same call on the NumPy arrays in this process (symgrad's
formula kernels are serial: one thread). Then: 1 worker against 2 on the largest size; the
fixed and per-task cost of a step (from 2, 8 and 32 chunks of the smallest size); and a
logistic regression fitted by SciPy's L-BFGS-B over Dask against dask-ml's
``LogisticRegression(solver="lbfgs")`` on the same Dask arrays with the same stopping rule.
"""

from __future__ import annotations

import itertools
import os
import pickle
import resource
import time
from collections import Counter

import numpy as np

from bench.common import LoadMonitor, Mode, Section, check_agreement, fmt_time, interleaved, table

TRUE = np.array([5.0, 1.5, 2.0])
THETA = np.array([4.0, 1.0, 1.5])  # away from the optimum: a typical step, not a zero gradient


class ClusterLoad(LoadMonitor):
    """LoadMonitor that counts this workload's Dask workers as its own: they are child processes,
    which getrusage(RUSAGE_CHILDREN) sees only in part (measured), so they are asked directly."""

    workers = 0.0  # CPU seconds of the workers of closed clusters

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        t, busy, _ = LoadMonitor._sample()
        r = resource.getrusage(resource.RUSAGE_SELF)
        return t, busy, r.ru_utime + r.ru_stime

    def count(self, client) -> None:
        """Add the CPU time of ``client``'s workers (call just before closing the cluster)."""
        usage = client.run(resource.getrusage, resource.RUSAGE_SELF).values()
        self.workers += sum(r.ru_utime + r.ru_stime for r in usage)

    def others(self) -> float:
        t1, b1, o1 = self._sample()
        t0, b0, o0 = self.start
        return max(0.0, ((b1 - b0) - (o1 - o0) - self.workers) / max(t1 - t0, 1e-9))


def formula():
    import sympy as sp

    import symgrad as sg

    K, r, t0, t, y = sp.symbols("K r t0 t y", real=True)
    return sg.compile((K / (1 + sp.exp(-r * (t - t0))) - y) ** 2, wrt=[K, r, t0], data=[t, y])


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 6.0, n)
    K, r, t0 = TRUE
    return t, K / (1.0 + np.exp(-r * (t - t0))) + 0.1 * rng.normal(size=n)


def cluster(workers: int):
    from dask.distributed import Client, LocalCluster

    lc = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return lc, Client(lc)


def on_dask(client, arrays, chunks: int) -> list:
    """Persisted Dask copies of ``arrays`` in ``chunks`` row chunks, dealt round-robin to the
    workers (chunk k of every array on the same worker). Scattered rather than ``from_array``, so
    that no step's graph carries the data."""
    import dask
    import dask.array as da
    from distributed import wait

    workers = sorted(client.scheduler_info()["workers"])
    out = []
    for a in arrays:
        parts = np.array_split(a, chunks)
        futures = [client.scatter(p, workers=[workers[k % len(workers)]]) for k, p in enumerate(parts)]
        out.append(da.concatenate([da.from_delayed(dask.delayed(fu), shape=p.shape, dtype=p.dtype)
                                   for fu, p in zip(futures, parts)]))
    out = client.persist(out)
    wait(out)
    return out


def placement(client, arr) -> str:
    """Chunks held per worker, e.g. '1/1'."""
    per = Counter(w for held in client.who_has(arr).values() for w in held)
    return "/".join(str(v) for v in sorted(per.values(), reverse=True))


def stepper(f, *data):
    """One ``value_and_grad`` call per call, at a theta that moves a little every time, as in an
    optimizer (a repeated theta would repeat Dask's task keys: see the note in the section). Two
    steppers called equally often end at the same theta, so their last results compare."""
    calls = itertools.count()
    return lambda: f.value_and_grad(THETA * (1.0 + 1e-9 * next(calls)), *data)


def step_times(f, client, sizes, mode: Mode, data) -> tuple[list, list]:
    """Median single-process and Dask step per size; checks both give the same loss and gradient."""
    rows, meas = [], []
    for n in sizes:
        ts, ys = data[0][:n], data[1][:n]
        T, Y = on_dask(client, (ts, ys), 2)
        vg = {"single": stepper(f, ts, ys), "dask": stepper(f, T, Y)}
        res = interleaved(vg, mode.repeats, warmup=1, settle=mode.settle)
        check_agreement(f"W8 loss and gradient, n = {n}", "single",
                        {k: np.r_[v.result[0], v.result[1]] for k, v in res.items()}, rtol=1e-10, atol=1e-15)
        s, d = res["single"].median, res["dask"].median
        meas.append((n, s, d))
        rows.append([f"{n:,}", fmt_time(s), fmt_time(d), f"{placement(client, T)}",
                     f"{d / s:.2f}", "yes" if d < s else "no"])
    return rows, meas


def task_cost(f, client, mode: Mode, data, n: int) -> tuple[float, float, list]:
    """(fixed seconds per step, seconds per task) from a straight line through 2, 8, 32 chunks."""
    counts, times = [2, 8, 32], []
    ts, ys = data[0][:n], data[1][:n]
    for c in counts:
        T, Y = on_dask(client, (ts, ys), c)
        times.append(interleaved({"d": stepper(f, T, Y)}, mode.repeats, settle=mode.settle)["d"].median)
    b, a = np.polyfit(counts, times, 1)
    return float(a), float(b), times


def estimate(a: float, b: float, c1: float, cw: float, n_big: int) -> str:
    """Scaling to more workers from the measured costs (a model, not a measurement)."""
    parts = []
    for w in (8, 64, 512):
        fixed = a + b * w
        cross = f"above ~{fixed / (c1 - cw / w):,.0f} rows" if c1 > cw / w else "never"
        speed = [c1 * n / (fixed + cw * n / w) for n in (n_big, 10**9)]
        parts.append(f"{w} workers: a step costs at least {fmt_time(fixed)} (pays off {cross}); "
                     f"speed-up over one process {speed[0]:.1f}x at {n_big:,} rows, {speed[1]:.0f}x at 10^9 rows")
    return "; ".join(parts)


def run(mode: Mode) -> Section:
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:  # symgrad.distributed is an optional extra: say so, measure nothing
        return Section("W8", f"## W8: symgrad on Dask\n\nskipped: Dask is not installed ({exc}); "
                       "`pip install 'dask[array,distributed]'`.\n", [], {})
    mon = ClusterLoad()
    f = formula()
    sizes = mode.pick([10**4, 10**5, 10**6, 10**7], [10**4, 10**5, 10**6], [10**4])
    big = sizes[-1]
    data = make_data(big)
    f.value_and_grad(THETA, data[0][:100], data[1][:100])  # build before any timing
    m: dict = {"sizes": sizes, "big": big}
    t0 = time.perf_counter()
    lc, client = cluster(2)
    m["cluster_s"] = time.perf_counter() - t0
    try:
        m["rows"], m["steps"] = step_times(f, client, sizes, mode, data)
        m["a"], m["b"], m["per_chunks"] = task_cost(f, client, mode, data, sizes[0])
        from bench.w8_dask_ml import dask_ml_compare  # it uses on_dask from here

        m["ml_md"], m["dask_ml"] = dask_ml_compare(client, mode)
        mon.count(client)
    finally:
        client.close()
        lc.close()
    lc, client = cluster(1)
    try:
        T, Y = on_dask(client, data, 2)  # the same 2 chunks, both on the one worker
        m["t1"] = interleaved({"1": stepper(f, T, Y)}, mode.repeats, settle=mode.settle)["1"].median
        mon.count(client)
    finally:
        client.close()
        lc.close()
    m["payload"] = (len(pickle.dumps(THETA)), len(pickle.dumps((big // 2, 0.5, np.zeros(3)))))
    md = markdown(m, mode)
    keep = ("steps", "a", "b", "per_chunks", "t1", "dask_ml", "cluster_s")
    return Section("W8", "\n".join([*md, "", mon.note()]) + "\n", [], {k: m[k] for k in keep})


def markdown(m: dict, mode: Mode) -> list[str]:
    import dask
    import distributed

    sizes, big, a, b, t1 = m["sizes"], m["big"], m["a"], m["b"], m["t1"]
    _, s_big, t2 = m["steps"][-1]
    c1 = s_big / big
    # a worker's cost per row: the 1-worker step at the largest size less a 2-task step of the
    # smallest (the same fixed costs); where that difference is lost in noise, the single process's
    cw = (t1 - m["steps"][0][2]) / (big - sizes[0] / 2) if big > sizes[0] else 0.0
    cw_from = "from the 1-worker run less the smallest 2-worker step"
    if cw <= 0.25 * c1:
        cw, cw_from = c1, "taken as the single process's: too few rows to measure it apart from the fixed cost"
    cross = next((n for n, s, d in m["steps"] if d < s), None)
    verdict = (f"distribution pays from {cross:,} rows on" if cross else
               f"distribution never pays at the sizes measured (up to {big:,} rows)")
    cores = os.cpu_count()
    L = [f"## W8: symgrad on Dask, one machine ({cores} cores)", "", __doc__.split("\n\n", 1)[1].strip(), ""]
    L.append(f"Dask {dask.__version__}, distributed {distributed.__version__}; `LocalCluster(n_workers=2, "
             f"threads_per_worker=1, processes=True)` started in {m['cluster_s']:.1f} s; data scattered to the "
             f"workers and persisted before timing. Medians of {mode.repeats} calls each after one warm-up, "
             "single-process and Dask calls interleaved; every size checked: the same loss and gradient (rel "
             "1e-10). Each call moves theta by a relative 1e-9, as an optimizer's calls would. The machine has "
             f"{cores} cores, so 2 workers use all of it while the single-process call uses one.")
    L += ["", table(["rows", "single process (1 thread)", "Dask, 2 workers", "chunks per worker",
                     "Dask / single", "Dask faster"], m["rows"], "rrrlrl"), ""]
    L.append(f"On this machine {verdict}. Fixed cost of one Dask step (building the graph, the scheduler, "
             f"the round trip to the workers, gathering): about {fmt_time(a)} plus {fmt_time(b)} per task, "
             "from a straight line through " + ", ".join(
                 f"{c} chunks: {fmt_time(t)}" for c, t in zip((2, 8, 32), m["per_chunks"]))
             + f" ({sizes[0]:,} rows).")
    L.append("")
    L.append(f"Strong scaling at {big:,} rows (2 row chunks, persisted): 1 worker {fmt_time(t1)}, 2 workers "
             f"{fmt_time(t2)} per step: speed-up {t1 / t2:.2f}x ({t1 / t2 / 2:.0%} parallel efficiency); "
             f"single process {fmt_time(s_big)}.")
    L.append("")
    L.append(f"**Estimate, not a measurement** (scaling beyond this machine): a step is modelled as "
             f"a + b W + c n / W with the measured a = {fmt_time(a)} (fixed), b = {fmt_time(b)} per task "
             f"(one chunk per worker), c = {cw * 1e9:.2f} ns per row in a worker ({cw_from}; "
             f"single process {c1 * 1e9:.2f} ns per row). The model gives {fmt_time(a + 2 * b + cw * big / 2)} "
             f"for 2 workers at {big:,} rows (measured {fmt_time(t2)}). Bytes per step are small: each task "
             f"sends theta ({m['payload'][0]} bytes pickled) and returns (rows, loss, gradient), "
             f"{m['payload'][1]} bytes, plus Dask's message framing, so even 512 workers move well under 1 MB "
             "per step; the per-task cost b, paid serially by one scheduler, and network latency (absent "
             "here: localhost) limit scaling, not bandwidth. a and b were measured with the client, the "
             f"scheduler and both workers sharing {cores} cores; a scheduler with a core of its own would lower "
             f"them (not measured). {estimate(a, b, c1, cw, big)}. On a real network add a round-trip time "
             "(0.1-1 ms) to a; a tree reduction of the gradients would not help at 3 parameters.")
    return [*L, "", "### dask-ml's L-BFGS on the same data", "", *m["ml_md"]]
