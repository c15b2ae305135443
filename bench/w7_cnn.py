"""Workload 7: convolutional networks (issue 15 calls this workload W6; W6 here is the NIST suite).

W7a, digits CNN: scikit-learn's digits as 1x8x8 float32 images (the split and standardisation of
``examples/digits_mlp.py``, as W4), Conv2D(1,16,3,same,relu), MaxPool2D(2), Conv2D(16,32,3,same,relu),
MaxPool2D(2), Flatten, Dense(128,10), softmax cross-entropy, Adam(1e-3), batch 64. Peers: symgrad
``fit`` (its defaults, and with 2 BLAS threads), torch eager at 1 and 2 threads, ``torch.compile``
(inductor, 1 thread) where it works on this CPU, JAX ``jit`` step and JAX ``lax.scan`` over an epoch.

W7b, LeNet-5 on 28x28: Conv2D(1,6,5,padding=2,relu), MaxPool2D(2), Conv2D(6,16,5,relu), MaxPool2D(2),
Flatten, Dense(400,120,relu), Dense(120,84,relu), Dense(84,10), batch 64, float32, Adam(1e-3), on
images made from the digits (bilinear upsampling to 20x20, placed at a random (seeded) offset in a
28x28 frame); symgrad against torch eager at the same thread count, and GFLOP/s against one-thread
``np.dot`` of 512x512 float32 matrices measured in the same run.

W7 build: the digits CNN's kernel built in fresh subprocesses (W5's child, empty
``SYMGRAD_CACHE_DIR`` for cold, a second process on that folder for warm).

Every implementation starts from ``Sequential.init_params(seed=0)`` (conv kernels reshaped to
torch's (c_out, c_in, kh, kw)) and trains on ``fit``'s per-epoch shuffles, so the trajectories are
the same computation; they are compared before anything is timed, and the run fails on
disagreement.
"""

from __future__ import annotations

import inspect
import re
import statistics
import time

import numpy as np

from bench.common import (
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
    median_time,
    peer,
    sg_fit_runner,
    skipped,
    table,
)

LR, BS, SEED = 1e-3, 64, 0

# (kind, ...): ("conv", c_in, c_out, k, padding, activation), ("pool", size), ("flatten",),
# ("dense", n_in, n_out, activation)
DIGITS_CNN = (("conv", 1, 16, 3, "same", "relu"), ("pool", 2), ("conv", 16, 32, 3, "same", "relu"), ("pool", 2),
              ("flatten",), ("dense", 128, 10, "identity"))
LENET = (("conv", 1, 6, 5, 2, "relu"), ("pool", 2), ("conv", 6, 16, 5, 0, "relu"), ("pool", 2), ("flatten",),
         ("dense", 400, 120, "relu"), ("dense", 120, 84, "relu"), ("dense", 84, 10, "identity"))
DIGITS_SHAPE, LENET_SHAPE = (1, 8, 8), (1, 28, 28)

SG = "symgrad fit (defaults)"
SG1 = "symgrad fit, 1 thread"
TORCH1 = "torch eager, 1 thread"
TORCH2 = "torch eager, 2 threads"
TCOMPILE = "torch.compile (inductor), 1 thread"
JAX_STEP = "JAX jit step (Python loop)"
JAX_SCAN = "JAX jit lax.scan over an epoch"

# threads each implementation may use (JAX: XLA's CPU thread pool, all cores)
THREADS = {SG: 2, SG1: 1, TORCH1: 1, TORCH2: 2, TCOMPILE: 1, JAX_STEP: 2, JAX_SCAN: 2}


def sg_expr(spec) -> str:
    """The network as a Python expression over ``sg`` (W5's build child evaluates it)."""
    parts = []
    for lay in spec:
        if lay[0] == "conv":
            _, ci, co, k, pad, act = lay
            parts.append(f"sg.nn.Conv2D({ci}, {co}, {k}, padding={pad!r}, activation={act!r})")
        elif lay[0] == "pool":
            parts.append(f"sg.nn.MaxPool2D({lay[1]})")
        elif lay[0] == "flatten":
            parts.append("sg.nn.Flatten()")
        else:
            parts.append(f"sg.nn.Dense({lay[1]}, {lay[2]}, activation={lay[3]!r})")
    return f"sg.nn.Sequential([{', '.join(parts)}], input_shape={spec_shape(spec)})"


def spec_shape(spec) -> tuple[int, int, int]:
    return DIGITS_SHAPE if spec is DIGITS_CNN else LENET_SHAPE


def sg_net(spec):
    import symgrad as sg

    return eval(sg_expr(spec), {"sg": sg})


def _pad(lay) -> int:
    return lay[3] // 2 if lay[4] == "same" else int(lay[4])


def geometry(spec):
    """Per parametrised layer: ('conv', c_in, c_out, k, pad, H_out, W_out) or ('dense', n_in, n_out)."""
    c, h, w = spec_shape(spec)
    out = []
    for lay in spec:
        if lay[0] == "conv":
            p, k = _pad(lay), lay[3]
            h, w = h + 2 * p - k + 1, w + 2 * p - k + 1
            out.append(("conv", lay[1], lay[2], k, p, h, w))
        elif lay[0] == "pool":
            h, w = h // lay[1], w // lay[1]
        elif lay[0] == "dense":
            out.append(("dense", lay[1], lay[2]))
    return out


def flops_per_sample(spec) -> float:
    """Forward + backward multiply-adds x 2 of the conv and dense layers (pooling, activations,
    the loss and the optimizer are not counted). A conv layer of c_in -> c_out channels, k x k,
    output Ho x Wo does F = 2·c_out·Ho·Wo·c_in·k² forward, F for ∂K and F for δ_X (the first
    layer's δ_X is not needed: 2F there); a dense layer n_in -> n_out: 3 · 2·n_in·n_out."""
    total = 0.0
    for i, g in enumerate(geometry(spec)):
        f = 2.0 * g[2] * g[5] * g[6] * g[1] * g[3] ** 2 if g[0] == "conv" else 2.0 * g[1] * g[2]
        total += f * (2 if i == 0 else 3)
    return total


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def digits_data(dtype):
    from bench.w4_digits import load_data

    Xtr, ytr, Xte, yte = load_data(dtype)
    return Xtr.reshape(-1, *DIGITS_SHAPE), ytr, Xte.reshape(-1, *DIGITS_SHAPE), yte


