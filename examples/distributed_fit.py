"""symgrad on a Dask cluster: the same compiled functions, data split into row chunks over workers.

Three parts, on a 2-process LocalCluster (the code is the same on a real cluster):

1. a formula (a logistic growth curve, 3 parameters) fitted by SciPy's L-BFGS-B over a chunked
   Dask array: ``f.value_and_grad`` runs the generated kernel on every chunk where it lives and
   returns the exact full-batch loss and gradient, checked against the single-process fit;
2. the digits MLP trained with ``sg.fit(..., client=client)``: ``strategy="sync"`` (one exact
   full-batch step per epoch, checked against single-process full-batch training) and
   ``strategy="local"`` (local SGD with parameter averaging, checked by test accuracy);
3. data that no process holds: the workers write a synthetic classification set as ``.npy``
   chunk files, and training reads them back memory-mapped, chunk by chunk, without persisting;
   the peak memory of every process during that training is printed next to the data size.

Run:  python examples/distributed_fit.py [--quick]
Exits non-zero if a check fails. The last lines ("... max |Δθ| = ...") are checked by the tests.
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
import sympy as sp
from dask.distributed import Client, LocalCluster
from scipy.optimize import minimize
from sklearn.datasets import load_digits

import symgrad as sg

TRUE = np.array([5.0, 1.5, 2.0])  # K, r, t0 of y = K / (1 + exp(-r (t - t0)))
X0 = np.array([4.0, 1.0, 1.5])
NOISE = 0.1
LBFGS = {"maxiter": 500, "gtol": 1e-12, "ftol": 1e-15}  # tight: both fits must reach the same optimum


def logistic_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 6.0, n)
    K, r, t0 = TRUE
    return t, K / (1.0 + np.exp(-r * (t - t0))) + NOISE * rng.normal(size=n)


def formula_fit(n: int, chunks: int) -> float:
    """L-BFGS-B over a Dask array and over the NumPy array; the max relative parameter difference."""
    K, r, t0, t, y = sp.symbols("K r t0 t y", real=True)
    f = sg.compile((K / (1 + sp.exp(-r * (t - t0))) - y) ** 2, wrt=[K, r, t0], data=[t, y])
    ts, ys = logistic_data(n)
    # persist(): the chunks move to the workers once and stay there for every L-BFGS iteration
    T, Y = (da.from_array(a, chunks=-(-n // chunks)).persist() for a in (ts, ys))
    start = time.perf_counter()
    f.value_and_grad(X0, ts, ys)  # builds (derives, generates, JIT-compiles) or loads the cached kernel
    t_build = time.perf_counter() - start
    f.value_and_grad(X0, T, Y)  # ships f to every worker once; they load the kernel from the same cache
    t_ship = time.perf_counter() - start - t_build
    fits, times = {}, {}
    for name, args in (("NumPy, one process", (ts, ys)), (f"Dask, {chunks} chunks", (T, Y))):
        start = time.perf_counter()
        fits[name] = minimize(f.value_and_grad, X0, args=args, jac=True, method="L-BFGS-B", options=LBFGS)
        times[name] = time.perf_counter() - start
    print(f"formula: mean (K / (1 + exp(-r (t - t0))) - y)^2, n = {n:,}, true K, r, t0 = {TRUE.tolist()}; "
          f"build {t_build:.2f} s, first Dask call {t_ship:.2f} s")
    for name, res in fits.items():
        print(f"  {name:22s} K, r, t0 = {np.array2string(res.x, precision=6)}  loss {res.fun:.6e}  "
              f"nit {res.nit:3d}  nfev {res.nfev:3d}  {times[name]:.2f} s")
    a, b = (res.x for res in fits.values())
    if not all(res.success for res in fits.values()) or np.abs(b - TRUE).max() > 0.05:
        raise SystemExit(f"FAILED: a fit did not converge to the truth: {[r.message for r in fits.values()]}")
    return float(np.max(np.abs(a - b) / np.abs(a)))


def digits(client, quick: bool) -> tuple[float, float]:
    """(max |Δθ| of sync vs single-process training, test accuracy of local SGD)."""
    d = load_digits()
    idx = np.random.default_rng(0).permutation(len(d.data))
    X, y = d.data[idx] / 16.0, d.target[idx]
    n = int(0.8 * len(X))
    Xtr, ytr, Xte, yte = X[:n], y[:n], X[n:], y[n:]
    XD = da.from_array(Xtr, chunks=(-(-n // 4), 64)).persist()  # 4 row chunks, 2 per worker
    YD = da.from_array(ytr, chunks=XD.chunks[0]).persist()
    net, loss = sg.nn.MLP([64, 32, 10], activation="tanh"), "softmax_cross_entropy"
    epochs = 10 if quick else 40
    start = time.perf_counter()
    sync = sg.fit(net, loss, XD, YD, client=client, optimizer=sg.optim.Adam(0.01), epochs=epochs)
    t_sync = time.perf_counter() - start
    single = sg.fit(net, loss, Xtr, ytr, optimizer=sg.optim.Adam(0.01), epochs=epochs, batch_size=n, shuffle=False)
    diff = max(float(np.abs(p - q).max()) for p, q in zip(sync.params, single.params))
    print(f"digits MLP 64-32-10 (tanh), {n} training rows in {len(XD.chunks[0])} chunks of {XD.chunks[0][0]}")
    print(f"  sync:  {epochs} full-batch Adam steps in {t_sync:.2f} s, loss {sync.history['loss'][0]:.4f} -> "
          f"{sync.history['loss'][-1]:.4f} (single process: {single.history['loss'][-1]:.4f})")
    epochs_local = 5 if quick else 15
    start = time.perf_counter()
    local = sg.fit(net, loss, XD, YD, client=client, strategy="local", local_steps=8, batch_size=32,
                   optimizer=sg.optim.Adam(0.01), epochs=epochs_local)
    acc = local.evaluate(Xte, yte)["accuracy"]
    print(f"  local: {epochs_local} epochs of local SGD (8 minibatches of 32 per chunk between averagings) in "
          f"{time.perf_counter() - start:.2f} s, loss {local.history['loss'][-1]:.4f}, test accuracy {acc:.4f}")
    return diff, acc


# -- part 3: data that no process holds -------------------------------------------------------------

def _teacher(xb: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.argmax(xb @ w, axis=1)


def _reset_peak() -> bool:
    """Restart this process's peak resident size from its current size (Linux: /proc/self/clear_refs),
    so that the next ru_maxrss covers one phase; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (2**20 if sys.platform == "darwin" else 2**10)  # macOS reports bytes, Linux KiB


