"""Workload 5: build cost — derivation, code generation and Numba compilation, cold and warm.

Every measurement runs in a fresh ``python -c`` subprocess. Cold: an empty temporary
``SYMGRAD_CACHE_DIR``; warm: a second fresh subprocess reusing that folder (symgrad's
generated module and Numba's on-disk cache are then found). The OS file cache is warm.

For training models the child builds the ``MLP`` (SymPy expressions), then calls ``sg.fit``
for one epoch on two batches of random data, twice. The first call builds the kernel; the
second only trains, so ``build = model construction + (first fit - second fit)``. Inside the
first call, instrumentation around ``symgrad.jit.ensure_sized`` / ``load`` and
``symgrad.build.lower`` (when those hooks exist) splits it into: lowering (the IR and
the symbolic derivatives of every elementwise node), the rest of source generation (reverse
sweep, codegen, writing the module), importing the module, and Numba (compiling, or loading
its cache) plus cache-key hashing of the SymPy model.

Workload 1's formula model reuses ``bench_formula.run_child`` (its ``compile()`` column is
validation + derivation + codegen, its first call is Numba).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench import bench_formula as bf
from bench import w5_sweep
from bench.common import ROOT, LoadMonitor, Mode, Section, Target, table

CHILD = r'''
import time
t0 = time.perf_counter()
import json, sys
import numpy as np
import sympy as sp
import symgrad as sg
import symgrad.jit as sgjit
import symgrad.build_helper as sgbh
t_import = time.perf_counter()
spec = json.loads(sys.argv[1])
T = {"make_source": 0.0, "lower": 0.0, "ensure_source": 0.0, "load": 0.0, "generated": 0, "hooks": []}
_es, _load = sgjit.ensure_sized, sgjit.load

def ensure_sized(key, make_source):
    def timed():
        t = time.perf_counter()
        s = make_source()
        T["make_source"] += time.perf_counter() - t
        T["generated"] += 1
        return s
    t = time.perf_counter()
    p = _es(key, timed)
    T["ensure_source"] += time.perf_counter() - t
    return p

def load(path, jit, dims=None):
    t = time.perf_counter()
    m = _load(path, jit, dims)
    T["load"] += time.perf_counter() - t
    return m

sgjit.ensure_sized, sgjit.load = ensure_sized, load
T["hooks"] += ["ensure_sized", "load"]
try:
    import symgrad.build as tapi
    _lower = tapi.lower
    def lower(*a, **k):
        t = time.perf_counter()
        r = _lower(*a, **k)
        T["lower"] += time.perf_counter() - t
        return r
    tapi.lower = lower
    T["hooks"].append("lower")
except Exception:
    pass

sizes, bs, dtype = spec["sizes"], spec["batch_size"], spec["dtype"]
# spec["net"]: another model, as a Python expression over sg (W7's CNN); its input is flat rows of sizes[0]
net = eval(spec["net"], {"sg": sg}) if spec.get("net") else sg.nn.MLP(sizes, activation=spec["activation"])
t_model = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.standard_normal((2 * bs, sizes[0])).astype(dtype)
if spec["loss"] == "bce":
    Y = (X[:, 0] > 0).astype(dtype)
else:
    Y = rng.integers(0, sizes[-1], 2 * bs)
opt = sg.optim.Adam(spec["lr"]) if spec["optimizer"] == "adam" else sg.optim.SGD(spec["lr"])
t1 = time.perf_counter()
sg.fit(net, spec["loss"], X, Y, optimizer=opt, epochs=1, batch_size=bs, dtype=dtype)
t_fit1 = time.perf_counter()
first = dict(T)
sg.fit(net, spec["loss"], X, Y, optimizer=opt, epochs=1, batch_size=bs, dtype=dtype)
t_fit2 = time.perf_counter()
# the generated modules with every number replaced by 0: equal text means the same functions for
# Numba to compile, whatever the layer widths (which appear only as numbers: shapes and offsets)
import glob, hashlib, os, re
skel = "".join(re.sub(r"\d+", "0", open(f).read().partition("\n")[2])
               for f in sorted(glob.glob(os.path.join(os.environ["SYMGRAD_CACHE_DIR"], "sg_*.py"))))
print("SG_RESULT " + json.dumps({
    "skeleton": hashlib.sha256(skel.encode()).hexdigest()[:16], "skeleton_lines": skel.count("\n"),
    "modules": sorted(os.path.basename(f) for f in glob.glob(os.path.join(os.environ["SYMGRAD_CACHE_DIR"], "sg_*.py"))),
    "import": t_import - t0, "model": t_model - t_import, "fit1": t_fit1 - t1, "fit2": t_fit2 - t_fit1,
    "make_source": first["make_source"], "lower": first["lower"], "load": first["load"],
    "ensure_source": first["ensure_source"], "generated": first["generated"], "hooks": first["hooks"],
    "import_to_trained": t_fit1 - t0, "fingerprint": sgjit._FINGERPRINT,
    "helper": sgbh.STATS,
}))
'''


def run_fit_child(spec: dict, cache: str, numba_cache: str | None = None) -> dict:
    """One build in a fresh process. ``numba_cache``: a folder for all of Numba's on-disk cache,
    symgrad's own vecmath functions included (by default they are cached beside their source)."""
    env = dict(os.environ)
    env["SYMGRAD_CACHE_DIR"] = cache
    env.pop("NUMBA_CACHE_DIR", None)
    env.update(spec.get("env", {}))
    if numba_cache:
        env["NUMBA_CACHE_DIR"] = numba_cache
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env, capture_output=True, text=True,
                       cwd=ROOT)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"build-cost child failed for {spec}:\n{p.stderr[-3000:]}")
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("SG_RESULT ")][-1]
    r = json.loads(line[len("SG_RESULT "):])
    r["process_wall"] = wall
    r["build"] = r["model"] + r["fit1"] - r["fit2"]
    r["numba"] = r["fit1"] - r["fit2"] - r["make_source"] - r["load"]
    return r