def lenet_data(dtype):
    """28x28 images from the digits: each 8x8 image upsampled (bilinear) to 20x20 and put at a
    random offset (0-8 pixels, ``default_rng(1)``) in a 28x28 frame; the split of W4; scaled by
    the training set's global mean and standard deviation."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.random.default_rng(0).permutation(len(d.images))
    imgs, y = d.images[idx] / 16.0, d.target[idx]
    up = zoom(imgs, (1, 2.5, 2.5), order=1)
    rng = np.random.default_rng(1)
    off = rng.integers(0, 9, size=(len(up), 2))
    X = np.zeros((len(up), 28, 28))
    for i, (oy, ox) in enumerate(off):
        X[i, oy:oy + 20, ox:ox + 20] = up[i]
    n = int(0.8 * len(X))
    X = ((X - X[:n].mean()) / X[:n].std()).astype(dtype).reshape(-1, *LENET_SHAPE)
    return X[:n], y[:n], X[n:], y[n:]


# ---------------------------------------------------------------------------
# a NumPy forward pass (float64) for test accuracy from any implementation's final weights
# ---------------------------------------------------------------------------
def predict_np(spec, ps, X):
    from numpy.lib.stride_tricks import sliding_window_view

    h = np.asarray(X, dtype=np.float64).reshape(len(X), *spec_shape(spec))
    ps = [np.asarray(p, dtype=np.float64) for p in ps]
    k = 0
    for lay in spec:
        if lay[0] == "conv":
            K, b = ps[k], ps[k + 1]
            k += 2
            p, ks = _pad(lay), lay[3]
            hp = np.pad(h, ((0, 0), (0, 0), (p, p), (p, p)))
            win = sliding_window_view(hp, (ks, ks), axis=(2, 3))
            h = np.einsum("bchwuv,ocuv->bohw", win, K.reshape(lay[2], lay[1], ks, ks), optimize=True)
            h = h + b.reshape(1, -1, 1, 1)
            if lay[5] == "relu":
                h = np.maximum(h, 0)
        elif lay[0] == "pool":
            s = lay[1]
            B, C, H, W = h.shape
            h = h[:, :, :H // s * s, :W // s * s].reshape(B, C, H // s, s, W // s, s).max((3, 5))
        elif lay[0] == "flatten":
            h = h.reshape(len(h), -1)
        else:
            W, b = ps[k], ps[k + 1]
            k += 2
            h = h @ W.T + b.ravel()
            if lay[3] == "relu":
                h = np.maximum(h, 0)
    return h


# ---------------------------------------------------------------------------
# implementations
# ---------------------------------------------------------------------------
def implementations(spec, X, y, epochs, p0, which, notes=None, kernel_times=None, compile_state=None) -> dict:
    """name -> zero-arg callable returning (per-epoch mean losses, final params in symgrad's layout)."""

    n = len(X)
    perms = epoch_perms(n, epochs, SEED)
    bl = batches(n, BS)
    w = np.array([u - s for s, u in bl], dtype=np.float64)
    notes = [] if notes is None else notes
    flat0 = [p.copy() for p in p0]
    net = sg_net(spec)
    impls: dict = {}

    sg_fit = sg_fit_runner(net, "softmax_cross_entropy", X, y, flat0, epochs, BS, LR, SEED, kernel_times)

    if SG in which:
        impls[SG] = sg_fit
    if SG1 in which:
        impls[SG1] = lambda: sg_fit(threads=1, blas_threads=1)

    torch = peer("torch")
    if torch is None:
        notes.append(f"torch: {skipped('torch')}")
    elif {TORCH1, TORCH2, TCOMPILE} & set(which):
        import torch.nn.functional as tF

        Xt, yt = torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y.astype(np.int64))
        tperms = torch.from_numpy(perms)

        def make_model():
            layers = []
            for lay in spec:
                if lay[0] == "conv":
                    layers.append(torch.nn.Conv2d(lay[1], lay[2], lay[3], padding=_pad(lay)))
                    if lay[5] == "relu":
                        layers.append(torch.nn.ReLU())
                elif lay[0] == "pool":
                    layers.append(torch.nn.MaxPool2d(lay[1]))
                elif lay[0] == "flatten":
                    layers.append(torch.nn.Flatten())
                else:
                    layers.append(torch.nn.Linear(lay[1], lay[2]))
                    if lay[3] == "relu":
                        layers.append(torch.nn.ReLU())
            return torch.nn.Sequential(*layers)

        def reset(model):
            mods = [m for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
            with torch.no_grad():
                for k, m in enumerate(mods):
                    m.weight.copy_(torch.from_numpy(flat0[2 * k]).reshape(m.weight.shape))
                    m.bias.copy_(torch.from_numpy(flat0[2 * k + 1].ravel()))
            return mods

        def torch_runner(threads: int, compiled: bool):
            model = make_model()  # one model per implementation (torch.compile keeps its graphs), reset per call
            fwd = [None]

            def go():
                before = torch.get_num_threads()
                torch.set_num_threads(threads)
                try:
                    mods = reset(model)
                    if fwd[0] is None:
                        fwd[0] = (torch.compile(lambda xb, yb: tF.cross_entropy(model(xb), yb)) if compiled
                                  else (lambda xb, yb: tF.cross_entropy(model(xb), yb)))
                    opt = torch.optim.Adam(model.parameters(), lr=LR)
                    losses = np.zeros(epochs)
                    for e in range(epochs):
                        for s, u in bl:
                            idx = tperms[e, s:u]
                            loss = fwd[0](Xt[idx], yt[idx])
                            opt.zero_grad()
                            loss.backward()
                            opt.step()
                            losses[e] += loss.item() * (u - s)
                    ps = []
                    for m in mods:
                        ps += [m.weight.detach().numpy().reshape(m.weight.shape[0], -1).copy(),
                               m.bias.detach().numpy().reshape(-1, 1).copy()]
                    return losses / n, ps
                finally:
                    torch.set_num_threads(before)

            return go

        if TORCH1 in which:
            impls[TORCH1] = torch_runner(1, False)
        if TORCH2 in which:
            impls[TORCH2] = torch_runner(2, False)
        if TCOMPILE in which and (compile_state or {}).get("ok", True):
            impls[TCOMPILE] = torch_runner(1, True)

    jax = peer("jax")
    if jax is None:
        if {JAX_STEP, JAX_SCAN} & set(which):
            notes.append(f"JAX: {skipped('jax')}")
    elif {JAX_STEP, JAX_SCAN} & set(which):
        import jax.numpy as jnp
        from jax import lax

        def forward(p, xb):
            h, k = xb, 0
            for lay in spec:
                if lay[0] == "conv":
                    K, b = p[k], p[k + 1]
                    k += 2
                    pd = _pad(lay)
                    h = lax.conv_general_dilated(h, K.reshape(lay[2], lay[1], lay[3], lay[3]), (1, 1),
                                                 [(pd, pd), (pd, pd)], dimension_numbers=("NCHW", "OIHW", "NCHW"))
                    h = h + b.reshape(1, -1, 1, 1)
                    if lay[5] == "relu":
                        h = jax.nn.relu(h)
                elif lay[0] == "pool":
                    s = lay[1]
                    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, s, s), (1, 1, s, s), "VALID")
                elif lay[0] == "flatten":
                    h = h.reshape(h.shape[0], -1)
                else:
                    W, b = p[k], p[k + 1]
                    k += 2
                    h = h @ W.T + b.reshape(-1)
                    if lay[3] == "relu":
                        h = jax.nn.relu(h)
            return h

        def loss_fn(p, Xb, Yb):
            z = forward(p, Xb)
            return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.sum(Yb * z, axis=1))

        Xd, Yd = jax.device_put(X), jax.device_put(np.eye(10, dtype=np.float32)[y])

        jax_step, jax_scan = jax_adam_runners(loss_fn, LR, flat0, Xd, Yd, perms, bl, w, n, BS, epochs)

        if JAX_STEP in which:
            impls[JAX_STEP] = jax_step
        if JAX_SCAN in which:
            impls[JAX_SCAN] = jax_scan
    return impls


