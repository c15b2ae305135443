"""Workload 9: a character-level transformer (issue 16).

W9 speed: ``sg.nn.Transformer(vocab, d=64, heads=4, layers=2, context=64)`` (GPT-2-style pre-norm
blocks: learned positions, causal 4-head attention, a 4d-wide GELU MLP, LayerNorm eps 1e-5, a
final LayerNorm and logits per position), batch 32, float32, Adam(1e-3), the
``"token_cross_entropy"`` loss, on windows of 64 characters of the standard library's docstrings
(``examples/char_transformer.py``'s ``load_text``, ``encode`` and ``windows``, on its training
split, the first 90%). Peers: symgrad ``fit`` (its defaults: two row blocks on two threads, and on
one thread), torch
eager at 1 and 2 threads (``F.scaled_dot_product_attention(is_causal=True)``, ``F.layer_norm``,
exact ``F.gelu``, ``F.cross_entropy`` over all B·T tokens), JAX ``jit`` step and JAX ``lax.scan``
over an epoch (the same model written out in ``jax.numpy``). Throughput in tokens/s (training
positions per second, B·T per step); GFLOP/s from an explicit count (``flops_per_token``) against
one-thread ``np.dot`` of 512x512 float32 matrices measured in the same run.

W9 build: the model's training kernel built in fresh subprocesses (W5's child, with token-id
data; cold: an empty ``SYMGRAD_CACHE_DIR``, warm: a second process on that folder), and cold
builds of d=32/context 32 against d=64/context 64, taking turns, for the dependence on d and
the context length.

Every implementation starts from ``Transformer.init_params(seed=0)`` (weights used as X·W, rows
are positions, so PyTorch's ``Linear.weight`` transposed) and trains on ``fit``'s per-epoch
shuffles, so the trajectories are the same computation; they are compared before anything is
timed, and the run fails on disagreement.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import os
import tempfile
import time

import numpy as np

from bench.common import (
    ROOT,
    LoadMonitor,
    Mode,
    Section,
    Target,
    batches,
    check_agreement,
    epoch_perms,
    fit_defaults,
    flush_print,
    interleaved,
    jax_adam_runners,
    peer,
    sg_fit_runner,
    skipped,
    table,
)

LR, BS, SEED = 1e-3, 32, 0
D, HEADS, LAYERS, CONTEXT, MLP = 64, 4, 2, 64, 4
LN_EPS = 1e-5
EXAMPLE = ROOT / "examples" / "char_transformer.py"

SG = "symgrad fit (defaults)"
SG1 = "symgrad fit, 1 thread"
TORCH1 = "torch eager, 1 thread"
TORCH2 = "torch eager, 2 threads"
JAX_STEP = "JAX jit step (Python loop)"
JAX_SCAN = "JAX jit lax.scan over an epoch"

# threads each implementation may use (JAX: XLA's CPU thread pool, all cores)
THREADS = {SG: 2, SG1: 1, TORCH1: 1, TORCH2: 2, JAX_STEP: 2, JAX_SCAN: 2}  # SG: fit_defaults() says


def sg_expr(vocab: int, d: int = D, context: int = CONTEXT) -> str:
    """The network as a Python expression over ``sg`` (W5's build child evaluates it)."""
    return f"sg.nn.Transformer({vocab}, d={d}, heads={HEADS}, layers={LAYERS}, context={context})"


def sg_net(vocab: int, d: int = D, context: int = CONTEXT):
    import symgrad as sg

    return eval(sg_expr(vocab, d, context), {"sg": sg})


def flops_per_token(vocab: int, d: int = D, context: int = CONTEXT, layers: int = LAYERS) -> float:
    """Matrix-product FLOPs (2 per multiply-add) of one training position, forward and backward.

    Forward, per layer and position: the Q, K, V and output projections 4 · 2d², the MLP
    2 · 2·d·4d = 16d², the scores Q·Kᵀ 2·T·d and P·V 2·T·d (the full T x T products, as the
    implementations compute them; the causal mask would halve the useful part); the logits 2·d·V.
    Backward: twice the forward (δ of each product's two operands; the embedding lookup has no
    product, so the lowest projections' δ_X is needed too). LayerNorm, GELU, softmax, the loss,
    the embedding and Adam are not counted: 3 · (layers · (24d² + 4Td) + 2dV).
    """
    return 3.0 * (layers * (24.0 * d * d + 4.0 * context * d) + 2.0 * d * vocab)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
@functools.cache
def load_example():
    """``examples/char_transformer.py`` as a module, from its path (``examples`` is no package)."""
    spec = importlib.util.spec_from_file_location("_bench_char_transformer", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def corpus() -> tuple[np.ndarray, str, int]:
    """(the training split's ids (the first 90%, as the example), the alphabet, the text's length)."""
    ex = load_example()
    text = ex.load_text()
    ids, alphabet = ex.encode(text)
    return ids[: int(0.9 * len(ids))], alphabet, len(text)


def windows(ids: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X, Y = load_example().windows(ids, CONTEXT, n, seed)
    return np.ascontiguousarray(X, dtype=np.float32), np.ascontiguousarray(Y, dtype=np.int64)


# ---------------------------------------------------------------------------
# implementations
# ---------------------------------------------------------------------------
def implementations(X, Y, vocab, epochs, p0, which, notes=None, kernel_times=None) -> dict:
    """name -> zero-arg callable returning (per-epoch mean losses, final params in symgrad's layout)."""

    n, T = X.shape
    d, H = D, HEADS
    dh = d // H
    perms = epoch_perms(n, epochs, SEED)
    bl = batches(n, BS)
    w = np.array([u - s for s, u in bl], dtype=np.float64)
    notes = [] if notes is None else notes
    flat0 = [p.copy() for p in p0]
    net = sg_net(vocab)
    impls: dict = {}

    sg_fit = sg_fit_runner(net, "token_cross_entropy", X, Y, flat0, epochs, BS, LR, SEED, kernel_times)

    if SG in which:
        impls[SG] = sg_fit
    if SG1 in which:
        impls[SG1] = lambda: sg_fit(threads=1, blas_threads=1)

    torch = peer("torch")
    if torch is None:
        if {TORCH1, TORCH2} & set(which):
            notes.append(f"torch: {skipped('torch')}")
    elif {TORCH1, TORCH2} & set(which):
        import torch.nn.functional as tF

        Xt, Yt = torch.from_numpy(X.astype(np.int64)), torch.from_numpy(Y.astype(np.int64))
        tperms = torch.from_numpy(perms)

        def t_loss(p, xb, yb):
            B_, T_ = xb.shape
            h = p[0][xb] + p[1]
            i = 2
            for _ in range(LAYERS):
                g, b, Wq, Wk, Wv, Wo = p[i:i + 6]
                a = tF.layer_norm(h, (d,), g.view(-1), b.view(-1), LN_EPS)
                q, k, v = ((a @ W).view(B_, T_, H, dh).transpose(1, 2) for W in (Wq, Wk, Wv))
                o = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
                h = h + o.transpose(1, 2).reshape(B_, T_, d) @ Wo
                g, b, W1, b1, W2, b2 = p[i + 6:i + 12]
                a = tF.layer_norm(h, (d,), g.view(-1), b.view(-1), LN_EPS)
                h = h + tF.gelu(a @ W1 + b1.view(-1)) @ W2 + b2.view(-1)
                i += 12
            g, b, W, bo = p[i:i + 4]
            z = tF.layer_norm(h, (d,), g.view(-1), b.view(-1), LN_EPS) @ W + bo.view(-1)
            return tF.cross_entropy(z.reshape(-1, vocab), yb.reshape(-1))

        def torch_runner(threads: int):
            params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in flat0]  # reset per call

            def go():
                before = torch.get_num_threads()
                torch.set_num_threads(threads)
                try:
                    with torch.no_grad():
                        for q, p in zip(params, flat0, strict=True):
                            q.copy_(torch.from_numpy(p))
                    opt = torch.optim.Adam(params, lr=LR)
                    losses = np.zeros(epochs)
                    for e in range(epochs):
                        for s, u in bl:
                            idx = tperms[e, s:u]
                            loss = t_loss(params, Xt[idx], Yt[idx])
                            opt.zero_grad()
                            loss.backward()
                            opt.step()
                            losses[e] += loss.item() * (u - s)
                    return losses / n, [q.detach().numpy().copy() for q in params]
                finally:
                    torch.set_num_threads(before)

            return go

        if TORCH1 in which:
            impls[TORCH1] = torch_runner(1)
        if TORCH2 in which:
            impls[TORCH2] = torch_runner(2)

    jax = peer("jax")
    if jax is None:
        if {JAX_STEP, JAX_SCAN} & set(which):
            notes.append(f"JAX: {skipped('jax')}")
    elif {JAX_STEP, JAX_SCAN} & set(which):
        import jax.numpy as jnp

        scale = np.float32(1.0 / math.sqrt(dh))
        mask = np.tril(np.ones((T, T), dtype=bool))

        def ln(h, g, b):
            m = jnp.mean(h, axis=-1, keepdims=True)
            v = jnp.mean((h - m) ** 2, axis=-1, keepdims=True)
            return (h - m) / jnp.sqrt(v + LN_EPS) * g.reshape(-1) + b.reshape(-1)

        def loss_fn(p, Xb, Yb):
            ids = Xb.astype(jnp.int32)
            B_ = ids.shape[0]
            h = p[0][ids] + p[1]
            i = 2
            for _ in range(LAYERS):
                g, b, Wq, Wk, Wv, Wo = p[i:i + 6]
                a = ln(h, g, b)
                q, k, v = ((a @ W).reshape(B_, T, H, dh).transpose(0, 2, 1, 3) for W in (Wq, Wk, Wv))
                s = jnp.einsum("bhqe,bhke->bhqk", q, k) * scale
                att = jax.nn.softmax(jnp.where(mask, s, -jnp.inf), axis=-1)
                o = jnp.einsum("bhqk,bhke->bhqe", att, v).transpose(0, 2, 1, 3).reshape(B_, T, d)
                h = h + o @ Wo
                g, b, W1, b1, W2, b2 = p[i + 6:i + 12]
                h = h + jax.nn.gelu(ln(h, g, b) @ W1 + b1.reshape(-1), approximate=False) @ W2 + b2.reshape(-1)
                i += 12
            g, b, W, bo = p[i:i + 4]
            z = ln(h, g, b) @ W + bo.reshape(-1)
            zy = jnp.take_along_axis(z, Yb[..., None], axis=-1)[..., 0]
            return jnp.mean(jax.nn.logsumexp(z, axis=-1) - zy)

        Xd, Yd = jax.device_put(X), jax.device_put(Y.astype(np.int32))

        jax_step, jax_scan = jax_adam_runners(loss_fn, LR, flat0, Xd, Yd, perms, bl, w, n, BS, epochs)

        if JAX_STEP in which:
            impls[JAX_STEP] = jax_step
        if JAX_SCAN in which:
            impls[JAX_SCAN] = jax_scan
    return impls


# ---------------------------------------------------------------------------
# helpers for the sections
# ---------------------------------------------------------------------------
def _run_probe(impls: dict, compile_s: dict) -> dict:
    out = {}
    for k, fn in impls.items():
        t0 = time.perf_counter()
        out[k] = fn()
        compile_s[k] = time.perf_counter() - t0
    return out


def _check(what: str, pr: dict, tol_loss: float, tol_p: float, atol_p: float) -> dict:
    check_agreement(f"{what}: per-epoch loss", SG, {k: v[0] for k, v in pr.items()}, rtol=tol_loss)
    return check_agreement(f"{what}: parameters", SG,
                           {k: np.concatenate([p.ravel() for p in v[1]]) for k, v in pr.items()},
                           rtol=tol_p, atol=atol_p)


def _same_threads_ref(name: str, per_s: dict) -> float:
    """symgrad's time to compare ``name`` with: its one-thread run for one-thread peers, the
    faster of its defaults and its one-thread run for peers that use both cores."""
    if THREADS.get(name, 1) == 1 and SG1 in per_s:
        return per_s[SG1]
    return min(per_s[k] for k in (SG, SG1) if k in per_s)


def _contended(per_s: dict) -> str:
    """As W7: two-thread timings mean nothing when torch's 2-thread run is slower than 1.3x its
    1-thread run (other processes held a core)."""
    if TORCH1 in per_s and TORCH2 in per_s and per_s[TORCH2] > 1.3 * per_s[TORCH1]:
        return (f"not judged: torch's 2-thread run took {per_s[TORCH2] / per_s[TORCH1]:.1f}x its 1-thread "
                "run, so other processes held a core and this run's 2-thread timings are not meaningful")
    return ""


def _rounds(mode: Mode) -> int:
    return mode.pick(7, mode.repeats, mode.repeats)


# ---------------------------------------------------------------------------
# W9 speed
# ---------------------------------------------------------------------------
def run_speed(mode: Mode, L: list[str], targets: list[Target], data: dict, notes: list[str]) -> None:
    from bench.w7_cnn import matmul_gflops_512

    ids, alphabet, n_chars = corpus()
    vocab = len(alphabet)
    n = mode.pick(20 * BS, 10 * BS, 2 * BS + 13)
    epochs = mode.pick(2, 1, 2)
    X, Y = windows(ids, n)
    p0 = sg_net(vocab).init_params(seed=SEED, dtype=np.float32)
    which = [SG, SG1, TORCH1, TORCH2, JAX_STEP, JAX_SCAN]
    # float32 through two attention layers: summation orders differ (BLAS, fused attention, XLA)
    tol_loss, tol_p, atol_p = 1e-4, 2e-3, 2e-5
    compile_s: dict[str, float] = {}
    n_probe = 3 * BS + 13
    if not mode.tiny:  # the first 12 steps: 3 epochs of 3 full batches and one of 13
        Xp, Yp = windows(ids, n_probe, seed=1)
        probe = implementations(Xp, Yp, vocab, 3, p0, which)
        flush_print("  W9: first steps (builds and compiles) ...")
        pr = _run_probe(probe, compile_s)
        perr = _check("W9 first steps (3 epochs of 4 steps)", pr, tol_loss, tol_p, atol_p)
        data["probe_param_error"] = perr
    kernel_times: list[float] = []
    impls = implementations(X, Y, vocab, epochs, p0, which, notes, kernel_times)
    first: dict = {}
    flush_print(f"  W9: timing {len(impls)} implementations, {_rounds(mode)} rounds ...")
    t = interleaved(impls, _rounds(mode), warmup=1, first_results=first, settle=mode.settle)
    if mode.tiny:
        _check("W9 (tiny run)", first, tol_loss, tol_p, atol_p)
        compile_s = {k: v.first for k, v in t.items()}
    check_agreement("W9: first-epoch loss of the timed runs", SG, {k: v[0][:1] for k, v in first.items()}, rtol=1e-4)
    dev = {k: float(np.max(np.abs(v[0] - first[SG][0]) / first[SG][0])) for k, v in first.items()}
    tokens = n * CONTEXT * epochs
    run_s = {k: v.median for k, v in t.items()}
    tps = {k: tokens / s for k, s in run_s.items()}
    kernel = float(np.median(kernel_times[-len(t[SG].times):]))
    fpt = flops_per_token(vocab)
    ref1 = matmul_gflops_512(1, mode.repeats)
    ref2 = matmul_gflops_512(2, mode.repeats)
    steps = len(batches(n, BS)) * epochs

    L.append(f"### W9: char transformer, d={D}, {HEADS} heads, {LAYERS} layers, context {CONTEXT}, "
             f"{epochs} epoch(s)")
    L.append("")
    L.append(f"Text: `examples/char_transformer.py`'s `load_text()` ({n_chars:,} characters of standard-library "
             f"docstrings, {vocab} distinct), its training split (the first 90%, {len(ids):,} ids); {n} windows of "
             f"{CONTEXT} (its `windows(ids, {CONTEXT}, {n}, seed=0)`), {len(batches(n, BS))} steps per epoch, "
             f"{tokens:,} training tokens per run (B·T per step). Median of {_rounds(mode)} whole runs "
             "(interleaved); tokens/s = tokens per run / run time. `threads` = cores the implementation may use. "
             "`symgrad / peer (same threads)`: the peer's time over symgrad's (> 1: symgrad faster), one-thread "
             "peers against symgrad's one-thread run, two-thread peers against the faster of symgrad's defaults "
             "and its one-thread run. First call = "
             + ("the first call of the timed run (tiny mode)" if mode.tiny else
                f"the first call on a {n_probe}-window probe run (3 epochs of 4 steps): JIT compilation / tracing "
                "(symgrad: a cold build into an empty cache)")
             + f". FLOPs counted (matrix products only, forward + backward = 3x forward): per position "
             f"3 · (layers · (24d² + 4·T·d) + 2·d·V) = {fpt / 1e6:.3f} MFLOP per token (Q, K, V, output "
             "projections 8d², MLP 16d², full T x T scores and P·V 4Td, logits 2dV; LayerNorm, GELU, softmax, "
             f"loss and Adam not counted), {fpt * tokens / 1e9:.2f} GFLOP per run.")
    L.append("")
    rows = []
    for k in impls:
        gf = fpt * tps[k] / 1e9
        rows.append([k, THREADS[k], f"{tps[k]:,.0f}", f"{run_s[k] / steps * 1e3:.1f}",
                     f"{compile_s[k]:.2f}" if k in compile_s else "-",
                     f"{run_s[k] / run_s[SG]:.2f}x", f"{run_s[k] / _same_threads_ref(k, run_s):.2f}x",
                     f"{first[k][0][-1]:.4f}", f"{dev[k]:.1e}", f"{gf:.2f}", f"{gf / ref1:.0%}" if ref1 else "n/a"])
    L.append(table(["implementation", "threads", "tokens / s", "ms / step", "first call s",
                    "time / symgrad default", "symgrad / peer (same threads)", "last-epoch train loss",
                    "max rel. loss deviation from symgrad", "GFLOP/s", "% of 1-thread matmul"], rows))
    L.append("")
    if ref1:
        L.append(f"- `np.dot` of two 512x512 float32 matrices, same run: {ref1:.1f} GFLOP/s with 1 BLAS thread, "
                 f"{ref2:.1f} GFLOP/s with 2 (threadpoolctl).")
    L.append(f"- symgrad's own timer in the run with its defaults (the native calls alone): {kernel / steps * 1e3:.1f} ms per step, "
             f"{tokens / kernel:,.0f} tokens/s, {fpt * tokens / kernel / 1e9:.2f} GFLOP/s; `fit` adds "
             f"{(run_s[SG] - kernel) / steps * 1e3:.2f} ms per step around it.")
    if not mode.tiny:
        L.append(f"- Before timing, each implementation ran the first 12 steps on {n_probe} other windows and matched "
                 f"symgrad's per-epoch losses to rel. {tol_loss:g} and its parameters to rel. {tol_p:g} (abs. "
                 f"{atol_p:g}); the timed runs' first-epoch losses match to 1e-4.")
    busy = _contended(run_s)
    if busy:
        L.append(f"- Two-thread rows: {busy}.")
    L.append("")
    data["speed"] = {"tokens_per_s": tps, "run_s": run_s, "compile_s": compile_s, "kernel_s": kernel,
                     "flops_per_token": fpt, "matmul_gflops_1t": ref1, "matmul_gflops_2t": ref2, "epochs": epochs,
                     "n": n, "vocab": vocab, "loss_deviation": dev}
    for peer_name, factor, text in ((TORCH1, 2.0, ">= 2x torch eager tokens/s, 1 thread each"),
                                    (TORCH2, 2.0, ">= 2x torch eager tokens/s, 2 threads each"),
                                    (JAX_STEP, 1.2, ">= 1.2x JAX `jit` step tokens/s"),
                                    (JAX_SCAN, 1.2, ">= 1.2x JAX `lax.scan` tokens/s")):
        if peer_name not in run_s:
            mod = "jax" if peer_name.startswith("JAX") else "torch"
            targets.append(Target("W9", text, skipped(mod) if peer(mod) is None else "not run", None))
            continue
        ref = _same_threads_ref(peer_name, run_s)
        r = run_s[peer_name] / ref
        who = "symgrad defaults" if ref == run_s[SG] else "symgrad 1 thread"
        own = f" (kernel alone {tokens / kernel:,.0f})" if who == "symgrad defaults" else ""  # the defaults' run
        ev = (f"{who} {tokens / ref:,.0f} tokens/s{own}, {peer_name} "
              f"{tps[peer_name]:,.0f} tokens/s; {factor:g}x needs {factor * tps[peer_name]:,.0f} tokens/s")
        if peer_name.startswith("JAX"):
            ev += " (JAX uses XLA's thread pool on both cores; symgrad the faster of its 1- and 2-thread runs)"
        mm = ref1 if THREADS[peer_name] == 1 else ref2
        if r < factor and mm:  # what the target asks of the products alone
            need = factor * tps[peer_name] * fpt / 1e9
            ev += (f"; that is {need:.0f} GFLOP/s of counted matrix products, {need / mm:.0%} of "
                   f"{THREADS[peer_name]}-thread 512x512 np.dot ({mm:.1f} GFLOP/s)")
        busy = _contended(run_s) if THREADS[peer_name] > 1 else ""
        targets.append(Target("W9", text, f"{r:.2f}x" + (f" ({busy.split(':')[0]})" if busy else ""),
                              None if busy else r >= factor, f"{busy}; {ev}" if busy else ev))
    if ref1 and SG1 in tps:
        notes.append(f"symgrad on one thread ran at {fpt * tps[SG1] / 1e9:.2f} GFLOP/s, "
                     f"{fpt * tps[SG1] / 1e9 / ref1:.0%} of one-thread 512x512 `np.dot` ({ref1:.1f} GFLOP/s)"
                     + (f"; torch eager at 1 thread {fpt * tps[TORCH1] / 1e9:.2f} GFLOP/s" if TORCH1 in tps else "")
                     + ".")
    if ref2 and THREADS[SG] == 2:
        notes.append(f"symgrad's defaults (two row blocks) ran at {fpt * tps[SG] / 1e9:.2f} GFLOP/s, "
                     f"{fpt * tps[SG] / 1e9 / ref2:.0%} of two-thread 512x512 `np.dot` ({ref2:.1f} GFLOP/s)"
                     + (f"; torch eager at 2 threads {fpt * tps[TORCH2] / 1e9:.2f} GFLOP/s" if TORCH2 in tps else "")
                     + ".")


# ---------------------------------------------------------------------------
# W9 build
# ---------------------------------------------------------------------------
_W5_DATA = """X = rng.standard_normal((2 * bs, sizes[0])).astype(dtype)
if spec["loss"] == "bce":
    Y = (X[:, 0] > 0).astype(dtype)
else:
    Y = rng.integers(0, sizes[-1], 2 * bs)
"""
_TOKEN_DATA = """X = rng.integers(0, spec["vocab"], (2 * bs, spec["context"])).astype(dtype)
Y = rng.integers(0, spec["vocab"], (2 * bs, spec["context"]))
"""


@contextlib.contextmanager
def token_child():
    """W5's build child (its timers and hooks unchanged) with token-id data: random ids in [0, vocab)
    for X (float) and Y, two batches of ``context`` positions, in place of its dense rows. W5's
    runners (``run_fit_child``, ``cold_warm``, ...) read its module's ``CHILD``, which is swapped
    for the duration."""
    import bench.w5_build as w5

    if _W5_DATA not in w5.CHILD:
        raise RuntimeError("bench/w5_build.py's build child no longer makes its data as W9 expects; update "
                           "bench/w9_transformer.py's _W5_DATA")
    old = w5.CHILD
    w5.CHILD = old.replace(_W5_DATA, _TOKEN_DATA)
    try:
        yield w5
    finally:
        w5.CHILD = old


def build_spec(vocab: int, d: int = D, context: int = CONTEXT) -> dict:
    from bench.w5_build import fit_spec

    spec = fit_spec([context, vocab], loss="token_cross_entropy", batch_size=BS)
    spec.update(net=sg_expr(vocab, d, context), vocab=vocab, context=context)
    return spec


def run_build(mode: Mode, L: list[str], targets: list[Target], data: dict) -> None:
    from bench.w5_build import _med, _width_evidence

    vocab = data.get("speed", {}).get("vocab") or len(corpus()[1])
    big, small = f"d={D}, context {CONTEXT}", "d=32, context 32"
    specs = {small: build_spec(vocab, 32, 32), big: build_spec(vocab)}
    L.append("### W9 build: the transformer's training kernel")
    L.append("")
    with token_child() as w5:
        if mode.tiny:  # one child on the suite's own cache (the speed part built this model already)
            flush_print("  W9 build: one subprocess on the suite's cache ...")
            r = w5.run_fit_child(specs[big], os.environ.get("SYMGRAD_CACHE_DIR") or tempfile.mkdtemp())
            res = {big: {"cold" if r["generated"] else "warm": [r]}}
        else:
            reps = mode.pick(3, 1, 1)
            flush_print(f"  W9 build: cold and warm subprocesses, {small} and {big} taking turns, {reps} pair(s) "
                        "each ...")
            res = w5.cold_warm_alternating(specs, reps)
    rb = res[big]
    rows = []
    for name, r in res.items():
        for kind in ("cold", "warm"):
            if r.get(kind):
                rs = r[kind]
                rows.append([f"{name}, {kind}", f"{_med(rs, 'build'):.2f}", f"{_med(rs, 'model'):.3f}",
                             f"{_med(rs, 'lower'):.3f}", f"{_med(rs, 'make_source') - _med(rs, 'lower'):.3f}",
                             f"{_med(rs, 'load'):.3f}", f"{_med(rs, 'numba'):.2f}", f"{_med(rs, 'fit2'):.3f}",
                             f"{_med(rs, 'process_wall'):.2f}"])
    how = ("one fresh subprocess on the suite's own cache (tiny mode: the speed part built this model already)"
           if mode.tiny else
           f"the median of {len(rb['cold'])} fresh subprocess(es) (cold: an empty temporary `SYMGRAD_CACHE_DIR`; "
           "warm: a second process on that folder; the two sizes take turns; symgrad's vecmath functions come from "
           "Numba's on-disk cache in both, as in W5)")
    L.append(f"W5's build child (bench/w5_build.py) with the network `{sg_expr(vocab)}`"
             + ("" if mode.tiny else " and with d=32, context 32")
             + f", float32, Adam, batch {BS}, `token_cross_entropy`, on two batches of random token ids: each row "
             f"{how}. Columns as in W5.")
    L.append("")
    L.append(table(["model, run", "build s", "Transformer() s", "lower s", "rest of source s", "import s",
                    "Numba + keying s", "second fit s", "process wall s"], rows))
    L.append("")
    data["build"] = res
    if rb.get("cold"):
        c = _med(rb["cold"], "build")
        targets.append(Target("W9 build", "cold build <= 20 s", f"{c:.2f} s", c <= 20,
                              f"of which Numba {_med(rb['cold'], 'numba'):.2f} s, source generation "
                              f"{_med(rb['cold'], 'make_source'):.2f} s"))
    else:
        targets.append(Target("W9 build", "cold build <= 20 s", "not run in tiny mode", None))
    if rb.get("warm"):
        w = _med(rb["warm"], "build")
        targets.append(Target("W9 build", "warm build <= 1 s", f"{w:.2f} s", w <= 1.0,
                              f"process from start to trained: {_med(rb['warm'], 'import_to_trained'):.2f} s"))
    else:
        targets.append(Target("W9 build", "warm build <= 1 s", "not run in tiny mode", None))
    text = "build cost independent of d and context (cold, d=64/context 64 vs d=32/context 32 within 15%)"
    if small in res and res[small].get("cold") and rb.get("cold"):
        a, b = _med(res[small]["cold"], "build"), _med(rb["cold"], "build")
        ev = _width_evidence(res[small]["cold"], rb["cold"]).replace("128/1024 s", "d=32/d=64 s")
        targets.append(Target("W9 build", text, f"{b / a:.2f}x ({a:.2f} s -> {b:.2f} s)", abs(b / a - 1) <= 0.15,
                              ev))
        L.append(f"Cold build at d=32, context 32: {a:.2f} s; at d=64, context 64: {b:.2f} s ({b / a:.2f}x).")
        L.append("")
    else:
        targets.append(Target("W9 build", text, "not run in tiny mode", None))


def _fit_defaults() -> dict:
    """fit's defaults for this model at batch BS (its row blocks depend on a window's work)."""
    try:
        from symgrad.runtime.execution import sample_work

        work = sample_work(sg_net(96).expr)  # the example's 96 symbols; any vocabulary splits alike
    except ImportError:  # internal: before row blocks by work
        work = 0
    d = fit_defaults(BS, work)
    if isinstance(d["numba_threads_at_bs"], int):
        THREADS[SG] = d["numba_threads_at_bs"]
    return {**d, "work": work}


def run(mode: Mode) -> Section:
    mon = LoadMonitor()
    L = ["## W9: character-level transformer (issue 16)", ""]
    d = _fit_defaults()
    torch = peer("torch")
    L.append(f"`sg.nn.Transformer(vocab, d={D}, heads={HEADS}, layers={LAYERS}, context={CONTEXT})`: token and "
             "learned position embeddings, pre-norm blocks (LayerNorm eps 1e-5, causal multi-head attention without "
             f"biases, a {MLP}d-wide MLP with exact (erf) GELU), a final LayerNorm and logits per position; "
             f"float32, batch {BS}, Adam lr {LR}, `token_cross_entropy` (per window the mean over positions of "
             "softmax cross-entropy against the next id; `fit` averages over windows: torch's `F.cross_entropy` "
             "over all B·T tokens). All implementations in one process from `Transformer.init_params(seed=0)` "
             "(weights used as X·W, PyTorch's `Linear.weight` transposed; heads take contiguous groups of d/heads "
             "columns of Q, K, V, scaled by 1/√(d/heads)) and `fit`'s per-epoch shuffles. torch eager: "
             "`F.scaled_dot_product_attention(is_causal=True)`, `F.layer_norm`, `F.gelu`, `torch.optim.Adam`; "
             "JAX: the same model in `jax.numpy` (masked softmax attention, `jax.nn.gelu(approximate=False)`), "
             f"Adam written out. Threads: symgrad `fit` with its defaults uses threads={d['threads']} "
             f"({d['numba_threads_at_bs']} Numba row blocks at batch {BS}: a block needs 2M multiply-adds, one "
             f"window holds {d['work'] / 1e6:.1f}M) and blas_threads={d['blas_threads']} (one BLAS thread per "
             "block); `threads=1, blas_threads=1` runs it on one core. torch: `torch.set_num_threads` per "
             "implementation" + (f" (its default here: {torch.get_num_threads()})" if torch is not None else "")
             + "; JAX: XLA's CPU thread pool (both cores; XLA_FLAGS unset).")
    L.append("")
    targets: list[Target] = []
    data: dict = {"fit_defaults": d}
    notes: list[str] = []
    run_speed(mode, L, targets, data, notes)
    run_build(mode, L, targets, data)
    L += [f"- {x}" for x in dict.fromkeys(notes)]
    L.append("")
    L.append(mon.note())
    return Section("W9", "\n".join(L) + "\n", targets, data)


if __name__ == "__main__":  # a quick look without the suite: python -m bench.w9_transformer [full|quick|tiny]
    import sys

    from bench.common import make_mode

    sec = run(make_mode(sys.argv[1] if len(sys.argv) > 1 else "tiny"))
    print(sec.markdown)
    for tg in sec.targets:
        print(tg)
