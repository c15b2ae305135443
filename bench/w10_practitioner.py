"""Workload 10: practitioner workloads (issue 18, section 6; the issue calls it W9, which is the
transformer here).

What a scikit-learn or PyTorch user would run: one MLP per data set, ReLU, Adam lr 1e-3, a fixed
number of epochs, at batch 64, 1024 and 4096, trained by

- symgrad ``sg.fit`` at one thread (``threads=1, blas_threads=1``; fit's defaults below 2048
  rows) and at two: ``blas_threads=2`` (one row block, two-thread BLAS products; from batch 1024)
  and, where ``fit`` splits a minibatch into row blocks (2048 rows or more), its defaults
  (``threads=None``: a block per Numba thread, one BLAS thread each);
- symgrad's scikit-learn estimator (``symgrad.sklearn.MLPClassifier`` / ``MLPRegressor``, its
  defaults), the whole ``fit`` of a scikit-learn user;
- scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` (solver adam, alpha 0, the same hidden
  sizes, batch and epochs, tol 0, no early stopping, ``n_iter_no_change`` never reached) with
  threadpoolctl limiting its BLAS to 1 and 2 threads;
- PyTorch: ``nn.Sequential`` of ``Linear``/``ReLU`` and ``optim.Adam`` in a plain loop over
  index minibatches, ``torch.set_num_threads(1)`` and ``(2)``.

symgrad and torch start from ``MLP.init_params(seed=0)`` and use ``fit``'s per-epoch shuffles
(the same computation, checked: a probe in this process before anything is timed, and the
first-epoch losses of every timed run); scikit-learn's ``fit`` uses its own initialisation and
shuffles (``random_state=0``), as its users get them.

Each (data set, batch, implementation, threads) runs in its own child process (``child_main``),
so that its peak memory is its own: the child loads the prepared data, makes one untimed warm-up
fit on two small batches (symgrad loads its kernel from the suite's cache there; torch and
scikit-learn do their lazy set-up), then times whole ``fit`` calls, from the call to its return,
each after ``malloc_trim`` and resetting the process's peak RSS (``/proc/self/clear_refs``): peak
memory = peak RSS during the fit minus RSS before it. Test accuracy (R² for diabetes) from the
first timed fit.

Sizes: ``--full``: iris, wine, breast_cancer, diabetes (hidden 64, 200 epochs), digits (hidden
64, 50 epochs) and a 100k-row ``make_classification`` set (50 features, 10 classes, 512-512
hidden, 2 epochs), medians of at least 3 fits; ``--quick``: iris (50 epochs) and a 25k-row
synthetic set (1 epoch), at least 1 fit; ``--tiny``: a 256-row digits slice (W4's 64-128-64-10
network, whose kernel W4 built), 1 epoch, batch 64, symgrad, scikit-learn and torch at one thread,
the children at once.

    python -m bench --full --only W10      # this section alone, other sections kept
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np

from bench.common import (
    ROOT,
    LoadMonitor,
    Mode,
    Section,
    check_agreement,
    epoch_perms,
    fit_defaults,
    flush_print,
    peer,
    skipped,
    table,
    thread_note,
)

LR, SEED = 1e-3, 0
BATCHES = (64, 1024, 4096)
PROBE_BS, PROBE_EPOCHS = 64, 3
# the timed runs' first-epoch losses (symgrad, its estimator, torch), float32: summation orders differ,
# and over a thousand steps ReLU units that flip apart the trajectories (2.9e-4 after 313 steps of
# batch 64 on the 25k set); a different initialisation (scikit-learn's) is 4e-2 to 2e-1 away
TOL_RUN = 5e-3

SG1 = "symgrad sg.fit, 1 thread"
SG2B = "symgrad sg.fit, blas_threads=2"
SGDEF = "symgrad sg.fit, defaults (Numba row blocks)"
SGE = "symgrad.sklearn estimator .fit (defaults)"
SKL1 = "scikit-learn .fit, 1 BLAS thread"
SKL2 = "scikit-learn .fit, 2 BLAS threads"
T1 = "torch loop, 1 thread"
T2 = "torch loop, 2 threads"
ORDER = [SG1, SG2B, SGDEF, SGE, SKL1, SKL2, T1, T2]
SYMGRAD_FIT = (SG1, SG2B, SGDEF)


@dataclass
class DataSet:
    name: str
    task: str  # "classification" or "regression"
    hidden: tuple
    epochs: int
    Xtr: np.ndarray
    ytr: np.ndarray
    Xte: np.ndarray
    yte: np.ndarray
    source: str

    @property
    def n_out(self) -> int:
        return int(self.ytr.max()) + 1 if self.task == "classification" else 1

    @property
    def sizes(self) -> list[int]:
        return [self.Xtr.shape[1], *self.hidden, self.n_out]


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def _split(X, y, task: str, test: float = 0.2):
    """A fixed split (``default_rng(0)`` permutation, the last 20% for testing), features (and a
    regression target) standardised with the training rows' statistics; float32."""
    idx = np.random.default_rng(0).permutation(len(X))
    X, y = np.asarray(X, dtype=np.float64)[idx], np.asarray(y)[idx]
    n = len(X) - int(round(test * len(X)))
    mu, sd = X[:n].mean(0), X[:n].std(0) + 1e-8
    X = ((X - mu) / sd).astype(np.float32)
    if task == "regression":
        m, s = y[:n].mean(), y[:n].std()
        y = ((y - m) / s).astype(np.float32)
    else:
        y = y.astype(np.int64)
    return X[:n], y[:n], X[n:], y[n:]