# ---------------------------------------------------------------------------
# where symgrad's step goes
# ---------------------------------------------------------------------------
def _med_us(fn, reps: int) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6


def layer_shapes(spec) -> dict[int, tuple]:
    """Sequential position (1-based, as in the names z1, p2) -> ('conv', c_in, H, W, c_out, k, pad) or
    ('pool', C, H, W, size) with the layer's input size."""
    c, h, w = spec_shape(spec)
    out = {}
    for pos, lay in enumerate(spec, start=1):
        if lay[0] == "conv":
            p, k = _pad(lay), lay[3]
            out[pos] = ("conv", c, h, w, lay[2], k, p)
            c, h, w = lay[2], h + 2 * p - k + 1, w + 2 * p - k + 1
        elif lay[0] == "pool":
            out[pos] = ("pool", c, h, w, lay[1])
            h, w = h // lay[1], w // lay[1]
    return out


def _op_detail(mod, torch, label: str, shapes: dict, reps: int) -> tuple[float | None, list]:
    """For a conv or max-pool node of ``loss_grad`` (its layer read from the label: 'z3: conv2d' is layer
    3's forward, 'backward through p2' layer 2's backward): the same op timed in torch (at the caller's
    thread count), and for a conv the BLAS products that im2col needs, each timed alone in the
    module's ``mm`` ("for scale"), once per chunk of images the kernels cut the minibatch into."""
    m = re.search(r"\b[zp](\d+)\b", label)
    geo = shapes.get(int(m.group(1))) if m else None
    if geo is None:
        return None, []
    fwd, B = not label.startswith("backward"), BS
    tus, subs = None, []
    if geo[0] == "conv":
        _, ci, H, W, co, k, p = geo
        Ho, Wo = H + 2 * p - k + 1, W + 2 * p - k + 1
        # the products of one chunk of images (symgrad/native/convolve.py), as often as there are chunks
        from symgrad.native.convolve import chunk_images

        r = ci * k * k
        n = chunk_images(B, r, Ho * Wo, 4)
        L, times = n * Ho * Wo, -(-B // n)
        prods = [(co, r, L)] if fwd else [(co, L, r)] + ([(r, co, L)] if min(shapes) != int(m.group(1)) else [])
        rng = np.random.default_rng(0)
        for a_, b_, c_ in prods:
            A = rng.standard_normal((a_, b_)).astype(np.float32)
            Bm = rng.standard_normal((b_, c_)).astype(np.float32)
            out = np.empty((a_, c_), dtype=np.float32)
            mm = getattr(mod, "mm", None)

            def gemm(A=A, Bm=Bm, out=out, mm=mm):
                for _ in range(times):
                    if mm is not None:
                        mm(A, Bm, out)
                    else:
                        np.dot(A, Bm, out=out)

            what = f"a gemm {a_}x{b_} · {b_}x{c_}" if times == 1 else f"{times} gemms {a_}x{b_} · {b_}x{c_} ({n} image(s) each)"
            subs.append((f"for scale: {what} alone", _med_us(gemm, reps)))
        if torch is not None:
            xt = torch.randn(B, ci, H, W)
            wt = torch.randn(co, ci, k, k)
            bt = torch.randn(co)
            if fwd:
                tus = _med_us(lambda: torch.nn.functional.conv2d(xt, wt, bt, 1, p), reps)
            else:
                gt = torch.randn(B, co, Ho, Wo)
                mask = [min(shapes) != int(m.group(1)), True, True]
                tus = _med_us(lambda: torch.ops.aten.convolution_backward(
                    gt, xt, wt, [co], [1, 1], [p, p], [1, 1], False, [0, 0], 1, mask), reps)
    elif geo[0] == "pool" and torch is not None:
        _, C, H, W, sz = geo
        xt = torch.randn(B, C, H, W)
        if fwd:
            tus = _med_us(lambda: torch.nn.functional.max_pool2d(xt, sz), reps)
        else:
            o, ind = torch.nn.functional.max_pool2d(xt, sz, return_indices=True)
            go = torch.ones_like(o)
            tus = _med_us(lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                go, xt, [sz, sz], [sz, sz], [0, 0], [1, 1], False, ind), reps)
    return tus, subs


def profile_ops(spec, X, y, p0, reps: int) -> tuple[list[list[str]], dict]:
    """``_profile_ops`` with BLAS at one thread, as ``fit``'s default ``blas_threads=1``."""
    tpc = peer("threadpoolctl")
    if tpc is None:
        return _profile_ops(spec, X, y, p0, reps)
    with tpc.threadpool_limits(limits=1, user_api="blas"):
        return _profile_ops(spec, X, y, p0, reps)


