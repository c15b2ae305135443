"""Benchmark for the seed formula J(x) = cos(sin(x^2) + 3 x^2) and the seed examples' build cost.

Part 1, throughput: value and dJ/dx at N points (10^6; 10^5 with --quick), in one process,
interleaved, median of R repeats after warm-up, for

* symgrad ``compile(J, wrt=[x], reduction='none').pointwise(x)`` (serial and ``parallel=True``),
  through the public API, so including its argument checks (dtype, NaN/Inf scan) and the
  allocation of the outputs;
* hand-written NumPy, sharing the subexpressions x^2 and sin(x^2) + 3 x^2;
* hand-written ``@numba.njit`` loops (serial ``range`` and ``prange``), allocating their outputs.

Every implementation must agree with the NumPy reference to 1e-9 (max abs) or the script fails.

Part 2, build cost for the seed examples (J pointwise, logistic regression D=20 with data,
damped oscillation with data): in a fresh subprocess with an empty temporary SYMGRAD_CACHE_DIR,
the time of ``compile()`` (validation, stabilisation, derivation, codegen, writing the module)
and of the first call (Numba compiles); then in a second fresh subprocess reusing that folder,
the time from ``import`` to the first result.

Run:  python bench/bench_formula.py [--quick] [--write BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numba
import numpy as np

SECTION = "## Seed formula (issue 2)"
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------
# machine information
# ---------------------------------------------------------------------------
def _loadavg() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine_info() -> dict[str, str]:
    import sympy as sp

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    info = {
        "CPU": cpu,
        "Numba CPU name": numba.config.CPU_NAME or __import__("llvmlite.binding").binding.get_host_cpu_name(),
        "cores (os.cpu_count / usable)": f"{os.cpu_count()} / {usable}",
        "Python": platform.python_version(),
        "NumPy": np.__version__,
        "Numba": numba.__version__,
        "SymPy": sp.__version__,
        "NUMBA_NUM_THREADS": f"{numba.config.NUMBA_NUM_THREADS} (env: {os.environ.get('NUMBA_NUM_THREADS', 'unset')})",
        "Numba SVML": str(bool(numba.config.USING_SVML)),
        "OMP/MKL/OPENBLAS_NUM_THREADS": " / ".join(
            os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        ),
        "SYMGRAD_PREWARM (background compile of the row-block loop)": os.environ.get("SYMGRAD_PREWARM", "unset"),
        "platform": platform.platform(),
        "load average (1/5/15 min) at start": _loadavg(),
    }
    return info


# ---------------------------------------------------------------------------
# part 1: throughput
# ---------------------------------------------------------------------------
def _loop(xs):
    """Hand-written serial loop (jitted with plain ``numba.njit`` in make_impls)."""
    n = xs.shape[0]
    val = np.empty(n)
    g = np.empty(n)
    for i in range(n):
        xi = xs[i]
        t = xi * xi
        u = math.sin(t) + 3.0 * t
        val[i] = math.cos(u)
        g[i] = -2.0 * xi * (math.cos(t) + 3.0) * math.sin(u)
    return val, g


def _ploop(xs):
    """Hand-written parallel loop (``numba.njit(parallel=True)``)."""
    n = xs.shape[0]
    val = np.empty(n)
    g = np.empty(n)
    for i in numba.prange(n):
        xi = xs[i]
        t = xi * xi
        u = math.sin(t) + 3.0 * t
        val[i] = math.cos(u)
        g[i] = -2.0 * xi * (math.cos(t) + 3.0) * math.sin(u)
    return val, g

def make_impls():
    """The implementations, each ``x -> (value, dJ/dx)`` allocating its outputs."""
    import sympy as sp

    import symgrad

    x = sp.Symbol("x", real=True)
    J = sp.cos(sp.sin(x**2) + 3 * x**2)
    f_ser = symgrad.compile(J, wrt=[x], reduction="none")
    f_par = symgrad.compile(J, wrt=[x], reduction="none", parallel=True)

    def numpy_impl(xs):
        t = xs * xs
        u = np.sin(t)
        u += 3.0 * t
        val = np.cos(u)
        g = np.cos(t)
        g += 3.0
        g *= np.sin(u)
        g *= -2.0 * xs
        return val, g

    njit_serial = numba.njit(_loop)
    njit_par = numba.njit(_ploop, parallel=True)

    return {
        "symgrad pointwise (serial)": f_ser.pointwise,
        "symgrad pointwise (parallel=True)": f_par.pointwise,
        "NumPy, hand-written": numpy_impl,
        "@numba.njit loop, hand-written": njit_serial,
        "@numba.njit prange loop, hand-written": njit_par,
    }


PAIR = {  # the symgrad row each implementation is compared with (same threading)
    "symgrad pointwise (serial)": "symgrad pointwise (serial)",
    "symgrad pointwise (parallel=True)": "symgrad pointwise (parallel=True)",
    "NumPy, hand-written": "symgrad pointwise (serial)",
    "@numba.njit loop, hand-written": "symgrad pointwise (serial)",
    "@numba.njit prange loop, hand-written": "symgrad pointwise (parallel=True)",
}


def throughput(n: int, repeats: int, warmup: int) -> dict:
    impls = make_impls()
    rng = np.random.default_rng(42)
    xs = rng.uniform(-3.0, 3.0, n)

    # correctness first: everything against the NumPy reference
    ref_v, ref_g = impls["NumPy, hand-written"](xs)
    errors = {}
    for name, fn in impls.items():
        v, g = fn(xs)
        errors[name] = max(float(np.max(np.abs(v - ref_v))), float(np.max(np.abs(g - ref_g))))
    bad = {k: e for k, e in errors.items() if not e < 1e-9}
    if bad:
        raise SystemExit(f"FAIL: implementations disagree with the NumPy reference (max abs diff): {bad}")

    for _ in range(warmup):
        for fn in impls.values():
            fn(xs)
    times: dict[str, list[float]] = {k: [] for k in impls}
    for r in range(repeats):
        order = list(impls.items())
        if r % 2:  # alternate the order so no implementation always runs right after another
            order.reverse()
        for name, fn in order:
            t0 = time.perf_counter()
            fn(xs)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "n": n,
        "repeats": repeats,
        "warmup": warmup,
        "median_s": med,
        "min_s": {k: min(v) for k, v in times.items()},
        "max_s": {k: max(v) for k, v in times.items()},
        "errors": errors,
        "threading_layer": numba.threading_layer(),
        "threads": numba.get_num_threads(),
    }


# ---------------------------------------------------------------------------
# part 2: build cost, in fresh subprocesses
# ---------------------------------------------------------------------------
MODELS = {
    "seed J(x), pointwise": """