def datasets(mode: Mode) -> list[DataSet]:
    from sklearn import datasets as skd

    out = []
    if mode.tiny:  # W4's network (its kernel is in the suite's cache when W4 ran first) on a digits slice
        Xtr, ytr, Xte, yte = _split(*skd.load_digits(return_X_y=True), "classification")
        return [DataSet("digits (tiny slice)", "classification", (128, 64), 1, Xtr[:256], ytr[:256], Xte[:64],
                        yte[:64], "`load_digits`, the first 256 training and 64 test rows")]
    small = [("iris", skd.load_iris, "classification", 200), ("wine", skd.load_wine, "classification", 200),
             ("breast_cancer", skd.load_breast_cancer, "classification", 200),
             ("diabetes", skd.load_diabetes, "regression", 200), ("digits", skd.load_digits, "classification", 50)]
    if mode.quick:
        small = [("iris", skd.load_iris, "classification", 50)]
    for name, loader, task, epochs in small:
        X, y = loader(return_X_y=True)
        out.append(DataSet(name, task, (64,), epochs, *_split(X, y, task), f"`load_{name}`"))
    n = mode.pick(100_000, 25_000, 0)
    X, y = skd.make_classification(n_samples=n, n_features=50, n_informative=30, n_classes=10, random_state=0)
    out.append(DataSet(f"synthetic {n // 1000}k", "classification", (512, 512), mode.pick(2, 1, 1), *_split(X, y,
                       "classification"), f"`make_classification(n_samples={n:_}, n_features=50, n_informative=30, "
                       "n_classes=10, random_state=0)`"))
    return out


# ---------------------------------------------------------------------------
# the implementations (used by the children and by the probe)
# ---------------------------------------------------------------------------
def sg_loss(task: str) -> str:
    return "softmax_cross_entropy" if task == "classification" else "mse"


def train_sg(sizes, task, X, y, bs, epochs, kw, p0=None):
    """symgrad ``fit`` -> (the trained model, per-epoch losses)."""
    import symgrad as sg

    net = _sg_net(tuple(sizes))
    p0 = p0 if p0 is not None else _sg_p0(tuple(sizes))
    m = sg.fit(net, sg_loss(task), X, y, optimizer=sg.optim.Adam(LR), epochs=epochs, batch_size=bs,
               params=[p.copy() for p in p0], seed=SEED, dtype="float32", **kw)
    return m, list(m.history["loss"])


_NETS: dict = {}


def _sg_net(sizes: tuple):
    """The network (SymPy) is built once per process, as a user builds it once, before ``fit``."""
    import symgrad as sg

    if sizes not in _NETS:
        net = sg.nn.MLP(list(sizes), activation="relu")
        _NETS[sizes] = (net, net.init_params(seed=SEED, dtype=np.float32))
    return _NETS[sizes][0]


def _sg_p0(sizes: tuple):
    _sg_net(sizes)
    return _NETS[sizes][1]


def train_sge(sizes, task, X, y, bs, epochs):
    """symgrad's scikit-learn estimator, as a scikit-learn user calls it."""
    from symgrad.sklearn import MLPClassifier, MLPRegressor

    cls = MLPClassifier if task == "classification" else MLPRegressor
    est = cls(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="adam", learning_rate_init=LR,
              max_iter=epochs, batch_size=bs, random_state=SEED)
    est.fit(X, y)
    return est, list(est.loss_curve_)