def fit_spec(sizes, activation="relu", loss="softmax_cross_entropy", optimizer="adam", lr=1e-3, dtype="float32",
             batch_size=64) -> dict:
    return {"sizes": list(sizes), "activation": activation, "loss": loss, "optimizer": optimizer, "lr": lr,
            "dtype": dtype, "batch_size": batch_size}


WIDTH_128 = "depth 8, width 128 (ReLU, Adam, float32)"
WIDTH_1024 = "depth 8, width 1024 (ReLU, Adam, float32)"
DIGITS = "W4 digits 64-128-64-10 (fit, Adam, float32)"
# the same build without the forked helper that compiles kernels on the second core (build_helper.py)
ONE_CORE = "W4 digits 64-128-64-10 (fit, Adam, float32), one core (SYMGRAD_BUILD_HELPER=0)"


def models(mode: Mode) -> dict[str, dict]:
    """name -> spec of the training models to build."""
    out = {"W2 logistic regression d=20 (fit, SGD, float64)": fit_spec([20, 1], "relu", "bce", "sgd", 0.5,
                                                                       "float64", 10_000)}
    if mode.tiny:
        return out
    out["W3 20-16-1 sigmoid (fit, SGD, float64)"] = fit_spec([20, 16, 1], "sigmoid", "bce", "sgd", 0.5, "float64", 32)
    out[DIGITS] = fit_spec([64, 128, 64, 10])
    out[ONE_CORE] = dict(fit_spec([64, 128, 64, 10]), env={"SYMGRAD_BUILD_HELPER": "0"})
    out["W4 digits 64-128-64-10 (fit, Adam, float64)"] = fit_spec([64, 128, 64, 10], dtype="float64")
    for depth in (2, 8, 32) if mode.full else (2, 8):  # a cold 32-layer build takes minutes
        out[f"depth {depth}, width 128 (ReLU, Adam, float32)"] = fit_spec([64] + [128] * (depth - 1) + [10])
    out[WIDTH_1024] = fit_spec([64] + [1024] * 7 + [10])
    return out