x = sp.Symbol("x", real=True)
f = compile(sp.cos(sp.sin(x**2) + 3 * x**2), wrt=[x], reduction="none")
t_build = time.perf_counter()
res = f.pointwise(np.linspace(-3.0, 3.0, 1000))
""",
    "logistic regression D=20 (mean, data)": """
D = 20
th = sp.symbols(f"theta0:{D}", real=True)
xs = sp.symbols(f"x0:{D}", real=True)
y = sp.Symbol("y", real=True)
a = sum(t * xj for t, xj in zip(th, xs))
s = 1 / (1 + sp.exp(-a))
f = compile(-(y * sp.log(s) + (1 - y) * sp.log(1 - s)), wrt=list(th), data=[*xs, y])
t_build = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.normal(size=(1000, D))
res = f.value_and_grad(np.zeros(D), *X.T, (rng.random(1000) < 0.5).astype(float))
""",
    "damped oscillation (mean, data, +hvp)": """
a, b, w, phi, t, y = sp.symbols("a b w phi t y", real=True)
f = compile((a * sp.exp(-b * t) * sp.cos(w * t + phi) - y) ** 2, wrt=[a, b, w, phi], data=[t, y])
t_build = time.perf_counter()
tt = np.linspace(0.0, 10.0, 1000)
res = f.value_and_grad([2.0, 0.3, 2.5, 0.7], tt, np.cos(tt))
t_first = time.perf_counter()
res = f.hvp([2.0, 0.3, 2.5, 0.7], [1.0, 0.0, 0.0, 0.0], tt, np.cos(tt))
t_hvp = time.perf_counter()
""",
    "baseline: trivial @numba.njit(cache=True) loop, no symgrad": """
