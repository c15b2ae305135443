"""The training step on row blocks (``train_chunk_par``'s), in two parallel loops: the
minibatch's row blocks, one per thread, each computing its loss and gradient into its own
buffer (a row of ``gpart``: ``par_grads``); then one slice of the parameters per thread,
where the blocks' gradients are summed, their norms taken and the optimizer's update applied
(``par_update``). Before, the sum, the norms and the update ran on one thread while the other
waited (docs/decisions.md, "The row-block step uses both threads in both halves").

A model whose one-thread loop inlines its step (``INLINE_MAX_NODES``) computes a block with
``block_grad``: the same statements as that step, as glue, in views of one workspace per
thread. Its ``loss_grad``, compiled with LLVM's optimiser, cost 1.5 s of a new depth's build.
Deeper models' blocks call their ``loss_grad``, which is glue already.
"""

from __future__ import annotations

from .glue import Glue
from .program import Program


def block_grad(tp: Program, glue: Glue, zero: str | None) -> list[str]:
    """``block_grad(dims, theta, data..., grad, ws, [key, row0])``: one block's loss (the mean
    or sum over its rows) and gradient into ``grad``, its intermediates in views of ``ws`` (the
    thread's row of the workspace, :func:`workspace`). ``zero``: the statement that zeroes the
    gradients the backward adds to. ``tp`` must not have made its step yet: the views are of
    the workspaces this step declares."""
    step = tp.step("loss_b")
    carve = ["    o = 0"]
    # one buffer per thread, not an argument per workspace: with 19 arrays as arguments, the
    # parallel loop's compile took 0.6 s longer (a 4-layer MLP, measured)
    for name, n in tp.ws:
        size = tp.length(n, name)
        carve += ([f"    ws_{name} = {glue('view2')}(ws, o, B, {size})", f"    o += B * {size}"] if n.batched
                  else [f"    ws_{name} = {glue('rows')}(ws, o, {size})", f"    o += {size}"])
    ps, gs = [tp.v(p) for p in tp.params], [tp.d(p) for p in tp.params]
    views = tp.views("theta", ps, glue) + tp.views("grad", gs, glue) + tp.flat_views(step, glue)
    xs = [tp.v(d) for d in tp.data]
    noise = ["key", "row0"] if tp.noisy else []
    body = [*views, tp.batch_size(), *carve, *([zero] if zero else []), *step, "    return loss_b"]
    sig = ", ".join(["dims", "theta", *xs, "grad", "ws", *noise])
    return ["@jit_glue", f"def block_grad({sig}):",
            "    # one row block's loss and gradient, in its own gradient buffer and workspace",
            *tp.bind(body), *body]


def workspace(tp: Program) -> str:
    """The statement that makes the per-thread workspace ``block_grad`` carves its
    intermediates from (after :func:`block_grad`), once per kernel call."""
    sizes = [f"batch_size * {tp.length(n, name)}" if n.batched else tp.length(n, name) for name, n in tp.ws]
    return f"    ws = np.empty((threads, {' + '.join(sizes) or '1'}), dtype=F)"


def par_grads(prog: Program, glue: Glue, small: bool) -> list[str]:
    """``par_grads``: each row block's loss and gradient into its own row of ``gpart``, one
    block per thread, and the blocks' weights (their share of the rows) into ``wpart``;
    returns the minibatch's loss. ``small``: the blocks call ``block_grad`` with the thread's
    workspace, else ``loss_grad``."""
    xs = [prog.v(d) for d in prog.data]
    w = "F(hi - lo) / F(B)" if prog.reduction == "mean" else "F(1.0)"
    rows = ", ".join(f"{x}[lo:hi]" for x in xs)
    # dropout: the step's key, and each block's first row, so that blocks draw what one thread draws
    key, at = (", key", ", key, lo") if prog.noisy else ("", "")
    fn, ws, extra = ("block_grad", ", ws", ", ws[k]") if small else ("loss_grad", "", "")
    return ["@jit_par_glue", f"def par_grads(dims, theta, {', '.join(xs)}, gpart, wpart{ws}{key}):",
            "    # each row block of the batch into its own gradient buffer, one block per thread",
            f"    B = {xs[0]}.shape[0]", "    nb = gpart.shape[0]", "    lpart = np.empty(nb, dtype=F)",
            "    for k in prange(nb):", "        lo, hi = k * B // nb, (k + 1) * B // nb", f"        wpart[k] = {w}",
            f"        lpart[k] = {glue(fn)}(dims, theta, {rows}, gpart[k]{extra}{at}) * wpart[k]",
            f"    return {glue('vsum')}(lpart)"]