def train_skl(sizes, task, X, y, bs, epochs):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    cls = MLPClassifier if task == "classification" else MLPRegressor
    est = cls(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="adam", alpha=0.0, batch_size=bs,
              learning_rate_init=LR, max_iter=epochs, tol=0.0, n_iter_no_change=10**9, early_stopping=False,
              shuffle=True, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    return est, list(est.loss_curve_)


def train_torch(sizes, task, X, y, bs, epochs, p0=None):
    """A plain PyTorch loop: the same initial weights as symgrad's and ``fit``'s shuffles."""
    import torch
    import torch.nn.functional as tF

    p0 = p0 if p0 is not None else _torch_p0(tuple(sizes))
    n = len(X)
    perms = torch.from_numpy(epoch_perms(n, epochs, SEED))
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y)
    layers = []
    for k in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for k, lin in enumerate(m for m in model if isinstance(m, torch.nn.Linear)):
            lin.weight.copy_(torch.from_numpy(p0[2 * k]))
            lin.bias.copy_(torch.from_numpy(p0[2 * k + 1].ravel()))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    losses = []
    for e in range(epochs):
        total = 0.0
        for s in range(0, n, bs):
            idx = perms[e, s:s + bs]
            out = model(Xt[idx])
            loss = tF.cross_entropy(out, yt[idx]) if task == "classification" else tF.mse_loss(out[:, 0], yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / n)
    return model, losses


def _torch_p0(sizes: tuple):
    """symgrad's initial parameters without importing symgrad in the torch child: the parent
    writes them next to the data (``p0.npz``)."""
    return _P0[sizes]


_P0: dict = {}


def torch_params(model) -> list[np.ndarray]:
    import torch

    out = []
    for m in model:
        if isinstance(m, torch.nn.Linear):
            out += [m.weight.detach().numpy().copy(), m.bias.detach().numpy().reshape(-1, 1).copy()]
    return out


def score(family: str, model, task: str, X, y) -> float:
    """Test accuracy (classification) or R² (regression) of a trained model."""
    if family == "torch":
        import torch

        with torch.no_grad():
            out = model(torch.from_numpy(X)).numpy()
    elif family == "sg":
        out = np.asarray(model.predict(X))
    else:
        out = None
    if task == "classification":
        pred = out.argmax(1) if out is not None else model.predict(X)
        return float(np.mean(pred == y))
    pred = (out.reshape(len(X), -1)[:, 0] if out is not None else np.asarray(model.predict(X)).reshape(-1))
    return float(1.0 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2))


