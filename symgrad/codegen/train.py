"""The fused training kernel: forward, backward and optimizer update over many
minibatches in one native call. Python is entered only between chunks of epochs."""

from __future__ import annotations

from ..derive.fuse import fuse_maps
from ..derive.ir import lower_matrix
from . import train_par
from .glue import Glue
from .program import Program

#: Models with more IR nodes than this call loss_grad from the training loop instead of inlining it.
INLINE_MAX_NODES = 24


def _indent(lines: list[str], by: int) -> list[str]:
    return [" " * by + ln for ln in lines]


def _workspace_program(prog: Program, glue: Glue) -> Program:
    """The same forward/backward, writing into buffers allocated once per kernel call, as the
    training loop's glue, and training (dropout draws masks)."""
    return Program(prog.nodes, prog.out, prog.params, prog.data, prog.reduction, prog.kernels.p,
                   kernels=prog.kernels, workspace=True, dims=prog.dims, fn=glue, training=True)


#: ``train_chunk``'s arguments, in order, defined once: the generator writes the signature from
#: it and the drivers (``fit``, Dask workers) build their calls with :func:`kernel_args`.
#: "data" stands for the data arrays (X, Y) and "states" for the optimizer's state arrays;
#: "seeds" holds each epoch's dropout seed (int64; unused by a model without dropout).
KERNEL_ARGS = ("theta", "data", "states", "perms", "shuffle", "batch_size", "lrs", "t0", "clip", "hyper",
               "losses", "gnorms", "seeds")


def kernel_args(**values) -> tuple:
    """The kernel's positional arguments from keywords named as in KERNEL_ARGS."""
    if set(values) != set(KERNEL_ARGS):
        raise TypeError(f"kernel_args needs exactly {KERNEL_ARGS}; got {sorted(values)}")
    out: list = []
    for name in KERNEL_ARGS:
        out += list(values[name]) if name in ("data", "states") else [values[name]]
    return tuple(out)


def train_source(prog: Program, opt_state: tuple[str, ...]) -> tuple[list[str], set[str]]:
    """``train_chunk``: epochs over shuffled minibatches: gather, forward, backward, clip, update.

    Parameters, gradients and optimizer state each live in one flat buffer (``theta``,
    ``grad``, ``s_<name>``) and the per-parameter arrays are views into them: the kernel's
    signature, the optimizer update and the norms do not grow with the number of layers.
    For small models the step is inlined and every intermediate lives in a workspace buffer
    sized for one minibatch, so a step allocates nothing (a 20-16-1 net's step is a few
    microseconds). Deep models call ``loss_grad`` instead: inlining them made Numba's compile
    time grow much faster than the model (see docs/decisions.md), while per-step allocation
    is negligible next to their matrix products. The loop is compiled as glue, without LLVM's
    optimiser, calling compiled kernels for everything that loops (docs/decisions.md, "The
    training loop is glue for every model").

    ``train_chunk_par`` is the same loop for minibatches worth splitting: ``par_grads``
    splits each one into row blocks of at least ``par_rows`` rows, one per thread, and
    ``par_update`` sums their gradients and updates the parameters a slice per thread (``fit``
    chooses both: ``runtime/execution.py``; ``codegen/train_par.py``). Numba compiles a function
    on its first call, so models that never train on row blocks never pay for compiling it.

    Returns the lines and the functions the loops call as glue (``codegen/glue.py``).
    """
    glue = Glue()
    return _chunk(prog, opt_state, glue, par=False) + ["", ""] + _chunk(prog, opt_state, glue, par=True), glue.used


