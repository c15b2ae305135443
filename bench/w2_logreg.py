"""Workload 2: logistic regression, full batch gradient descent (n = 10,000, d = 20, 500 iterations).

Model: logits z = X w + b, loss mean(softplus(z) - y z) (BCE on logits), float64, w = 0, b = 0,
plain GD with a fixed step. Every implementation records the loss at every iteration (before
the update), so trajectories can be compared step by step.

symgrad has no separate full-batch GD driver, so it is run two ways, both through the public API:

* ``sg.fit(MLP([d, 1]), "bce", ..., optimizer=SGD(lr), batch_size=n, epochs=iters)``: every
  "epoch" is one full-batch step inside the fused kernel; with ``shuffle=False`` where ``fit``
  has that option (in-order batches, no gather), else with its default shuffling;
* ``sg.compile(binary_cross_entropy(W x + b, y), wrt=[W, b], data=[x, y])`` and a Python loop
  calling ``value_and_grad`` (argument checks, including a finiteness scan of the data, every call).

Peers: NumPy by hand, JAX ``jit`` step, JAX ``lax.fori_loop`` (all iterations in one call),
torch eager. Memory traffic: the least an iteration must read is X and y once,
n (d + 1) 8 bytes; GB/s is that divided by the time per iteration, against ``np.copyto``
bandwidth measured in the same run at the working-set size and at 256 MiB.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np

from bench.common import (
    LoadMonitor,
    Mode,
    Section,
    Target,
    check_agreement,
    interleaved,
    median_time,
    peer,
    skipped,
    table,
    thread_note,
)
from symgrad.runtime.execution import PAR_ROWS
from symgrad.runtime.fit import fit_threads

SG_FIT = "symgrad fit (fused kernel, batch = n, SGD{}; {} threads)"
SG_SERIAL = "symgrad fit, threads=1 (the serial kernel)"
SG_COMPILE = "symgrad compile() value_and_grad + Python loop"
NUMPY = "NumPy, hand-written"
JAX_STEP = "JAX jit step (Python loop)"
JAX_FORI = "JAX jit lax.fori_loop (one call)"
TORCH = "torch eager (autograd + optim.SGD)"


def make_data(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w_true = rng.standard_normal(d) * (2.0 / np.sqrt(d))
    p = 1.0 / (1.0 + np.exp(-(X @ w_true + 0.3)))
    y = (rng.random(n) < p).astype(np.float64)
    return X, y


def copy_fn(nbytes: int, threads: int) -> tuple[Callable[[], None], float]:
    """(a copy of ``nbytes``, repeated to amortise the call overhead on small arrays; the bytes
    it moves, read + write). 1 thread: ``np.copyto``; more: one block per Numba thread, the
    bandwidth that a kernel using as many threads could reach."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    reps = max(1, int(64e6 // nbytes))

    def copy():
        for _ in range(reps):
            if threads == 1:
                np.copyto(dst, src)
            else:
                _par_copy(src, dst, threads)

    return copy, 2.0 * src.nbytes * reps


@numba.njit(parallel=True)
def _par_copy(src, dst, blocks):
    n = src.shape[0]
    for k in numba.prange(blocks):
        lo, hi = k * n // blocks, (k + 1) * n // blocks
        for i in range(lo, hi):
            dst[i] = src[i]


def copy_bandwidth(nbytes: int, repeats: int, threads: int) -> float:
    """GB/s (read + write bytes) of ``copy_fn(nbytes, threads)``, median of ``repeats``."""
    copy, moved = copy_fn(nbytes, threads)
    return moved / median_time(copy, repeats, warmup=2) / 1e9


TRANSC = "softplus(z) and sigmoid(z) of the n logits, libm exp/log1p (scalar)"
TRANSC_VM = ("the same with symgrad.vecmath's exp/log1p (vectorised), as symgrad's kernel computes them: "
             "e^-|z| for all samples in one loop, the rest in a second")
GEMV = "X w and Xᵀ r, NumPy's BLAS at 1 thread"