def par_update(states: list[str], glue: Glue) -> list[str]:
    """``par_update``: one slice of the parameters per thread (cut at multiples of 16 numbers,
    64 bytes, so that no two threads write one cache line): the blocks' gradients summed into
    ``grad``, the squared norm of each parameter's part of the slice into ``norms2``, and, where
    ``update`` and that gradient is finite, the optimizer's update; returns the sum of squares of
    the updated parameters (the caller's finiteness check). A slice whose gradient is not finite
    is left as it was: the step is refused, and no NaN reaches the optimizer's state."""
    st = "".join(f", {s}[a:b]" for s in states)
    return ["@jit_par_glue", f"def par_update(theta, grad, gpart, wpart{''.join(', ' + s for s in states)}, lr, t, hyper, "
            "offsets, norms2, sqs, update):",
            "    n = theta.shape[0]", "    nb = gpart.shape[0]",
            "    for k in prange(nb):",
            "        a, b = (k * n // nb) // 16 * 16, n if k == nb - 1 else ((k + 1) * n // nb) // 16 * 16",
            f"        {glue('add_parts')}(grad, gpart, wpart, a, b)",
            f"        fine = {glue('slice_norms')}(grad, offsets, a, b, norms2[k])",
            "        if update and fine:",
            f"            {glue('opt_update')}(theta[a:b], grad[a:b]{st}, lr, t, hyper)",
            f"        sqs[k] = {glue('sumsq')}(theta[a:b]) if update else F(0.0)",
            f"    return {glue('vsum')}(sqs)"]


#: The kernels the row-block step calls, defined in every training module.
KERNELS = [
    "@jit", "def add_parts(grad, gpart, wpart, a, b):",
    "    # grad[a:b] = the blocks' gradients weighted, added in block order; on 1-d slices, which",
    "    # LLVM vectorises (indexing gpart[k, j] in the loop was 6x slower, measured)",
    "    out = grad[a:b]", "    for k in range(gpart.shape[0]):", "        w, part = wpart[k], gpart[k][a:b]",
    "        if k == 0:", "            for j in range(out.shape[0]):", "                out[j] = w * part[j]",
    "        else:", "            for j in range(out.shape[0]):", "                out[j] += w * part[j]", "", "",
    "@jit", "def slice_norms(grad, offsets, a, b, out):",
    "    # out[p]: the sum of squares of parameter p's gradient within [a, b); whether all are finite",
    "    s = F(0.0)",
    "    for p in range(out.shape[0]):",
    "        lo, hi = max(a, offsets[p]), min(b, offsets[p + 1])",
    "        out[p] = sumsq(grad[lo:hi]) if lo < hi else F(0.0)", "        s += out[p]",
    "    return math.isfinite(s)", "", "",
    "@jit", "def add_norms2(norms2, norms):",
    "    # each parameter's gradient norm from its slices' squares added to norms[p]; their sum returned",
    "    sq = F(0.0)",
    "    for p in range(norms.shape[0]):", "        n2 = F(0.0)",
    "        for k in range(norms2.shape[0]):", "            n2 += norms2[k, p]",
    "        norms[p] += math.sqrt(n2)", "        sq += n2",
    "    return sq",
]
