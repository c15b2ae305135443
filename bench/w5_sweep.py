"""Workload 5, the sweep (issue 21): a hyperparameter search over the digits MLP's widths and
depths, as ``GridSearchCV`` runs it: one process, one model after another, an empty code cache
at the start. Each configuration's build = its first ``fit`` call - its second (the second only
trains). JAX's peer: the same configurations' jitted Adam step, first call (trace + compile)
- second call, in its own process. Both processes start cold; the machine and run are the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from bench.common import ROOT, Mode, Target, peer, table

#: (hidden widths) of the digits MLP, 64 inputs and 10 classes: widths of a seen depth, and new depths
SWEEP = [(128, 64), (100, 50), (96, 32), (256, 128), (64, 64), (128,), (32,), (200,), (128, 64, 32), (64, 64, 64)]

SYMGRAD_CHILD = r'''
import glob, json, os, sys, time
import numpy as np
import symgrad as sg
configs, bs = json.loads(sys.argv[1]), 64
files = lambda prefix="sg": len(glob.glob(os.path.join(os.environ["SYMGRAD_CACHE_DIR"], prefix + "_*.py")))
rng = np.random.default_rng(0)
X = rng.standard_normal((2 * bs, 64)).astype(np.float32)
Y = rng.integers(0, 10, 2 * bs)
out = []
for hidden in configs:
    net = sg.nn.MLP([64, *hidden, 10], activation="relu")
    kw = dict(optimizer=sg.optim.Adam(1e-3), epochs=1, batch_size=bs)
    before, kernels = files(), files("sgk")
    t0 = time.perf_counter()
    sg.fit(net, "softmax_cross_entropy", X, Y, **kw)
    t1 = time.perf_counter()
    sg.fit(net, "softmax_cross_entropy", X, Y, **kw)
    t2 = time.perf_counter()
    out.append({"hidden": hidden, "build": (t1 - t0) - (t2 - t1), "new_module": files() > before,
                "new_kernels": files("sgk") - kernels})
print("SG_RESULT " + json.dumps(out))
'''

#: ``symgrad prebuild`` for float32 (issue 21 section 4), timed in its own process
PREBUILD_CHILD = r'''
import json, time
t0 = time.perf_counter()
from symgrad.prebuild import prebuild
prebuild(dtypes="float32")
print("SG_RESULT " + json.dumps({"prebuild": time.perf_counter() - t0}))
'''

JAX_CHILD = r'''
import json, sys, time
import numpy as np
import jax, jax.numpy as jnp
configs, bs = json.loads(sys.argv[1]), 64
rng = np.random.default_rng(0)
X = jnp.asarray(rng.standard_normal((bs, 64)).astype(np.float32))
Y = jnp.asarray(np.eye(10, dtype=np.float32)[rng.integers(0, 10, bs)])

def loss(ps, X, Y):
    h = X
    for W, b in ps[:-1]:
        h = jax.nn.relu(h @ W.T + b)
    W, b = ps[-1]
    z = h @ W.T + b
    return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.sum(Y * z, axis=1))

@jax.jit
def step(ps, m, v, t, X, Y):
    g = jax.grad(loss)(ps, X, Y)
    t = t + 1
    m = jax.tree_util.tree_map(lambda a, b: 0.9 * a + 0.1 * b, m, g)
    v = jax.tree_util.tree_map(lambda a, b: 0.999 * a + 0.001 * b * b, v, g)
    c1, c2 = 1e-3 / (1 - 0.9 ** t), jnp.sqrt(1 - 0.999 ** t)
    ps = jax.tree_util.tree_map(lambda p, a, b: p - c1 * a / (jnp.sqrt(b) / c2 + 1e-8), ps, m, v)
    return ps, m, v, t

out = []
for hidden in configs:
    sizes = [64, *hidden, 10]
    ps = [(jnp.asarray(rng.standard_normal((o, i)).astype(np.float32) * 0.1), jnp.zeros(o, jnp.float32))
          for i, o in zip(sizes[:-1], sizes[1:])]
    z = jax.tree_util.tree_map(jnp.zeros_like, ps)
    t0 = time.perf_counter()
    st = step(ps, z, z, jnp.float32(0), X, Y)
    jax.block_until_ready(st)
    t1 = time.perf_counter()
    st = step(*st, X, Y)
    jax.block_until_ready(st)
    t2 = time.perf_counter()
    out.append({"hidden": hidden, "build": (t1 - t0) - (t2 - t1)})
print("SG_RESULT " + json.dumps(out))
'''


def _child(code: str, configs, cache: str) -> list[dict]:
    env = dict(os.environ, SYMGRAD_CACHE_DIR=cache, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", code, json.dumps(configs)], env=env, capture_output=True, text=True,
                       cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"sweep child failed:\n{p.stderr[-3000:]}")
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("SG_RESULT ")][-1]
    return json.loads(line[len("SG_RESULT "):])


def _seen(configs) -> list[str]:
    """Each configuration: the first of its depth ('new depth') or a new width of a seen depth."""
    depths, out = set(), []
    for h in configs:
        out.append("new width" if len(h) in depths else "new depth")
        depths.add(len(h))
    return out


def _why(r: dict, kind: str) -> str:
    if not r["new_module"]:
        return f"{kind}: reused a module"
    shared = r.get("new_kernels")
    return f"{kind}: a new module" + ("" if shared is None else f", {shared} new shared kernels")


def run(mode: Mode) -> tuple[list[str], list[Target], dict]:
    """The sweep's markdown lines, targets and raw data."""
    configs = SWEEP if not mode.tiny else SWEEP[:2]
    print(f"  W5: a sweep of {len(configs)} digits MLPs in one process ...", flush=True)
    pre = None
    if mode.tiny:  # the test: on the suite's own cache, to stay short
        sg = _child(SYMGRAD_CHILD, configs, os.environ.get("SYMGRAD_CACHE_DIR") or tempfile.mkdtemp())
    else:
        with tempfile.TemporaryDirectory(prefix="symgrad-bench-sweep-") as cache:
            sg = _child(SYMGRAD_CHILD, configs, cache)
        print("  W5: the first configuration again, after symgrad prebuild ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="symgrad-bench-prebuild-") as cache:
            pre = _child(PREBUILD_CHILD, [], cache) | _child(SYMGRAD_CHILD, configs[:1], cache)[0]
    jx = None
    if peer("jax") is not None and not mode.tiny:
        print("  W5: the same sweep through JAX's jit ...", flush=True)
        jx = _child(JAX_CHILD, configs, tempfile.gettempdir())
    kinds = _seen(configs)
    rows = [[f"64-{'-'.join(map(str, r['hidden']))}-10", _why(r, k), f"{r['build']:.2f}",
             f"{j['build']:.2f}" if jx else "not measured"]
            for r, k, j in zip(sg, kinds, jx or [None] * len(sg), strict=True)]
    total = sum(r["build"] for r in sg)
    total_j = sum(r["build"] for r in jx) if jx else None

    L = ["### The sweep (issue 21)", "",
         f"{len(configs)} configurations of the digits MLP (ReLU, Adam, float32, batch 64), one after another in one "
         "fresh process with an empty code cache, as a hyperparameter search runs them. symgrad: first `fit` - "
         "second `fit`; JAX: its jitted Adam step's first call (trace and compile) - its second, in its own process.",
         "", table(["configuration", "for symgrad", "symgrad build s", "JAX jit s"], rows), "",
         f"Total: symgrad {total:.2f} s" + (f", JAX {total_j:.2f} s" if total_j is not None else "") + ".", ""]
    if pre is not None:
        L += [f"After `symgrad prebuild --dtype float32` (issue 21 section 4: run once, when the user asks, into the "
              f"code cache; it took {pre['prebuild']:.1f} s here, in its own process), the first configuration built "
              f"in {pre['build']:.2f} s in a fresh process, against {sg[0]['build']:.2f} s with an empty cache above"
              + (" (prebuild's networks include its structure, so only its sizes were new)." if not pre["new_module"]
                 else f" ({_why(pre, 'after prebuild')})."), ""]
    widths = [r["build"] for r, k in zip(sg, kinds, strict=True) if k == "new width"]
    depths = [r["build"] for r, k in zip(sg, kinds, strict=True) if k == "new depth"]
    targets = []
    if widths:
        worst = max(widths)
        targets.append(Target("W5 sweep", "a new width of a seen MLP structure <= 0.3 s from fit to first step",
                              f"{worst:.3f} s (slowest of {len(widths)})", worst <= 0.3,
                              ", ".join(f"{w:.3f}" for w in widths) + " s; the table says which reused a module"))
    if len(depths) > 1:
        later = max(depths[1:])
        targets.append(Target("W5 sweep", "a new depth of seen layer kinds <= 2 s", f"{later:.2f} s (slowest)",
                              later <= 2.0, "each new depth is a new module: its glue (the training loop) compiles, "
                              "and its kernels come from the files shared with the first depth (issue 21 section 2; "
                              "the table's column says how many were new): " + ", ".join(f"{d:.2f}" for d in depths)
                              + " s"))
    return L, targets, {"symgrad": sg, "jax": jx, "prebuild": pre}