@numba.njit(fastmath={"reassoc", "contract"})
def _radd(a, b):  # as symgrad's radd: only this addition may be reordered
    return a + b


def _make_bce_parts(exp, log1p):
    # as symgrad's loss map does: e^-|z| into a buffer first, then the rest (two loops that run at
    # throughput, where one chains exp into log1p), the loss summed in the loop (only the order of
    # additions may change, so that the loop still vectorises), NumPy's error model (Python's checks
    # every division)
    @numba.njit(error_model="numpy")
    def bce_parts(z, y, r, e):
        for i in range(z.shape[0]):
            e[i] = exp(-abs(z[i]))
        total = 0.0
        for i in range(z.shape[0]):
            zi = z[i]
            total = _radd(total, max(zi, 0.0) + log1p(e[i]) - y[i] * zi)
            s = 1.0 / (1.0 + e[i])
            r[i] = (s if zi >= 0 else e[i] * s) - y[i]
        return total

    return bce_parts


_bce_parts = _make_bce_parts(math.exp, math.log1p)


def decompose(X, y, repeats: int) -> dict[str, float]:
    """The two parts of a GD iteration, timed alone: BLAS products, and per-sample transcendentals."""
    out = {}
    rng = np.random.default_rng(0)
    w, r, loss = rng.standard_normal(X.shape[1]) * 0.3, np.empty(len(X)), np.empty(len(X))
    z = X @ w
    _bce_parts(z, y, r, loss)
    tpc = peer("threadpoolctl")
    if tpc is not None:
        with tpc.threadpool_limits(limits=1, user_api="blas"):
            out[GEMV] = median_time(lambda: (X @ w, X.T @ r), repeats * 10, warmup=3)
    else:
        out[GEMV] = median_time(lambda: (X @ w, X.T @ r), repeats * 10, warmup=3)
    out[TRANSC] = median_time(lambda: _bce_parts(z, y, r, loss), repeats * 10, warmup=3)
    from symgrad.native import vecmath as vm

    vm_parts = _make_bce_parts(vm.exp, vm.log1p)
    vm_parts(z, y, r, loss)
    out[TRANSC_VM] = median_time(lambda: vm_parts(z, y, r, loss), repeats * 10, warmup=3)
    return out