def _timed_loss_grad(mod):
    """The generated ``loss_grad`` as Python, every statement of its body timed: (function, the
    label of each statement (the generated comment above it: a node such as 'z3: conv2d' or
    'backward through z3'), the list the times are appended to, as (statement, seconds))."""
    import ast
    import textwrap

    lg = mod.loss_grad.py_func
    src = textwrap.dedent(inspect.getsource(lg))
    tree = ast.parse(src)
    fdef = tree.body[0]
    fdef.decorator_list = []
    current, comment_at = "setup", {}
    for no, line in enumerate(src.splitlines(), start=1):
        if line.strip().startswith("#"):
            current = line.strip()[1:].strip()
        comment_at[no] = current
    labels, body = [], []
    for k, stmt in enumerate(fdef.body):
        labels.append(comment_at[stmt.lineno])
        rec = ast.parse(f"__rec.append(({k}, __pc() - __t0))").body[0]
        start = ast.parse("__t0 = __pc()").body[0]
        if isinstance(stmt, ast.Return):
            keep = ast.parse("__ret = 0").body[0]
            keep.value = stmt.value
            body += [start, keep, rec, ast.parse("return __ret").body[0]]
        else:
            body += [start, stmt, rec]
    fdef.body = body
    ast.fix_missing_locations(tree)
    times: list = []
    g = dict(vars(getattr(mod, "module", mod)))  # a Bound module's own globals (symgrad/bound.py)
    g.update({"__pc": time.perf_counter, "__rec": times})
    exec(compile(tree, f"<timed {mod.__name__}.loss_grad>", "exec"), g)
    return g[fdef.name], labels, times


def _profile_ops(spec, X, y, p0, reps: int) -> tuple[list[list[str]], dict]:
    """Best effort: the generated module's ``loss_grad`` run as Python, each statement timed (each
    calls one compiled function, or allocates), summed per node of the graph (the comments in the
    generated source); median of ``reps`` calls on one batch of 64. Conv and max-pool nodes are put
    beside the same op in torch at 1 thread. Rows: [node, symgrad µs, torch µs]. Only the spec and
    the generated source's comments are used, not the kernels' argument layout (which changes as
    they are optimised)."""
    import symgrad as sg

    torch = peer("torch")
    m = sg.fit(sg_net(spec), "softmax_cross_entropy", X[:BS], y[:BS], optimizer=sg.optim.Adam(LR), epochs=1,
               batch_size=BS, params=[p.copy() for p in p0], dtype="float32")
    mod = m._mod
    fn, labels, times = _timed_loss_grad(mod)
    th = np.concatenate([p.ravel() for p in p0]).astype(np.float32)
    gflat = np.empty_like(th)
    Xf = np.ascontiguousarray(X.reshape(len(X), -1)[:BS])
    Yf = np.eye(10, dtype=np.float32)[y[:BS]]
    # a shape-generic module's loss_grad takes the model's sizes first (symgrad/bound.py)
    sized = (mod.dims,) if hasattr(mod, "dims") else ()
    per_node: dict[str, list[float]] = {}
    for r in range(reps + 1):
        times.clear()
        fn(*sized, th, Xf, Yf, gflat)
        if r == 0:
            continue
        sums: dict[str, float] = {}
        for k, dt in times:
            sums[labels[k]] = sums.get(labels[k], 0.0) + dt
        for lab, v in sums.items():
            per_node.setdefault(lab, []).append(v)
    med = {lab: statistics.median(v) * 1e6 for lab, v in per_node.items()}
    shapes = layer_shapes(spec)
    rows = []
    if torch is not None:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        for label, us in med.items():
            tus, subs = _op_detail(mod, torch, label, shapes, reps)
            rows.append([label, f"{us:.1f}", f"{tus:.1f}" if tus is not None else ""])
            for sname, sus in subs:
                rows.append([f"  {sname}", f"{sus:.1f}", ""])
    finally:
        if torch is not None:
            torch.set_num_threads(before)
    whole = _med_us(lambda: mod.loss_grad(th, Xf, Yf, gflat), reps)
    hyper = m.optimizer.hyper_values()
    ps = [p.astype(np.float32).ravel().copy() for p in p0]
    gs = [np.zeros_like(p) for p in ps]
    st_ = [(np.zeros_like(p), np.zeros_like(p)) for p in ps]
    lr = np.float32(LR)

    def upd():
        for p, g_, (mm_, vv) in zip(ps, gs, st_, strict=True):
            mod.opt_update(p, g_, mm_, vv, lr, 1, hyper)

    adam = _med_us(upd, reps)
    return rows, {"parts_sum_us": float(sum(med.values())), "loss_grad_us": whole, "adam_us": adam}


# ---------------------------------------------------------------------------
# helpers for the sections
# ---------------------------------------------------------------------------
def _run_probe(impls: dict, compile_s: dict, failed: dict) -> dict:
    out = {}
    for k, fn in impls.items():
        t0 = time.perf_counter()
        try:
            out[k] = fn()
        except Exception as exc:
            if k != TCOMPILE:
                raise
            failed[k] = f"not available: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            continue
        compile_s[k] = time.perf_counter() - t0
    return out


def _check(what: str, pr: dict, tol_loss: float, tol_p: float) -> None:
    check_agreement(f"{what}: per-epoch loss", SG, {k: v[0] for k, v in pr.items()}, rtol=tol_loss)
    check_agreement(f"{what}: parameters", SG, {k: np.concatenate([p.ravel() for p in v[1]]) for k, v in pr.items()},
                    rtol=tol_p, atol=tol_p * 1e-2)


def matmul_gflops_512(threads: int, repeats: int) -> float | None:
    """``np.dot`` of two 512x512 float32 matrices with BLAS limited to ``threads`` (threadpoolctl)."""
    tpc = peer("threadpoolctl")
    if tpc is None:
        return None
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((512, 512)).astype(np.float32) for _ in range(2))
    c = np.empty((512, 512), dtype=np.float32)
    reps = 20

    def go():
        for _ in range(reps):
            np.dot(a, b, out=c)

    with tpc.threadpool_limits(limits=threads, user_api="blas"):
        t = median_time(go, repeats, warmup=1)
    return 2.0 * 512**3 * reps / t / 1e9


def _fit_defaults() -> tuple[dict, str]:
    """fit's defaults at batch BS, and how many row blocks they give each network (its work)."""
    try:
        from symgrad.runtime.execution import sample_work
    except ImportError:  # internal: before row blocks by work
        return fit_defaults(BS), "none"
    counts = {name: fit_defaults(BS, sample_work(sg_net(spec).expr))["numba_threads_at_bs"]
              for name, spec in (("digits CNN", DIGITS_CNN), ("LeNet-5", LENET))}
    THREADS[SG] = max((c for c in counts.values() if isinstance(c, int)), default=1)
    return fit_defaults(BS), ", ".join(f"{name} {c}" for name, c in counts.items())


def _same_threads_ref(name: str, per_epoch: dict) -> float:
    """symgrad's time to compare ``name`` with: its one-thread run for one-thread peers, the
    faster of its defaults and its one-thread run for peers that use both cores."""
    if THREADS.get(name, 1) == 1 and SG1 in per_epoch:
        return per_epoch[SG1]
    return min(per_epoch[k] for k in (SG, SG1) if k in per_epoch)


