"""The fused training kernel: forward, backward and optimizer update over many
minibatches in one native call. Python is entered only between chunks of epochs."""

from __future__ import annotations

from .printer import py_name
from .tensor.ir import lower_matrix
from .tensor.optimize import fuse_maps
from .tensor.program import Program

#: Models with more IR nodes than this call loss_grad from the training loop instead of inlining it.
INLINE_MAX_NODES = 24


def _indent(lines: list[str], by: int) -> list[str]:
    return [" " * by + ln for ln in lines]


def _workspace_program(prog: Program) -> Program:
    """The same forward/backward, writing into buffers allocated once per kernel call."""
    tp = Program(prog.nodes, prog.out, prog.params, prog.data, prog.reduction, prog.kernels.p)
    tp.kernels = prog.kernels
    tp.ws = []
    return tp


def train_source(prog: Program, opt_state: tuple[str, ...]) -> list[str]:
    """``train_chunk``: epochs over shuffled minibatches: gather, forward, backward, clip, update.

    For small models the step is inlined and every intermediate lives in a workspace buffer
    sized for one minibatch, so a step allocates nothing (a 20-16-1 net's step is a few
    microseconds). Deep models call ``loss_grad`` instead: inlining them made Numba's compile
    time grow much faster than the model (see docs/decisions.md), while per-step allocation
    is negligible next to their matrix products.
    """
    tp = _workspace_program(prog)
    ps = [tp.v(p) for p in tp.params]
    gs = [tp.d(p) for p in tp.params]
    xs = [tp.v(d) for d in tp.data]
    states = [f"s_{s}_{py_name(p.name)}" for p in tp.params for s in opt_state]
    if len(tp.nodes) <= INLINE_MAX_NODES:
        step = tp.forward() + [f"    loss_b = {tp.total()}"] + tp.backward()
    else:
        tp.ws = []
        step = [f"    loss_b = loss_grad({', '.join(ps + xs + gs)})"]
    full = [f"full_{x}" for x in xs]
    sig = ", ".join(ps + full + states + ["perms", "shuffle", "batch_size", "lrs", "t0", "clip", "losses", "gnorms"])
    L = ["@jit", "def sumsq(a):", "    s = F(0.0)", "    for k in range(a.shape[0]):", "        s += a[k] * a[k]",
         "    return s", "", "", "@jit", "def gather(full, perm, start, out):",
         "    for r in range(out.shape[0]):", "        src = perm[start + r]",
         "        for c in range(out.shape[1]):", "            out[r, c] = full[src, c]",
         "", "", "@jit", f"def train_chunk({sig}):"]
    L += [f"    {g} = np.empty_like({p})" for p, g in zip(ps, gs)]
    L += tp.flat_views(True)
    L += [f"    pf = ({''.join(p + '.reshape(-1), ' for p in ps)})", f"    gf = ({''.join(g + '.reshape(-1), ' for g in gs)})"]
    for name in opt_state:
        L.append(f"    st_{name} = ({''.join(f's_{name}_{py_name(p[2:])}.reshape(-1), ' for p in ps)})")
    L += [f"    ws_{x} = np.empty((batch_size, {f}.shape[1]), dtype=F)" for x, f in zip(xs, full)]
    for name, n in tp.ws:
        shape = f"(batch_size, {n.length})" if n.batched else f"{n.length}"
        L.append(f"    ws_{name} = np.empty({shape}, dtype=F)")
    L += [f"    N = {full[0]}.shape[0]", "    t = t0", "    for e in range(perms.shape[0]):",
          "        total = F(0.0)", "        nb = 0", "        gnorms[e, :] = F(0.0)",
          "        for start in range(0, N, batch_size):",
          "            B = min(start + batch_size, N) - start"]
    for x, f in zip(xs, full):
        L += ["            if shuffle:", f"                {x} = ws_{x}[:B]", f"                gather({f}, perms[e], start, {x})",
              "            else:  # in order: a view, no copy (full-batch gradient descent reads X once)",
              f"                {x} = {f}[start:start + B]"]
    L += [f"            fill0({g})" for g in gs]
    L += _indent(step, 8)
    L += ["            if not math.isfinite(loss_b):",
          "                # NaN guard: this step's update is not applied; parameters stay finite",
          "                return e, t, 1",
          "            total += loss_b * F(B)",
          "            sq = F(0.0)"]
    # per-parameter work loops over tuples of flat views: its length must not grow with depth
    st_args = "".join(f", st_{name}[k]" for name in opt_state)
    L += ["            for k in range(len(gf)):",
          "                n2 = sumsq(gf[k])", "                gnorms[e, k] += math.sqrt(n2)", "                sq += n2",
          "            if not math.isfinite(sq):",
          "                return e, t, 1  # a non-finite gradient: not applied",
          "            scale = F(1.0)",
          "            if clip > F(0.0) and math.sqrt(sq) > clip:",
          "                scale = clip / (math.sqrt(sq) + F(1e-6))  # as optim.clip_scale",
          "            t += 1", "            psq = F(0.0)",
          "            for k in range(len(pf)):",
          "                if scale != F(1.0):", "                    gk = gf[k]", "                    gk *= scale",
          f"                opt_update(pf[k], gf[k]{st_args}, lrs[e], t)",
          "                psq += sumsq(pf[k])",
          "            if not math.isfinite(psq):",
          "                return e, t, 2  # an update overflowed: the driver restores the chunk's start"]
    L += ["            nb += 1", "        losses[e] = total / F(N)", "        gnorms[e, :] /= F(nb)",
          "    return perms.shape[0], t, 0"]
    return L


def predict_source(prog: Program, model_expr, params, x) -> list[str]:
    """``predict(params..., x)``: the model output, sharing the loss's map kernels."""
    nodes, out = fuse_maps(*lower_matrix(model_expr, params, [x]))
    leaves = {n.name: n for n in nodes if n.kind == "leaf"}
    pp = Program(nodes, out, [leaves[str(p)] for p in params], [leaves[str(x)]], "mean", prog.kernels.p)
    pp.kernels = prog.kernels
    return pp.predict_fn()