def run(mode: Mode) -> Section:
    import sympy as sp

    import symgrad as sg

    mon = LoadMonitor()
    n, d = mode.pick(10_000, 10_000, 500), 20
    iters = mode.pick(500, 100, 10)
    lr = 0.5
    X, y = make_data(n, d)
    Y = y.reshape(-1, 1)
    notes = []

    # --- symgrad, fit --------------------------------------------------------------
    net = sg.nn.MLP([d, 1])
    p0 = [np.zeros((1, d)), np.zeros((1, 1))]

    kernel_times: list[float] = []

    import inspect

    fit_opts = {"shuffle": False} if "shuffle" in inspect.signature(sg.fit).parameters else {}
    par = fit_threads(n)  # fit splits a batch this large over Numba's threads
    sg_name = SG_FIT.format(", shuffle=False" if fit_opts else "", par)

    def sg_fit(**kw):
        m = sg.fit(net, "bce", X, y, optimizer=sg.optim.SGD(lr), epochs=iters, batch_size=n,
                   params=[p.copy() for p in p0], dtype="float64", seed=0, **fit_opts, **kw)
        if not kw:
            kernel_times.append(float(np.sum(m.history["time"])))  # fit's own timer: native calls only
        return np.array(m.history["loss"]), [p.ravel() for p in m.params]

    # --- symgrad, compile + Python loop ------------------------------------------------
    W, b = sp.MatrixSymbol("W", 1, d), sp.MatrixSymbol("b", 1, 1)
    xs, ys = sp.MatrixSymbol("x", d, 1), sp.MatrixSymbol("y", 1, 1)
    f = None

    def sg_compile():
        nonlocal f
        if f is None:  # compiled on the first call, so that its cost lands in "first call"
            f = sg.compile(sg.losses.binary_cross_entropy(W * xs + b, ys), wrt=[W, b], data=[xs, ys])
        ps = [p.copy() for p in p0]
        losses = np.empty(iters)
        for k in range(iters):
            v, g = f.value_and_grad(ps, X, Y)
            losses[k] = v
            ps[0] -= lr * g[0]
            ps[1] -= lr * g[1]
        return losses, [p.ravel() for p in ps]

    # --- NumPy ----------------------------------------------------------------------------
    def numpy_impl():
        w, bb = np.zeros(d), 0.0
        losses = np.empty(iters)
        for k in range(iters):
            z = X @ w + bb
            losses[k] = np.mean(np.logaddexp(0.0, z) - y * z)
            r = (1.0 / (1.0 + np.exp(-z)) - y) / n
            w = w - lr * (X.T @ r)
            bb = bb - lr * r.sum()
        return losses, [w, np.array([bb])]

    impls = {sg_name: sg_fit}
    if par > 1:
        impls[SG_SERIAL] = lambda: sg_fit(threads=1)
    from bench.w4_digits import sg_alt_name, sg_blas_default

    default = sg_blas_default()
    if default is not None:  # fit's other BLAS threading
        other = None if default == 1 else 1
        impls[sg_alt_name(other)] = lambda: sg_fit(blas_threads=other)
    impls.update({SG_COMPILE: sg_compile, NUMPY: numpy_impl})

    # --- JAX --------------------------------------------------------------------------------
    jax = peer("jax")
    if jax is None:
        notes.append(f"JAX: {skipped('jax')}")
    else:
        import jax.numpy as jnp
        from jax import lax

        def loss_fn(params, X_, y_):
            w, bb = params
            z = X_ @ w + bb
            return jnp.mean(jnp.logaddexp(0.0, z) - y_ * z)

        def step_body(params, X_, y_):
            val, g = jax.value_and_grad(loss_fn)(params, X_, y_)
            return (params[0] - lr * g[0], params[1] - lr * g[1]), val

        step = jax.jit(step_body)

        @jax.jit
        def fori(params, X_, y_):
            def body(k, c):
                ps, ls = c
                ps, val = step_body(ps, X_, y_)
                return ps, ls.at[k].set(val)

            return lax.fori_loop(0, iters, body, (params, jnp.zeros(iters)))

        Xd, yd = jax.device_put(X), jax.device_put(y)

        def jax_step():
            ps = (jnp.zeros(d), jnp.zeros(()))
            ls = []
            for _ in range(iters):
                ps, val = step(ps, Xd, yd)
                ls.append(val)
            out = np.asarray(jnp.stack(ls))
            return out, [np.asarray(ps[0]), np.asarray(ps[1]).reshape(1)]

        def jax_fori():
            ps, ls = fori((jnp.zeros(d), jnp.zeros(())), Xd, yd)
            ls.block_until_ready()
            return np.asarray(ls), [np.asarray(ps[0]), np.asarray(ps[1]).reshape(1)]

        impls[JAX_STEP] = jax_step
        impls[JAX_FORI] = jax_fori

    # --- torch ------------------------------------------------------------------------------
    torch = peer("torch")
    if torch is None:
        notes.append(f"torch: {skipped('torch')}")
    else:
        import torch.nn.functional as tF

        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

        def torch_impl():
            w = torch.zeros(d, dtype=torch.float64, requires_grad=True)
            bb = torch.zeros((), dtype=torch.float64, requires_grad=True)
            opt = torch.optim.SGD([w, bb], lr=lr)
            ls = []
            for _ in range(iters):
                opt.zero_grad()
                loss = tF.binary_cross_entropy_with_logits(Xt @ w + bb, yt)
                loss.backward()
                opt.step()
                ls.append(loss.detach())
            return torch.stack(ls).numpy(), [w.detach().numpy().copy(), bb.detach().numpy().reshape(1).copy()]

        impls[TORCH] = torch_impl

    # --- correctness: trajectories and final parameters -------------------------------------
    # The working-set copies (the bandwidth reference of the target) are timed in the same
    # interleaved rounds as the implementations, so that both see the same phases of the machine.
    ws = X.nbytes + y.nbytes
    threads = sorted({1, par})
    copies = {f"copy of the working set, {k} thread(s)": (k, *copy_fn(ws, k)) for k in threads}
    first: dict = {}
    t = interleaved({**impls, **{name: c[1] for name, c in copies.items()}}, mode.repeats, warmup=1,
                    first_results=first, settle=mode.settle)
    first = {k: v for k, v in first.items() if k in impls}
    head = min(5, iters)
    check_agreement(f"W2 loss, first {head} iterations", sg_name, {k: v[0][:head] for k, v in first.items()},
                    rtol=1e-10)
    errs = check_agreement(f"W2 loss, all {iters} iterations", sg_name, {k: v[0] for k, v in first.items()},
                           rtol=1e-8)
    check_agreement("W2 final parameters", sg_name, {k: np.concatenate(v[1]) for k, v in first.items()},
                    rtol=1e-7, atol=1e-9)
    kernel_s = float(np.median(kernel_times[-len(t[sg_name].times):])) / iters

    # --- bandwidth ---------------------------------------------------------------------------
    big = mode.pick(256, 64, 16) * 2**20
    bw = {}
    for name, (k, _, moved) in copies.items():
        bw[k, "working set"] = moved / t[name].median / 1e9
        bw[k, f"{big // 2**20} MiB"] = copy_bandwidth(big, mode.repeats, k)
    parts = decompose(X, y, mode.repeats)

    per_it = {k: v.median / iters for k, v in t.items() if k in impls}
    s = per_it[sg_name]
    rows = []
    for k in impls:
        gbs = ws / per_it[k] / 1e9
        rows.append([k, f"{per_it[k] * 1e6:.1f}", f"{t[k].first:.3f}", f"{per_it[k] / s:.2f}x", f"{gbs:.1f}",
                     *[f"{gbs / v:.0%}" for v in bw.values()], f"{errs[k]:.2g}"])
    L = ["## W2: logistic regression, full-batch gradient descent (issue 4)", ""]
    L.append(f"n = {n:,}, d = {d}, {iters} iterations, float64, step {lr}, w = b = 0. One process, "
             f"implementations interleaved, median of {len(t[sg_name].times)} whole runs; time per iteration = "
             "run time / iterations (the first call, with JIT compilation or tracing, is separate). Every "
             "implementation returns its per-iteration loss; trajectories and final parameters were checked "
             "against symgrad's (first 5 iterations to rel 1e-10, all to 1e-8, parameters to 1e-7). "
             + thread_note() + f". `symgrad.fit` splits a minibatch of {n:,} rows into {par} row blocks, one per "
             "Numba thread, each with its own gradient buffer (its default for batches of at least "
             f"{2 * PAR_ROWS} rows); `threads=1` runs the serial kernel.")
    L.append("")
    L.append(f"Bytes per iteration (the minimum: X and y read once) = {ws / 1e6:.2f} MB. Measured copy bandwidth "
             "(read + write bytes; 1 thread: `np.copyto`; more: a Numba `prange` loop, one block per thread; "
             "the working-set copies timed in the same interleaved rounds as the implementations): "
             + ", ".join(f"{v:.1f} GB/s with {k} thread{'s' if k > 1 else ''} at {name}" for (k, name), v in bw.items())
             + f". The working set ({ws / 2**20:.2f} MiB) is cache-resident (the machine has {_l2()} L2 per core).")
    L.append("")
    L.append(table(["implementation", "µs / iteration", "first call s", "time / symgrad fit", "GB/s (min bytes)",
                    *[f"% of copy BW ({name}, {k} thread{'s' if k > 1 else ''})" for k, name in bw],
                    "loss error vs symgrad (1 = tol)"], rows))
    L.append("")
    L.append(f"symgrad fit's own per-epoch timer (the native `train_chunk` call only, without `fit`'s Python "
             f"set-up and history) gives {kernel_s * 1e6:.1f} µs per iteration, so `fit` overhead is "
             f"{(s - kernel_s) * 1e6:.1f} µs per iteration. "
             + ("With `shuffle=False` the kernel reads the batch in place; in each row block the forward and "
                "backward products read that block of X." if fit_opts else
                f"Each step gathers `X[perm]` (a {X.nbytes / 1e6:.1f} MB copy) before the forward and backward "
                "products, which read X again, so it moves about 4x the minimum bytes."))
    L += [""] + [f"- {x}" for x in notes] + ([""] if notes else [])
    bw_ws = max(v for (_, name), v in bw.items() if name == "working set")  # the best copy measured
    budget = ws / (0.5 * bw_ws * 1e9)
    transc = parts.get(TRANSC_VM, parts[TRANSC])
    L.append("Where an iteration's time goes on one thread (measured alone, same data): " + "; ".join(
        f"{k}: {v * 1e6:.1f} µs" for k, v in parts.items()) + f". 50% of the best working-set copy "
        f"bandwidth is {budget * 1e6:.0f} µs per iteration; the BLAS products and the per-sample exp/log1p "
        f"take {(parts[GEMV] + transc) * 1e6:.0f} µs on one thread, {(parts[GEMV] + transc) / par * 1e6:.0f} µs "
        f"per thread when split over {par}.")
    L.append("")
    L.append(mon.note())

    targets = []
    if JAX_FORI in per_it:
        jf = per_it[JAX_FORI]
        targets.append(Target("W2", "time per iteration <= JAX `lax.fori_loop`", f"{jf / s:.2f}x "
                              f"(symgrad {s * 1e6:.0f} µs, JAX {jf * 1e6:.0f} µs)", s <= jf,
                              f"kernel alone {kernel_s * 1e6:.0f} µs/iter on {par} threads; serial kernel "
                              f"{per_it.get(SG_SERIAL, s) * 1e6:.0f} µs ({jf / per_it.get(SG_SERIAL, s):.2f}x JAX)"))
    else:
        targets.append(Target("W2", "time per iteration <= JAX `lax.fori_loop`", skipped("jax"), None))
    frac = ws / s / 1e9 / bw_ws
    bw_big = bw[par, f"{big // 2**20} MiB"]
    serial = ""
    if SG_SERIAL in per_it:
        serial = (f"; the serial kernel ({per_it[SG_SERIAL] * 1e6:.0f} µs) reaches "
                  f"{ws / per_it[SG_SERIAL] / 1e9 / bw[1, 'working set']:.0%} of the 1-thread copy")
    targets.append(Target("W2", ">= 50% of measured memory bandwidth",
                          f"{frac:.0%} of the best same-size copy, {ws / s / 1e9 / bw_big:.0%} of the main-memory "
                          f"copy ({par} thread{'s' if par > 1 else ''})", frac >= 0.5,
                          f"{ws / s / 1e9:.1f} GB/s (min bytes) vs copy {bw_ws:.1f} GB/s (working set) / "
                          f"{bw_big:.1f} GB/s ({big // 2**20} MiB); 50% is {budget * 1e6:.0f} µs/iter" + serial))
    data = {"per_iter_s": per_it, "first_s": {k: v.first for k, v in t.items() if k in impls}, "kernel_per_iter_s": kernel_s,
            "copy_bw_GBs": {f"{k} threads, {name}": v for (k, name), v in bw.items()}, "decomposition_s": parts,
            "bytes_per_iter": ws, "threads": par}
    return Section("W2", "\n".join(L) + "\n", targets, data)


def _l2() -> str:
    try:
        from pathlib import Path

        for idx in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
            if (idx / "level").read_text().strip() == "2":
                return (idx / "size").read_text().strip()
    except OSError:
        pass
    return "?"