def _timing_rows(impls, per_epoch, compile_s, acc, first, dev, extra=None):
    rows = []
    for k in impls:
        ref = _same_threads_ref(k, per_epoch)
        row = [k, THREADS.get(k, "?"), f"{per_epoch[k] * 1e3:.2f}", f"{compile_s[k]:.2f}" if k in compile_s else "-",
               f"{per_epoch[k] / per_epoch[SG]:.2f}x", f"{per_epoch[k] / ref:.2f}x", f"{acc[k]:.2%}",
               f"{first[k][0][-1]:.4f}", f"{dev[k]:.1e}"]
        if extra:
            row += extra(k)
        rows.append(row)
    return rows


def _contended(per_epoch: dict) -> str:
    """Why two-thread timings of this run mean nothing, or "": torch's 2-thread run slower than 1.3x
    its 1-thread run (on this 2-core machine that happens when other processes hold a core: a
    thread that waits for a busy core stalls the whole team)."""
    if TORCH1 in per_epoch and TORCH2 in per_epoch and per_epoch[TORCH2] > 1.3 * per_epoch[TORCH1]:
        return (f"not judged: torch's 2-thread run took {per_epoch[TORCH2] / per_epoch[TORCH1]:.1f}x its 1-thread "
                "run, so other processes held a core and this run's 2-thread timings are not meaningful")
    return ""


def _drift_notes(L: list[str], per_epoch: dict) -> None:
    """The notes under a W7 timing table: why losses drift apart, and any contended rows."""
    L.append("- The max deviation column covers every epoch: the first epochs agree to float32 rounding, later ones "
             "drift apart as rounding differences (summation order in the convolutions and BLAS) grow over hundreds "
             "of Adam steps; final accuracies can then differ by a few test images.")
    busy = _contended(per_epoch)
    if busy:
        L.append(f"- Two-thread rows: {busy}.")
    L.append("")


def _soft_profile(L: list[str], label: str, spec, X, y, p0, reps: int):
    """profile_ops, or None with a line in L saying why it failed (it reads the generated
    module's layout, which is not a public API)."""
    try:
        flush_print(f"  {label}: per-node profile ...")
        return profile_ops(spec, X, y, p0, reps)
    except Exception as exc:  # noqa: BLE001 - any failure only loses the breakdown
        L.append(f"Per-op breakdown unavailable ({type(exc).__name__}: {exc}).")
        L.append("")
        return None


def _top_nodes(prof, n: int = 3) -> str:
    """The profile's largest nodes, for a missed target's evidence."""
    rows, summ = prof
    top = sorted((r for r in rows if not r[0].startswith(" ")), key=lambda r: -float(r[1]))[:n]
    parts = ", ".join(f"'{r[0]}' {float(r[1]):.0f}" + (f" (torch {float(r[2]):.0f})" if r[2] else "") for r in top)
    return (f"symgrad's loss_grad {summ['loss_grad_us']:.0f} µs per step at 1 thread, largest nodes (µs): {parts}; "
            "see the section's per-node table")


def _rounds(mode: Mode) -> int:
    return mode.pick(7, mode.repeats, mode.repeats)