def cold_warm(spec: dict, reps: int) -> dict:
    """``reps`` (cold, warm) pairs."""
    return cold_warm_alternating({"": spec}, reps)[""]


def cold_warm_alternating(specs: dict[str, dict], reps: int) -> dict[str, dict]:
    """``reps`` (cold, warm) pairs of each spec, the specs taking turns, so that models compared
    with each other see the same phases of a noisy machine. A pair is redone (up to twice) when
    symgrad's sources changed between its two processes (the code fingerprint is part of the cache
    key, so the warm run would rebuild)."""
    out = {name: {"cold": [], "warm": [], "redone": 0} for name in specs}
    for _ in range(reps):
        for name, spec in specs.items():
            r = out[name]
            while True:
                with tempfile.TemporaryDirectory(prefix="symgrad-bench-build-") as cache:
                    cold = run_fit_child(spec, cache)
                    warm = run_fit_child(spec, cache)
                if cold["fingerprint"] == warm["fingerprint"] or r["redone"] >= 2:
                    break
                r["redone"] += 1
                print("  W5: symgrad's sources changed between the cold and warm runs; redoing the pair", flush=True)
            r["cold"].append(cold)
            r["warm"].append(warm)
    return out


def _med(rs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rs)


def _width_evidence(narrow: list[dict], wide: list[dict]) -> str:
    """The two widths' cold builds, pair by pair, and whether their generated modules differ only
    in numbers."""
    pairs = ", ".join(f"{a['build']:.1f}/{b['build']:.1f}" for a, b in zip(narrow, wide, strict=True))
    same = {r["skeleton"] for r in narrow + wide}
    files = {tuple(r.get("modules", ())) for r in narrow + wide}  # named by a hash of their text
    src = (f"both sizes generated the same module files, text included ({narrow[0]['skeleton_lines']} "
           "lines: the sizes are arguments)" if len(files) == 1 else
           f"the generated modules are the same text but for their numbers (shapes, offsets; "
           f"{narrow[0]['skeleton_lines']} lines)" if len(same) == 1 else
           f"the generated modules differ beyond their numbers ({len(same)} different texts)")
    return f"{len(narrow)} cold builds of each, taking turns (128/1024 s: {pairs}); {src}"