import importlib.util, os, pathlib, sys
p = pathlib.Path(os.environ["SYMGRAD_CACHE_DIR"]) / "baseline_njit.py"
if not p.exists():
    p.write_text("import math\\nimport numba\\n\\n@numba.njit(cache=True)\\ndef f(x):\\n"
                 "    s = 0.0\\n    for i in range(x.shape[0]):\\n        s += math.sin(x[i])\\n    return s\\n")
spec = importlib.util.spec_from_file_location("baseline_njit", p)
m = importlib.util.module_from_spec(spec)
sys.modules["baseline_njit"] = m  # as symgrad's loader does: Numba's cache re-imports the module
spec.loader.exec_module(m)
t_build = time.perf_counter()
res = m.f(np.ones(1000))
""",
}

CHILD = """
import time
t0 = time.perf_counter()
import json
import numpy as np
import sympy as sp
from symgrad import compile
t_import = time.perf_counter()
t_hvp = None
{body}
if "t_first" not in dir():
    t_first = time.perf_counter()
print("SG_RESULT " + json.dumps({{
    "import": t_import - t0,
    "compile": t_build - t_import,
    "first_call": t_first - t_build,
    "hvp_first_call": None if t_hvp is None else t_hvp - t_first,
    "import_to_result": t_first - t0,
}}))
"""


def run_child(body: str, cache: str) -> dict:
    env = dict(os.environ)
    env["SYMGRAD_CACHE_DIR"] = cache
    env.pop("NUMBA_CACHE_DIR", None)  # Numba's index then lives next to the generated module, in `cache`
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    code = CHILD.format(body=textwrap.dedent(body))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"FAIL: build-cost child process failed:\n{p.stderr}")
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("SG_RESULT ")][-1]
    out = json.loads(line[len("SG_RESULT "):])
    out["process_wall"] = wall
    return out


def build_cost() -> dict:
    results = {}
    for name, body in MODELS.items():
        with tempfile.TemporaryDirectory(prefix="symgrad-bench-cache-") as cache:
            cold = run_child(body, cache)
            n_files = len(list(Path(cache).rglob("*")))
            warm = run_child(body, cache)
        results[name] = {"cold": cold, "warm": warm, "cache_files": n_files}
    return results


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
def markdown(info: dict, tp: dict, bc: dict, args: argparse.Namespace) -> str:
    n = tp["n"]
    med = tp["median_s"]
    L = [SECTION, ""]
    L.append(f"Generated by `python bench/bench_formula.py{' --quick' if args.quick else ''}"
             f"{' --write ' + args.write if args.write else ''}` on "
             f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}.")
    L.append("")
    L.append("Machine:")
    L.append("")
    L += [f"- {k}: {v}" for k, v in info.items()]
    L.append(f"- Numba threading layer used by `prange`: {tp['threading_layer']}, {tp['threads']} threads")
    L.append(f"- load average (1/5/15 min) at end: {_loadavg()} (other processes on the machine skew timings; "
             "a load near or above the core count means these numbers are pessimistic)")
    L.append("")
    L.append(f"### Throughput: value and dJ/dx of J(x) = cos(sin(x^2) + 3x^2), N = {n:,} float64 points")
    L.append("")
    L.append(f"One process, implementations interleaved (order alternating), {tp['warmup']} warm-up rounds, "
             f"median of {tp['repeats']} repeats (`time.perf_counter`). Every implementation allocates its "
             "outputs; symgrad is called through its public `pointwise()`, which also checks dtype and scans "
             "the input for NaN/Inf. Ratio = time / time of the symgrad row with the same threading "
             "(serial rows vs symgrad serial, prange rows vs symgrad `parallel=True`); > 1 means symgrad is faster.")
    L.append("")
    L.append("| implementation | median ms | min ms | max ms | Melem/s | time / symgrad | max abs diff vs NumPy |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for k in med:
        ratio = med[k] / med[PAIR[k]]
        L.append(f"| {k} | {med[k] * 1e3:.2f} | {tp['min_s'][k] * 1e3:.2f} | {tp['max_s'][k] * 1e3:.2f} | "
                 f"{n / med[k] / 1e6:.1f} | {ratio:.2f}x | {tp['errors'][k]:.1e} |")
    L.append("")
    s_ser = med["symgrad pointwise (serial)"]
    s_par = med["symgrad pointwise (parallel=True)"]
    nj = med["@numba.njit loop, hand-written"]
    npy = med["NumPy, hand-written"]
    pnj = med["@numba.njit prange loop, hand-written"]
    L.append("Targets:")
    L.append("")
    L.append(f"- symgrad serial within 1.1x of the hand `@njit` loop: symgrad/njit time = {s_ser / nj:.3f} -> "
             f"{'met' if s_ser <= 1.1 * nj else 'NOT met'}")
    L.append(f"- symgrad `parallel=True` within 1.1x of the hand `prange` loop: time ratio = {s_par / pnj:.3f} -> "
             f"{'met' if s_par <= 1.1 * pnj else 'NOT met'}")
    L.append(f"- symgrad serial >= 1.3x faster than NumPy: NumPy/symgrad time = {npy / s_ser:.2f} -> "
             f"{'met' if npy >= 1.3 * s_ser else 'NOT met'}")
    L.append("")
    if not bc:
        return "\n".join(L)
    L.append("### Build cost of the seed examples")
    L.append("")
    L.append("Each model in a fresh `python -c` subprocess with an empty temporary `SYMGRAD_CACHE_DIR` (cold), "
             "then in a second fresh subprocess reusing that folder (warm). `compile()` covers validation, "
             "stabilisation, the reverse sweep (plus Hessian derivation where <= 16 parameters), CSE/codegen and "
             "writing the module; on a warm start it still validates and stabilises to compute the cache key. "
             "First call = first `pointwise`/`value_and_grad` on 1,000 points, i.e. Numba compiling (cold) or "
             "loading its cache (warm). Import = `numpy`, `sympy`, `symgrad` (with Numba). Process wall also "
             "counts interpreter start-up. The OS file cache is warm in both cases. The baseline rows are a "
             "tiny `@numba.njit(cache=True)` loop without symgrad (its compile() column is writing "
             "and importing that module): it shows the fixed cost of Numba's first dispatch, which a warm "
             "start pays even when everything is loaded from the cache.")
    L.append("")
    L.append("| model | import s | compile() s | first call s | import -> first result s | process wall s |")
    L.append("|---|---:|---:|---:|---:|---:|")
    for name, r in bc.items():
        for kind in ("cold", "warm"):
            c = r[kind]
            L.append(f"| {name}, {kind} | {c['import']:.2f} | {c['compile']:.3f} | {c['first_call']:.3f} | "
                     f"{c['import_to_result']:.2f} | {c['process_wall']:.2f} |")
    extra = [(name, r) for name, r in bc.items() if r["cold"]["hvp_first_call"] is not None]
    if extra:
        L.append("")
        for name, r in extra:
            L.append(f"{name}: first `hvp` call after `value_and_grad` (another Numba function): "
                     f"{r['cold']['hvp_first_call']:.3f} s cold, {r['warm']['hvp_first_call']:.3f} s warm.")
    L.append("")
    return "\n".join(L)


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1)
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + section.rstrip("\n") + "\n"
    path.write_text(text.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10^5 points and fewer repeats")
    p.add_argument("--write", metavar="FILE", help=f"append or replace the section '{SECTION}' in FILE")
    p.add_argument("--no-build", action="store_true", help="skip the build-cost subprocesses")
    args = p.parse_args(argv)

    n, repeats, warmup = (100_000, 7, 2) if args.quick else (1_000_000, 15, 3)
    # Without SYMGRAD_CACHE_DIR the throughput part compiles into a fresh temporary cache.
    os.environ.setdefault("SYMGRAD_CACHE_DIR", tempfile.mkdtemp(prefix="symgrad-bench-"))
    sys.path.insert(0, str(ROOT))

    info = machine_info()
    print("machine:", json.dumps(info, indent=1), flush=True)
    tp = throughput(n, repeats, warmup)
    print(f"throughput done (N={n}, {repeats} repeats)", flush=True)
    bc = {} if args.no_build else build_cost()
    md = markdown(info, tp, bc, args)
    print()
    print(md)
    if args.write:
        write_section(Path(args.write), md)
        print(f"wrote section '{SECTION}' to {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