# ---------------------------------------------------------------------------
# W7a
# ---------------------------------------------------------------------------
def run_digits(mode: Mode, L: list[str], targets: list[Target], data: dict, notes: list[str]) -> None:
    Xtr, ytr, Xte, yte = digits_data(np.float32)
    if mode.tiny:
        Xtr, ytr = Xtr[:3 * BS + 29], ytr[:3 * BS + 29]
    epochs = mode.pick(20, 5, 2)
    n = len(Xtr)
    p0 = sg_net(DIGITS_CNN).init_params(SEED, np.float32)
    which = [SG, SG1, TORCH1, TORCH2, JAX_STEP, JAX_SCAN] + ([] if mode.tiny else [TCOMPILE])
    tol_loss, tol_p = 1e-4, 2e-3
    compile_s: dict[str, float] = {}
    failed: dict[str, str] = {}
    if not mode.tiny:  # the first 12 steps: 3 epochs of 3 full batches and one of 29
        probe = implementations(DIGITS_CNN, Xtr[:3 * BS + 29], ytr[:3 * BS + 29], 3, p0, which)
        flush_print("  W7a: first steps (builds and compiles) ...")
        pr = _run_probe(probe, compile_s, failed)
        _check("W7a first steps (3 epochs of 4 steps)", pr, tol_loss, tol_p)
    kernel_times: list[float] = []
    impls = implementations(DIGITS_CNN, Xtr, ytr, epochs, p0, [k for k in which if k not in failed], notes,
                            kernel_times)
    first: dict = {}
    flush_print(f"  W7a: timing {len(impls)} implementations, {_rounds(mode)} rounds ...")
    t = interleaved(impls, _rounds(mode), warmup=1, first_results=first, settle=mode.settle)
    if mode.tiny:
        _check("W7a (tiny run)", first, tol_loss, tol_p)
        compile_s = {k: v.first for k, v in t.items()}
    check_agreement("W7a: first-epoch loss of the timed runs", SG, {k: v[0][:1] for k, v in first.items()},
                    rtol=1e-4)
    dev = {k: float(np.max(np.abs(v[0] - first[SG][0]) / first[SG][0])) for k, v in first.items()}
    per_epoch = {k: v.median / epochs for k, v in t.items()}
    kernel = float(np.median(kernel_times[-len(t[SG].times):])) / epochs
    acc = {k: float((predict_np(DIGITS_CNN, ps, Xte).argmax(1) == yte).mean()) for k, (_, ps) in first.items()}
    steps = len(batches(n, BS))

    L.append(f"### W7a: digits CNN, 1x8x8, {epochs} epochs")
    L.append("")
    L.append(f"{n} training images, {len(Xte)} test images, {steps} steps per epoch. Median of {_rounds(mode)} "
             "whole runs (interleaved); ms/epoch = run time / epochs. `threads` = cores the implementation may "
             "use. `time / symgrad (same threads)`: one-thread peers against symgrad's one-thread run, "
             "two-thread peers against the faster of symgrad's defaults and its one-thread run. First call = "
             + ("the first call of the timed run (tiny mode)" if mode.tiny else
                "the first call on a 221-image probe run (3 epochs of 4 steps): JIT compilation / tracing (symgrad: "
                "a cold build into an empty cache; torch.compile: dynamo + inductor, both batch shapes)")
             + ". Accuracy from each implementation's final weights with one NumPy float64 forward pass.")
    L.append("")
    L.append(table(["implementation", "threads", "ms / epoch", "first call s", "time / symgrad default",
                    "time / symgrad (same threads)", "test accuracy", "last-epoch train loss",
                    "max rel. loss deviation from symgrad"],
                   _timing_rows(impls, per_epoch, compile_s, acc, first, dev)))
    L.append("")
    for k, why in failed.items():
        L.append(f"- {k}: {why}")
    if TCOMPILE not in impls and TCOMPILE not in failed:
        L.append(f"- {TCOMPILE}: not run in {mode.name} mode" if peer("torch") is not None
                 else f"- {TCOMPILE}: {skipped('torch')}")
    L.append(f"- symgrad's own per-epoch timer in the run with its defaults (the native calls alone): {kernel * 1e3:.2f} ms/epoch "
             f"({kernel / steps * 1e6:.0f} µs per step); `fit` adds {(per_epoch[SG] - kernel) * 1e3:.2f} ms per "
             "epoch around it.")
    _drift_notes(L, per_epoch)
    # ~10 s on this machine, so not in tiny mode
    prof = None if mode.tiny else _soft_profile(L, "W7a", DIGITS_CNN, Xtr, ytr, p0, mode.pick(50, 20, 5))
    if prof:
        rows, summ = prof
        tstep = per_epoch.get(TORCH1, float("nan")) / steps * 1e6
        L.append("Where one symgrad step goes (best effort, BLAS at 1 thread: the generated `loss_grad` run as "
                 "Python with each statement timed and the times summed per node of the graph, as the generated "
                 "source's comments name them (z = conv or dense pre-activation, a = activation, p = pooling, v = "
                 "other values); a node's time includes its allocations and ~1-3 µs of dispatch per compiled call; "
                 "median of calls on one batch of 64. Torch column: the same op alone in torch at 1 thread "
                 "(`F.conv2d`, `aten.convolution_backward`, `F.max_pool2d`, `aten.max_pool2d_with_indices_backward`, "
                 "on random data of the layer's shape). 'For scale' rows: the BLAS products an im2col convolution "
                 "needs, each timed alone in the module's `mm` on random matrices of those shapes, once per "
                 "chunk of images the kernels cut the minibatch into (symgrad/native/convolve.py):")
        L.append("")
        L.append(table(["part", "symgrad µs", "torch 1 thread µs"], rows, "lrr"))
        L.append("")
        L.append(f"Sum of the parts {summ['parts_sum_us']:.0f} µs; `loss_grad` called whole {summ['loss_grad_us']:.0f} µs; "
                 f"Adam over all parameters {summ['adam_us']:.0f} µs; a whole step in `fit`'s kernel "
                 f"{kernel / steps * 1e6:.0f} µs; a whole torch eager step at 1 thread (forward, backward, Adam, "
                 f"Python) {tstep:.0f} µs.")
        L.append("")
        data["w7a_profile"] = {"rows": rows, **summ}

    data["w7a"] = {"per_epoch_s": per_epoch, "compile_s": compile_s, "accuracy": acc, "kernel_per_epoch_s": kernel,
                   "failed": failed, "epochs": epochs}
    s1 = per_epoch[SG]
    for peer_name, factor, text in ((TORCH1, 3.0, ">= 3x faster per epoch than torch eager, 1 thread each"),
                                    (TORCH2, 3.0, ">= 3x faster per epoch than torch eager, 2 threads each"),
                                    (JAX_SCAN, 1.5, ">= 1.5x faster per epoch than JAX `lax.scan`")):
        if peer_name not in per_epoch:
            mod = "jax" if peer_name == JAX_SCAN else "torch"
            targets.append(Target("W7a f32", text, skipped(mod) if peer(mod) is None else "not run", None))
            continue
        ref = _same_threads_ref(peer_name, per_epoch)
        r = per_epoch[peer_name] / ref
        who = "symgrad defaults" if ref == s1 else "symgrad 1 thread"
        own = f" (kernel {kernel * 1e3:.1f})" if who == "symgrad defaults" else ""  # fit's timer: the defaults' run
        ev = (f"{who} {ref * 1e3:.1f} ms/epoch{own}, {peer_name} "
              f"{per_epoch[peer_name] * 1e3:.1f} ms/epoch; {factor:g}x needs {per_epoch[peer_name] / factor * 1e3:.1f} "
              "ms/epoch")
        if peer_name == JAX_SCAN:
            ev += " (JAX uses XLA's thread pool on both cores; symgrad the faster of its 1- and 2-thread runs)"
            if JAX_STEP in per_epoch:
                ev += (f"; JAX's jit step in a Python loop took {per_epoch[JAX_STEP] * 1e3:.1f} ms/epoch "
                       f"({per_epoch[JAX_STEP] / ref:.2f}x symgrad)")
        if r < factor and prof:
            ev += f"; {_top_nodes(prof)}"
        busy = _contended(per_epoch) if THREADS[peer_name] > 1 else ""
        targets.append(Target("W7a f32", text, f"{r:.2f}x" + (f" ({busy.split(':')[0]})" if busy else ""),
                              None if busy else r >= factor, f"{busy}; {ev}" if busy else ev))
    if TCOMPILE in per_epoch:
        notes.append(f"torch.compile (1 thread) ran at {per_epoch[TCOMPILE] * 1e3:.1f} ms/epoch, "
                     f"{per_epoch[TCOMPILE] / s1:.2f}x symgrad's defaults.")
    best_name = max((k for k in acc if not k.startswith("symgrad")), key=acc.get, default=None)
    if best_name is not None:
        best = acc[best_name]
        targets.append(Target("W7a f32", "test accuracy within 0.5 point of the best peer",
                              f"symgrad {acc[SG]:.2%}, best peer {best:.2%}", acc[SG] >= best - 0.005,
                              f"after {epochs} epochs from the same initial weights and shuffles; peers "
                              f"{min(acc[k] for k in acc if k != SG):.2%}-{best:.2%}"))