def run(mode: Mode) -> Section:
    mon = LoadMonitor()
    reps = mode.pick(3, 1, 1)
    key_reps = mode.pick(5, 1, 1)  # the digits model, whose targets are judged here
    res: dict[str, dict] = {}
    dig = DIGITS
    first_ever = None
    if not mode.tiny:
        # symgrad.vecmath is compiled once per installation and cached by Numba: a build into an empty
        # Numba cache shows that one-time cost; the warm-up after it leaves the vecmath cache filled
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as ncache:
            print("  W5: digits model into empty symgrad and Numba caches ...", flush=True)
            first_ever = run_fit_child(models(mode)[dig], cache, ncache)
        with tempfile.TemporaryDirectory() as cache:
            run_fit_child(models(mode)[dig], cache)
    width = [WIDTH_128, WIDTH_1024]
    for name, spec in models(mode).items():
        if name in width or name in (DIGITS, ONE_CORE):
            continue
        print(f"  W5: building {name} ...", flush=True)
        if mode.tiny:  # one child on the suite's own cache (W2 built this model already): keeps the test short
            r = run_fit_child(spec, os.environ.get("SYMGRAD_CACHE_DIR") or tempfile.mkdtemp())
            res[name] = {"cold" if r["generated"] else "warm": [r]}
            continue
        n = 1 if "depth 32" in name else reps  # the float32 digits model takes turns with ONE_CORE below
        res[name] = cold_warm(spec, n)
    if not mode.tiny:  # the digits model with and without the build helper, taking turns
        print("  W5: building the digits model with and without the build helper, taking turns ...", flush=True)
        res.update(cold_warm_alternating({k: models(mode)[k] for k in (DIGITS, ONE_CORE)}, key_reps))
    if not mode.tiny:  # the width comparison: the two models take turns (a target is judged on their ratio)
        print(f"  W5: building {' and '.join(width)}, taking turns ...", flush=True)
        res.update(cold_warm_alternating({k: models(mode)[k] for k in width}, key_reps))

    # workload 1: the formula model, through bench_formula's own child process
    w1 = {}
    for kind in ("cold", "warm"):
        w1[kind] = []
    for _ in range(reps):
        with tempfile.TemporaryDirectory(prefix="symgrad-bench-build-") as cache:
            w1["cold"].append(bf.run_child(bf.MODELS["seed J(x), pointwise"], cache))
            w1["warm"].append(bf.run_child(bf.MODELS["seed J(x), pointwise"], cache))

    L = ["## W5: build cost (issue 4)", ""]
    L.append("Each row: median over fresh subprocesses (cold: empty temporary `SYMGRAD_CACHE_DIR`; warm: a second "
             f"fresh process on that folder); {reps} cold/warm pair(s) per model"
             + (f", {key_reps} for the float32 digits model and 1 for the 32-layer one (minutes per build)"
                if key_reps != reps else "") + ". "
             "`build` = constructing the `MLP` + (first `fit` call - second `fit` call); the first call trains one "
             "epoch of two batches after building, the second only trains. Columns split the first call: "
             "`lower` = lowering to the IR including each elementwise node's symbolic derivative; `rest of "
             "source` = the other source generation (reverse sweep, codegen, write); `import` = loading the "
             "generated module; `Numba + keying` = the rest of the first call: Numba compiling (cold) or loading "
             "its cache (warm) plus hashing the SymPy model for the cache key. Import s = importing NumPy, SymPy, "
             "symgrad. Process wall includes interpreter start-up.")
    L.append("")
    rows = []
    for name, r in res.items():
        for kind in ("cold", "warm"):
            if kind not in r:
                continue
            rs = r[kind]
            hooked = "lower" in rs[0]["hooks"]
            gen = _med(rs, "make_source")
            low = _med(rs, "lower")
            rows.append([f"{name}, {kind}", f"{_med(rs, 'build'):.2f}", f"{_med(rs, 'model'):.3f}",
                         f"{low:.3f}" if hooked else "n/a", f"{gen - low:.3f}" if hooked else f"{gen:.3f}",
                         f"{_med(rs, 'load'):.3f}", f"{_med(rs, 'numba'):.2f}", f"{_med(rs, 'fit2'):.3f}",
                         f"{_med(rs, 'import'):.2f}", f"{_med(rs, 'process_wall'):.2f}"])
    for kind in ("cold", "warm"):
        rs = w1[kind]
        rows.append([f"W1 seed formula J(x) (compile, pointwise), {kind}",
                     f"{_med(rs, 'compile') + _med(rs, 'first_call'):.2f}", "-", "-",
                     f"{_med(rs, 'compile'):.3f} (all of compile())", "-", f"{_med(rs, 'first_call'):.2f}", "-",
                     f"{_med(rs, 'import'):.2f}", f"{_med(rs, 'process_wall'):.2f}"])
    L.append(table(["model", "build s", "MLP() s", "lower s", "rest of source s", "import s", "Numba + keying s",
                    "second fit s", "import (np, sympy, symgrad) s", "process wall s"], rows))
    L.append("")

    L.append("Cold builds compile on both cores where a CPU is idle: a forked helper process compiles part of "
             "the shared kernels the training loop calls, into Numba's on-disk cache, while the builder compiles "
             "the rest and loads the helper's (`symgrad/build_helper.py`); the 'one core' row is the same model "
             "with the helper switched off, the two taking turns.")
    L.append("")
    if first_ever is not None:
        L.append(f"Cold rows find symgrad's own vectorisable math functions (`symgrad/native/vecmath.py`) in Numba's "
                 f"on-disk cache, compiled once per installation. The first build after installing, with Numba's "
                 f"cache empty too, took {first_ever['build']:.2f} s for the float32 digits model (of which Numba "
                 f"{first_ever['numba']:.2f} s).")
        L.append("")
    targets = []
    if dig in res:
        c, w = _med(res[dig]["cold"], "build"), _med(res[dig]["warm"], "build")
        targets.append(Target("W5", "cold build of the digits training kernel <= 10 s", f"{c:.2f} s", c <= 10,
                              f"of which Numba {_med(res[dig]['cold'], 'numba'):.2f} s"))
        targets.append(Target("W5", "warm build <= 1 s", f"{w:.2f} s", w <= 1.0,
                              f"process from start to trained: {_med(res[dig]['warm'], 'import_to_trained'):.2f} s"))
        d32 = "depth 32, width 128 (ReLU, Adam, float32)"
        if d32 in res:
            c32 = _med(res[d32]["cold"], "build")
            dd = {d: _med(res[f"depth {d}, width 128 (ReLU, Adam, float32)"]["cold"], "build") for d in (2, 8)}
            targets.append(Target("W5", "32-layer build <= 20 s", f"{c32:.2f} s cold", c32 <= 20,
                                  f"of which Numba {_med(res[d32]['cold'], 'numba'):.2f} s, source generation "
                                  f"{_med(res[d32]['cold'], 'make_source'):.2f} s; cold builds grow with depth: "
                                  f"2 layers {dd[2]:.1f} s, 8 layers {dd[8]:.1f} s, 32 layers {c32:.1f} s "
                                  f"(warm {_med(res[d32]['warm'], 'build'):.2f} s)"))
        else:
            targets.append(Target("W5", "32-layer build <= 20 s", "not run in quick mode", None))
        a = _med(res[WIDTH_128]["cold"], "build")
        b = _med(res[WIDTH_1024]["cold"], "build")
        targets.append(Target("W5", "build cost independent of width (depth 8: 1024 vs 128 within 15%)",
                              f"{b / a:.2f}x ({a:.2f} s -> {b:.2f} s)", abs(b / a - 1) <= 0.15,
                              _width_evidence(res[WIDTH_128]["cold"], res[WIDTH_1024]["cold"])))
        L.append("")
        depth = {d: _med(res[f"depth {d}, width 128 (ReLU, Adam, float32)"]["cold"], "build")
                 for d in (2, 8, 32) if f"depth {d}, width 128 (ReLU, Adam, float32)" in res}
        L.append("Scaling with depth (cold build, width 128): "
                 + ", ".join(f"{d} layers {v:.2f} s" for d, v in depth.items())
                 + f". With width (depth 8): 128 -> {a:.2f} s, 1024 -> {b:.2f} s.")
    else:
        for text in ("cold build of the digits training kernel <= 10 s", "warm build <= 1 s",
                     "32-layer build <= 20 s", "build cost independent of width"):
            targets.append(Target("W5", text, "not run in tiny mode", None))
    L.append("")
    sweep, sweep_targets, sweep_data = w5_sweep.run(mode)
    L += sweep
    targets += sweep_targets
    pre = sweep_data["prebuild"]
    if dig in res and pre is not None:  # issue 21's target for the same cold build as above
        c = _med(res[dig]["cold"], "build")
        one = _med(res[ONE_CORE]["cold"], "build") if ONE_CORE in res else None
        helped = [r["helper"] for r in res[dig]["cold"] if r.get("helper")]
        split = (f"; the forked build helper compiled {statistics.median(h['helper_files'] for h in helped):.0f} of "
                 f"{statistics.median(h['helper_files'] + h['parent_files'] for h in helped):.0f} kernel files "
                 f"(median), and without it (one core) the build took {one:.2f} s" if helped and one else "")
        targets.append(Target("W5 (issue 21)", "cold digits MLP build (first ever) <= 5 s", f"{c:.2f} s", c <= 5.0,
                              f"the cold row above (median){split}; the sweep's first configuration, the same model, "
                              f"{sweep_data['symgrad'][0]['build']:.2f} s; after `symgrad prebuild --dtype float32` "
                              f"({pre['prebuild']:.1f} s, once, when asked): {pre['build']:.2f} s"))
    L.append(mon.note())
    data = {"fit_models": res, "w1": w1, "sweep": sweep_data}
    return Section("W5", "\n".join(L) + "\n", targets, data)