def _current_mb() -> float:
    import psutil  # a dependency of dask.distributed

    return psutil.Process().memory_info().rss / 2**20


def out_of_core(client, quick: bool, tmp: Path) -> float:
    """Train from memory-mapped chunk files; returns the held-out accuracy."""
    n, d, k, chunk = (200_000, 32, 4, 12_500) if quick else (4_000_000, 32, 4, 125_000)
    teacher = np.random.default_rng(1).standard_normal((d, k))
    # the workers draw and write the chunks: the data never passes through this process
    X = da.random.default_rng(2).standard_normal((n, d), chunks=(chunk, d))
    da.to_npy_stack(tmp / "X", X)
    Xs = da.from_npy_stack(tmp / "X")  # each task np.load(..., mmap_mode="r")s its chunk
    da.to_npy_stack(tmp / "y", Xs.map_blocks(_teacher, teacher, drop_axis=1, dtype=np.int64))
    Ys = da.from_npy_stack(tmp / "y")
    size = sum(p.stat().st_size for p in tmp.rglob("*.npy")) / 2**20
    net, loss = sg.nn.MLP([d, 16, k], activation="tanh"), "softmax_cross_entropy"
    # half a chunk per round, so 2 rounds (parameter averagings) per epoch: a round is one task per
    # chunk, which reads its chunk from its file again; 16 minibatches per round (62 rounds) took
    # 13x as long on the full data
    steps = -(-chunk // (2 * 128))
    opts = {"client": client, "strategy": "local", "local_steps": steps, "batch_size": 128,
            "optimizer": sg.optim.Adam(0.01)}
    sg.fit(net, loss, Xs[:chunk], Ys[:chunk], epochs=1, **opts)  # builds and loads the kernel everywhere
    base = {"client": _current_mb(), **client.run(_current_mb)}
    reset = [_reset_peak(), *client.run(_reset_peak).values()]
    start = time.perf_counter()
    model = sg.fit(net, loss, Xs, Ys, epochs=1, **opts)  # not persisted: every round reads the files
    wall = time.perf_counter() - start
    peak = {"client": _peak_mb(), **client.run(_peak_mb)}
    rng = np.random.default_rng(3)
    Xte = rng.standard_normal((20_000, d))
    acc = model.evaluate(Xte, _teacher(Xte, teacher))["accuracy"]
    print(f"out of core: {n:,} x {d} float64 rows + labels = {size:.0f} MiB in {len(Xs.chunks[0])} .npy chunk "
          f"files of {chunk:,} rows, read memory-mapped by the workers")
    print(f"  1 epoch of local SGD ({steps} minibatches of 128 per chunk between averagings) in {wall:.2f} s, "
          f"loss {model.history['loss'][-1]:.4f}, held-out accuracy {acc:.4f}")
    when = "during that epoch (ru_maxrss, reset before it)" if all(reset) else "since each process started (ru_maxrss)"
    print(f"  peak resident memory {when}, and the resident size before the epoch:")
    for who in peak:
        name = who if who == "client" else f"worker {re.sub(r'^.*:', ':', who)}"
        print(f"    {name:13s} peak {peak[who]:7.1f} MiB   before {base[who]:7.1f} MiB   "
              f"growth {peak[who] - base[who]:+7.1f} MiB   (data: {size:.0f} MiB)")
    if quick:
        print(f"  note: in --quick the data ({size:.0f} MiB) is smaller than one worker's baseline memory; this "
              "shows the mechanism, not the scale (without --quick the data is 20x larger)")
    return acc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller data and fewer epochs (well under a minute)")
    args = p.parse_args(argv)
    t_all = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    try:
        print(f"cluster: {len(client.scheduler_info()['workers'])} worker processes, 1 thread each "
              f"(started in {time.perf_counter() - t_all:.1f} s)\n")
        rel = formula_fit(100_000 if args.quick else 1_000_000, 8)
        print()
        diff, acc = digits(client, args.quick)
        print()
        with tempfile.TemporaryDirectory(prefix="symgrad-dask-") as tmp:
            acc_ooc = out_of_core(client, args.quick, Path(tmp))
    finally:
        client.close()
        cluster.close()
    print(f"\ntotal {time.perf_counter() - t_all:.1f} s")
    print(f"formula L-BFGS-B, Dask vs single-process: max rel |Δθ| = {rel:.2g}")
    print(f"digits sync vs single-process: max |Δθ| = {diff:.2g}")
    print(f"digits local SGD: test accuracy = {acc:.4f}")
    print(f"out-of-core local SGD: held-out accuracy = {acc_ooc:.4f}")
    checks = {"formula fits agree (max rel |Δθ| <= 1e-6)": rel <= 1e-6,
              "sync = single-process (max |Δθ| <= 1e-10)": diff <= 1e-10,
              "local SGD test accuracy >= 0.9": acc >= 0.9, "out-of-core accuracy >= 0.9": acc_ooc >= 0.9}
    for what, ok in checks.items():
        if not ok:
            print(f"FAILED: {what}", file=sys.stderr)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