# ---------------------------------------------------------------------------
# W7b
# ---------------------------------------------------------------------------
def run_lenet(mode: Mode, L: list[str], targets: list[Target], data: dict, notes: list[str]) -> None:
    if mode.tiny:  # its cold build alone (Numba) takes 15-40 s on this machine: the test suite runs it in --quick
        L += ["### W7b: LeNet-5 on 28x28", "", "Not run in tiny mode (its cold build takes 15-40 s).", ""]
        for text in ("at least as fast per epoch as torch eager, 1 thread each",
                     "at least as fast per epoch as torch eager, 2 threads each",
                     ">= 40% of single-thread matmul GFLOP/s (goal)"):
            targets.append(Target("W7b f32", text, "not run in tiny mode", None))
        return
    Xtr, ytr, Xte, yte = lenet_data(np.float32)
    epochs = mode.pick(8, 3, 3)
    n = len(Xtr)
    p0 = sg_net(LENET).init_params(SEED, np.float32)
    which = [SG, SG1, TORCH1, TORCH2]
    tol_loss, tol_p = 1e-4, 2e-3
    compile_s: dict[str, float] = {}
    failed: dict[str, str] = {}
    probe = implementations(LENET, Xtr[:3 * BS + 29], ytr[:3 * BS + 29], 3, p0, which)
    flush_print("  W7b: first steps (builds and compiles) ...")
    pr = _run_probe(probe, compile_s, failed)
    _check("W7b first steps (3 epochs of 4 steps)", pr, tol_loss, tol_p)
    kernel_times: list[float] = []
    impls = implementations(LENET, Xtr, ytr, epochs, p0, which, notes, kernel_times)
    first: dict = {}
    flush_print(f"  W7b: timing {len(impls)} implementations, {_rounds(mode)} rounds ...")
    t = interleaved(impls, _rounds(mode), warmup=1, first_results=first, settle=mode.settle)
    check_agreement("W7b: first-epoch loss of the timed runs", SG, {k: v[0][:1] for k, v in first.items()}, rtol=1e-4)
    dev = {k: float(np.max(np.abs(v[0] - first[SG][0]) / first[SG][0])) for k, v in first.items()}
    per_epoch = {k: v.median / epochs for k, v in t.items()}
    kernel = float(np.median(kernel_times[-len(t[SG].times):])) / epochs
    acc = {k: float((predict_np(LENET, ps, Xte).argmax(1) == yte).mean()) for k, (_, ps) in first.items()}
    fl = flops_per_sample(LENET) * n
    ref1 = matmul_gflops_512(1, mode.repeats)
    ref2 = matmul_gflops_512(2, mode.repeats)

    def extra(k):
        gf = fl / per_epoch[k] / 1e9
        return [f"{gf:.2f}", f"{gf / ref1:.0%}" if ref1 else "n/a"]

    L.append(f"### W7b: LeNet-5 on 28x28, {epochs} epoch(s)")
    L.append("")
    L.append(f"{n} training images (28x28, made from the digits: bilinear upsampling to 20x20 at a random offset, "
             f"seeded), {len(Xte)} test images, {len(batches(n, BS))} steps per epoch, Adam {LR}. Median of "
             f"{_rounds(mode)} whole runs. FLOPs counted: conv c_in->c_out, k x k, output Ho x Wo: "
             "F = 2·c_out·Ho·Wo·c_in·k² forward, F for ∂K, F for δ_X (not for the first layer); dense n_in->n_out: "
             f"3 · 2·n_in·n_out; pooling, activations, loss and Adam not counted: {flops_per_sample(LENET) / 1e6:.3f} "
             f"MFLOP per image, {fl / 1e9:.2f} GFLOP per epoch.")
    L.append("")
    L.append(table(["implementation", "threads", "ms / epoch", "first call s", "time / symgrad default",
                    "time / symgrad (same threads)", "test accuracy", "last-epoch train loss",
                    "max rel. loss deviation from symgrad", "GFLOP/s", "% of 1-thread matmul"],
                   _timing_rows(impls, per_epoch, compile_s, acc, first, dev, extra)))
    L.append("")
    if ref1:
        L.append(f"- `np.dot` of two 512x512 float32 matrices, same run: {ref1:.1f} GFLOP/s with 1 BLAS thread, "
                 f"{ref2:.1f} GFLOP/s with 2 (threadpoolctl).")
    L.append(f"- symgrad's own per-epoch timer in the run with its defaults (the native calls alone): {kernel * 1e3:.2f} ms/epoch, "
             f"{fl / kernel / 1e9:.2f} GFLOP/s.")
    _drift_notes(L, per_epoch)
    prof = _soft_profile(L, "W7b", LENET, Xtr, ytr, p0, mode.pick(30, 10, 3))
    if prof:
        rows, summ = prof
        L.append("Where one symgrad LeNet step goes (as for W7a):")
        L.append("")
        L.append(table(["part", "symgrad µs", "torch 1 thread µs"], rows, "lrr"))
        L.append("")
        L.append(f"Sum of the parts {summ['parts_sum_us']:.0f} µs; `loss_grad` called whole "
                 f"{summ['loss_grad_us']:.0f} µs; Adam over all parameters {summ['adam_us']:.0f} µs.")
        L.append("")
        data["w7b_profile"] = {"rows": rows, **summ}
    data["w7b"] = {"per_epoch_s": per_epoch, "compile_s": compile_s, "accuracy": acc, "kernel_per_epoch_s": kernel,
                   "flops_per_epoch": fl, "matmul_gflops_1t": ref1, "matmul_gflops_2t": ref2, "epochs": epochs}
    for peer_name, threads in ((TORCH1, 1), (TORCH2, 2)):
        text = f"at least as fast per epoch as torch eager, {threads} thread{'s' if threads > 1 else ''} each"
        if peer_name not in per_epoch:
            targets.append(Target("W7b f32", text, skipped("torch") if peer("torch") is None else
                                  f"not run in {mode.name} mode", None))
            continue
        ref = _same_threads_ref(peer_name, per_epoch)
        r = per_epoch[peer_name] / ref
        who = "symgrad defaults" if ref == per_epoch[SG] else "symgrad 1 thread"
        own = f" (kernel {kernel * 1e3:.1f})" if who == "symgrad defaults" else ""  # fit's timer: the defaults' run
        ev = f"{who} {ref * 1e3:.1f} ms/epoch{own}, torch {per_epoch[peer_name] * 1e3:.1f} ms/epoch"
        if r < 1 and prof:
            ev += f"; {_top_nodes(prof)}"
        busy = _contended(per_epoch) if threads > 1 else ""
        targets.append(Target("W7b f32", text, f"{r:.2f}x" + (f" ({busy.split(':')[0]})" if busy else ""),
                              None if busy else r >= 1.0, f"{busy}; {ev}" if busy else ev))
    if ref1 and SG1 in per_epoch:
        frac = fl / per_epoch[SG1] / 1e9 / ref1
        two = (f"; symgrad defaults ({THREADS[SG]} threads) {fl / per_epoch[SG] / 1e9:.2f} GFLOP/s, "
               f"{fl / per_epoch[SG] / 1e9 / ref2:.0%} of 2-thread np.dot ({ref2:.1f} GFLOP/s)" if ref2 else "")
        targets.append(Target("W7b f32", ">= 40% of single-thread matmul GFLOP/s (goal)",
                              f"{frac:.0%} (fit, 1 thread)", frac >= 0.4,
                              f"symgrad 1 thread {fl / per_epoch[SG1] / 1e9:.2f} GFLOP/s vs np.dot 512x512 float32 "
                              f"1 thread {ref1:.1f} GFLOP/s{two}; torch eager 1 thread "
                              f"{fl / per_epoch[TORCH1] / 1e9 if TORCH1 in per_epoch else float('nan'):.2f} GFLOP/s"
                              + (f"; {_top_nodes(prof)}" if prof and frac < 0.4 else "")))
    else:
        targets.append(Target("W7b f32", ">= 40% of single-thread matmul GFLOP/s (goal)",
                              skipped("threadpoolctl"), None))