# ---------------------------------------------------------------------------
# the child process
# ---------------------------------------------------------------------------
def _status_kib(field: str) -> int | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _trim() -> None:
    """Give the pages of freed heap blocks back to the OS (glibc's ``malloc_trim``), so that a fit
    that reuses blocks an earlier fit freed touches them again and they count in its peak RSS."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def child_main(arg: str) -> None:
    """One configuration in a fresh process: ``python -c 'from bench.w10_practitioner import child_main; ...'``."""
    spec = json.loads(arg)
    fam, task, bs, epochs, k = spec["family"], spec["task"], spec["bs"], spec["epochs"], spec["threads"]
    sizes = spec["sizes"]
    d = np.load(spec["data"])
    Xtr, ytr, Xte, yte = d["Xtr"], d["ytr"], d["Xte"], d["yte"]
    p = np.load(spec["p0"])
    _P0[tuple(sizes)] = [p[f"p{i}"] for i in range(len(p.files))]
    limit, seen = None, {}
    # imports and the network's construction come before the warm-up, which times a fit alone
    if fam == "sg":
        _sg_net(tuple(sizes))
    elif fam == "sge":
        import symgrad.sklearn  # noqa: F401
    elif fam == "skl":
        import sklearn.neural_network  # noqa: F401
        from threadpoolctl import threadpool_info, threadpool_limits

        limit = threadpool_limits(limits=k)  # BLAS and OpenMP pools, for the life of the child
        seen["blas_threads"] = sorted({i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"})
    else:
        import torch

        torch.set_num_threads(k)
        seen["torch_threads"] = torch.get_num_threads()

    def fit_once(X, y, b: int, e: int):
        if fam == "sg":
            return train_sg(sizes, task, X, y, b, e, spec["sg_kw"], p0=_P0[tuple(sizes)])
        if fam == "sge":
            return train_sge(sizes, task, X, y, b, e)
        if fam == "skl":
            return train_skl(sizes, task, X, y, b, e)
        return train_torch(sizes, task, X, y, b, e)

    # warm-up: kernel load (symgrad), lazy set-up (torch, scikit-learn), on small batches, so that the
    # allocator keeps no blocks of the timed fit's size for it to reuse unseen
    wb = spec["warm_bs"]
    rows = warm_rows(ytr, min(len(Xtr), 2 * wb), task)
    t0 = time.perf_counter()
    fit_once(Xtr[rows], ytr[rows], wb, 1)
    first = time.perf_counter() - t0
    rss_before = _status_kib("VmRSS")
    times, peaks, kernel = [], [], []
    acc, losses = None, None
    while len(times) < spec["repeats"] or (sum(times) < spec["min_total_s"] and len(times) < spec["max_repeats"]):
        gc.collect()
        _trim()
        time.sleep(spec["settle"])
        reset = _reset_peak()
        base = _status_kib("VmRSS")
        t0 = time.perf_counter()
        model, ls = fit_once(Xtr, ytr, bs, epochs)
        times.append(time.perf_counter() - t0)
        hwm = _status_kib("VmHWM")
        peaks.append((hwm - base) / 1024 if reset and hwm is not None and base is not None else None)
        if fam == "sg":
            kernel.append(float(np.sum(model.history["time"])))
        if acc is None:
            acc, losses = score(fam, model, task, Xte, yte), [float(x) for x in ls]
        del model
    del limit
    print("W10_RESULT " + json.dumps({"first_s": first, "times": times, "peak_mib": peaks, "acc": acc,
                                      "losses": losses, "kernel_s": kernel, "base_mib": (rss_before or 0) / 1024,
                                      "seen": seen}), flush=True)


def warm_rows(y: np.ndarray, w: int, task: str) -> np.ndarray:
    """``w`` training rows for the warm-up, every class among them: the estimators size their
    output layer from the classes they see, and another size would be another kernel."""
    if task != "classification":
        return np.arange(w)
    first = np.unique(y, return_index=True)[1]
    rest = np.setdiff1d(np.arange(len(y)), first)[: max(0, w - len(first))]
    return np.sort(np.concatenate([first, rest]))


def _launch(spec: dict) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    code = "import sys; from bench.w10_practitioner import child_main; child_main(sys.argv[1])"
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(spec)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _collect(proc: subprocess.Popen, spec: dict) -> dict:
    out, err = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("W10_RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"W10 child failed ({spec['name']}, {spec['dataset']}, batch {spec['bs']}):\n"
                           f"{out[-2000:]}\n{err[-3000:]}")
    return json.loads(lines[-1][len("W10_RESULT "):])


def run_children(specs: list[dict], parallel: bool) -> list[dict]:
    """Each spec in a fresh process: one after the other (timing), or all at once (tiny mode)."""
    if parallel:
        procs = [_launch(s) for s in specs]
        return [_collect(p, s) for p, s in zip(procs, specs, strict=True)]
    return [_collect(_launch(s), s) for s in specs]


# ---------------------------------------------------------------------------
# the parent: probe, configurations, section
# ---------------------------------------------------------------------------
def sg_kwargs(name: str) -> dict:
    return {SG1: {"threads": 1, "blas_threads": 1}, SG2B: {"threads": 1, "blas_threads": 2}, SGDEF: {}}[name]


def configurations(mode: Mode, nominal: int, bs: int, have: dict, work: int = 0) -> list[str]:
    """Which implementations run at this (nominal, effective) batch size."""
    if mode.tiny:
        names = [SG1, SKL1, T1]
    else:
        names = [SG1]
        if nominal >= 1024:  # blas_threads=2 on 64-row products: slower (W4), and wildly so on a busy machine
            names.append(SG2B)
        if fit_defaults(bs, work)["numba_threads_at_bs"] not in (1, "?"):  # fit's defaults split the batch
            names.append(SGDEF)
        names += [SGE, SKL1, SKL2, T1, T2]
    out = []
    for nm in names:
        fam = family(nm)
        if fam in ("skl", "sge") and not have["sklearn"] or fam == "skl" and not have["threadpoolctl"]:
            continue
        if fam == "torch" and not have["torch"]:
            continue
        out.append(nm)
    return out


def family(name: str) -> str:
    if name in SYMGRAD_FIT:
        return "sg"
    return {SGE: "sge", SKL1: "skl", SKL2: "skl", T1: "torch", T2: "torch"}[name]


def threads_of(name: str, bs: int, work: int = 0) -> str:
    """Cores the implementation may use, as a table cell."""
    nb = fit_defaults(bs, work)["numba_threads_at_bs"]
    return {SG1: "1", SG2B: "2 (BLAS)", SGDEF: f"{nb} (Numba row blocks, 1 BLAS each)",
            SGE: f"{nb} (fit's defaults)", SKL1: "1", SKL2: "2", T1: "1", T2: "2"}[name]


def n_threads(name: str, bs: int, work: int = 0) -> int:
    nb = fit_defaults(bs, work)["numba_threads_at_bs"]
    nb = nb if isinstance(nb, int) else 1
    return {SG1: 1, SG2B: 2, SGDEF: nb, SGE: nb, SKL1: 1, SKL2: 2, T1: 1, T2: 2}[name]


def warm_batch(name: str, bs: int, work: int = 0) -> int:
    """The warm-up fit's batch: 16 rows, or, where symgrad's ``fit`` splits a batch into row blocks
    (its defaults from two blocks' worth of rows), the smallest batch that loads that kernel."""
    if name in (SGDEF, SGE) and n_threads(name, bs, work) > 1:
        try:
            from symgrad.runtime.execution import block_rows
        except ImportError:  # internal: the rule before row blocks by work
            return 2048
        return 2 * block_rows(work)
    return min(bs, 16)


def probe(ds: DataSet, have: dict, estimator: bool = True) -> dict:
    """Before timing, in this process: symgrad ``fit`` (its first call here is the cold build of the
    data set's kernel), symgrad's estimator (the weighted loss's kernel; not in tiny mode, which
    does not run it) and the torch loop on the first 205 training rows, 3 epochs of batch 64,
    compared step for step."""
    n = min(len(ds.Xtr), 3 * PROBE_BS + 13)
    X, y = ds.Xtr[:n], ds.ytr[:n]
    t0 = time.perf_counter()
    m, sg_losses = train_sg(ds.sizes, ds.task, X, y, PROBE_BS, PROBE_EPOCHS, {})
    cold = time.perf_counter() - t0
    out = {"cold_s": cold, "rows": n}
    losses = {SG1: np.array(sg_losses)}
    params = {SG1: np.concatenate([p.ravel() for p in m.params])}
    if have["torch"]:
        tm, tl = train_torch(ds.sizes, ds.task, X, y, PROBE_BS, PROBE_EPOCHS, p0=_sg_p0(tuple(ds.sizes)))
        losses[T1] = np.array(tl)
        params[T1] = np.concatenate([p.ravel() for p in torch_params(tm)])
    if have["sklearn"] and estimator:
        t0 = time.perf_counter()
        _, el = train_sge(ds.sizes, ds.task, X, y, PROBE_BS, PROBE_EPOCHS)
        out["estimator_cold_s"] = time.perf_counter() - t0
        losses[SGE] = np.array(el)
    check_agreement(f"W10 {ds.name}: probe per-epoch losses ({n} rows, {PROBE_EPOCHS} epochs, batch {PROBE_BS})",
                    SG1, losses, rtol=1e-4)
    out["param_error"] = check_agreement(f"W10 {ds.name}: probe parameters", SG1, params, rtol=2e-3, atol=2e-5)
    return out


def _contended(med: dict) -> str:
    """As W7 and W9: torch's two-thread run slower than 1.3x its one-thread run means that other
    processes held a core (threads that wait for a busy core spin), so two-thread times mean little."""
    for two, one, who in ((T2, T1, "torch"), (SKL2, SKL1, "scikit-learn")):
        if two in med and one in med and med[two] > 1.3 * med[one]:
            return (f"{who} with 2 threads took {med[two] / med[one]:.1f}x its 1-thread time (other processes "
                    "probably held a core; see the Load line)")
    return ""


def _effective_batches(n: int, mode: Mode) -> list[tuple[int, int]]:
    """(nominal, effective) batch sizes: one larger than the training set is clamped to it (full
    batch), once; further ones would repeat that run and are skipped."""
    out, seen = [], set()
    for b in (BATCHES[:1] if mode.tiny else BATCHES):
        e = min(b, n)
        if e not in seen:
            seen.add(e)
            out.append((b, e))
    return out


def _fmt_s(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1.0 else f"{s:.2f} s"


def _metric(ds: DataSet, x) -> str:
    if x is None:
        return "-"
    return f"{x:.2%}" if ds.task == "classification" else f"R² {x:.3f}"


def run_dataset(ds: DataSet, mode: Mode, have: dict, tmp: str, L: list[str], summary: list, data: dict,
                notes: list[str]) -> None:
    flush_print(f"  W10: {ds.name}: {len(ds.Xtr)} x {ds.Xtr.shape[1]}, {ds.sizes}, {ds.epochs} epoch(s) ...")
    path = os.path.join(tmp, f"{ds.name.split()[0]}.npz")
    np.savez(path, Xtr=ds.Xtr, ytr=ds.ytr, Xte=ds.Xte, yte=ds.yte)
    p0_path = os.path.join(tmp, f"{ds.name.split()[0]}_p0.npz")
    np.savez(p0_path, **{f"p{i}": p for i, p in enumerate(_sg_p0(tuple(ds.sizes)))})
    pr = probe(ds, have, estimator=not mode.tiny)
    rows, results = [], {}
    work = sum(a * b for a, b in zip(ds.sizes, ds.sizes[1:]))  # multiply-adds per row: fit's row-block rule
    for i, (nominal, bs) in enumerate(_effective_batches(len(ds.Xtr), mode)):
        names = configurations(mode, nominal, bs, have, work)
        if i % 2:  # alternate the order, so that drift in the machine's load favours no one
            names = names[::-1]
        specs = []
        for nm in names:
            specs.append({"name": nm, "dataset": ds.name, "family": family(nm), "task": ds.task, "sizes": ds.sizes,
                          "bs": bs, "epochs": ds.epochs, "threads": n_threads(nm, bs, work),
                          "sg_kw": sg_kwargs(nm) if nm in SYMGRAD_FIT else {}, "data": path, "p0": p0_path,
                          "warm_bs": warm_batch(nm, bs, work), "repeats": mode.pick(3, 1, 1),
                          "min_total_s": mode.pick(1.0, 0.5, 0.0),
                          "max_repeats": mode.pick(11, 5, 1), "settle": mode.settle})
        flush_print(f"    batch {bs}: {len(specs)} child processes ...")
        res = dict(zip(names, run_children(specs, parallel=mode.tiny), strict=True))
        # the same computation (symgrad fit at any threads, its estimator, torch): first-epoch losses agree
        same = {k: np.array(v["losses"][:1]) for k, v in res.items() if family(k) != "skl"}
        ref = SG1 if SG1 in same else next(iter(same))
        check_agreement(f"W10 {ds.name}, batch {bs}: first-epoch loss of the timed runs", ref, same, rtol=TOL_RUN)
        med = {k: statistics.median(v["times"]) for k, v in res.items()}
        sg_def = SGDEF if SGDEF in med else SG1
        sg2 = min((k for k in SYMGRAD_FIT if k in med), key=med.get)
        # whom each row is compared with
        refs = {k: sg_def if k == SGE else SG1 if n_threads(k, bs, work) == 1 else sg2 for k in res}

        label = f"{bs}" if bs == nominal else f"{nominal} → {bs} (full batch)"
        busy = _contended(med)
        if busy:
            notes.append(f"{ds.name}, batch {bs}: two-thread timings are suspect: {busy}.")
        mark = " †" if busy else ""
        for k in [x for x in ORDER if x in res]:
            r = res[k]
            peak = [x for x in r["peak_mib"] if x is not None]
            rk = refs[k]
            ratio = "-" if k in (SG1, sg2) and k == rk else f"{med[k] / med[rk]:.2f}x"
            if k in SYMGRAD_FIT and k != SG1:
                ratio = f"{med[k] / med[SG1]:.2f}x vs 1 thread"
            if n_threads(k, bs, work) > 1 and ratio != "-":
                ratio += mark
            rows.append([label, k, threads_of(k, bs, work), _fmt_s(med[k]), len(r["times"]), _fmt_s(r["first_s"]),
                         ratio, _metric(ds, r["acc"]), f"{r['losses'][-1]:.4f}", f"{r['base_mib']:.0f}",
                         f"{max(peak):.1f}" if peak else "n/a"])
        line = [ds.name, label, _fmt_s(med[SG1])]
        for k in (SKL1, T1):
            line.append(f"{med[k] / med[SG1]:.2f}x" if k in med else "-")
        line.append(f"{_fmt_s(med[sg2])} ({'1 thread' if sg2 == SG1 else sg2.split(', ')[1]})")
        for k in (SKL2, T2):
            line.append(f"{med[k] / med[sg2]:.2f}x{mark}" if k in med else "-")
        line += [_metric(ds, res[SG1]["acc"]), _metric(ds, res[SKL1]["acc"]) if SKL1 in res else "-"]
        pk = {k: max([x for x in res[k]["peak_mib"] if x is not None], default=None) for k in (SG1, SKL1, T1)
              if k in res}
        line.append(" / ".join("n/a" if pk.get(k) is None else f"{pk[k]:.1f}" for k in (SG1, SKL1, T1) if k in pk))
        summary.append(line)
        results[bs] = res
        gap = 0.05 if ds.task == "classification" else 0.1
        for k, v in res.items():
            if not mode.tiny and v["acc"] is not None and abs(v["acc"] - res[SG1]["acc"]) > gap:
                notes.append(f"{ds.name}, batch {bs}: {k} reached {_metric(ds, v['acc'])}, symgrad "
                             f"{_metric(ds, res[SG1]['acc'])} (scikit-learn starts from its own initialisation "
                             "and shuffles; the others from the same ones)" if family(k) == "skl" else
                             f"{ds.name}, batch {bs}: {k} reached {_metric(ds, v['acc'])}, symgrad "
                             f"{_metric(ds, res[SG1]['acc'])}")
    data[ds.name] = {"probe": pr, "results": results, "n_train": len(ds.Xtr), "sizes": ds.sizes, "epochs": ds.epochs}
    what = "accuracy" if ds.task == "classification" else "R²"
    L.append(f"### W10 {ds.name}: {len(ds.Xtr):,} training rows x {ds.Xtr.shape[1]} features, "
             f"{'-'.join(map(str, ds.sizes))} ReLU, {ds.epochs} epoch(s)")
    L.append("")
    est = (f"; symgrad's estimator's first `fit` (its weighted loss's kernel) {pr['estimator_cold_s']:.2f} s"
           if "estimator_cold_s" in pr else "")
    L.append(f"Data: {ds.source}, {len(ds.Xtr):,} training / {len(ds.Xte):,} test rows. Cold build (symgrad's first "
             f"`fit` of this network, into the suite's empty cache, on the {pr['rows']}-row probe): "
             f"{pr['cold_s']:.2f} s"
             f"{est}. Test {what} from the first timed fit; `final loss`: the last epoch's mean training loss "
             "(scikit-learn's `loss_curve_`, half the squared error for its regressor).")
    L.append("")
    L.append(table(["batch", "implementation", "threads", "fit (median)", "fits", "first fit in a new process",
                    "time / symgrad (same threads)", f"test {what}", "final loss", "RSS before MiB",
                    "peak RSS growth MiB"], rows))
    L.append("")


def run(mode: Mode) -> Section:
    mon = LoadMonitor()
    L = ["## W10: practitioner workloads (issue 18)", ""]
    L.append("Issue 18 (section 6) names this workload W9; it is W10 here because W9 is the transformer.")
    L.append("")
    if peer("sklearn") is None:  # the data sets come from scikit-learn
        L.append(f"Not run: {skipped('sklearn')} (it provides the data sets).")
        return Section("W10", "\n".join(L) + "\n", [], {})
    have = {m: peer(m) is not None for m in ("sklearn", "torch", "threadpoolctl")}
    notes: list[str] = []
    for m in ("torch", "threadpoolctl"):
        if not have[m]:
            notes.append(f"{m}: {skipped(m)}" + (" (scikit-learn's rows need it to pin BLAS threads)"
                                                  if m == "threadpoolctl" else ""))
    sets = datasets(mode)
    reps = mode.pick(3, 1, 1)
    d = fit_defaults(4096)
    L.append("Whole `fit` calls as a user makes them: one MLP per data set (ReLU, float32, Adam lr 1e-3, a fixed "
             "number of epochs, softmax cross-entropy or, for diabetes, the mean squared error on the standardised "
             "target), at batch 64, 1024 and 4096 (a batch larger than the training set is clamped to it once: "
             "full-batch training). Implementations: symgrad `sg.fit(net, loss, X, y, optimizer=sg.optim.Adam(1e-3), "
             "epochs=, batch_size=, params=, dtype='float32')` with the network built beforehand (at 1 thread: "
             "`threads=1, blas_threads=1`; `blas_threads=2` from batch 1024: not "
             "at 64, where two BLAS threads on 64-row products are slower (W4's `blas_threads=None` row); fit's "
             f"defaults where they split a minibatch into Numba row blocks (threads={d['threads']}, "
             f"blas_threads={d['blas_threads']}: {d['numba_threads_at_bs']} blocks at 4096 rows; a block holds "
             "1,024 rows, or fewer that hold 2M multiply-adds of the forward products)); "
             "symgrad's scikit-learn estimator `symgrad.sklearn.MLPClassifier`/`MLPRegressor(hidden, "
             "learning_rate_init=1e-3, max_iter=epochs, batch_size=, random_state=0).fit(X, y)` (its defaults; the "
             "network's construction is inside its `fit`); scikit-learn's `MLPClassifier`/`MLPRegressor(hidden, "
             "solver='adam', alpha=0, batch_size=, learning_rate_init=1e-3, max_iter=epochs, tol=0, "
             "n_iter_no_change=10**9, early_stopping=False, random_state=0).fit(X, y)` under threadpoolctl's "
             "`threadpool_limits(1)` or `(2)`; torch: `nn.Sequential(Linear, ReLU, ...)`, `optim.Adam`, a loop "
             "over index minibatches of `fit`'s shuffles with `F.cross_entropy`/`F.mse_loss`, "
             "`torch.set_num_threads(1)` or `(2)`. symgrad, its estimator and torch start from "
             "`MLP.init_params(seed=0)` (He normal, zero biases) and train on `fit`'s shuffles: the same "
             "computation, checked before timing on each data set's first 205 training rows (3 epochs of batch 64: "
             "per-epoch losses to rel. 1e-4, symgrad's and torch's final parameters to rel. 2e-3, abs. 2e-5) and "
             f"after (the first-epoch loss of every timed run to rel. {TOL_RUN:g}; float32 over up to a thousand "
             "steps, where ReLU units flipped by rounding move the trajectories apart). scikit-learn uses its "
             "own initialisation (Glorot uniform) and shuffles, as its users get "
             "them; its accuracy differs for that reason.")
    L.append("")
    order = ("all at once in tiny mode, so its times mean nothing" if mode.tiny else
             "the order reversed at every other batch size")
    L.append(f"How: each (data set, batch, implementation) runs in its own child process, one after the other "
             f"({order}). The child imports its library, loads the prepared arrays (symgrad: builds the network), "
             "and makes one untimed warm-up fit: one epoch of two batches of 16 rows (`first fit in a new "
             "process`: symgrad loads its kernel from the suite's cache there; torch and scikit-learn do their lazy "
             "set-up), or of two row blocks' worth of rows where symgrad's `fit` splits batches into row blocks (that kernel is "
             "compiled on its first use, in the first such child). Then it times whole fits, from the call "
             f"to its return: at least {reps}, more while they total under {mode.pick(1.0, 0.5, 0.0):g} s (up to "
             f"{mode.pick(11, 5, 1)}), after a {mode.settle:g} s pause each; `fit (median)` is their median. "
             "Memory: `RSS before` is the child's resident set after the warm-up (interpreter, libraries, data, "
             "kernel); before each timed fit the child hands freed heap pages back to the OS (glibc's `malloc_trim`, "
             "so that blocks an earlier fit freed count again when reused) and resets its peak RSS "
             "(`/proc/self/clear_refs`); `peak RSS growth` is the largest over its fits of the peak during the fit "
             "minus the RSS before it (native allocations included; the data set is loaded before, so a copy of it "
             "counts). "
             "`time / symgrad (same threads)`: the time over symgrad's (> 1: symgrad faster): one-thread peers "
             "against symgrad at 1 thread, two-thread peers against the fastest symgrad `fit` row of that batch "
             "(a program given two cores may use one), symgrad's estimator against `sg.fit` with its defaults, and "
             "symgrad's other thread settings against its 1-thread row; † marks two-thread ratios of a batch where "
             "a two-thread peer ran more than 1.3x slower than at one thread (a core was busy). "
             + thread_note() + ".")
    L.append("")
    data: dict = {"fit_defaults": d}
    summary: list = []
    detail: list[str] = []
    tmp = tempfile.mkdtemp(prefix="symgrad-w10-")
    try:
        for ds in sets:
            run_dataset(ds, mode, have, tmp, detail, summary, data, notes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    L.append("Summary (details per data set below): symgrad's whole-`fit` time and each peer's time over it "
             "(> 1: symgrad faster), at one thread and at two; test accuracy or R²; peak RSS growth during one fit.")
    L.append("")
    L.append(table(["data set", "batch", "symgrad 1 thread", "scikit-learn / symgrad, 1 thread",
                    "torch / symgrad, 1 thread", "symgrad, 2 threads (best)", "scikit-learn / symgrad, 2 threads",
                    "torch / symgrad, 2 threads", "symgrad test", "scikit-learn test",
                    "peak RSS growth MiB: symgrad / scikit-learn / torch (1 thread)"], summary))
    L.append("")
    L += detail
    L += [f"- {x}" for x in dict.fromkeys(notes)]
    if notes:
        L.append("")
    L.append(mon.note())
    return Section("W10", "\n".join(L) + "\n", [], data)


if __name__ == "__main__":  # a look without the suite: python -m bench.w10_practitioner [full|quick|tiny]
    from bench.common import make_mode

    sec = run(make_mode(sys.argv[1] if len(sys.argv) > 1 else "tiny"))
    print(sec.markdown)