def _chunk(prog: Program, opt_state: tuple[str, ...], glue: Glue, par: bool) -> list[str]:
    tp = _workspace_program(prog, glue)
    ps = [tp.v(p) for p in tp.params]
    gs = [tp.d(p) for p in tp.params]
    xs = [tp.v(d) for d in tp.data]
    states = [f"s_{s}" for s in opt_state]
    small = len(tp.nodes) <= INLINE_MAX_NODES
    inline = small and not par
    fn = glue  # the loop is glue: it calls through overloads (codegen/glue.py)
    zero = _zero_statement(tp, fn) if small else None
    blocks, ws = [], []
    if inline:
        step = tp.step("loss_b")
    elif par:  # docs/decisions.md, "The row-block step uses both threads in both halves"
        if small:
            blocks = train_par.block_grad(tp, glue, zero) + ["", ""]
            ws = [train_par.workspace(tp)]
        blocks += train_par.par_grads(tp, glue, small) + ["", ""] + train_par.par_update(states, glue) + ["", ""]
        step = ["    nbk = min(gpart.shape[0], max(1, B // par_rows))",
                f"    loss_b = {fn('par_grads')}(dims, theta, {', '.join(xs)}, gpart[:nbk], wpart[:nbk]"
                f"{', ws' if small else ''}{', key' if tp.noisy else ''})"]
    else:
        step = [f"    loss_b = {fn('loss_grad')}({tp.flat_signature()})"]
    full = [f"full_{x}" for x in xs]
    expand = {"data": full, "states": states}
    sig = ", ".join(["dims", *(a for name in KERNEL_ARGS for a in expand.get(name, [name]))])
    fname = "train_chunk_par" if par else "train_chunk"
    pre = [] if par else [
         "# Sums of squares may be reordered so that they vectorise (8x faster measured): they feed",
         "# only the gradient norms and the finiteness checks.", "@jit_reduce", "def sumsq(a):", "    s = F(0.0)", "    for k in range(a.shape[0]):", "        s += a[k] * a[k]",
         "    return s", "", "",
         "# The loop's own loops are kernels: glue is not optimised, and a loop in it took 15 ns per",
         "# element (copying 17k parameters after each epoch: 266 µs; optimised, 1.5).", "@jit",
         "def copy_into(src, dst):", "    for k in range(dst.shape[0]):", "        dst[k] = src[k]", "", "",
         "@jit", "def copy_spans(src, dst, spans):", "    # entries [spans[f], spans[f + 1]) for even f",
         "    for f in range(0, spans.shape[0], 2):", "        for k in range(spans[f], spans[f + 1]):",
         "            dst[k] = src[k]", "", "",
         "@jit", "def zero_spans(a, spans):", "    # entries [spans[f], spans[f + 1]) for even f",
         "    for f in range(0, spans.shape[0], 2):", "        for k in range(spans[f], spans[f + 1]):",
         "            a[k] = F(0.0)", "", "",
         "@jit", "def scale_by(a, s):", "    for k in range(a.shape[0]):", "        a[k] *= s", "", "",
         *train_par.KERNELS, "", "",
         "@jit", "def add_norms(grad, offsets, norms):",
         "    # each parameter's gradient norm added to norms[k]; the sum of their squares returned",
         "    sq = F(0.0)", "    for k in range(norms.shape[0]):", "        n2 = sumsq(grad[offsets[k]:offsets[k + 1]])",
         "        norms[k] += math.sqrt(n2)", "        sq += n2", "    return sq", "", "",
         "@jit", "def gather(full, perm, start, out):",
         "    for r in range(out.shape[0]):", "        src = perm[start + r]",
         "        for c in range(out.shape[1]):", "            out[r, c] = full[src, c]", "", "",
         "# Views are made by kernels too: in the glue, a slice and a reshape took 3x the compile",
         "# time of a call (docs/decisions.md, \"Views in the glue\").", "@jit", "def view2(a, o, r, c):",
         "    return a[o:o + r * c].reshape((r, c))", "", "", "@jit", "def ravel(a):", "    return a.reshape(-1)", "", "",
         "@jit", "def rows(a, start, B):", "    return a[start:start + B]",
         "", ""]
    # OFFSETS: parameter k is theta[OFFSETS[k]:OFFSETS[k + 1]]; FROZEN: [start, end) pairs of
    # the running statistics, which the optimizer leaves
    offsets = tp.dims.span("", "OFFSETS", tp.offsets())
    frozen = _frozen_slices(tp)
    if frozen and not par:
        pre += ["ROW_BLOCKS = False  # batch normalisation's statistics need the whole minibatch in one block", "", ""]
    frozen = frozen and tp.dims.span("", "FROZEN", frozen)
    head = ["@jit_glue", f"def {fname}({sig}{', threads, par_rows' if par else ''}):"]
    L = ["    grad = np.empty_like(theta)",
          "    good = theta.copy()  # the parameters at the end of the last epoch whose every step was finite"]
    if frozen:
        L.append("    keep = np.empty_like(theta)")
    if par:  # one gradient buffer per thread (numba.get_num_threads() here would stop caching)
        L += ["    gpart = np.empty((threads, theta.shape[0]), dtype=F)", "    wpart = np.empty(threads, dtype=F)",
              "    norms2 = np.empty((threads, gnorms.shape[1]), dtype=F)", "    sqs = np.empty(threads, dtype=F)"]
        L += ws
    if inline:  # the inlined step uses the parameter arrays; deep models' loss_grad takes the buffers
        L += tp.views("theta", ps, fn) + tp.views("grad", gs, fn) + tp.flat_views(step, fn)
    L += [f"    ws_{x} = np.empty((batch_size, {f}.shape[1]), dtype=F)" for x, f in zip(xs, full)]
    for name, n in ([] if par else tp.ws):
        L.append(f"    ws_{name} = {tp.alloc(n, name, rows='batch_size')}")
    L += [f"    N = {full[0]}.shape[0]", "    t = t0", "    for e in range(perms.shape[0]):",
          "        total = F(0.0)", "        nb = 0", "        for k in range(gnorms.shape[1]):", "            gnorms[e, k] = F(0.0)",
          "        for start in range(0, N, batch_size):",
          "            B = min(start + batch_size, N) - start"]
    for x, f in zip(xs, full):
        L += ["            if shuffle:", f"                {x} = {fn('rows')}(ws_{x}, 0, B)",
              f"                {fn('gather')}({f}, perms[e], start, {x})",
              "            else:  # in order: a view, no copy (full-batch gradient descent reads X once)",
              f"                {x} = {fn('rows')}({f}, start, B)"]
    if inline and zero:  # the inlined backward adds to these gradients; loss_grad zeroes its buffer itself
        L += ["        " + zero]
    if tp.noisy:  # a nonzero key: training; dropout's masks come from the epoch's seed and the step count
        drops = any(n.kind == "dropout" for n in tp.nodes)
        L += ["            key = noise.step_key(seeds[e], t)" if drops else "            key = 1", "            row0 = 0"]
    L += _indent(step, 8)
    back = f"                {fn('copy_into')}(good, theta)  # back to the end of the last whole epoch"
    L += ["            if not math.isfinite(loss_b):",
          "                # NaN guard: the parameters go back to the last epoch whose every loss was finite",
          back, "                return e, t, 1",
          "            total += loss_b * F(B)"]
    if par:  # the blocks' sum, the norms and (unless clipping needs the whole norm first) the update
        L += [f"            update = {'False' if frozen else 'clip <= F(0.0)'}",
              f"            sqt = {fn('par_update')}(theta, grad, gpart[:nbk], wpart[:nbk]{''.join(', ' + s for s in states)}, "
              f"lrs[e], t + 1, hyper, {offsets}, norms2[:nbk], sqs[:nbk], update)",
              f"            sq = {fn('add_norms2')}(norms2[:nbk], gnorms[e])"]
    else:
        L += [f"            sq = {fn('add_norms')}(grad, {offsets}, gnorms[e])"]
    L += ["            if not math.isfinite(sq):  # a non-finite gradient", back, "                return e, t, 1"]
    ind = "    " if par else ""
    if par:  # clipping needs the whole gradient's norm before any update: then the update comes here
        L += ["            t += 1", "            if update and not math.isfinite(sqt):  # an update overflowed", back,
              "                return e, t, 2", "            if not update:"]
    L += [f"{ind}            if clip > F(0.0) and math.sqrt(sq) + F(1e-6) > clip:",
          f"{ind}                # as optim.clip_scale; a kernel, not 'grad *=', which compiles NumPy's ufunc machinery",
          f"{ind}                {fn('scale_by')}(grad, clip / (math.sqrt(sq) + F(1e-6)))"]
    if not par:
        L.append("            t += 1")
    if frozen:  # the optimizer leaves the running statistics as the step set them
        L.append(f"{ind}            {fn('copy_spans')}(theta, keep, {frozen})")
    L.append(f"{ind}            {fn('opt_update')}(theta, grad{''.join(', ' + s for s in states)}, lrs[e], t, hyper)")
    if frozen:
        L.append(f"{ind}            {fn('copy_spans')}(keep, theta, {frozen})")
    L += [f"{ind}            if not math.isfinite({fn('sumsq')}(theta)):  # an update overflowed",
          ind + back, f"{ind}                return e, t, 2"]
    L += ["            nb += 1", "        losses[e] = total / F(N)", "        for k in range(gnorms.shape[1]):", "            gnorms[e, k] /= F(nb)",
          f"        {fn('copy_into')}(theta, good)  # this epoch is whole: a divergence later goes back here",
          "    return perms.shape[0], t, 0"]
    return pre + blocks + head + tp.bind(L) + L