# ---------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------
def run_build(mode: Mode, L: list[str], targets: list[Target], data: dict) -> None:
    import os
    import tempfile

    from bench.w5_build import _med, cold_warm, fit_spec, run_fit_child

    spec = fit_spec([64, 10])
    spec["net"] = sg_expr(DIGITS_CNN)
    L.append("### W7 build: the digits CNN's training kernel")
    L.append("")
    if mode.tiny:  # one child on the suite's own cache (W7a built this model already): keeps the test short
        flush_print("  W7 build: one subprocess on the suite's cache ...")
        r = run_fit_child(spec, os.environ.get("SYMGRAD_CACHE_DIR") or tempfile.mkdtemp())
        res = {"cold" if r["generated"] else "warm": [r]}
    else:
        flush_print("  W7 build: cold and warm subprocesses ...")
        res = cold_warm(spec, mode.pick(3, 1, 1))
    rows = []
    for kind in ("cold", "warm"):
        if kind in res:
            rs = res[kind]
            rows.append([kind, f"{_med(rs, 'build'):.2f}", f"{_med(rs, 'model'):.3f}", f"{_med(rs, 'lower'):.3f}",
                         f"{_med(rs, 'make_source') - _med(rs, 'lower'):.3f}", f"{_med(rs, 'load'):.3f}",
                         f"{_med(rs, 'numba'):.2f}", f"{_med(rs, 'fit2'):.3f}", f"{_med(rs, 'process_wall'):.2f}"])
    L.append(f"W5's build child (bench/w5_build.py) with the network `{sg_expr(DIGITS_CNN)}`, float32, Adam, batch "
             f"64: each row the median of {len(next(iter(res.values())))} fresh subprocess(es) (cold: an empty "
             "temporary `SYMGRAD_CACHE_DIR`; warm: a second process on that folder; symgrad's vecmath functions "
             "come from Numba's on-disk cache in both, as in W5). Columns as in W5.")
    L.append("")
    L.append(table(["run", "build s", "Sequential() s", "lower s", "rest of source s", "import s",
                    "Numba + keying s", "second fit s", "process wall s"], rows))
    L.append("")
    data["build"] = res
    if "cold" in res:
        c = _med(res["cold"], "build")
        targets.append(Target("W7 build", "cold build of the digits CNN kernel <= 10 s", f"{c:.2f} s", c <= 10,
                              f"of which Numba {_med(res['cold'], 'numba'):.2f} s, source generation "
                              f"{_med(res['cold'], 'make_source'):.2f} s"))
    else:
        targets.append(Target("W7 build", "cold build of the digits CNN kernel <= 10 s", "not run in tiny mode", None))
    if "warm" in res:
        w = _med(res["warm"], "build")
        targets.append(Target("W7 build", "warm build <= 1 s", f"{w:.2f} s", w <= 1.0,
                              f"process from start to trained: {_med(res['warm'], 'import_to_trained'):.2f} s"))
    else:
        targets.append(Target("W7 build", "warm build <= 1 s", "not run in tiny mode", None))


def run(mode: Mode) -> Section:
    mon = LoadMonitor()
    L = ["## W7: convolutional networks (issue 15)", ""]
    L.append("Issue 15 names this workload W6; it is W7 here because W6 is the NIST StRD suite.")
    L.append("")
    if peer("sklearn") is None:  # the data sets come from scikit-learn's digits
        L.append(f"Not run: {skipped('sklearn')} (it provides `load_digits`).")
        return Section("W7", "\n".join(L) + "\n", [Target("W7", "all W7 targets", skipped("sklearn"), None)])
    d, blocks = _fit_defaults()
    torch = peer("torch")
    L.append(f"float32, batch {BS}, Adam lr {LR}, softmax cross-entropy, all implementations in one process from "
             "`Sequential.init_params(seed=0)` (He normal, zero biases; conv kernels reshaped to torch's "
             "(c_out, c_in, kh, kw)) and `fit`'s per-epoch shuffles. Before timing (except in tiny mode) each "
             "implementation ran the first 12 steps on 221 images and matched symgrad's per-epoch losses to rel. "
             "1e-4 and parameters to rel. 2e-3 (float32; different summation orders in the convolutions); the "
             "timed runs' first-epoch losses match to 1e-4. Threads: symgrad `fit` with its defaults uses "
             f"threads={d['threads']} and blas_threads={d['blas_threads']}: at batch {BS} it splits each minibatch "
             f"into Numba row blocks ({blocks}; a block needs 2M multiply-adds of forward products), each with one "
             "BLAS thread; `threads=1, blas_threads=1` runs it on one core. torch: `torch.set_num_threads` per "
             "implementation" + (f" (its default here: {torch.get_num_threads()})" if torch is not None else "")
             + "; JAX: XLA's CPU thread pool (both cores; XLA_FLAGS unset).")
    L.append("")
    targets: list[Target] = []
    data: dict = {"fit_defaults": d}
    notes: list[str] = []
    run_digits(mode, L, targets, data, notes)
    run_lenet(mode, L, targets, data, notes)
    run_build(mode, L, targets, data)
    L += [f"- {x}" for x in dict.fromkeys(notes)]
    L.append("")
    L.append(mon.note())
    return Section("W7", "\n".join(L) + "\n", targets, data)


if __name__ == "__main__":  # a quick look at one size without the suite: python -m bench.w7_cnn [full|quick|tiny]
    import sys

    from bench.common import make_mode

    sec = run(make_mode(sys.argv[1] if len(sys.argv) > 1 else "tiny"))
    print(sec.markdown)
    for tg in sec.targets:
        print(tg)