def _zero_statement(tp: Program, fn: Glue) -> str | None:
    """The step's statement that zeroes the gradients its backward adds to (none: every one is
    written whole), over a buffer named ``grad``."""
    zero = _zero_spans(tp)
    if zero == [0, tp.offsets()[-1]]:
        return f"    {fn('fill0')}(grad)"
    return f"    {fn('zero_spans')}(grad, {tp.dims.span('', 'ZERO', zero)})" if zero else None


def _zero_spans(prog: Program) -> list[int]:
    """[start, end) pairs of the gradients that the backward adds to, which start each step at
    zero: all but those written whole by their one consumer, a product x·Wᵀ (``Program.acc``'s
    ``mm``, BLAS's beta 0). The digits MLP's step zeroes 202 numbers instead of 17,226 (1.5 µs)."""
    whole = {id(w) for n in prog.nodes if n.kind == "matmul" and id(n) in prog.need
             for w, x in [n.inputs] if w.kind == "leaf" and not w.batched and x.batched
             and id(w) in prog.need and prog.consumers.get(id(w), 0) == 1}
    at, spans = prog.offsets(), []
    for k, p in enumerate(prog.params):
        if id(p) in whole:
            continue
        if spans and spans[-1] == at[k]:
            spans[-1] = at[k + 1]  # adjacent: one span
        else:
            spans += [at[k], at[k + 1]]
    return spans


def _frozen_slices(prog: Program) -> list[int]:
    """start, end in theta of each running statistic (batch normalisation's mean and variance)."""
    at, index = prog.offsets(), {id(p): k for k, p in enumerate(prog.params)}
    stats = [i for n in prog.nodes if n.kind == "batchnorm" for i in n.inputs[1:]]
    return [a for s in stats for a in (at[index[id(s)]], at[index[id(s)] + 1])]


def predict_source(prog: Program, model_expr, params, x) -> list[str]:
    """``predict(params..., x)``: the model output, sharing the loss's map kernels."""
    nodes, out = fuse_maps(*lower_matrix(model_expr, params, [x]))
    leaves = {n.label: n for n in nodes if n.kind == "leaf"}
    pp = Program(nodes, out, [leaves[str(p)] for p in params], [leaves[str(x)]], "mean", prog.kernels.p,
                 kernels=prog.kernels, dims=prog.dims, scope="predict")
    return pp.predict_fn()
